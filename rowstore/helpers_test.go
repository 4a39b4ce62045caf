package rowstore

import (
	"os"
	"path/filepath"
	"testing"

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
