package replicate

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
)

// ErrLocked: the region is locked by another operation (an exclusive lock
// against any lock, or any lock against an exclusive one). Wait, or break
// a dead holder's lock with Unlock.
var ErrLocked = errors.New("replicate: region is locked")

// Default lock timing; see Options.
const (
	// DefaultLockStale: a lock not refreshed for this long is stale: its
	// holder is dead or cut off, and it no longer blocks anyone.
	DefaultLockStale = 30 * time.Minute
	// DefaultLockRefresh: how often a holder re-writes its lock.
	DefaultLockRefresh = 5 * time.Minute
)

const lockDir = "locks/"

// heldLock is a lock this process holds.
type heldLock struct {
	id        string
	exclusive bool
}

// activeLocks holds the ids of the locks this process holds (several
// Managers in one process, as in tests, share it).
var activeLocks sync.Map

// LockInfo describes a lock object in a region.
type LockInfo struct {
	ID        string    `json:"id"`
	HostID    string    `json:"host_id"`
	HostName  string    `json:"host"`
	PID       uint32    `json:"pid"`
	Exclusive bool      `json:"exclusive"`
	Op        string    `json:"op"`
	Created   time.Time `json:"created"`
	Refreshed time.Time `json:"refreshed"`
	Stale     bool      `json:"stale"`
	// Unreadable: the object does not authenticate or decode; it blocks
	// like an exclusive lock until removed (unlock --force).
	Unreadable bool `json:"unreadable,omitempty"`
	// Age is the time since the lock's last refresh, by the stores'
	// clocks where they give one (see lockAge), else by Refreshed.
	Age time.Duration `json:"age_ns"`
	// dead: held by a process of this host that provably no longer runs
	// (deadHere).
	dead bool
}

func (l LockInfo) describe() string {
	if l.Unreadable {
		return fmt.Sprintf("unreadable lock %s%s", lockDir, l.ID)
	}
	kind := "shared"
	if l.Exclusive {
		kind = "exclusive"
	}
	return fmt.Sprintf("%s lock of %s on host %s (pid %d, refreshed %s ago)", kind, l.Op, l.HostName, l.PID, l.Age.Round(time.Second))
}

// readLocks reads every lock object on the usable stores, judging their
// liveness by the last measured skew of this host's clock (see lockAge).
func (m *Manager) readLocks(ctx context.Context, r *region) ([]LockInfo, error) {
	l, err := r.list(ctx, lockDir)
	if err != nil {
		return nil, err
	}
	now := m.opts.Now()
	view := m.cachedClock(r)
	var out []LockInfo
	for _, id := range sortedKeys(l) {
		pt, _, err := r.getMeta(ctx, format.TypeLock, lockDir, id)
		if errors.Is(err, ErrNotFound) {
			continue // released meanwhile
		}
		var lk *format.Lock
		if err == nil {
			lk, err = format.DecodeLock(pt)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			m.log.Warn("unreadable region lock", "region", r.cfg.Name, "lock", id, "err", err)
			out = append(out, LockInfo{ID: id, Unreadable: true})
			continue
		}
		li := LockInfo{ID: id, HostID: lk.Host.String(), HostName: lk.HostName, PID: lk.PID, Exclusive: lk.Exclusive,
			Op: lk.Op, Created: lk.Created, Refreshed: lk.Refreshed}
		var timeStale bool
		li.Age, timeStale = m.lockAge(ctx, r, view, lk, id, l[id], now)
		li.dead = m.deadHere(lk, id)
		li.Stale = timeStale || li.dead
		out = append(out, li)
	}
	return out, nil
}

