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

	"github.com/snapfs/snapfs/rowstore"
)

// fakeRegions is one region "r" with one snapshot "s" of disks whose
// reads fail with the error named by the disk.
type fakeRegions struct {
	errs     map[string]error // disk -> what its reads fail with
	openErrs map[string]error // disk -> what its open fails with
	listErr  error            // what listing region "down" fails with
}

func (f fakeRegions) Regions() ([]string, error) { return []string{"r", "down"}, nil }

func (f fakeRegions) RemoteSnapshots(region string) ([]RemoteSnapshotEntry, error) {
	if region == "down" {
		return nil, f.listErr
	}
	e := RemoteSnapshotEntry{Name: "s", Created: time.Unix(1e9, 0), Key: "h/1"}
	for d := range f.openErrs {
		e.Disks = append(e.Disks, SnapshotDisk{Name: d, Size: 64 << 10, Allocated: 64 << 10})
	}
	for d := range f.errs {
		e.Disks = append(e.Disks, SnapshotDisk{Name: d, Size: 64 << 10, Allocated: 64 << 10})
	}
	return []RemoteSnapshotEntry{e}, nil
}

func (f fakeRegions) OpenRemoteDisk(region, snapshot, disk string) (ReadHandle, error) {
	if err := f.openErrs[disk]; err != nil {
		return nil, err
	}
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

// TestRegionsListOpenErrors: listing a region or opening a remote disk
// whose stores cannot be reached is EIO, not the network's errno
// (ECONNREFUSED); what the caller's table maps (a snapshot not found:
// ENOENT) keeps its errno.
func TestRegionsListOpenErrors(t *testing.T) {
	refused := fmt.Errorf("unavailable: store 0: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	fr := fakeRegions{
		errs:     map[string]error{},
		openErrs: map[string]error{"refused": refused, "gone": fmt.Errorf("disk: %w", rowstore.ErrNotFound)},
		listErr:  refused,
	}
	_, mnt := mountT(t, newMemBackend(), func(o *Options) { o.Regions = fr })
	if _, err := os.ReadDir(filepath.Join(mnt, "regions", "down")); !errors.Is(err, syscall.EIO) {
		t.Errorf("list a region whose stores refuse: %v, want EIO", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "regions", "down", "s")); !errors.Is(err, syscall.EIO) {
		t.Errorf("look up in a region whose stores refuse: %v, want EIO", err)
	}
	if _, err := os.Open(filepath.Join(mnt, "regions", "r", "s", "refused")); !errors.Is(err, syscall.EIO) {
		t.Errorf("open of a remote disk whose stores refuse: %v, want EIO", err)
	}
	if _, err := os.Open(filepath.Join(mnt, "regions", "r", "s", "gone")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("open of a remote disk not found: %v, want ENOENT", err)
	}
}
