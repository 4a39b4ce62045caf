package replicate

import (
	"context"
	"testing"

	"github.com/snapfs/snapfs/replicate/format"
)

// Sync skips a copied snapshot after reading one copy of its manifest and
// the others' tags (oneCopy); a copy that differs (here a newer one, same
// size, on one store: a rewrite that reached only it) is still found and
// put on every store, as readManifestAll finds it.
func TestSyncSkipFindsDifferingCopy(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	rs, m, _, _ := newInternalRegion(t, root, Options{PackSize: 1 << 20}, 2, 1, 0)
	if _, err := rs.CreateDisk("d", 1<<20, 64<<10); err != nil {
		t.Fatal(err)
	}
	h, err := rs.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	if _, err := h.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.CreateSnapshot("a", []string{"d"}, "manual"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(ctx, "r", nil, nil); err != nil {
		t.Fatal(err)
	}
	r, err := m.openRegion(ctx, "r", true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	nid := r.snapNID(m.host.ID, "a")
	read := func(i int) *format.Manifest {
		t.Helper()
		b, err := r.stores[i].Get(ctx, snapDir+nid, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := r.keys.Open(format.TypeManifest, nid, b)
		if err != nil {
			t.Fatal(err)
		}
		mf, err := format.DecodeManifest(pt)
		if err != nil {
			t.Fatal(err)
		}
		return mf
	}

	// Every copy the same: skipped on one read.
	listed, err := r.list(ctx, snapDir)
	if err != nil {
		t.Fatal(err)
	}
	if mf := r.oneCopy(ctx, nid, listed[nid]); mf == nil || mf.Name != "a" {
		t.Fatalf("oneCopy of identical copies: %v", mf)
	}

	// A newer copy (sequence + 1, same size) on store 2 only.
	mf := read(2)
	mf.Seq++
	pt, err := mf.Encode()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := r.keys.Seal(format.TypeManifest, nid, pt)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.stores[2].Put(ctx, snapDir+nid, sealed); err != nil {
		t.Fatal(err)
	}
	if listed, err = r.list(ctx, snapDir); err != nil {
		t.Fatal(err)
	}
	if !r.oneSize(listed[nid]) {
		t.Fatalf("the rewritten copy should have the same size: %v", listed[nid])
	}
	if got := r.oneCopy(ctx, nid, listed[nid]); got != nil {
		t.Fatal("oneCopy trusted copies that differ")
	}
	st, err := m.Sync(ctx, "r", nil, nil)
	if err != nil || st.Skipped != 1 {
		t.Fatalf("sync: %+v %v", st, err)
	}
	for i := range 3 {
		if got := read(i); got.Seq != mf.Seq {
			t.Errorf("store %d: manifest sequence %d after sync, want the newest, %d", i, got.Seq, mf.Seq)
		}
	}
}
