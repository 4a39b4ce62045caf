package rowstore

// Trial 8: an operator's adversarial trial of the local store. Each test is
// one finding: what a user saw, as a test that fails while the defect is
// there.

import (
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// trial8Write writes blocks [from, to) of disk name with a non-zero pattern.
func trial8Write(t *testing.T, s *Store, name string, from, to int, fill byte) {
	t.Helper()
	h, err := s.OpenDisk(name)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for b := from; b < to; b++ {
		for i := range buf {
			buf[i] = fill ^ byte(b) ^ byte(i)
		}
		buf[0] = 1
		if _, err := h.WriteAt(buf, int64(b)*4096); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTrial8ExclusiveThroughDeletedParents: `usage` said a disk rolled back
// to a snapshot that was then deleted, or a clone whose source snapshot and
// disk were deleted, held 0 B exclusively (and `snapshot delete --dry-run`
// said the same of such a chain), yet deleting it freed everything it shows:
// the blocks it reads from its parent layer were counted as held by
// "layer:ID", a name no disk, snapshot or image carries. What deleting it
// frees must be its exclusive figure.
func TestTrial8ExclusiveThroughDeletedParents(t *testing.T) {
	s, _ := newTestStore(t, testOptions())
	const bs = 4096
	// A rollback, then the snapshot deleted: the disk's new head reads
	// every block from its old (now unnamed) layer.
	if _, err := s.CreateDisk("rb", 64*bs, bs); err != nil {
		t.Fatal(err)
	}
	trial8Write(t, s, "rb", 0, 32, 1)
	if _, err := s.CreateSnapshot("rb-s", []string{"rb"}, ""); err != nil {
		t.Fatal(err)
	}
	trial8Write(t, s, "rb", 0, 8, 2) // 8 blocks the rollback discards
	if err := s.RollbackDisk("rb", "rb-s", false); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSnapshot("rb-s"); err != nil {
		t.Fatal(err)
	}
	// A clone whose snapshot and source disk are gone; a clone of a clone
	// through a deleted snapshot of the middle one.
	if _, err := s.CreateDisk("src", 64*bs, bs); err != nil {
		t.Fatal(err)
	}
	trial8Write(t, s, "src", 0, 16, 3)
	if _, err := s.CreateSnapshot("src-s", []string{"src"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloneDisk("c1", "src-s", "src"); err != nil {
		t.Fatal(err)
	}
	trial8Write(t, s, "c1", 16, 20, 4) // 4 blocks of c1's own
	if _, err := s.CreateSnapshot("c1-s", []string{"c1"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloneDisk("c2", "c1-s", "c1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"src-s", "c1-s"} {
		if err := s.DeleteSnapshot(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteDisk("src", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(); err != nil { // the discarded and dead versions go
		t.Fatal(err)
	}
	u, err := s.FreshUsage()
	if err != nil {
		t.Fatal(err)
	}
	excl := map[string]int64{}
	for _, d := range u.Disks {
		excl[d.Name] = d.Exclusive
	}
	// c1 and c2 share src's 16 blocks and c1's 4 (c2 reads them through
	// c1's layer): deleting one alone frees nothing; rb holds its 32.
	want := map[string]int64{"rb": 32 * bs, "c1": 0, "c2": 0}
	for n, w := range want {
		if excl[n] != w {
			t.Errorf("usage: disk %s holds %d bytes exclusively, want %d", n, excl[n], w)
		}
	}
	// What each delete frees is what usage said.
	for _, n := range []string{"rb", "c1", "c2"} {
		u, err := s.FreshUsage()
		if err != nil {
			t.Fatal(err)
		}
		var said int64 = -1
		for _, d := range u.Disks {
			if d.Name == n {
				said = d.Exclusive
			}
		}
		before := u.Store.LiveBytes
		if err := s.DeleteDisk(n, false); err != nil {
			t.Fatal(err)
		}
		st, err := s.GC()
		if err != nil {
			t.Fatal(err)
		}
		if freed := before - st.LiveBytes; freed != said {
			t.Errorf("usage said disk %s holds %d bytes exclusively; deleting it freed %d", n, said, freed)
		}
	}
}

// TestTrial8CatalogRecoversAfterNoSpace: on a store whose filesystem was
// filled (the reserve spent, then other files took the rest), one failed
// `image create` left every later catalog change refused "until the store
// is reopened" (exit 1): `snapshot delete`, the very thing the message asks
// for, failed even after space came back, and only a daemon restart, with
// every VM's disk closed, got the user out. A later catalog change now
// supersedes the failed record first, and goes on once the log takes
// writes again; the failed change never appears, before or after a reopen.
func TestTrial8CatalogRecoversAfterNoSpace(t *testing.T) {
	var failing atomic.Bool
	efs := vfs.NewErrorFS(vfs.Default, vfs.InjectorFunc(func(op vfs.Op) bool {
		return failing.Load() && strings.Contains(op.Path, "segments") &&
			(op.Kind == vfs.OpWrite || op.Kind == vfs.OpWriteAt || op.Kind == vfs.OpSync || op.Kind == vfs.OpCreate)
	}))
	dir := filepath.Join(fastTempDir(t), "store")
	opts := testOptions()
	opts.FS = efs
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if _, err := s.CreateDisk("d", 64*4096, 4096); err != nil {
		t.Fatal(err)
	}
	trial8Write(t, s, "d", 0, 8, 1)
	if _, err := s.CreateSnapshot("old", []string{"d"}, ""); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	if _, err := s.CreateImage("img", "old", "d"); err == nil {
		t.Fatal("image create succeeded while the log failed every write")
	}
	failing.Store(false) // space came back
	if err := s.DeleteSnapshot("old"); err != nil {
		t.Fatalf("snapshot delete once the log takes writes again: %v", err)
	}
	if _, err := s.CreateSnapshot("new", []string{"d"}, ""); err != nil {
		t.Fatalf("snapshot create once the log takes writes again: %v", err)
	}
	check := func(when string) {
		t.Helper()
		if _, err := s.GetImage("img"); err == nil {
			t.Fatalf("%s: the failed image create is there", when)
		}
		if _, err := s.GetSnapshot("old"); err == nil {
			t.Fatalf("%s: the deleted snapshot is back", when)
		}
		if _, err := s.GetSnapshot("new"); err != nil {
			t.Fatalf("%s: snapshot new: %v", when, err)
		}
	}
	check("before a reopen")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	check("after a reopen")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Rebuild(dir, opts); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	check("after an index rebuild")
}

// TestTrial8FullAgainAfterReserveSpent: the reserve was given back when the
// store filled, gc freed space, and before any write re-armed the reserve
// another program took every free byte again. Then `image create` failed
// (no space, right), but after it `usage` failed too (issue 7: usage must
// work on a full store), every catalog change, deletes included, was
// refused "until the store is reopened" (exit 1, not 7), and still after
// the other program's file was gone. Now usage reports, a delete on the
// full filesystem says no space (exit 7), and once space is back deletes
// and creates work without a reopen; the failed image never appears.
func TestTrial8FullAgainAfterReserveSpent(t *testing.T) {
	const MiB = 1 << 20
	s, cfs, dir, opts := smallFullStore(t)
	var err error
	defer func() { s.Close() }()
	if _, err := s.CreateDisk("a", 8*MiB, 4096); err != nil {
		t.Fatal(err)
	}
	trial8Write(t, s, "a", 0, 512, 1) // 2 MiB
	for _, n := range []string{"s1", "s2", "s3"} {
		if _, err := s.CreateSnapshot(n, []string{"a"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	fill := func(name string) {
		t.Helper()
		sp, _ := cfs.Statfs(dir)
		f, err := cfs.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(make([]byte, sp.Free), 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	// Full once: a delete gives the reserve back.
	fill("/other1")
	if err := s.DeleteSnapshot("s1"); err != nil {
		t.Fatalf("snapshot delete on a full filesystem: %v", err)
	}
	if s.ReserveArmed() {
		t.Fatal("the reserve is still armed after a delete on a full filesystem")
	}
	// Full again, the reserve spent.
	fill("/other2")
	if _, err := s.CreateImage("img", "s2", "a"); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("image create on a full filesystem: %v, want no space", err)
	}
	if _, err := s.Usage(); err != nil {
		t.Fatalf("usage on a full filesystem: %v", err)
	}
	if err := s.DeleteSnapshot("s2"); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("snapshot delete on a full filesystem, reserve spent: %v, want no space", err)
	}
	// The other program's files go: everything works again, no reopen.
	for _, n := range []string{"/other1", "/other2"} {
		if err := cfs.Remove(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteSnapshot("s2"); err != nil {
		t.Fatalf("snapshot delete once space is back: %v", err)
	}
	if _, err := s.CreateImage("img2", "s3", "a"); err != nil {
		t.Fatalf("image create once space is back: %v", err)
	}
	check := func(when string) {
		t.Helper()
		if _, err := s.GetImage("img"); err == nil {
			t.Fatalf("%s: the failed image create is there", when)
		}
		for n, want := range map[string]bool{"s1": false, "s2": false, "s3": true} {
			if _, err := s.GetSnapshot(n); (err == nil) != want {
				t.Fatalf("%s: snapshot %s there: %v, want %v", when, n, err == nil, want)
			}
		}
		if _, err := s.GetImage("img2"); err != nil {
			t.Fatalf("%s: image img2: %v", when, err)
		}
	}
	check("before a reopen")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	check("after a reopen")
}