// lockAge is the time since lock id was last refreshed, and whether that
// makes it stale (longer than LockStale). It is judged by the stores' own
// clocks (store.ModTime: the time of the lock object's last put, the same
// for every host), from the youngest copy, with this host's clock
// corrected by its measured skew (view); the holder's clock (Refreshed)
// counts only when no store gives times. Without a measured skew (view
// nil: nothing put yet) the lock is stale only past LockStale +
// MaxClockSkew. A store time that cannot be read keeps the lock live.
func (m *Manager) lockAge(ctx context.Context, r *region, view *clockView, lk *format.Lock, id string, sizes []int64, now time.Time) (time.Duration, bool) {
	age, byStore, err := m.storeAge(ctx, r, view, lockDir+id, sizes, now)
	if err != nil {
		m.log.Warn("region lock's store time not read; taking it as live", "region", r.cfg.Name, "lock", id, "err", err)
		if !byStore {
			age = now.Sub(lk.Refreshed)
		}
		return age, false
	}
	if !byStore {
		age = now.Sub(lk.Refreshed)
		return age, age > m.opts.LockStale
	}
	return age, age > m.opts.LockStale+view.margin()
}

// deadHere: the lock is held by a process of this host that provably no
// longer runs: its pid is not alive, or (version 2 locks) the host was
// booted since (another boot id) or the pid now belongs to another process
// (another start time). Host ids are bound to one machine's store (see
// host.go), so another machine's processes are never judged here.
func (m *Manager) deadHere(lk *format.Lock, id string) bool {
	if lk.Host != m.host.ID {
		return false
	}
	self := selfProcess()
	if lk.HasProcess() && self.known() && lk.BootID != self.boot {
		return true // rebooted since: every process of that boot is gone
	}
	if int(lk.PID) == os.Getpid() {
		if lk.HasProcess() && self.known() && lk.Start != self.start {
			return true // an earlier process with this pid (a container's pid 1)
		}
		_, held := activeLocks.Load(id)
		return !held
	}
	if err := syscall.Kill(int(lk.PID), 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	st, zombie, err := procStat(int(lk.PID))
	if err != nil {
		return false // alive, as far as this host can tell
	}
	// A zombie runs no more (a killed daemon its parent has not reaped);
	// another start time: the pid was reused.
	return zombie || lk.HasProcess() && st != lk.Start
}

// procIdentity names a process on its host beyond its pid: the kernel's
// boot id and the process's start time (clock ticks after boot).
type procIdentity struct {
	boot  [16]byte
	start uint64
}

func (p procIdentity) known() bool { return p.boot != [16]byte{} && p.start != 0 }

// selfProcess is this process's identity (zero where /proc lacks it).
var selfProcess = sync.OnceValue(func() procIdentity {
	var p procIdentity
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return p
	}
	h, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(string(b)), "-", ""))
	if err != nil || len(h) != 16 {
		return p
	}
	st, err := procStart(os.Getpid())
	if err != nil {
		return p
	}
	copy(p.boot[:], h)
	p.start = st
	return p
})

// procStart is the start time of process pid in clock ticks after boot
// (field 22 of /proc/<pid>/stat).
func procStart(pid int) (uint64, error) {
	st, _, err := procStat(pid)
	return st, err
}

