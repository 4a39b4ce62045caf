//go:build linux

// snapfs patch (not in upstream ristretto): see allocate.

package z

import (
	"errors"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// NoSpaceHook, if set, is called when allocating a file fails for lack of
// space (ENOSPC, EDQUOT), with the file's path. If it returns true (it
// freed space), the allocation is tried once more. snapfs uses it to release
// the store's reserve before Badger fails a write.
var NoSpaceHook atomic.Pointer[func(path string) bool]

// allocate makes fd at least size bytes long with every block allocated
// (fallocate mode 0), so that writes through a shared mapping cannot fail.
// A filesystem without fallocate falls back to a sparse truncate (upstream
// behaviour). ENOSPC and EDQUOT are returned as such.
func allocate(fd *os.File, size int64) error {
	retried := false
	for {
		err := unix.Fallocate(int(fd.Fd()), 0, 0, size)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
			return fd.Truncate(size)
		case (errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)) && !retried:
			retried = true
			if h := NoSpaceHook.Load(); h != nil && (*h)(fd.Name()) {
				continue
			}
			return &os.PathError{Op: "fallocate", Path: fd.Name(), Err: err}
		default:
			return &os.PathError{Op: "fallocate", Path: fd.Name(), Err: err}
		}
	}
}
