package replicate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
)

// MaxClockSkew is the largest difference between this host's clock and
// its region's stores' clocks that region mutations accept (see the
// package doc, "Clocks"). Prune, repair and unlock refuse to run beyond it
// (ErrClockSkew); sync and other shared operations run, with a warning.
const MaxClockSkew = 10 * time.Minute

// ErrClockSkew: this host's clock disagrees with its region's stores' by
// more than MaxClockSkew; the operation refused to act on times it cannot
// trust. It wraps ErrConflict (exit 14): fix the clock (NTP), run it again.
var ErrClockSkew = fmt.Errorf("%w: clock skew", ErrConflict)

// clockView is what a host knows of its region's stores' clocks: per store,
// the store's time minus this host's clock (Options.Now), measured from the
// store's time (store.ModTime) of a lock object this host just put.
type clockView struct {
	skew  []time.Duration
	known []bool
}

// storeNow is store i's time now, by this host's clock corrected by the
// skew measured; ok false if store i's skew is unknown.
func (v *clockView) storeNow(i int, now time.Time) (time.Time, bool) {
	if v == nil || i >= len(v.known) || !v.known[i] {
		return time.Time{}, false
	}
	return now.Add(v.skew[i]), true
}

// hostSkew is this host's skew against the stores: the median of the
// stores' measured skews (a single store whose own clock is off does not
// sway it); ok false if no store reports times.
func (v *clockView) hostSkew() (time.Duration, bool) {
	if v == nil {
		return 0, false
	}
	var ds []time.Duration
	for i, k := range v.known {
		if k {
			ds = append(ds, v.skew[i])
		}
	}
	if len(ds) == 0 {
		return 0, false
	}
	slices.Sort(ds)
	return ds[len(ds)/2], true
}

// cachedClock is m's last clockView of region r (Manager.clocks), so an
// operation judges locks it reads before it has put its own by the last
// measurement. (Managers of one store with different clocks, as tests
// make, each keep their own.)
func (m *Manager) cachedClock(r *region) *clockView {
	v, _ := m.clocks.Load(r.cfg.Name)
	cv, _ := v.(*clockView)
	return cv
}

// measureClock measures the stores' skew from object name (just put by this
// host between local times t0 and t1, on the stores of on) and caches it.
// A store that does not report times, or fails to, is left unknown.
func (m *Manager) measureClock(ctx context.Context, r *region, name string, on []bool, t0, t1 time.Time) *clockView {
	v := &clockView{skew: make([]time.Duration, r.n()), known: make([]bool, r.n())}
	mid := t0.Add(t1.Sub(t0) / 2)
	forEach(r.n(), func(i int) error {
		if !on[i] || r.bad[i] != nil {
			return nil
		}
		mt, err := store.ModTime(ctx, r.stores[i], name)
		if err != nil {
			if !errors.Is(err, store.ErrNoModTime) {
				m.log.Warn("store time not read", "region", r.cfg.Name, "store", i, "err", err)
			}
			return nil
		}
		v.skew[i], v.known[i] = mt.Sub(mid), true
		return nil
	})
	if old := m.cachedClock(r); old != nil {
		for i := range v.known { // keep what an unreachable store said last
			if !v.known[i] && i < len(old.known) && old.known[i] {
				v.skew[i], v.known[i] = old.skew[i], true
			}
		}
	}
	m.clocks.Store(r.cfg.Name, v)
	return v
}

// margin is what an age judged by store times (storeAge) must exceed a
// limit by before it counts: MaxClockSkew when this host's skew is not
// measured (v nil), else nothing.
func (v *clockView) margin() time.Duration {
	if v == nil {
		return MaxClockSkew
	}
	return 0
}

// skewErr is ErrClockSkew if this host's skew (by v) exceeds MaxClockSkew.
func skewErr(r *region, v *clockView, op string) error {
	d, ok := v.hostSkew()
	if !ok || d.Abs() <= MaxClockSkew {
		return nil
	}
	how := "behind"
	if d < 0 {
		how = "ahead of"
	}
	return fmt.Errorf("%w: %s on region %q refused: this host's clock is %s %s the region's stores' clocks (at most %s is allowed: lock liveness, pack ages and retention would be judged wrong); fix the clock (NTP: timedatectl set-ntp true; chronyc tracking) and run it again",
		ErrClockSkew, op, r.cfg.Name, d.Abs().Round(time.Second), how, MaxClockSkew)
}

// storeAge is how long ago object name was last put, by the stores' own
// clocks (the youngest of the copies on the stores where listed, sizes[i]
// >= 0). ok false if no store's time and skew are known. v nil: this
// host's skew is unknown and taken as 0 (the caller adds v.margin()).
func (m *Manager) storeAge(ctx context.Context, r *region, v *clockView, name string, sizes []int64, now time.Time) (age time.Duration, ok bool, err error) {
	ages := make([]time.Duration, r.n())
	got := make([]bool, r.n())
	errs := forEach(r.n(), func(i int) error {
		if r.bad[i] != nil || i < len(sizes) && sizes[i] < 0 {
			return nil
		}
		sn, known := v.storeNow(i, now)
		if v == nil {
			sn, known = now, true
		}
		if !known {
			return nil
		}
		mt, err := store.ModTime(ctx, r.stores[i], name)
		switch {
		case errors.Is(err, store.ErrNoModTime), errors.Is(err, store.ErrNotFound):
			return nil
		case err != nil:
			return fmt.Errorf("store %d (%s): time of %s: %w", i, r.stores[i].Location(), name, err)
		}
		ages[i], got[i] = sn.Sub(mt), true
		return nil
	})
	for i := range ages {
		if got[i] && (!ok || ages[i] < age) {
			age, ok = ages[i], true
		}
	}
	return age, ok, firstErr(errs)
}

// probeClock measures this host's skew against the region's stores when
// it has no measurement yet, by putting a short-lived shared lock object
// (operation "clock-probe") and reading its store times; ErrClockSkew
// (naming op) beyond MaxClockSkew. Unlock and Locks, which hold no lock,
// call it before they judge locks stale, and tryLock when its first look
// finds a blocking lock.
func (m *Manager) probeClock(ctx context.Context, r *region, op string) error {
	if v := m.cachedClock(r); v != nil {
		return skewErr(r, v, op)
	}
	id := randHex(16)
	now := m.opts.Now()
	lk := &format.Lock{Host: m.host.ID, HostName: m.host.Name, PID: uint32(os.Getpid()), Created: now.UTC(), Refreshed: now.UTC(), Op: "clock-probe"}
	b, err := r.keys.Seal(format.TypeLock, id, lk.Encode())
	if err != nil {
		return err
	}
	on := r.usable()
	activeLocks.Store(id, heldLock{id: id})
	defer func() {
		activeLocks.Delete(id)
		if err := r.deleteAll(context.WithoutCancel(ctx), lockDir+id); err != nil {
			m.log.Warn("clock probe lock not removed (it goes stale)", "region", r.cfg.Name, "lock", id, "err", err)
		}
	}()
	if err := r.putUsable(ctx, lockDir+id, b); err != nil {
		return fmt.Errorf("%s region %q: %w", op, r.cfg.Name, err)
	}
	return skewErr(r, m.measureClock(ctx, r, lockDir+id, on, now, m.opts.Now()), op)
}