// procStat reads process pid's start time (procStart) and whether it is a
// zombie (state Z: dead, not reaped yet).
func procStat(pid int) (start uint64, zombie bool, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false, err
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses: the fields after it follow the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	const startField = 22 - 3 // f[0] is field 3 (state)
	if len(f) <= startField {
		return 0, false, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	v, err := strconv.ParseUint(f[startField], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return v, f[0] == "Z", nil
}

// removeOwnDead removes the locks of this host whose holders provably no
// longer run (a daemon killed mid-sync and started again): only this host
// can know it, so it does not leave them to go stale, blocking the other
// hosts for LockStale. It is called once this process's own lock is on
// the stores (taking and each refresh), and at daemon start. A lock that
// cannot be removed is left (logged): it goes stale.
func (m *Manager) removeOwnDead(ctx context.Context, r *region, locks []LockInfo, self string) {
	for _, l := range locks {
		if l.ID == self || !l.dead {
			continue
		}
		m.log.Info("removing a region lock of this host whose process is gone", "region", r.cfg.Name, "lock", l.describe())
		if err := r.deleteAll(ctx, lockDir+l.ID); err != nil {
			m.log.Warn("dead process's region lock not removed (it goes stale)", "region", r.cfg.Name, "lock", l.ID, "err", err)
		}
	}
}

// RemoveDeadLocks removes, in every configured region, the locks of this
// host whose holder processes no longer run (at daemon start). A region
// that cannot be opened or listed is skipped (logged).
func (m *Manager) RemoveDeadLocks(ctx context.Context) {
	cs, err := m.ListRegions()
	if err != nil {
		m.log.Warn("dead locks not looked for", "err", err)
		return
	}
	for _, c := range cs {
		r, err := m.openRegion(ctx, c.Name, false)
		if err != nil {
			m.log.Warn("dead locks not looked for", "region", c.Name, "err", err)
			continue
		}
		locks, err := m.readLocks(ctx, r)
		if err != nil {
			m.log.Warn("dead locks not looked for", "region", c.Name, "err", err)
		} else {
			m.removeOwnDead(ctx, r, locks, "")
		}
		r.close()
	}
}

// blocking returns the locks that keep a lock of the given kind from being
// taken (never the caller's own, self).
func blocking(locks []LockInfo, exclusive bool, self string) []LockInfo {
	var out []LockInfo
	for _, l := range locks {
		if l.ID == self || l.Stale && !l.Unreadable {
			continue
		}
		if exclusive || l.Exclusive || l.Unreadable {
			out = append(out, l)
		}
	}
	return out
}

func (m *Manager) lockedErr(r *region, op string, bl []LockInfo) error {
	var why []string
	for _, l := range bl {
		why = append(why, l.describe())
	}
	return fmt.Errorf("%w: %s on region %q must wait: %s; %s", ErrLocked, op, r.cfg.Name, strings.Join(why, "; "), m.unlockHint(r.cfg.Name, bl))
}

// unlockHint says what to do about live locks: wait, or break a dead
// holder's lock on the host that held it (only that host can tell its
// process is gone; elsewhere the lock blocks until it goes stale).
func (m *Manager) unlockHint(region string, ls []LockInfo) string {
	var hosts []string
	var left time.Duration
	unreadable := false
	var reads []string // this host's live region disks: what they read
	for _, l := range ls {
		if l.Unreadable {
			unreadable = true
			continue
		}
		if l.HostID == m.host.ID.String() && strings.HasPrefix(l.Op, remoteDiskOpPrefix) && !l.dead {
			if what := "snapshot disk " + strings.TrimPrefix(l.Op, remoteDiskOpPrefix); !slices.Contains(reads, what) {
				reads = append(reads, what)
			}
			continue
		}
		h := "host " + l.HostName
		if l.HostID == m.host.ID.String() {
			h = "this host (" + l.HostName + ")"
		}
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
		left = max(left, m.opts.LockStale-l.Age)
	}
	var hint []string
	if len(reads) > 0 {
		hint = append(hint, fmt.Sprintf("this host's daemon reads %s from the region (a disk restored with restore --lazy and not hydrated yet, a snapshot or image of one, a .files view or a file open under regions/ of the mount): the lock goes once that disk is hydrated or deleted and the view and files are closed; region unlock does not remove a live lock",
			strings.Join(reads, ", ")))
	}
	if len(hosts) > 0 {
		hint = append(hint, fmt.Sprintf("wait for it to finish, or, if its holder is gone, run `snapfs region unlock %s` on %s (there a dead process's lock is removed at once; elsewhere it blocks until it goes stale, %s after its last refresh: in about %s)",
			region, strings.Join(hosts, " or "), m.opts.LockStale, left.Round(time.Second)))
	}
	if unreadable {
		hint = append(hint, fmt.Sprintf("an unreadable lock blocks until removed: run `snapfs region unlock --force %s` once no operation runs on the region", region))
	}
	return strings.Join(hint, "; ")
}

// putUsable writes an object to every usable store; any failure is an error.
func (r *region) putUsable(ctx context.Context, name string, data []byte) error {
	return firstErr(forEach(r.n(), func(i int) error {
		if r.bad[i] != nil {
			return nil
		}
		if err := r.stores[i].Put(ctx, name, data); err != nil {
			return fmt.Errorf("%w: store %d (%s): put %s: %w", ErrUnavailable, i, r.stores[i].Location(), name, err)
		}
		return nil
	}))
}

// deleteLock removes lock id from every usable store; a failure on a
// store outside on (the stores the lock was last put on; nil: all) is
// not an error: the lock never reached it.
func (r *region) deleteLock(ctx context.Context, id string, on []bool) error {
	return firstErr(forEach(r.n(), func(i int) error {
		if r.bad[i] != nil {
			return nil
		}
		if err := r.stores[i].Delete(ctx, lockDir+id); err != nil && (on == nil || on[i]) {
			return fmt.Errorf("store %d (%s): delete %s: %w", i, r.stores[i].Location(), lockDir+id, err)
		}
		return nil
	}))
}

// putLock puts lock id (sealed b) on every usable store and returns the
// stores that took it. An exclusive lock must be on every usable store.
// A shared one (restore, check, a remote disk: reads) may miss a store
// that is up but refuses writes (read-only, full, a write-deny policy),
// which still serves its shards: as for a hold, it fails only when no
// store took it, or when a store refused it and fewer than k took it
// (TestTrial9ReadOnlyStoreStillRestores). An exclusive locker puts its
// lock on every store, so it still meets a shared lock on some store;
// repair, which runs with the usable stores only, meets it whenever k > m
// (as for a restore on the stores repair cannot reach: see the package
// doc). A sync, which needs every store for its packs, fails there anyway.
//
// The stores that took it are returned on failure too: the release after
// a failed lock deletes it from those only.
// A shared lock that some usable stores refused while enough took it
// returns their errors in refused (by store index; nil where taken).
func (m *Manager) putLock(ctx context.Context, r *region, id string, b []byte, exclusive bool) (on []bool, refused []error, err error) {
	if exclusive {
		return r.usable(), nil, r.putUsable(ctx, lockDir+id, b)
	}
	on, refusedErrs, ok := r.putQuorum(ctx, lockDir+id, b)
	if len(refusedErrs) == 0 {
		return on, nil, nil
	}
	if !ok || ctx.Err() != nil {
		return on, nil, fmt.Errorf("%w: %w", ErrUnavailable, firstErr(refusedErrs))
	}
	m.log.Warn("region lock: a store that is up refused it; going on with the stores that took it (reads only)", "region", r.cfg.Name, "err", joinErrs(refusedErrs...))
	refused = make([]error, r.n())
	j := 0
	for i := range refused {
		if r.bad[i] == nil && !on[i] {
			refused[i] = refusedErrs[j]
			j++
		}
	}
	return on, refused, nil
}

// putQuorum puts object name (sealed b) on every usable store, as reads
// need it (a shared lock, a hold): it returns the stores that took it and
// the errors of the usable ones that refused it, and ok when some store
// took it and, if one that is up refused it, at least k did (a store that
// is up but refuses writes, read-only or full, still serves its shards).
func (r *region) putQuorum(ctx context.Context, name string, b []byte) (on []bool, refused []error, ok bool) {
	errs := forEach(r.n(), func(i int) error {
		if r.bad[i] != nil {
			return nil
		}
		if err := r.stores[i].Put(ctx, name, b); err != nil {
			return fmt.Errorf("store %d (%s): put %s: %w", i, r.stores[i].Location(), name, err)
		}
		return nil
	})
	on = make([]bool, r.n())
	written := 0
	for i, e := range errs {
		switch {
		case r.bad[i] != nil:
		case e == nil:
			on[i] = true
			written++
		default:
			refused = append(refused, e)
		}
	}
	return on, refused, written > 0 && (len(refused) == 0 || written >= r.k)
}

// lock takes a shared (sync, restore, check) or exclusive (prune, repair)
// lock on the region: it writes a lock object to every usable store, then
// reads the locks again and backs off if a conflicting one appeared (so
// of two racing operations at least one sees the other: each writes
// before it looks). Exclusive locking also removes stale locks it sees.
// The returned context is cancelled (cause ErrLocked) if the lock cannot
// be refreshed for half of LockStale; unlock releases the lock. It retries
// for up to Options.LockWait while another operation holds the region.
func (m *Manager) lock(ctx context.Context, r *region, exclusive bool, op string) (context.Context, func(), error) {
	deadline := m.opts.Now().Add(m.opts.LockWait)
	backoff := 20 * time.Millisecond
	for {
		lctx, unlock, err := m.tryLock(ctx, r, exclusive, op)
		if err == nil || !errors.Is(err, ErrLocked) || !m.opts.Now().Before(deadline) {
			return lctx, unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(backoff + time.Duration(randUint64()%uint64(backoff))):
		}
		backoff = min(backoff*2, time.Second)
	}
}

func (m *Manager) tryLock(ctx context.Context, r *region, exclusive bool, op string) (context.Context, func(), error) {
	// A first look, before writing: a request that is blocked writes no
	// lock of its kind. Liveness needs this host's skew: when it is not
	// known yet and something seems to block, it is measured first with
	// a short-lived shared lock object (probeClock), and the locks judged
	// again.
	locks, err := m.readLocks(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	if bl := blocking(locks, exclusive, ""); len(bl) > 0 {
		if m.cachedClock(r) == nil {
			if err := m.probeClock(ctx, r, op); err != nil && (exclusive || !errors.Is(err, ErrClockSkew)) {
				return nil, nil, err
			}
			if locks, err = m.readLocks(ctx, r); err != nil {
				return nil, nil, err
			}
			bl = blocking(locks, exclusive, "")
		}
		if len(bl) > 0 {
			return nil, nil, m.lockedErr(r, op, bl)
		}
	}
	id := randHex(16)
	now0 := m.opts.Now()
	now := now0.UTC()
	self := selfProcess()
	lk := &format.Lock{Host: m.host.ID, HostName: m.host.Name, PID: uint32(os.Getpid()), Exclusive: exclusive, Created: now, Refreshed: now, Op: op,
		BootID: self.boot, Start: self.start}
	seal := func() ([]byte, error) { return r.keys.Seal(format.TypeLock, id, lk.Encode()) }
	b, err := seal()
	if err != nil {
		return nil, nil, err
	}
	activeLocks.Store(id, heldLock{id: id, exclusive: exclusive})
	// ls is the lease once the lock is taken: a store that refused a
	// shared lock (putLock) and refuses its delete too is not waited for.
	var ls *lease
	var putOn []bool // the stores that took the lock (putLock), until ls
	release := func() {
		activeLocks.Delete(id)
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		on := putOn
		if ls != nil {
			ls.mu.Lock()
			on = ls.on
			ls.mu.Unlock()
		}
		var err error
		for try := range 3 { // a lock left behind blocks others until it is stale
			if err = r.deleteLock(dctx, id, on); err == nil {
				return
			}
			time.Sleep(time.Duration(try+1) * 50 * time.Millisecond)
		}
		m.log.Warn("region lock not released (it goes stale)", "region", r.cfg.Name, "lock", id, "err", err)
	}
	on, refused, err := m.putLock(ctx, r, id, b, exclusive)
	putOn = on
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("lock region %q: %w", r.cfg.Name, err)
	}
	// This host's clock against the stores', from the lock just put: an
	// operation that deletes by age refuses to run on a skewed clock.
	view := m.measureClock(ctx, r, lockDir+id, on, now0, m.opts.Now())
	if err := skewErr(r, view, op); err != nil {
		if exclusive {
			release()
			return nil, nil, err
		}
		m.log.Warn("this host's clock disagrees with the region's stores; others judge this operation's lock and packs by the stores' clocks", "region", r.cfg.Name, "op", op, "err", err)
	}
	locks, err = m.readLocks(ctx, r)
	if err != nil {
		release()
		return nil, nil, err
	}
	if !slices.ContainsFunc(locks, func(l LockInfo) bool { return l.ID == id }) {
		release()
		return nil, nil, fmt.Errorf("%w: lock region %q: our lock %s vanished (removed by unlock --force?)", ErrLocked, r.cfg.Name, id)
	}
	if bl := blocking(locks, exclusive, id); len(bl) > 0 {
		release()
		return nil, nil, m.lockedErr(r, op, bl)
	}
	m.removeOwnDead(ctx, r, locks, id)
	if exclusive {
		for _, l := range locks {
			if l.ID != id && l.Stale && !l.Unreadable && !l.dead {
				m.log.Warn("removing a stale region lock", "region", r.cfg.Name, "lock", l.describe())
				if err := r.deleteAll(ctx, lockDir+l.ID); err != nil {
					release()
					return nil, nil, err
				}
			}
		}
	}
	ls = &lease{id: id, last: now0, checked: now0, on: on, refused: refused}
	lctx, cancel := context.WithCancelCause(context.WithValue(ctx, leaseKey{}, ls))
	done := make(chan struct{})
	stopped := make(chan struct{})
	// The refresh works on its own copy of the region: Repair makes stores
	// usable (r.bad) while it runs, in its own goroutine; the lock stays on
	// the stores it was put on.
	rr := *r
	rr.bad = slices.Clone(r.bad)
	go func() {
		r := &rr
		defer close(stopped)
		t := time.NewTicker(m.opts.LockRefresh)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-lctx.Done():
				return
			case <-t.C:
			}
			start := m.opts.Now()
			// A holder that was stopped past its lease may have been
			// taken for dead: it does not put its lock back.
			if err := m.leaseErr(r, ls); err != nil {
				cancel(err)
				return
			}
			// A lock someone removed (stale to them, or unlock --force) is
			// not put back: the operation ends instead.
			ls.mu.Lock()
			on := ls.on
			ls.mu.Unlock()
			if err := m.holds(lctx, r, id, on); errors.Is(err, ErrConflict) {
				cancel(err)
				return
			}
			lk.Refreshed = start.UTC()
			b, err := seal()
			var onNow []bool
			put0 := m.opts.Now()
			if err == nil {
				onNow, _, err = m.putLock(lctx, r, id, b, exclusive)
			}
			if err == nil {
				// The lease runs from before the check: a put that took
				// long (the lock may have been broken and put back
				// meanwhile) does not extend it. It is renewed at once,
				// not after the housekeeping below (slow stores would
				// otherwise eat into it).
				ls.renew(start, onNow)
				m.measureClock(lctx, r, lockDir+id, onNow, put0, m.opts.Now())
				// A dead process of this host left its lock meanwhile?
				if locks, err := m.readLocks(lctx, r); err == nil {
					m.removeOwnDead(lctx, r, locks, id)
				}
				continue
			}
			m.log.Warn("region lock refresh failed", "region", r.cfg.Name, "lock", id, "err", err)
			if lerr := m.leaseErr(r, ls); lerr != nil {
				cancel(fmt.Errorf("%w (refresh: %w)", lerr, err))
				return
			}
		}
	}()
	var once sync.Once
	unlock := func() {
		once.Do(func() {
			close(done)
			<-stopped
			cancel(nil)
			release()
		})
	}
	return lctx, unlock, nil
}

