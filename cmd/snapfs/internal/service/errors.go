package service

import (
	"errors"
	"syscall"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// codes name the sentinel errors on the wire. A code never changes meaning.
// The order is exitcode.Of's order of precedence, so an error that wraps two
// sentinels gets the same exit code through the daemon as without it. A
// replicate sentinel that means the same as a rowstore one shares its code
// (and comes back as the rowstore one: same exit code).
var codes = []struct {
	code string
	err  error
}{
	{"usage", exitcode.ErrUsage},
	{"invalid", rowstore.ErrInvalid},
	{"invalid", replicate.ErrInvalid},
	{"no_daemon", exitcode.ErrNoDaemon},
	{"degraded", exitcode.ErrDegraded},
	{"conflict", replicate.ErrConflict},
	{"locked", replicate.ErrLocked},
	{"disk_locked", rowstore.ErrLocked},
	{"wrong_key", replicate.ErrWrongKey},
	{"disk_wrong_key", rowstore.ErrWrongKey},
	{"mismatch", replicate.ErrMismatch},
	{"unavailable", replicate.ErrUnavailable},
	{"too_few_shards", replicate.ErrTooFewShards},
	{"not_found", rowstore.ErrNotFound},
	{"not_found", replicate.ErrNotFound},
	{"exists", rowstore.ErrExists},
	{"exists", replicate.ErrExists},
	{"busy", rowstore.ErrBusy},
	{"corrupt", rowstore.ErrCorrupt},
	{"corrupt", replicate.ErrCorrupt},
	{"no_space", rowstore.ErrNoSpace},
	{"no_space", syscall.ENOSPC}, // out of space in a layer that did not say so (comes back as ErrNoSpace)
	{"no_space", syscall.EDQUOT},
	{"incompatible", rowstore.ErrIncompatible},
	{"read_only", rowstore.ErrReadOnly},
	{"closed", rowstore.ErrClosed},
}

// codeOf is the wire code of err ("" when it wraps no known sentinel).
func codeOf(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// RemoteError is an error returned by the daemon. Its message is the
// daemon's; it wraps the sentinel its code names.
type RemoteError struct {
	Code    string
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the sentinel of e's code, or nil.
func (e *RemoteError) Unwrap() error {
	for _, c := range codes {
		if c.code == e.Code {
			return c.err
		}
	}
	return nil
}

func isExists(err error) bool { return errors.Is(err, rowstore.ErrExists) }
