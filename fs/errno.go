package fs

import (
	"errors"
	"syscall"
)

// toErrno maps a Backend error to the errno the kernel sees. nil maps to 0;
// an error wrapping a syscall.Errno is that errno; every other error goes
// through Options.Errno, the caller's one table of errors (snapfs's is
// cmd/snapfs/internal/exitcode.Errno): this package knows nothing of the
// engine's sentinels. Without Options.Errno it is EIO. Nothing else in this
// package turns an error into an errno.
func (m *mountState) toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	if m.errno != nil {
		if e := m.errno(err); e != 0 {
			return e
		}
	}
	return syscall.EIO
}
