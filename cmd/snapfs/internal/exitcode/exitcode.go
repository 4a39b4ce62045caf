// Package exitcode defines the exit codes of the snapfs command and the one
// mapping from errors to them. Scripts may rely on these numbers; they never
// change meaning.
//
//	0  OK           success
//	1  Failure      any other failure (I/O error, a command that failed, ...)
//	2  Usage        bad usage or an invalid argument (name, size, flag); nothing was changed
//	3  NotFound     a disk, snapshot, image or snapshot mount does not exist
//	4  Exists       it already exists (also: init on an existing store)
//	5  Busy         in use: an open disk, a busy mount, a store held by another process
//	6  Corrupt      corrupt data was detected (a checksum failed)
//	7  NoSpace      no space left on the device holding the store (ENOSPC or EDQUOT
//	                from any layer): delete snapshots or disks, then snapfs gc
//	8  Incompatible the store was written by a newer or incompatible snapfs
//	9  NoDaemon     the command needs a running daemon (snapfs mount) and none answers
//	10 ReadOnly     the target is read-only
//	11 Unavailable  a region's stores cannot serve the request: a store is unreachable
//	                or unwritable (region add, sync, prune need every store), or fewer
//	                than k healthy shards of some pack remain (restore, repair)
//	12 Degraded     region check found missing or corrupt copies (run region repair),
//	                or region repair could not rebuild all of them
//	13 WrongKey     the key file does not open the region, or the stores hold a
//	                different region (other k, m, region id or store order), or
//	                it does not unlock the encrypted disk
//	14 Conflict     a concurrent operation on the region changed what this one
//	                relied on; run it again
//	15 Locked       the region is locked by another operation: wait, or
//	                `snapfs region unlock`; or the encrypted disk is locked (its
//	                key not unlocked: snapfs disk unlock, mount --key-file)
//
// The daemon and the direct path return the same errors (the control socket
// carries a code that maps back to the same sentinel), so a command exits with
// the same code with and without a daemon.
package exitcode

import (
	"errors"
	"syscall"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// Exit codes; see the package doc.
const (
	OK           = 0
	Failure      = 1
	Usage        = 2
	NotFound     = 3
	Exists       = 4
	Busy         = 5
	Corrupt      = 6
	NoSpace      = 7
	Incompatible = 8
	NoDaemon     = 9
	ReadOnly     = 10
	Unavailable  = 11
	Degraded     = 12
	WrongKey     = 13
	Conflict     = 14
	Locked       = 15
)

// ErrUsage marks command-line usage errors (missing argument, unknown flag,
// conflicting flags). It maps to Usage.
var ErrUsage = errors.New("usage")

// ErrNoDaemon marks errors of commands that need a running daemon when none
// answers. It maps to NoDaemon.
var ErrNoDaemon = errors.New("no daemon")

// ErrDegraded marks a region check that found problems, or a repair that
// left some. It maps to Degraded.
var ErrDegraded = errors.New("region degraded")

// Of returns the exit code for err (OK for nil).
func Of(err error) int {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, ErrUsage), errors.Is(err, rowstore.ErrInvalid), errors.Is(err, replicate.ErrInvalid):
		return Usage
	case errors.Is(err, ErrNoDaemon):
		return NoDaemon
	case errors.Is(err, ErrDegraded):
		return Degraded
	case errors.Is(err, replicate.ErrConflict):
		return Conflict
	case errors.Is(err, replicate.ErrLocked), errors.Is(err, rowstore.ErrLocked):
		return Locked
	case errors.Is(err, replicate.ErrWrongKey), errors.Is(err, replicate.ErrMismatch), errors.Is(err, rowstore.ErrWrongKey):
		return WrongKey
	case errors.Is(err, replicate.ErrUnavailable), errors.Is(err, replicate.ErrTooFewShards):
		return Unavailable
	case errors.Is(err, rowstore.ErrNotFound), errors.Is(err, replicate.ErrNotFound):
		return NotFound
	case errors.Is(err, rowstore.ErrExists), errors.Is(err, replicate.ErrExists):
		return Exists
	case errors.Is(err, rowstore.ErrBusy):
		return Busy
	case errors.Is(err, rowstore.ErrCorrupt), errors.Is(err, replicate.ErrCorrupt):
		return Corrupt
	case errors.Is(err, rowstore.ErrNoSpace), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return NoSpace
	case errors.Is(err, rowstore.ErrIncompatible):
		return Incompatible
	case errors.Is(err, rowstore.ErrReadOnly):
		return ReadOnly
	}
	return Failure
}

// Sentinel is the error a code stands for (the inverse of Of), or nil for
// OK and Failure. It lets a parent process exit with its child's code.
func Sentinel(code int) error {
	return map[int]error{
		Usage: ErrUsage, NotFound: rowstore.ErrNotFound, Exists: rowstore.ErrExists, Busy: rowstore.ErrBusy,
		Corrupt: rowstore.ErrCorrupt, NoSpace: rowstore.ErrNoSpace, Incompatible: rowstore.ErrIncompatible,
		NoDaemon: ErrNoDaemon, ReadOnly: rowstore.ErrReadOnly, Unavailable: replicate.ErrUnavailable,
		Degraded: ErrDegraded, WrongKey: replicate.ErrWrongKey, Conflict: replicate.ErrConflict, Locked: replicate.ErrLocked,
	}[code]
}
