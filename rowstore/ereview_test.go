package rowstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestCrashBetweenCatalogLogAndIndex: a crash after a catalog record is in
// the log (synced, and the checkpoint advanced past it by that sync) but
// before the index transaction committed. Reopen must agree with the log:
// replay must not start past a catalog record the index never applied, or
// the index silently disagrees with the log (the id counter goes back, the
// next disk reuses the layer, and a rebuild shows two disks on one layer).
func TestCrashBetweenCatalogLogAndIndex(t *testing.T) {
	dir := filepath.Join(fastTempDir(t), "s")
	opts := Options{SyncInterval: -1, GCInterval: -1, SegmentSize: 64 << 10}
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDisk("base", 1<<20, 4096); err != nil {
		t.Fatal(err)
	}
	crash := errTestCrash
	testHookCatalogLogged = func() error { return crash }
	_, err = s.CreateDisk("a", 1<<20, 4096)
	testHookCatalogLogged = nil
	if !errors.Is(err, crash) {
		t.Fatalf("create a: %v", err)
	}
	s.crashForTest()

	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	afterCrash := catalogAndData(t, s)
	if _, err := s.CreateDisk("b", 1<<20, 4096); err != nil {
		t.Fatal(err)
	}
	d, err := s.OpenDisk("b")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	buf[0] = 7
	if _, err := d.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	want := catalogAndData(t, s)
	layers := diskLayers(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Rebuild(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := catalogAndData(t, s)
	if got != want {
		t.Errorf("after the crash the store showed:\n%s\nafter writes:\n%s\nafter rebuild:\n%s", afterCrash, want, got)
	}
	gotLayers := diskLayers(t, s)
	seen := map[uint64]string{}
	for n, l := range gotLayers {
		if o, ok := seen[l]; ok {
			t.Errorf("disks %s and %s share layer %d after rebuild (before: %v)", o, n, l, layers)
		}
		seen[l] = n
	}
}

func diskLayers(t *testing.T, s *Store) map[string]uint64 {
	t.Helper()
	disks, err := s.ListDisks()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, d := range disks {
		m[d.Name] = d.ID
	}
	return m
}

// TestFailedCatalogChangeNotResurrected: a catalog change whose index
// transaction fails after its record reached the log returns an error; it
// must stay undone after a clean reopen and after a rebuild from the log.
func TestFailedCatalogChangeNotResurrected(t *testing.T) {
	dir := filepath.Join(fastTempDir(t), "s")
	opts := Options{SyncInterval: -1, GCInterval: -1, SegmentSize: 64 << 10}
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"x", "y"} {
		if _, err := s.CreateDisk(n, 1<<20, 4096); err != nil {
			t.Fatal(err)
		}
	}
	fail := errors.New("index transaction failed")
	testHookCatalogLogged = func() error { return fail }
	err = s.DeleteDisk("x", false)
	testHookCatalogLogged = nil
	if !errors.Is(err, fail) {
		t.Fatalf("delete x: %v", err)
	}
	d, err := s.OpenDisk("x")
	if err != nil {
		t.Fatalf("x after a failed delete: %v", err)
	}
	buf := make([]byte, 4096)
	buf[0] = 9
	if _, err := d.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	want := catalogAndData(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := catalogAndData(t, s); got != want {
		t.Errorf("after reopen:\n%s\nwant:\n%s", got, want)
	}
	s.Close()
	if _, err := Rebuild(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := catalogAndData(t, s); got != want {
		t.Errorf("after rebuild:\n%s\nwant:\n%s", got, want)
	}
}

// TestRepairKeepsHoles: a hole (zero record) whose record was corrupted is
// known only to the index. Repair removes the segments holding bad records;
// a rebuild from the log afterwards must still read the hole as zeros, not
// bring back the data the hole replaced.
func TestRepairKeepsHoles(t *testing.T) {
	dir := filepath.Join(fastTempDir(t), "s")
	opts := Options{SyncInterval: -1, GCInterval: -1, SegmentSize: 64 << 10}
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.CreateDisk("d", 1<<20, 4096)
	must(err)
	d, err := s.OpenDisk("d")
	must(err)
	old := make([]byte, 4096)
	for i := range old {
		old[i] = 0xAB
	}
	_, err = d.WriteAt(old, 0)
	must(err)
	must(d.Sync())
	must(s.seg.Rotate())
	must(d.PunchHole(0, 4096))
	must(d.Sync())
	tail := s.seg.Tail()
	_, err = d.WriteAt(old, 5*4096) // the hole is not the log's last record
	must(err)
	must(d.Sync())
	d.Close()
	want := catalogAndData(t, s)
	must(s.Close())
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
	last := segs[len(segs)-1]
	b, err := os.ReadFile(last)
	must(err)
	b[tail.Offset-6] ^= 0x10 // inside the zero record
	must(os.WriteFile(last, b, 0o600))

	s, err = Open(dir, opts)
	must(err)
	if got := catalogAndData(t, s); got != want {
		t.Fatalf("before repair:\n%s\nwant:\n%s", got, want)
	}
	rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
	must(err)
	if rep.OK() {
		t.Fatalf("the flipped hole record was not found")
	}
	if _, err := s.Repair(context.Background(), mapSource{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := catalogAndData(t, s); got != want {
		t.Fatalf("after repair:\n%s\nwant:\n%s", got, want)
	}
	must(s.Close())
	if _, err := Rebuild(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, opts)
	must(err)
	defer s.Close()
	if got := catalogAndData(t, s); got != want {
		t.Fatalf("after repair and rebuild the hole is gone:\n%s\nwant:\n%s", got, want)
	}
}

// TestRebuildAfterGCChecksClean: snapshots deleted and freed by GC, a clone
// whose origin disk was deleted, rollbacks and renames; after a rebuild
// from the log the store reads the same, checks clean (no layer whose
// parent is gone, no version into a removed segment), and GC on the rebuilt
// index frees nothing anyone reads.
func TestRebuildAfterGCChecksClean(t *testing.T) {
	dir := filepath.Join(fastTempDir(t), "s")
	opts := Options{SyncInterval: -1, GCInterval: -1, SegmentSize: 32 << 10, CleanBelow: 1.01}
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.CreateDisk("a", 1<<20, 4096)
	must(err)
	_, err = s.CreateDisk("b", 1<<20, 4096)
	must(err)
	buf := make([]byte, 4096)
	for i := 0; i < 120; i++ {
		for _, n := range []string{"a", "b"} {
			d, err := s.OpenDisk(n)
			must(err)
			buf[0], buf[1] = byte(i), n[0]
			_, err = d.WriteAt(buf, int64(i%40)*4096)
			must(err)
			if i%7 == 3 {
				must(d.PunchHole(int64((i+5)%40)*4096, 8192))
			}
			must(d.Sync())
			d.Close()
		}
		_, err = s.CreateSnapshot(fmt.Sprintf("s%d", i), []string{"a", "b"}, "")
		must(err)
		if i >= 3 {
			must(s.DeleteSnapshot(fmt.Sprintf("s%d", i-3)))
		}
		if i == 30 {
			_, err = s.CloneDisk("c", "s30", "b")
			must(err)
		}
		if i == 60 {
			must(s.DeleteDisk("b", false))
			_, err = s.CreateDisk("b", 1<<20, 4096) // a new disk, same name
			must(err)
		}
		if i == 80 {
			must(s.RollbackDisk("a", "s79", false))
			must(s.RenameDisk("c", "c2"))
		}
		if i%25 == 24 {
			_, err := s.GC()
			must(err)
		}
	}
	_, err = s.GC()
	must(err)
	want := catalogAndData(t, s)
	must(s.Close())
	if _, err := Rebuild(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, opts)
	must(err)
	defer s.Close()
	if got := catalogAndData(t, s); got != want {
		t.Fatalf("after rebuild:\n%s\nwant:\n%s", got, want)
	}
	rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
	must(err)
	for _, p := range rep.Problems {
		t.Errorf("check after rebuild: %+v", p)
	}
	_, err = s.GC()
	must(err)
	if got := catalogAndData(t, s); got != want {
		t.Fatalf("after rebuild and gc:\n%s\nwant:\n%s", got, want)
	}
	rep, err = s.Check(context.Background(), CheckOptions{ReadData: true})
	must(err)
	for _, p := range rep.Problems {
		t.Errorf("check after rebuild and gc: %+v", p)
	}
}
