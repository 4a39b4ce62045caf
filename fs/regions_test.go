package fs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// fakeRegions is one region "r" with one snapshot "s" of disks whose
// reads fail with the error named by the disk.
type fakeRegions struct {
	errs map[string]error // disk -> what its reads fail with
}

func (f fakeRegions) Regions() ([]string, error) { return []string{"r"}, nil }

func (f fakeRegions) RemoteSnapshots(region string) ([]RemoteSnapshotEntry, error) {
	e := RemoteSnapshotEntry{Name: "s", Created: time.Unix(1e9, 0), Key: "h/1"}
	for d := range f.errs {
		e.Disks = append(e.Disks, SnapshotDisk{Name: d, Size: 64 << 10, Allocated: 64 << 10})
	}
	return []RemoteSnapshotEntry{e}, nil
}

func (f fakeRegions) OpenRemoteDisk(region, snapshot, disk string) (ReadHandle, error) {
	return failingHandle{err: f.errs[disk]}, nil
}

type failingHandle struct{ err error }

func (h failingHandle) ReadAt(p []byte, off int64) (int, error) { return 0, h.err }
func (h failingHandle) Size() int64                             { return 64 << 10 }
func (h failingHandle) Close() error                            { return nil }

// TestRegionsReadErrorsAreEIO: a read of a remote disk that cannot be
// served fails with EIO whatever the cause says: a store's network error
// (which wraps ECONNREFUSED), a region locked by another host's prune
// (EAGAIN in the caller's table), a missing object (ENOENT). A read(2)
// that returned ECONNREFUSED, EAGAIN or ENOENT would make cp and the
// kernel's readers misreport (or retry) a failed read of existing data.
func TestRegionsReadErrorsAreEIO(t *testing.T) {
	refused := fmt.Errorf("unavailable: store 0: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	errs := map[string]error{
		"refused":  refused,
		"locked":   fmt.Errorf("unavailable: region locked: %w", syscall.EAGAIN),
		"notfound": fmt.Errorf("unavailable: pack gone: %w", syscall.ENOENT),
		"perm":     fmt.Errorf("unavailable: store: open: %w", syscall.EACCES),
	}
	_, mnt := mountT(t, newMemBackend(), func(o *Options) { o.Regions = fakeRegions{errs: errs} })
	for d := range errs {
		f, err := os.Open(filepath.Join(mnt, "regions", "r", "s", d))
		if err != nil {
			t.Fatalf("open %s: %v", d, err)
		}
		_, err = f.ReadAt(make([]byte, 4096), 0)
		f.Close()
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("read of remote disk %s: %v, want EIO", d, err)
		}
	}
}
