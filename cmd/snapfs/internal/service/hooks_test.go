package service

import (
	"context"
	"errors"
	"testing"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
)

// TestHooksRunWithoutLocks: the daemon's hooks send kernel notifications,
// which wait for FUSE requests in flight; those requests take Local's locks.
// A hook that ran with one of them held deadlocked the mount (found in
// review: scratch clones and region listings). Every hook must find both
// locks free.
func TestHooksRunWithoutLocks(t *testing.T) {
	l := newLocal(t)
	calls := 0
	check := func(what string) {
		calls++
		if !l.mu.TryLock() {
			t.Errorf("%s hook ran with Local.mu held", what)
		} else {
			l.mu.Unlock()
		}
		if !l.reg.mu.TryLock() {
			t.Errorf("%s hook ran with the region lock held", what)
		} else {
			l.reg.mu.Unlock()
		}
	}
	l.SetDaemon(t.TempDir(), Hooks{NamesChanged: func() { check("names") }, DiskChanged: func(string) { check("disk") }})
	ctx := context.Background()
	if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "d", Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateSnapshot(ctx, "s", []string{"d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateImage(ctx, "i", "s", "d"); err != nil {
		t.Fatal(err)
	}
	l.recordRemote("r", nil)
	if _, err := l.RollbackDisk(ctx, "d", "s", true); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteDisk(ctx, "d", true); err != nil {
		t.Fatal(err)
	}
	if calls < 6 {
		t.Fatalf("only %d hook calls; the test does not exercise them", calls)
	}
}

// TestWireCodesFollowExitCodes: an error wrapping several sentinels maps to
// the same exit code through the daemon as without it.
func TestWireCodesFollowExitCodes(t *testing.T) {
	for _, a := range exitcode.Table {
		for _, b := range exitcode.Table {
			err := errors.Join(a.Err, b.Err)
			remote := &RemoteError{Code: codeOf(err), Message: err.Error()}
			if got, want := exitcode.Of(remote), exitcode.Of(err); got != want {
				t.Errorf("%v+%v: exit %d through the daemon, %d without", a.Err, b.Err, got, want)
			}
		}
	}
}
