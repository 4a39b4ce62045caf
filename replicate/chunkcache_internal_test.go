package replicate

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The kept chunk set is served as it is while the region's listing is
// unchanged, extended when a sync added packs, and rebuilt when a pack
// lost shards (readability changed) or an index went away; a sync never
// changes the kept set.
func TestChunkCacheReuse(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	rs, m, _, _ := newInternalRegion(t, root, Options{PackSize: 64 << 10}, 2, 1, 4)
	const bs, nb = 16 << 10, 16
	h := newInternalDisk(t, rs, "d", bs*nb, bs)
	seed := byte(1)
	snapSync := func(name string) {
		t.Helper()
		b := make([]byte, bs*nb)
		for i := range b {
			b[i] = seed + byte(i*31+i/251)
		}
		seed++
		if _, err := h.WriteAt(b, 0); err != nil {
			t.Fatal(err)
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
		if _, err := rs.CreateSnapshot(name, []string{"d"}, "manual"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Sync(ctx, "r", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	load := func(mode int) *chunkSet {
		t.Helper()
		r, err := m.openRegion(ctx, "r", false)
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		cs, err := m.loadChunks(ctx, r, mode)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	snapSync("s1")
	a := load(chunksRead)
	if b := load(chunksRead); b != a {
		t.Fatal("unchanged region: the kept set was not reused")
	}
	n := len(a.chunks)
	if n != nb {
		t.Fatalf("set has %d chunks, want %d", n, nb)
	}
	snapSync("s2") // adds packs
	if len(a.chunks) != n {
		t.Fatal("a sync changed the kept set")
	}
	b := load(chunksRead)
	if b == a || len(b.chunks) != 2*nb {
		t.Fatalf("after a sync: reused %v, %d chunks, want a new set of %d", b == a, len(b.chunks), 2*nb)
	}
	if d := load(chunksDedup); d.base != b || len(d.chunks) != 0 {
		t.Fatal("a sync's set is not an empty layer over the kept set")
	}
	// A pack loses shards on two of three stores: no longer readable.
	var lost string
	for id := range b.packs {
		lost = id.String()
		break
	}
	for _, s := range []string{"s0", "s1"} {
		if err := os.Remove(filepath.Join(root, s, "packs", lost)); err != nil {
			t.Fatal(err)
		}
	}
	c := load(chunksRead)
	if c == b || !c.unreadable[mustPackID(lost)] {
		t.Fatal("a pack that lost shards is still readable in the set")
	}
	if d := load(chunksDedup); d.base.index(mustPackID(lost)) != nil {
		t.Fatal("sync's set holds a pack that cannot be read")
	}
}
