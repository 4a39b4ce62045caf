package rowstore

import "testing"

// TestLazyListForgetsLayerGCRemoved: a lazy disk deleted before any source
// was attached (a killed restore's temporary disk, deleted at the daemon's
// start) leaves its layer listed until GC removes it, and not after: the
// layer is gone from ListLazy at once, without reopening the store (it
// stayed listed, with no disk, until then).
func TestLazyListForgetsLayerGCRemoved(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	o := LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: 16 * lazyBS, BlockSize: lazyBS}
	if _, err := s.CreateLazyDisk("x", o, 16); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateLazyDisk("kept", o, 16); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDisk("x", false); err != nil {
		t.Fatal(err)
	}
	ls, err := s.ListLazy()
	if err != nil || len(ls) != 2 {
		t.Fatalf("lazy layers before GC: %+v, %v; want x's (no disk) and kept's", ls, err)
	}
	if _, err := s.GC(); err != nil {
		t.Fatal(err)
	}
	ls, err = s.ListLazy()
	if err != nil || len(ls) != 1 || len(ls[0].Disks) != 1 || ls[0].Disks[0] != "kept" {
		t.Fatalf("lazy layers after GC: %+v, %v; want kept's only", ls, err)
	}
}
