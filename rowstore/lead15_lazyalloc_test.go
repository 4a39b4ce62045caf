package rowstore

import (
	"path/filepath"
	"testing"
)

// TestLead15LazySnapshotAllocated: a snapshot of a lazily restored disk
// taken before any block was fetched counts, through its reader, every
// block the source stores (the image shows them), not only the ones local
// yet; after hydration the count is the same and cached.
func TestLead15LazySnapshotAllocated(t *testing.T) {
	const blocks = 64
	a, _ := lazyFixture(t, blocks)
	src := newStoreSource(t, a, "s", "d")
	size := int64(blocks * lazyBS)
	dir := filepath.Join(fastTempDir(t), "b")
	if err := Create(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: size, BlockSize: lazyBS}, int64(len(src.stored))); err != nil {
		t.Fatal(err)
	}
	layer := lazyLayerOf(t, b, "x")
	// Attached with hydration paused: nothing is fetched but what is read.
	if err := b.AttachLazy(layer, src, HydrateOptions{Rate: 1, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSnapshot("early", []string{"x"}, "manual"); err != nil {
		t.Fatal(err)
	}
	want := int64(len(src.stored)) * lazyBS
	r, err := b.OpenSnapshotDisk("early", "x")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := r.Allocated(); err != nil || got != want {
		t.Fatalf("Allocated of a snapshot of a lazy disk not fetched = %d, %v; want %d (the source's %d blocks)", got, err, want, len(src.stored))
	}
	lazyReadAll(t, r, size) // every block fetched now
	if got, err := r.Allocated(); err != nil || got != want {
		t.Fatalf("Allocated after every block was read = %d, %v; want %d", got, err, want)
	}
}
