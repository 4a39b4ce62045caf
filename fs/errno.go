package fs

import (
	"errors"
	"syscall"

	"github.com/snapfs/snapfs/rowstore"
)

// errnoTable is the one mapping from the engine's sentinel errors to errno
// values. Order matters only for errors that wrap several sentinels: the first
// match wins, so corruption (which must never be hidden) comes first.
var errnoTable = []struct {
	err   error
	errno syscall.Errno
}{
	{rowstore.ErrCorrupt, syscall.EIO},
	{rowstore.ErrNotFound, syscall.ENOENT},
	{rowstore.ErrExists, syscall.EEXIST},
	{rowstore.ErrInvalid, syscall.EINVAL},
	{rowstore.ErrBusy, syscall.EBUSY},
	{rowstore.ErrReadOnly, syscall.EROFS},
	{rowstore.ErrNoSpace, syscall.ENOSPC},
	{rowstore.ErrClosed, syscall.EIO},
	{rowstore.ErrLocked, syscall.ENOKEY},         // an encrypted disk whose key is locked
	{rowstore.ErrWrongKey, syscall.EKEYREJECTED}, // never from a FUSE call today
}

// toErrno maps a Backend error to the errno the kernel sees. nil maps to 0;
// an error wrapping none of the sentinels is EIO. Nothing else in this package
// turns an error into an errno.
func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	for _, e := range errnoTable {
		if errors.Is(err, e.err) {
			return e.errno
		}
	}
	return syscall.EIO
}