// leaseKey keys the *lease of the lock an operation holds in its context.
type leaseKey struct{}

// lease is what a holder knows of its lock: when it last knew the lock to
// be fresh (the start of its taking or of its last successful refresh),
// and when it last saw it on the stores.
type lease struct {
	id      string
	mu      sync.Mutex
	last    time.Time
	checked time.Time
	on      []bool // the stores the lock was last put on
	// refused: why each usable store that refused the shared lock when it
	// was taken did so (nil elsewhere): a store up but not writable,
	// which Check reports (ProblemUnwritable).
	refused []error
}

func (l *lease) renew(t time.Time, on []bool) {
	l.mu.Lock()
	l.last, l.checked, l.on = t, t, on
	l.mu.Unlock()
}

// usable is the set of stores usable now.
func (r *region) usable() []bool {
	out := make([]bool, r.n())
	for i := range out {
		out[i] = r.bad[i] == nil
	}
	return out
}

// onEach reports whether a listed object is on every store of on that is
// still usable.
func onEach(sizes []int64, on []bool, r *region) bool {
	for i, s := range sizes {
		if s < 0 && on[i] && r.bad[i] == nil {
			return false
		}
	}
	return true
}

// since is the time from t to now, by the monotonic clock and by the wall
// clock, whichever is longer: the monotonic clock stops while the machine
// is suspended, the wall clock may be stepped back.
func since(now, t time.Time) time.Duration {
	return max(now.Sub(t), now.Round(0).Sub(t.Round(0)))
}

