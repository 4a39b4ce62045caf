package rowstore

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// treeHash hashes every file (name, size, content) under the given
// subdirectories of dir: what a refused Open must leave unchanged.
func treeHash(t *testing.T, dir string, subs ...string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	for _, sub := range subs {
		filepath.WalkDir(filepath.Join(dir, sub), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			if e.IsDir() {
				out[rel+"/"] = [32]byte{}
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[rel] = sha256.Sum256(b)
			return nil
		})
	}
	return out
}

func sameTree(t *testing.T, got, want map[string][32]byte) {
	t.Helper()
	var diffs []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, "removed "+k)
		} else if g != v {
			diffs = append(diffs, "changed "+k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "added "+k)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("files changed by a refused open: %v", diffs)
	}
}

var quiet = Options{SyncInterval: -1, GCInterval: -1}

// TestIndexRefusedAndRebuilt is finding 1 of issue 7: a damaged index
// (MANIFEST removed, directory emptied or removed, index of another store)
// is refused at Open with ErrCorrupt, nothing under segments/ or index/
// changes, and Rebuild brings back every disk, snapshot and image byte for
// byte.
func TestIndexRefusedAndRebuilt(t *testing.T) {
	other := filepath.Join(fastTempDir(t), "other")
	if err := Create(other, quiet); err != nil {
		t.Fatal(err)
	}
	so, err := Open(other, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := so.CreateDisk("x", 1<<20, 4096); err != nil {
		t.Fatal(err)
	}
	so.Close()
	damages := []struct {
		name   string
		damage func(idx string) error
	}{
		{"manifest removed", func(idx string) error { return os.Remove(filepath.Join(idx, "MANIFEST")) }},
		{"directory emptied", func(idx string) error {
			ents, _ := os.ReadDir(idx)
			for _, e := range ents {
				if err := os.Remove(filepath.Join(idx, e.Name())); err != nil {
					return err
				}
			}
			return nil
		}},
		{"directory removed", os.RemoveAll},
		{"index of another store", func(idx string) error {
			if err := os.RemoveAll(idx); err != nil {
				return err
			}
			copyTree(t, filepath.Join(other, "index"), idx)
			return nil
		}},
		{"identity file removed, index of another store", func(idx string) error {
			if err := os.RemoveAll(idx); err != nil {
				return err
			}
			copyTree(t, filepath.Join(other, "index"), idx)
			return os.Remove(filepath.Join(idx, "SNAPFS-INDEX"))
		}},
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			dir, want := openFixture(t)
			s, err := Open(dir, quiet) // upgrade the v1 fixture: its log gets a catalog
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if err := d.damage(filepath.Join(dir, "index")); err != nil {
				t.Fatal(err)
			}
			before := treeHash(t, dir, "segments", "index")
			for i := 0; i < 2; i++ {
				_, err = Open(dir, quiet)
				if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrIndexRefused) {
					t.Fatalf("open of a damaged index: %v, want ErrCorrupt and ErrIndexRefused", err)
				}
			}
			t.Logf("refused: %v", err)
			sameTree(t, treeHash(t, dir, "segments", "index"), before)
			rep, err := Rebuild(dir, quiet)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("rebuild: %+v", rep)
			if rep.Disks != len(want.Disks) || rep.Images != len(want.Images) {
				t.Errorf("rebuild found %d disks, %d images; want %d, %d", rep.Disks, rep.Images, len(want.Disks), len(want.Images))
			}
			if _, err := os.Stat(filepath.Join(dir, "index")); err != nil {
				t.Fatal(err)
			}
			if d.name != "directory removed" {
				if _, err := os.Stat(rep.MovedAside); err != nil {
					t.Errorf("old index not kept: %v", err)
				}
			}
			s, err = Open(dir, quiet)
			if err != nil {
				t.Fatal(err)
			}
			compareManifest(t, fixtureRead(t, s), want)
			if _, err := s.GC(); err != nil {
				t.Fatal(err)
			}
			compareManifest(t, fixtureRead(t, s), want)
			s.Close()
		})
	}
}

