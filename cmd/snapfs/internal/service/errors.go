package service

import (
	"errors"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/rowstore"
)

// Wire codes of errors are exitcode.Table's (the one mapping of sentinels
// to exit codes, wire codes and errno values). A code never changes meaning.

// codeOf is the wire code of err ("" when it wraps no known sentinel).
func codeOf(err error) string { return exitcode.Wire(err) }

// RemoteError is an error returned by the daemon. Its message is the
// daemon's; it wraps the sentinel its code names.
type RemoteError struct {
	Code    string
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the sentinel of e's code, or nil.
func (e *RemoteError) Unwrap() error { return exitcode.FromWire(e.Code) }

func isExists(err error) bool { return errors.Is(err, rowstore.ErrExists) }
