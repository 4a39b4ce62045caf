package replicate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// An incremental sync checks its parent's chain through the covers the
// Manager keeps (cover.go); a cover that names a pack no longer readable
// must not vouch for it: the sync then sends a full map, and the snapshot
// restores.
func TestCoverStaleAfterPackLost(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	rs, m, _, _ := newInternalRegion(t, root, Options{PackSize: 64 << 10}, 2, 1, 3)
	const bs, nb = 16 << 10, 32
	h := newInternalDisk(t, rs, "d", bs*nb, bs)
	write := func(blk int, seed byte) {
		t.Helper()
		b := make([]byte, bs)
		for i := range b {
			b[i] = seed + byte(i*31+blk*7+i/251)
		}
		if _, err := h.WriteAt(b, int64(blk)*bs); err != nil {
			t.Fatal(err)
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nb {
		write(i, 1)
	}
	packs := func() map[string]bool {
		ents, err := os.ReadDir(filepath.Join(root, "s0", "packs"))
		if err != nil {
			t.Fatal(err)
		}
		s := map[string]bool{}
		for _, e := range ents {
			s[e.Name()] = true
		}
		return s
	}
	snapSync := func(name string) {
		t.Helper()
		if _, err := rs.CreateSnapshot(name, []string{"d"}, "manual"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Sync(ctx, "r", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	snapSync("a")
	packsA := packs()
	if len(packsA) < 4 {
		t.Fatalf("%d packs for snapshot a; the test needs several", len(packsA))
	}
	r, err := m.openRegion(ctx, "r", true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	parent := func(snap string) string {
		t.Helper()
		mf, err := r.readManifest(ctx, r.snapNID(m.host.ID, snap))
		if err != nil {
			t.Fatal(err)
		}
		return mf.Disk("d").Parent
	}
	mfA, err := r.readManifest(ctx, r.snapNID(m.host.ID, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.covers.get(diskKey(r, mfA.Disk("d"))); !ok {
		t.Fatal("no cover recorded for the manifest sync wrote")
	}

	write(3, 9)
	snapSync("b")
	if p := parent("b"); p != r.snapNID(m.host.ID, "a") {
		t.Fatalf("b's parent %q, want a's manifest (a delta through a's cover)", p)
	}

	// One of a's packs loses two of its three shards: below k.
	var lost string
	for p := range packsA {
		lost = p
		break
	}
	for _, s := range []string{"s0", "s1"} {
		if err := os.Remove(filepath.Join(root, s, "packs", lost)); err != nil {
			t.Fatal(err)
		}
	}
	write(5, 17)
	snapSync("c")
	if p := parent("c"); p != "" {
		t.Fatalf("c's parent %q over a chain with a lost pack; want a full map", p)
	}
	if _, err := m.Restore(ctx, "r", "c", "d", "out", nil); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, bs*nb)
	got := make([]byte, bs*nb)
	if _, err := h.ReadAt(want, 0); err != nil {
		t.Fatal(err)
	}
	o, err := rs.OpenDisk("out")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, err := o.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("restored c differs from the disk")
	}
}