// TestIndexBehindRefused: an old copy of the index put back after the
// cleaner removed the segments it knew is refused.
func TestIndexBehindRefused(t *testing.T) {
	dir := filepath.Join(fastTempDir(t), "s")
	opts := Options{SyncInterval: -1, GCInterval: -1, SegmentSize: 64 << 10, CleanBelow: 1}
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDisk("d", 1<<20, 4096); err != nil {
		t.Fatal(err)
	}
	d, _ := s.OpenDisk("d")
	buf := make([]byte, 4096)
	for i := 0; i < 64; i++ {
		buf[0] = byte(i + 1)
		d.WriteAt(buf, int64(i)*4096)
	}
	d.Sync()
	s.Close()
	old := filepath.Join(fastTempDir(t), "old-index")
	copyTree(t, filepath.Join(dir, "index"), old)
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	d, _ = s.OpenDisk("d")
	for round := 0; round < 3; round++ {
		for i := 0; i < 64; i++ {
			buf[0] = byte(i + round)
			d.WriteAt(buf, int64(i)*4096)
		}
		d.Sync()
		if _, err := s.GC(); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	s.Close()
	s, err = Open(dir, opts) // the cleaner's checkpoint rule keeps a current index acceptable
	if err != nil {
		t.Fatalf("reopen after gc: %v", err)
	}
	s.Close()
	os.RemoveAll(filepath.Join(dir, "index"))
	copyTree(t, old, filepath.Join(dir, "index"))
	before := treeHash(t, dir, "segments", "index")
	_, err = Open(dir, opts)
	if !errors.Is(err, ErrIndexRefused) {
		t.Fatalf("open with an old index: %v, want ErrIndexRefused", err)
	}
	t.Logf("refused: %v", err)
	sameTree(t, treeHash(t, dir, "segments", "index"), before)
	if _, err := Rebuild(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, _ := s.OpenDisk("d")
	for i := 0; i < 64; i++ {
		r.ReadAt(buf, int64(i)*4096)
		if buf[0] != byte(i+2) {
			t.Fatalf("block %d: %d, want %d", i, buf[0], i+2)
		}
	}
}

// TestRebuildCatalogHistory: many catalog changes (so full catalog records
// are written and older ones cleaned away), renames, deletes, rollbacks and
// cleaning with every record relocated; a rebuild from the log alone gives
// the same catalog and the same bytes.
func TestRebuildCatalogHistory(t *testing.T) {
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
	_, err = s.CreateDisk("b", 1<<20, 16384)
	must(err)
	buf := make([]byte, 4096)
	for i := 0; i < 150; i++ {
		for _, n := range []string{"a", "b"} {
			d, err := s.OpenDisk(n)
			must(err)
			buf[0], buf[1] = byte(i), n[0]
			_, err = d.WriteAt(buf, int64(i%50)*4096)
			must(err)
			must(d.Sync())
			d.Close()
		}
		_, err = s.CreateSnapshot(fmt.Sprintf("s%d", i), []string{"a", "b"}, "policy")
		must(err)
		if i >= 5 && i%3 != 0 {
			must(s.DeleteSnapshot(fmt.Sprintf("s%d", i-5)))
		}
		if i%20 == 10 {
			_, err = s.CreateImage(fmt.Sprintf("img%d", i), fmt.Sprintf("s%d", i), "a")
			must(err)
			_, err = s.CloneDisk(fmt.Sprintf("c%d", i), fmt.Sprintf("s%d", i), "b")
			must(err)
		}
		if i%40 == 39 {
			must(s.RollbackDisk("a", fmt.Sprintf("s%d", i-1), false))
			must(s.RenameDisk("b", "b2"))
			must(s.RenameDisk("b2", "b"))
			must(s.ResizeDisk("b", int64(2<<20+i*16384)))
		}
		if i%50 == 49 {
			_, err := s.GC()
			must(err)
		}
	}
	must(s.DeleteDisk("c10", false))
	must(s.DeleteImage("img50"))
	_, err = s.GC()
	must(err)
	want := catalogAndData(t, s)
	must(s.Close())
	rep, err := Rebuild(dir, opts)
	must(err)
	t.Logf("rebuild: %+v", rep)
	s, err = Open(dir, opts)
	must(err)
	got := catalogAndData(t, s)
	must(s.Close())
	if got != want {
		t.Errorf("after rebuild:\n%s\nwant:\n%s", got, want)
	}
}

// catalogAndData describes every disk, snapshot and image with a hash of its bytes.
func catalogAndData(t *testing.T, s *Store) string {
	t.Helper()
	m := fixtureRead(t, s)
	out := ""
	for _, kind := range []map[string]string{m.Disks, m.Snapshots, m.Images} {
		var names []string
		for n := range kind {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			out += n + " " + kind[n][:12] + "\n"
		}
	}
	for k, v := range m.Sizes {
		_ = k
		_ = v
	}
	return out
}

// TestIndexBehindReplayed: an index that missed catalog changes and writes
// (as after a crash before Badger synced) while the log still holds them
// opens, and replay brings back the disks, snapshots, images, renames and
// deletions made since, in sequence order.
func TestIndexBehindReplayed(t *testing.T) {
	dir := filepath.Join(fastTempDir(t), "s")
	opts := Options{SyncInterval: -1, GCInterval: -1, SegmentSize: 64 << 10}
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDisk("d", 1<<20, 4096); err != nil {
		t.Fatal(err)
	}
	s.Close()
	old := filepath.Join(fastTempDir(t), "old-index")
	copyTree(t, filepath.Join(dir, "index"), old)
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := s.OpenDisk("d")
	buf := make([]byte, 4096)
	for i := 0; i < 40; i++ {
		buf[0] = byte(i + 1)
		d.WriteAt(buf, int64(i)*4096)
	}
	d.Sync()
	d.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.CreateSnapshot("s1", []string{"d"}, "")
	must(err)
	_, err = s.CreateImage("i1", "s1", "d")
	must(err)
	_, err = s.CloneDisk("c", "s1", "d")
	must(err)
	must(s.RenameDisk("d", "e"))
	_, err = s.CreateSnapshot("s2", []string{"e", "c"}, "")
	must(err)
	must(s.DeleteSnapshot("s1"))
	for i := 0; i < 100; i++ { // past a full catalog record
		_, err = s.CreateSnapshot(fmt.Sprintf("x%d", i), []string{"c"}, "")
		must(err)
		must(s.DeleteSnapshot(fmt.Sprintf("x%d", i)))
	}
	want := catalogAndData(t, s)
	s.Close()
	os.RemoveAll(filepath.Join(dir, "index"))
	copyTree(t, old, filepath.Join(dir, "index"))
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatalf("open with an index behind the log: %v", err)
	}
	defer s.Close()
	if got := catalogAndData(t, s); got != want {
		t.Errorf("after replay:\n%s\nwant:\n%s", got, want)
	}
}

// TestOpenAfterCrashVerifiesIndex: a store copied while open (Badger's
// memtable log preallocated and unfinished, as after a crash) cannot be
// verified read-only; Open verifies it after Badger's own recovery instead.
func TestOpenAfterCrashVerifiesIndex(t *testing.T) {
	dir := filepath.Join(fastTempDir(t), "s")
	opts := Options{SyncInterval: -1, GCInterval: -1}
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateDisk("d", 1<<20, 4096); err != nil {
		t.Fatal(err)
	}
	d, _ := s.OpenDisk("d")
	buf := make([]byte, 4096)
	buf[0] = 7
	d.WriteAt(buf, 0)
	d.Sync()
	d.Close()
	crashed := filepath.Join(fastTempDir(t), "crashed")
	// cp keeps Badger's preallocated files sparse (a 1 GiB value log).
	if out, err := exec.Command("cp", "-a", "--sparse=always", dir, crashed).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	os.Remove(filepath.Join(crashed, "lock"))
	c, err := Open(crashed, opts)
	if err != nil {
		t.Fatalf("open after a crash: %v", err)
	}
	defer c.Close()
	h, err := c.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.ReadAt(buf, 0); err != nil || buf[0] != 7 {
		t.Fatalf("read after a crash: %v %d", err, buf[0])
	}
}

// TestIndexAheadRefused: a log that lost its newest segment (or the end of
// one) while the index applied it is refused, not opened with an index
// pointing at missing records.
func TestIndexAheadRefused(t *testing.T) {
	for _, cut := range []string{"segment removed", "segment truncated"} {
		t.Run(strings.ReplaceAll(cut, " ", "_"), func(t *testing.T) {
			dir := filepath.Join(fastTempDir(t), "s")
			opts := Options{SyncInterval: -1, GCInterval: -1}
			if err := Create(dir, opts); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			s.CreateDisk("d", 1<<20, 4096)
			d, _ := s.OpenDisk("d")
			d.WriteAt(make([]byte, 8192), 0)
			buf := make([]byte, 4096)
			buf[0] = 1
			d.WriteAt(buf, 4096*5)
			d.Sync()
			d.Close()
			s.Close()
			segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
			sort.Strings(segs)
			last := segs[len(segs)-1]
			if fi, _ := os.Stat(last); fi.Size() <= 32 { // the empty segment of the last open
				last = segs[len(segs)-2]
			}
			if cut == "segment removed" {
				os.Remove(last)
			} else {
				fi, _ := os.Stat(last)
				os.Truncate(last, fi.Size()-100)
			}
			before := treeHash(t, dir, "segments", "index")
			_, err = Open(dir, opts)
			if !errors.Is(err, ErrIndexRefused) {
				t.Fatalf("open: %v, want ErrIndexRefused", err)
			}
			t.Logf("refused: %v", err)
			sameTree(t, treeHash(t, dir, "segments", "index"), before)
		})
	}
}

// TestRebuildLegacyLogWithoutCatalog: a store last written before the
// catalog log cannot get its catalog back from the log; Rebuild says so,
// wraps ErrCorrupt and puts the old index back where it was.
func TestRebuildLegacyLogWithoutCatalog(t *testing.T) {
	dir, want := openFixture(t) // never opened by this build: no catalog record in its log
	_, err := Rebuild(dir, quiet)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "no catalog record") {
		t.Fatalf("rebuild of a v1 log: %v", err)
	}
	t.Logf("refused: %v", err)
	bad, _ := filepath.Glob(filepath.Join(dir, "index.bad-*"))
	if len(bad) != 0 {
		t.Errorf("old index not put back: %v", bad)
	}
	s, err := Open(dir, quiet)
	if err != nil {
		t.Fatalf("open with the index put back: %v", err)
	}
	defer s.Close()
	compareManifest(t, fixtureRead(t, s), want)
}

