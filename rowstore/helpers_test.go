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
