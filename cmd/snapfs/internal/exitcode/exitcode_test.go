package exitcode

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// Issue 14 finding 8: conflicts and races have their own codes (they were
// 4, "already exists").
func TestConflictAndLockedCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("sync: %w", replicate.ErrConflict), Conflict},
		{fmt.Errorf("prune: %w", replicate.ErrLocked), Locked},
		{fmt.Errorf("x: %w", replicate.ErrExists), Exists},
		{errors.Join(fmt.Errorf("%w", replicate.ErrLocked), replicate.ErrUnavailable), Locked},
	} {
		if got := Of(c.err); got != c.want {
			t.Errorf("Of(%v) = %d, want %d", c.err, got, c.want)
		}
		if got := Of(Sentinel(c.want)); got != c.want {
			t.Errorf("Of(Sentinel(%d)) = %d", c.want, got)
		}
	}
	if Conflict != 14 || Locked != 15 {
		t.Fatal("exit codes never change meaning")
	}
}

// TestErrno: the errno the mount returns for each sentinel (was fs/errno.go).
func TestErrno(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{rowstore.ErrNotFound, syscall.ENOENT},
		{fmt.Errorf("disk x: %w", rowstore.ErrNotFound), syscall.ENOENT},
		{rowstore.ErrExists, syscall.EEXIST},
		{rowstore.ErrInvalid, syscall.EINVAL},
		{rowstore.ErrBusy, syscall.EBUSY},
		{rowstore.ErrReadOnly, syscall.EROFS},
		{rowstore.ErrCorrupt, syscall.EIO},
		{&rowstore.CorruptError{What: "block 1", Err: rowstore.ErrNotFound}, syscall.EIO},
		{rowstore.ErrNoSpace, syscall.ENOSPC},
		{rowstore.ErrClosed, syscall.EIO},
		{rowstore.ErrIncompatible, syscall.EIO},
		{errors.New("other"), syscall.EIO},
		{fmt.Errorf("wrapped: %w", syscall.EAGAIN), syscall.EAGAIN},
		{fmt.Errorf("region: %w", replicate.ErrNotFound), syscall.ENOENT},
	} {
		if got := Errno(tc.err); got != tc.want {
			t.Errorf("Errno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestTable: every entry round-trips through its wire code to the same exit
// code; corruption wins over not found; every code has a line in Codes.
func TestTable(t *testing.T) {
	named := map[int]bool{}
	for _, c := range Codes {
		named[c.Code] = true
	}
	for _, e := range Table {
		if e.Wire == "" || e.Errno == 0 {
			t.Errorf("%v: no wire code or errno", e.Err)
		}
		if got := Of(FromWire(Wire(e.Err))); got != e.Exit() {
			t.Errorf("%v: exit %d through the wire, %d without", e.Err, got, e.Exit())
		}
		if !named[e.Exit()] {
			t.Errorf("exit code %d has no line in Codes", e.Exit())
		}
		if got := Of(Sentinel(e.Exit())); got != e.Exit() && e.Exit() != Failure {
			t.Errorf("Of(Sentinel(%d)) = %d", e.Exit(), got)
		}
	}
	if got := Of(&rowstore.CorruptError{What: "x", Err: rowstore.ErrNotFound}); got != Corrupt {
		t.Errorf("corrupt + not found: exit %d", got)
	}
	if got := Of(fmt.Errorf("x: %w", syscall.EACCES)); got != Permission {
		t.Errorf("EACCES: exit %d", got)
	}
	for i, c := range Codes {
		if i > 0 && c.Code <= Codes[i-1].Code {
			t.Errorf("Codes[%d] (code %d) is out of order", i, c.Code)
		}
	}
}

func TestMessage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"replicate: invalid argument: invalid argument: region name \"r 1\" has character ' '", "region name \"r 1\" has character ' '"},
		{"restore: replicate: already exists: local disk \"d\"", "already exists: local disk \"d\""},
		{"usage: restore: --to is required", "--to is required"},
		{"region \"r1\": replicate: store unavailable: store 0: store: invalid store URL: \"bogus://x\"", "region \"r1\": store unavailable: store 0: invalid store URL: \"bogus://x\""},
		{"not found", "not found"},
		{"disk \"x\": not found\nstack", "disk \"x\": not found"},
	} {
		if got := Message(errors.New(tc.in)); got != tc.want {
			t.Errorf("Message(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