// leaseErr: ErrConflict once the lease ran out (no refresh for
// LockStale/2): others may take the lock for stale from LockStale on, so
// the holder stops well before (a margin that also absorbs clock skew of
// up to LockStale/2 between hosts).
func (m *Manager) leaseErr(r *region, l *lease) error {
	l.mu.Lock()
	last := l.last
	l.mu.Unlock()
	if d := since(m.opts.Now(), last); d > m.opts.LockStale/2 {
		return fmt.Errorf("%w: region %q: this operation's lock was last known fresh %s ago (the process was stopped or cut off?); others may have taken it for stale; run it again", ErrConflict, r.cfg.Name, d.Round(time.Second))
	}
	return nil
}

// guard is called before every write that is safe only under this
// operation's lock (a delete by prune or repair, a manifest put by sync):
// it fails with ErrConflict if the lease ran out, and, when remote is set
// or a second has passed since the last look, if the lock is gone from
// the stores (unlock --force, or broken as stale). What is left is the
// time one store call takes to reach its store after the guard.
func (m *Manager) guard(ctx context.Context, r *region, remote bool) error {
	l, _ := ctx.Value(leaseKey{}).(*lease)
	if l == nil {
		return fmt.Errorf("%w: region %q: no lock held", ErrInvalid, r.cfg.Name)
	}
	if err := m.leaseErr(r, l); err != nil {
		return err
	}
	now := m.opts.Now()
	l.mu.Lock()
	due := remote || since(now, l.checked) > time.Second
	l.mu.Unlock()
	if !due {
		return nil
	}
	l.mu.Lock()
	on := l.on
	l.mu.Unlock()
	if err := m.holds(ctx, r, l.id, on); err != nil {
		return err
	}
	l.mu.Lock()
	l.checked = now
	l.mu.Unlock()
	return m.leaseErr(r, l)
}

