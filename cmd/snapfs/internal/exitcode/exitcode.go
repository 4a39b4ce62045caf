// Package exitcode is the one table of snapfs's errors: every sentinel error
// maps here, and only here, to its code on the control socket (wire code),
// hence its exit code (package wire maps wire codes to exit codes, for the
// light front binary too), and the errno the FUSE mount returns. Scripts may rely
// on these numbers; they never change meaning (codes are only added).
//
//	0  OK           success
//	1  Failure      any other failure (I/O error, a command that failed, ...)
//	2  Usage        bad usage or an invalid argument (name, size, flag, store URL,
//	                key file); nothing was changed
//	3  NotFound     a disk, snapshot, image, store, mountpoint or snapshot mount
//	                does not exist
//	4  Exists       it already exists (also: init on an existing store)
//	5  Busy         in use: an open disk, a busy mount, a store held by another
//	                process, a mountpoint that is not empty or already mounted
//	6  Corrupt      corrupt data was detected (a checksum failed)
//	7  NoSpace      no space left on the device holding the store (ENOSPC or EDQUOT
//	                from any layer): delete snapshots or disks, then snapfs gc
//	8  Incompatible the store was written by a newer or incompatible snapfs
//	9  NoDaemon     the command needs a running daemon (snapfs mount) and none answers
//	10 ReadOnly     the target, or the store's filesystem, is read-only
//	11 Unavailable  a region's stores cannot serve the request: a store is unreachable
//	                or unwritable (region add, sync, prune need every store), or fewer
//	                than k healthy shards of some pack remain (restore, repair); region
//	                check and repair when unreachable stores are all that is wrong
//	12 Degraded     region check found missing or corrupt copies (run region repair),
//	                or region repair could not rebuild all of them on reachable stores
//	13 WrongKey     the key file does not open the region, or the stores hold a
//	                different region (other k, m, region id or store order), or
//	                it does not unlock the encrypted disk
//	14 Conflict     a concurrent operation on the region changed what this one
//	                relied on; run it again. Also: this host's clock is off from
//	                the region's stores' clocks by more than 10 min (prune, repair
//	                and unlock refuse, replicate.ErrClockSkew): fix it (NTP)
//	15 Locked       the region is locked by another operation: wait, or
//	                `snapfs region unlock`; or the encrypted disk is locked (its
//	                key not unlocked: snapfs disk unlock, mount --key-file)
//	16 Permission   permission denied: run as root (or as the store's owner)
//	130 Interrupted a long job stopped by Ctrl-C or SIGTERM, or by the stop of
//	                the daemon running it; it says what finished and what a
//	                new run resumes
//
// The daemon and the direct path return the same errors (the control socket
// carries the wire code, which maps back to the same sentinel), so a command
// exits with the same code with and without a daemon. The FUSE layer (package
// fs, which cannot import this package) is handed Errno at mount.
//
// Message turns an error into the one line the user reads: no package
// prefixes ("replicate: ", "store: "), no repeated words, no usage marker.
package exitcode

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"syscall"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
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
	Permission   = 16
	// Interrupted is the shell's code for SIGINT (128+2): a long job stopped
	// by Ctrl-C or SIGTERM; it says what finished and what resumes.
	Interrupted = 130
)

// ErrUsage marks command-line usage errors (missing argument, unknown flag,
// conflicting flags). It maps to Usage. It is package wire's (the light
// client's) sentinel, so both binaries' usage errors are the same error.
var ErrUsage = wire.ErrUsage

// ErrNoDaemon marks errors of commands that need a running daemon when none
// answers. It maps to NoDaemon.
var ErrNoDaemon = errors.New("no daemon")

// ErrDegraded marks a region check that found problems, or a repair that
// left some. It maps to Degraded.
var ErrDegraded = errors.New("region degraded")