// TestGCRemovedCheckpointSegment: GC removes the segment holding the
// index's checkpoint (everything in it dead, nothing relocated, so no
// commit follows); the store reopens (the index points at no missing
// segment), while an old copy of the index is still refused.
func TestGCRemovedCheckpointSegment(t *testing.T) {
	dir := filepath.Join(fastTempDir(t), "s")
	opts := Options{SyncInterval: -1, GCInterval: -1, CleanBelow: 1.01}
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.CreateDisk("d", 1<<20, 4096)
	s.CreateDisk("keep", 1<<20, 4096)
	d, _ := s.OpenDisk("d")
	buf := make([]byte, 4096)
	for i := 0; i < 16; i++ {
		buf[0] = byte(i + 1)
		d.WriteAt(buf, int64(i)*4096)
	}
	d.Sync()
	d.Close()
	s.Close()
	old := filepath.Join(fastTempDir(t), "old-index")
	copyTree(t, filepath.Join(dir, "index"), old)
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDisk("d", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatalf("reopen after gc removed the checkpoint's segment: %v", err)
	}
	if _, err := s.GetDisk("keep"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.RemoveAll(filepath.Join(dir, "index"))
	copyTree(t, old, filepath.Join(dir, "index"))
	if _, err := Open(dir, opts); !errors.Is(err, ErrIndexRefused) {
		t.Fatalf("open with the old index: %v, want ErrIndexRefused", err)
	}
}
