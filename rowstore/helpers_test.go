package rowstore

import (
	"os"
	"testing"
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