// ErrInterrupted marks a job stopped by SIGINT or SIGTERM, or by the stop of
// the daemon running it (service.ErrDaemonStopping). It maps to
// Interrupted.
var ErrInterrupted = errors.New("interrupted")

// Entry is one sentinel error and what it maps to.
type Entry struct {
	Err   error
	Wire  string        // code on the control socket; sentinels that mean the same share one
	Errno syscall.Errno // errno at the FUSE boundary
}

// Exit is the entry's exit code: its wire code's, from package wire's one
// mapping of wire codes to exit codes (the front binary, which cannot
// import this package, exits by it too).
func (e Entry) Exit() int { return wire.ExitOfCode(e.Wire) }

// Table is the one mapping, in order of precedence: an error that wraps
// several sentinels gets the first entry it matches (a usage error wins,
// then the region's state, then local corruption, which is never hidden
// behind "not found"). For a wire code shared by several entries, the first
// is the sentinel a RemoteError unwraps to. Don't modify it.
var Table = []Entry{
	{ErrInterrupted, "interrupted", syscall.EINTR},
	{ErrUsage, "usage", syscall.EINVAL},
	{rowstore.ErrInvalid, "invalid", syscall.EINVAL},
	{replicate.ErrInvalid, "invalid", syscall.EINVAL},
	{store.ErrInvalidURL, "invalid", syscall.EINVAL},
	{format.ErrBadKeyFile, "invalid", syscall.EINVAL},
	{ErrNoDaemon, "no_daemon", syscall.EIO},
	{ErrDegraded, "degraded", syscall.EIO},
	{replicate.ErrConflict, "conflict", syscall.EIO},
	{replicate.ErrLocked, "locked", syscall.EAGAIN},
	{rowstore.ErrLocked, "disk_locked", syscall.ENOKEY}, // an encrypted disk whose key is locked
	{replicate.ErrWrongKey, "wrong_key", syscall.EACCES},
	{rowstore.ErrWrongKey, "disk_wrong_key", syscall.EKEYREJECTED},
	{replicate.ErrMismatch, "mismatch", syscall.EIO},
	{replicate.ErrUnavailable, "unavailable", syscall.EIO},
	{replicate.ErrTooFewShards, "too_few_shards", syscall.EIO},
	{rowstore.ErrCorrupt, "corrupt", syscall.EIO},
	{replicate.ErrCorrupt, "corrupt", syscall.EIO},
	{rowstore.ErrNotFound, "not_found", syscall.ENOENT},
	{replicate.ErrNotFound, "not_found", syscall.ENOENT},
	{rowstore.ErrExists, "exists", syscall.EEXIST},
	{replicate.ErrExists, "exists", syscall.EEXIST},
	{rowstore.ErrBusy, "busy", syscall.EBUSY},
	{rowstore.ErrNoSpace, "no_space", syscall.ENOSPC},
	{syscall.ENOSPC, "no_space", syscall.ENOSPC}, // a layer that did not say ErrNoSpace
	{syscall.EDQUOT, "no_space", syscall.EDQUOT},
	{rowstore.ErrIncompatible, "incompatible", syscall.EIO},
	{rowstore.ErrReadOnly, "read_only", syscall.EROFS},
	{syscall.EROFS, "read_only", syscall.EROFS}, // the store's filesystem (mounted or remounted read-only)
	{fs.ErrPermission, "permission", syscall.EACCES},
	{rowstore.ErrClosed, "closed", syscall.EIO},
}

// lookup is the first entry err matches, or nil.
func lookup(err error) *Entry {
	if err == nil {
		return nil
	}
	for i := range Table {
		if errors.Is(err, Table[i].Err) {
			return &Table[i]
		}
	}
	return nil
}

// Of returns the exit code for err (OK for nil, Failure when it wraps no
// sentinel).
func Of(err error) int {
	if err == nil {
		return OK
	}
	if e := lookup(err); e != nil {
		return e.Exit()
	}
	return Failure
}

