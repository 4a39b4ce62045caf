package rowstore

import (
	"errors"
	"fmt"
	"syscall"
)

// Sentinel errors of the engine. Every error the engine returns wraps one of
// these (checked with errors.Is), so the FUSE layer and the CLI can map them to
// errno values and exit codes in one place each.
var (
	ErrNotFound     = errors.New("not found")
	ErrExists       = errors.New("already exists")
	ErrInvalid      = errors.New("invalid argument")
	ErrBusy         = errors.New("busy")
	ErrReadOnly     = errors.New("read-only")
	ErrCorrupt      = errors.New("corrupt data")
	ErrNoSpace      = errors.New("no space left")
	ErrClosed       = errors.New("store is closed")
	ErrIncompatible = errors.New("incompatible store format")
)

// CorruptError names the place where corruption was detected. It wraps ErrCorrupt.
type CorruptError struct {
	What string // e.g. "block 17 of layer 3"
	Err  error  // the underlying decode or checksum error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt data: %s: %v", e.What, e.Err)
}

func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

var syscallENOSPC error = syscall.ENOSPC
