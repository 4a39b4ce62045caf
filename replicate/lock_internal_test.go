package replicate

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
)

// Stale locks: a lock of a process of this host that no longer runs, or
// one not refreshed for LockStale, blocks nobody and is removed by the
// next exclusive locker; a live one of another host blocks prune
// (ErrLocked) until unlock --force.
func TestLockStaleness(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	_, m, _, _ := newInternalRegion(t, root, Options{LockStale: time.Minute}, 1, 1, 0)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	put := func(lk *format.Lock) string {
		t.Helper()
		r, err := m.openRegion(ctx, "r", true)
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		id := randHex(16)
		b, err := r.keys.Seal(format.TypeLock, id, lk.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.putAll(ctx, lockDir+id, b, nil); err != nil {
			t.Fatal(err)
		}
		return id
	}
	other := format.HostID{7}
	put(&format.Lock{Host: m.host.ID, HostName: "me", PID: uint32(dead.Process.Pid), Exclusive: true, Created: now, Refreshed: now, Op: "prune"})
	gone := put(&format.Lock{Host: other, HostName: "gone", PID: 1, Exclusive: true, Created: now.Add(-time.Hour), Refreshed: now.Add(-2 * time.Minute), Op: "repair"})
	// The stores' clocks, by which staleness is judged, say so too.
	for _, s := range []string{"s0", "s1"} {
		if err := os.Chtimes(filepath.Join(root, s, "locks", gone), now.Add(-2*time.Minute), now.Add(-2*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	locks, err := m.Locks(ctx, "r")
	if err != nil || len(locks) != 2 || !locks[0].Stale || !locks[1].Stale {
		t.Fatalf("locks: %+v %v, want two stale", locks, err)
	}
	if _, err := m.Prune(ctx, "r", PruneOptions{KeepLast: 1}); err != nil {
		t.Fatalf("prune past stale locks: %v", err)
	}
	if locks, _ := m.Locks(ctx, "r"); len(locks) != 0 {
		t.Fatalf("stale locks left after an exclusive lock: %+v", locks)
	}
	put(&format.Lock{Host: other, HostName: "busy", PID: 1, Exclusive: false, Created: now, Refreshed: now, Op: "sync"})
	if _, err := m.Prune(ctx, "r", PruneOptions{KeepLast: 1}); !errors.Is(err, ErrLocked) {
		t.Fatalf("prune under another host's live sync: %v, want ErrLocked", err)
	}
	if _, err := m.Repair(ctx, "r", nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("repair under another host's live sync: %v, want ErrLocked", err)
	}
	if st, err := m.Unlock(ctx, "r", false); err != nil || len(st.Locks) != 0 {
		t.Fatalf("unlock without force removed %+v %v", st, err)
	}
	if st, err := m.Unlock(ctx, "r", true); err != nil || len(st.Locks) != 1 {
		t.Fatalf("unlock --force: %+v %v", st, err)
	}
	if _, err := m.Prune(ctx, "r", PruneOptions{KeepLast: 1}); err != nil {
		t.Fatal(err)
	}
}

// A holder stopped past its lease (LockStale/2 without a refresh, by the
// wall or the monotonic clock) does not refresh its lock again when it
// resumes (others may have taken it for stale and broken it): its
// operation is cancelled with ErrConflict, and guard refuses at once.
func TestLockLeaseRunsOut(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	var off atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
	_, m, _, _ := newInternalRegion(t, root, Options{Now: now, LockRefresh: 10 * time.Millisecond}, 1, 1, 0)
	r, err := m.openRegion(ctx, "r", true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	lctx, unlock, err := m.lock(ctx, r, true, "prune")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	time.Sleep(50 * time.Millisecond) // refreshed meanwhile
	if err := m.guard(lctx, r, true); err != nil {
		t.Fatalf("guard of a fresh lock: %v", err)
	}
	off.Store(int64(DefaultLockStale/2 + time.Second)) // stopped this long
	if err := m.guard(lctx, r, false); !errors.Is(err, ErrConflict) {
		t.Fatalf("guard after the lease ran out: %v, want ErrConflict", err)
	}
	select {
	case <-lctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the operation was not cancelled when its lease ran out")
	}
	if err := context.Cause(lctx); !errors.Is(err, ErrConflict) {
		t.Fatalf("cause %v, want ErrConflict", err)
	}
	locks, err := m.readLocks(ctx, r)
	if err != nil || len(locks) != 1 || locks[0].Refreshed.After(time.Now()) {
		t.Fatalf("locks %+v %v: want the one lock, not refreshed after the pause", locks, err)
	}
}