// Wire is err's code on the control socket ("" when it wraps no sentinel).
func Wire(err error) string {
	if e := lookup(err); e != nil {
		return e.Wire
	}
	return ""
}

// FromWire is the sentinel of a wire code, or nil for an unknown code.
func FromWire(code string) error {
	for _, e := range Table {
		if e.Wire == code {
			return e.Err
		}
	}
	return nil
}

// Errno is the errno the FUSE mount returns for err: 0 for nil, the errno
// itself when err wraps one, the table's otherwise, EIO for anything else.
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	if e := lookup(err); e != nil {
		return e.Errno
	}
	return syscall.EIO
}

// Sentinel is the error a code stands for (the inverse of Of), or nil for
// OK and Failure. It lets a parent process exit with its child's code.
func Sentinel(code int) error {
	if code == OK || code == Failure {
		return nil
	}
	for _, e := range Table {
		if e.Exit() == code {
			return e.Err
		}
	}
	return nil
}

// Codes are the exit codes with a name and a one-line meaning, in order:
// the source of the README's table and of `snapfs help exit-codes`.
var Codes = []struct {
	Code       int
	Name, Text string
}{
	{OK, "ok", "success"},
	{Failure, "failure", "any other failure"},
	{Usage, "usage", "bad usage or invalid argument (name, size, flag, store URL, key file); nothing was changed"},
	{NotFound, "not found", "a disk, snapshot, image, store, mountpoint or snapshot mount does not exist"},
	{Exists, "exists", "it already exists"},
	{Busy, "busy", "in use: an open disk, a store held by another process, a busy, non-empty or already mounted mountpoint"},
	{Corrupt, "corrupt", "corrupt data detected"},
	{NoSpace, "no space", "no space left on the store's device: delete snapshots or disks, then snapfs gc"},
	{Incompatible, "incompatible", "the store or daemon is of a newer or incompatible format"},
	{NoDaemon, "no daemon", "the command needs a running daemon (snapfs mount) and none answers"},
	{ReadOnly, "read-only", "the target is read-only, or the store's filesystem is (mounted read-only, or remounted so after errors)"},
	{Unavailable, "unavailable", "a region store is unreachable or unwritable (region check, region prune with any store away: nothing changed, and region repair when all it left is such stores), or fewer than k healthy shards remain, or a pack index whose usable homes lack it while another home is away"},
	{Degraded, "degraded", "region check found missing or corrupt copies (run region repair), or repair left some on reachable stores"},
	{WrongKey, "wrong key", "the key file does not open the region or the encrypted disk, or the stores hold a different region"},
	{Conflict, "conflict", "a concurrent operation on the region (or a local snapshot a sync was shipping from, deleted meanwhile) changed what this one relied on: run it again; or this host's clock is off from the region stores' by more than 10 min (prune, repair, unlock refuse): fix it (NTP)"},
	{Locked, "locked", "the region is locked by another operation (wait, or snapfs region unlock), or the encrypted disk is locked (snapfs disk unlock)"},
	{Permission, "permission", "permission denied: run as root (or as the store's owner)"},
	{Interrupted, "interrupted", "stopped by Ctrl-C or SIGTERM, or by the stop of the daemon running it (snapfs umount): the message says what finished; run the job again to resume"},
}

// Markdown is the exit-code table in Markdown (the README's copy is tested
// against it).
func Markdown() string {
	var b strings.Builder
	b.WriteString("| code | name | meaning |\n|---:|---|---|\n")
	for _, c := range Codes {
		b.WriteString("| " + strconv.Itoa(c.Code) + " | " + c.Name + " | " + c.Text + " |\n")
	}
	return b.String()
}

// Message is err as the one line the user reads: its first line, without
// the usage marker, package prefixes and repeated parts ("invalid argument:
// invalid argument: x" reads "x"). It is wire.Message, shared with the
// front binary.
func Message(err error) string { return wire.Message(err) }