// stillLocked reports whether the lock this operation holds (in ctx) is
// still its own: the lease has not run out and the lock is on every
// usable store (an exclusive operation that found it stale removes it, as
// does unlock --force). A sync checks it before it writes a manifest.
func (m *Manager) stillLocked(ctx context.Context, r *region) error {
	return m.guard(ctx, r, true)
}

// holds reports whether lock id is on every store it was put on (on) that
// is still usable; ErrConflict if not. (Repair makes stores usable again
// while it runs: those lack the lock until its next refresh.)
func (m *Manager) holds(ctx context.Context, r *region, id string, on []bool) error {
	l, err := r.list(ctx, lockDir)
	if err != nil {
		return err
	}
	if sizes, ok := l[id]; ok && id != "" && onEach(sizes, on, r) {
		if lk, err := m.lockOf(ctx, r, id); err == nil && lk.Host == m.host.ID {
			return nil
		}
	}
	return fmt.Errorf("%w: region %q: this operation's lock was removed (it went stale, or `region unlock --force`); run it again", ErrConflict, r.cfg.Name)
}

func (m *Manager) lockOf(ctx context.Context, r *region, id string) (*format.Lock, error) {
	pt, _, err := r.getMeta(ctx, format.TypeLock, lockDir, id)
	if err != nil {
		return nil, err
	}
	return format.DecodeLock(pt)
}

