package rowstore

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// fastTempDir returns a temporary directory on tmpfs when there is one, so
// tests that do not simulate crashes are not slowed by real fsyncs; the
// crash tests use vfs.CrashFS instead.
func fastTempDir(t testing.TB) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "snapfs-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// newCrashStore creates and opens a store (testOptions) whose files live in
// a vfs.CrashFS: cfs.Crash decides what a crash keeps. The caller closes or
// crashes the store and reopens it at dir with opts (opts.FS set to the
// crashed view).
func newCrashStore(t testing.TB) (s *Store, dir string, opts Options, cfs *vfs.CrashFS) {
	t.Helper()
	cfs = vfs.NewCrashFS()
	dir = filepath.Join(t.TempDir(), "store")
	opts = testOptions()
	opts.FS = cfs
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir, opts, cfs
}

// reopenAfterCrash crashes s (nothing closed: Badger loses what it had not
// synced), then opens the store at dir on crashed (what the crash kept, from
// cfs.Crash), rebuilding the index when rebuild is set; the reopened store is
// closed at the end of the test. opts are the caller's (keys, sizes).
func reopenAfterCrash(t testing.TB, s *Store, dir string, opts Options, crashed vfs.FS, rebuild bool) *Store {
	t.Helper()
	s.crashForTest()
	opts.FS = crashed
	opts.RebuildIndex = rebuild
	s2, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("reopen after crash (rebuild %v): %v", rebuild, err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

// reopenStore closes s (a failed close fails the test) and opens the store
// at dir again with opts. The caller closes the reopened store.
func reopenStore(t testing.TB, s *Store, dir string, opts Options) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s2
}

// newCleanerDisk creates a store with opts holding disk "d" of blocks
// blocks of bs bytes, open in h, written whole (not synced) from model:
// random bytes from rng, seeded with seed, which the caller goes on using.
func newCleanerDisk(t testing.TB, opts Options, bs, blocks int, seed int64) (s *Store, dir string, h *Disk, rng *rand.Rand, model []byte) {
	t.Helper()
	s, dir = newTestStore(t, opts)
	if _, err := s.CreateDisk("d", int64(blocks*bs), bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	rng = rand.New(rand.NewSource(seed))
	model = make([]byte, blocks*bs)
	rng.Read(model)
	if _, err := h.WriteAt(model, 0); err != nil {
		t.Fatal(err)
	}
	return s, dir, h, rng, model
}

// overwriteRandom overwrites n blocks of h (of bs bytes, model holding the
// whole disk), each picked by rng (one may come up more than once), with
// random bytes from rng, kept in model, then syncs h.
func overwriteRandom(t testing.TB, h *Disk, rng *rand.Rand, model []byte, bs, n int) {
	t.Helper()
	blocks := len(model) / bs
	for i := 0; i < n; i++ {
		b := rng.Intn(blocks)
		rng.Read(model[b*bs : (b+1)*bs])
		if _, err := h.WriteAt(model[b*bs:(b+1)*bs], int64(b*bs)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
}

// buildLiveMap runs a GC, which builds the cleaner's live map, and fails
// the test when there is no live map after it.
func buildLiveMap(t testing.TB, s *Store) {
	t.Helper()
	if _, err := s.GC(); err != nil {
		t.Fatal(err)
	}
	if !s.cleaner.lm.has() {
		t.Fatal("no live map after GC")
	}
}

// readDiskEquals reads disk "d" of s whole and fails the test, naming
// what, when the read fails or the disk differs from model.
func readDiskEquals(t testing.TB, s *Store, model []byte, what string) {
	t.Helper()
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	got := make([]byte, len(model))
	if _, err := h.ReadAt(got, 0); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !bytes.Equal(got, model) {
		t.Fatalf("%s: the disk differs from what was written", what)
	}
}

// segmentSet returns the numbers of the segments s holds now.
func segmentSet(s *Store) map[ids.Segment]bool {
	have := map[ids.Segment]bool{}
	for _, si := range s.seg.Segments() {
		have[si.Number] = true
	}
	return have
}

// createWrittenDisk creates disk name of size bytes in blocks of bs on s,
// opens it and writes blocks 0 to n-1 with blockData(bs, b, 1), not synced.
// The caller closes the handle.
func createWrittenDisk(t testing.TB, s *Store, name string, size int64, bs, n int) *Disk {
	t.Helper()
	if _, err := s.CreateDisk(name, size, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk(name)
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < n; b++ {
		if _, err := h.WriteAt(blockData(bs, b, 1), int64(b*bs)); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// rollbackAndOpen closes h, rolls disk back to snapshot snap and opens it
// again; the caller closes the handle returned.
func rollbackAndOpen(t testing.TB, s *Store, h *Disk, disk, snap string) *Disk {
	t.Helper()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.RollbackDisk(disk, snap, false); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk(disk)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
