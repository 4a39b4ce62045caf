package replicate

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
)

// unlock7Fixture is a 1+1 region "r" and a helper that puts a lock object
// on its stores as another process would.
func unlock7Fixture(t *testing.T, opts Options) (*Manager, func(*format.Lock) string) {
	t.Helper()
	ctx := context.Background()
	_, m, _, _ := newInternalRegion(t, t.TempDir(), opts, 1, 1, 0)
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
	return m, put
}

func lockIDs(t *testing.T, m *Manager) []string {
	t.Helper()
	ctx := context.Background()
	r, err := m.openRegion(ctx, "r", true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	l, err := r.list(ctx, lockDir)
	if err != nil {
		t.Fatal(err)
	}
	return sortedKeys(l)
}

// TestLockOwnDeadRemovedByTake: a host's next lock take (a shared one, as
// sync's) removes the locks its dead processes left (a daemon killed
// mid-sync): pid gone, pid reused by another process (start time), or
// written before a reboot (boot id); it keeps a live process's lock of
// the same host and another host's lock (this host cannot judge its
// processes). The refresh of a held lock does the same, and so does
// RemoveDeadLocks (daemon start).
func TestLockOwnDeadRemovedByTake(t *testing.T) {
	self := selfProcess()
	if !self.known() {
		t.Fatal("/proc gives no boot id or start time for this process")
	}
	ctx := context.Background()
	m, put := unlock7Fixture(t, Options{LockRefresh: 20 * time.Millisecond})
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = live.Process.Kill(); _ = live.Wait() }()
	liveStart, err := procStart(live.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// A killed child not reaped yet: a zombie, as a killed daemon whose
	// parent has not waited for it.
	zombie := exec.Command("sleep", "60")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = zombie.Wait() }()
	zombieStart, err := procStart(zombie.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := zombie.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, z, err := procStat(zombie.Process.Pid); err == nil && z {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed child never showed as a zombie")
		}
	}
	now := time.Now().UTC()
	me := func(pid int, boot [16]byte, start uint64, op string) *format.Lock {
		return &format.Lock{Host: m.host.ID, HostName: "beta", PID: uint32(pid), Created: now, Refreshed: now, Op: op, BootID: boot, Start: start}
	}
	keepLive := put(me(live.Process.Pid, self.boot, liveStart, "sync"))
	keepOther := put(&format.Lock{Host: format.HostID{7}, HostName: "alpha", PID: uint32(dead.Process.Pid), Created: now, Refreshed: now, Op: "sync"})
	gone := []string{
		put(me(dead.Process.Pid, self.boot, liveStart, "sync")),                       // pid not alive
		put(&format.Lock{Version: 1, Host: m.host.ID, PID: uint32(dead.Process.Pid)}), // a version 1 lock, pid not alive
		put(me(live.Process.Pid, self.boot, liveStart+1, "sync")),                     // the pid now runs another process
		put(me(live.Process.Pid, [16]byte{0xee}, liveStart, "sync")),                  // written before a reboot
		put(me(zombie.Process.Pid, self.boot, zombieStart, "sync")),                   // killed, not reaped
	}
	r, err := m.openRegion(ctx, "r", true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	_, unlock, err := m.lock(ctx, r, false, "sync")
	if err != nil {
		t.Fatal(err)
	}
	ids := lockIDs(t, m)
	if len(ids) != 3 || !slices.Contains(ids, keepLive) || !slices.Contains(ids, keepOther) {
		t.Fatalf("locks after a shared take: %v; want ours, the live process's %s and the other host's %s (removed: %v)", ids, keepLive, keepOther, gone)
	}
	// Held: a process of this host dies meanwhile; the next refresh
	// removes its lock.
	late := put(me(dead.Process.Pid, self.boot, 1, "restore"))
	deadline := time.Now().Add(10 * time.Second)
	for slices.Contains(lockIDs(t, m), late) {
		if time.Now().After(deadline) {
			t.Fatal("a dead process's lock outlived the holder's refreshes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	unlock()
	if ids := lockIDs(t, m); len(ids) != 2 {
		t.Fatalf("locks after release: %v, want the two live ones", ids)
	}
	// Daemon start.
	put(me(dead.Process.Pid, self.boot, liveStart, "sync"))
	m.RemoveDeadLocks(ctx)
	if ids := lockIDs(t, m); len(ids) != 2 || !slices.Contains(ids, keepLive) || !slices.Contains(ids, keepOther) {
		t.Fatalf("locks after RemoveDeadLocks: %v", ids)
	}
}

// TestLockBusyNamesHolderHost: another host's live lock blocks prune with
// an error naming that host as the place to run `region unlock`, and
// unlock here keeps it and reports it (host, pid, age) with the same
// advice instead of removing nothing silently.
func TestLockBusyNamesHolderHost(t *testing.T) {
	ctx := context.Background()
	m, put := unlock7Fixture(t, Options{})
	now := time.Now().UTC()
	id := put(&format.Lock{Host: format.HostID{7}, HostName: "beta", PID: 4242, Created: now, Refreshed: now, Op: "sync"})
	_, err := m.Prune(ctx, "r", PruneOptions{KeepLast: 1})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("prune under beta's live sync: %v, want ErrLocked", err)
	}
	for _, want := range []string{"shared lock of sync on host beta (pid 4242", "run `snapfs region unlock r` on host beta", "goes stale"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("prune's error %q lacks %q", err, want)
		}
	}
	st, err := m.Unlock(ctx, "r", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Locks) != 0 || len(st.Kept) != 1 || st.Kept[0].ID != id || st.Kept[0].HostName != "beta" || st.Kept[0].PID != 4242 ||
		st.Kept[0].Age < 0 || st.Kept[0].Age > time.Minute || !strings.Contains(st.Hint, "`snapfs region unlock r` on host beta") {
		t.Fatalf("unlock on another host: %+v", st)
	}
}