// UnlockStats is what Unlock removed.
type UnlockStats struct {
	Locks   []LockInfo `json:"locks"`   // lock objects removed
	Markers []string   `json:"markers"` // copying markers of dead syncs removed (snapshot names)
	// Kept: the live locks left (not forced), and Hint what to do about
	// them (where to unlock a dead holder's lock, or how long to wait).
	Kept []LockInfo `json:"kept"`
	Hint string     `json:"hint,omitempty"`
}

// Locks lists the region's lock objects.
func (m *Manager) Locks(ctx context.Context, regionName string) ([]LockInfo, error) {
	r, err := m.openRegion(ctx, regionName, false)
	if err != nil {
		return nil, err
	}
	defer r.close()
	// Staleness is judged by the stores' clocks, corrected by this host's
	// skew: measure it if not known (a listing that cannot write judges
	// with a margin of MaxClockSkew).
	if err := m.probeClock(ctx, r, "locks"); err != nil && !errors.Is(err, ErrClockSkew) {
		m.log.Info("clock skew not measured", "region", regionName, "err", err)
	}
	return m.readLocks(ctx, r)
}

// Unlock removes stale locks (force: every lock, also live and unreadable
// ones: use it only when their holders are known to be gone) and the
// copying markers of syncs that no remaining lock can belong to.
func (m *Manager) Unlock(ctx context.Context, regionName string, force bool) (UnlockStats, error) {
	st := UnlockStats{Locks: []LockInfo{}, Markers: []string{}, Kept: []LockInfo{}}
	r, err := m.openRegion(ctx, regionName, false)
	if err != nil {
		return st, err
	}
	defer r.close()
	if !force { // stale is judged by the stores' clocks, corrected by this host's skew
		if err := m.probeClock(ctx, r, "unlock"); err != nil {
			return st, err
		}
	}
	locks, err := m.readLocks(ctx, r)
	if err != nil {
		return st, err
	}
	live := map[string]bool{} // host ids with a live lock left
	for _, l := range locks {
		if !force && !l.Stale {
			live[l.HostID] = true
			st.Kept = append(st.Kept, l)
			continue
		}
		if err := r.deleteAll(ctx, lockDir+l.ID); err != nil {
			return st, fmt.Errorf("unlock region %q: %w", regionName, err)
		}
		st.Locks = append(st.Locks, l)
	}
	// Only the markers are needed (no manifest is read: a lost one does
	// not keep dead syncs' markers).
	markers, err := m.scanMarkers(ctx, r)
	if err != nil {
		return st, err
	}
	for _, nid := range sortedKeysOf(markers) {
		mk := markers[nid]
		if live[mk.Host.String()] || mk.Host.IsZero() && len(live) > 0 {
			continue
		}
		if err := r.deleteAll(ctx, copyDir+nid); err != nil {
			return st, fmt.Errorf("unlock region %q: %w", regionName, err)
		}
		st.Markers = append(st.Markers, mk.Name)
	}
	if len(st.Kept) > 0 {
		st.Hint = m.unlockHint(regionName, st.Kept)
	}
	m.log.Info("region unlocked", "region", regionName, "locks", len(st.Locks), "kept", len(st.Kept), "markers", len(st.Markers), "force", force)
	return st, nil
}
