package replicate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
)

// Adversarial tests of the region lock protocol: holders paused past
// LockStale (SIGSTOP, GC, suspend), locks broken under a running
// operation, degraded packs. A shared fake clock stands for time passing
// while a holder is paused (the pause itself is a hook in the store fault
// wrapper that runs another host's operation before the paused call).

// fakeClock is time.Now plus an offset the test moves forward.
type fakeClock struct{ off atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// clockFleet is fleet with a shared fake clock.
func clockFleet(t *testing.T, k, m int, names ...string) ([]*fleetHost, []string, *fakeClock) {
	t.Helper()
	clk := &fakeClock{}
	dirs, urls := storeDirs(t, k+m)
	key := keyFile(t, 5)
	var hs []*fleetHost
	for _, n := range names {
		h := newClockedFleetHost(t, n, k+m, replicate.Options{Now: clk.now}, clk)
		if _, err := h.mgr.AddRegion(context.Background(), replicate.RegionConfig{Name: "r1", K: k, M: m, Stores: urls, KeyFile: key}); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	return hs, dirs, clk
}

// pauseAt makes the first call of method m for a name with prefix on f
// run pause first (once), standing for the holder being stopped there.
func pauseAt(f *store.Faults, m store.Method, prefix string, pause func()) {
	var once sync.Once
	f.FailMatching(func(mm store.Method, name string) error {
		if mm == m && strings.HasPrefix(name, prefix) {
			once.Do(pause)
		}
		return nil
	})
}

// prunedAndShared sets up host a with a1 (content X) and a2 (new content
// over all of X), both synced, and host b with a local snapshot b1 of
// content X that is not synced: b1 deduplicates entirely against a1's
// pack, which a's prune --keep-last 1 deletes.
func prunedAndShared(t *testing.T, a, b *fleetHost) {
	t.Helper()
	mkDisk(t, a.host, "va", 16)
	writeBlocks(t, a.host, "va", 1, span(0, 8))
	snapshot(t, a.host, "a1", "va")
	if _, err := a.mgr.Sync(context.Background(), "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a.host, "va", 2, span(0, 8))
	snapshot(t, a.host, "a2", "va")
	if _, err := a.mgr.Sync(context.Background(), "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	mkDisk(t, b.host, "vb", 16)
	writeBlocks(t, b.host, "vb", 1, span(0, 8))
	snapshot(t, b.host, "b1", "vb")
}

// checkCopied: every snapshot b's sync reported copied restores.
func checkCopied(t *testing.T, b *fleetHost, st replicate.Stats) {
	t.Helper()
	for _, name := range st.Copied {
		if err := restoreEq(t, b.host, "", name, "vb", readSnapshot(t, b.host, name, "vb")); err != nil {
			t.Errorf("snapshot %s reported copied does not restore: %v", name, err)
		}
	}
}

// A prune paused past LockStale after deciding what to delete: another
// host's sync sees its lock stale, deduplicates against a pack the prune
// is about to delete and acknowledges its snapshot. The prune, resumed,
// must not delete anything more: its lease ran out.
func TestAdversaryPausedPruneStops(t *testing.T) {
	ctx := context.Background()
	hs, _, clk := clockFleet(t, 1, 1, "a", "b")
	a, b := hs[0], hs[1]
	prunedAndShared(t, a, b)
	var st replicate.Stats
	var serr error
	pauseAt(a.faults[0], store.MethodDelete, "snapshots/", func() {
		clk.advance(replicate.DefaultLockStale + time.Minute)
		st, serr = b.mgr.Sync(ctx, "r1", nil, nil)
	})
	_, perr := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1})
	a.faults[0].FailMatching(nil)
	if serr != nil {
		t.Fatalf("b's sync while a's prune was paused: %v", serr)
	}
	if len(st.Copied) != 1 {
		t.Fatalf("b's sync copied %v, want b1", st.Copied)
	}
	if perr == nil {
		t.Error("the prune paused past its lease went on")
	}
	checkCopied(t, b, st)
}

// unlock --force under a live prune, then a sync of another host: the
// prune finds its lock gone before its next deletion phase and stops.
func TestAdversaryForcedUnlockStopsPrune(t *testing.T) {
	ctx := context.Background()
	hs, _, _ := clockFleet(t, 1, 1, "a", "b")
	a, b := hs[0], hs[1]
	prunedAndShared(t, a, b)
	var st replicate.Stats
	var serr error
	pauseAt(a.faults[0], store.MethodDelete, "snapshots/", func() {
		if us, err := b.mgr.Unlock(ctx, "r1", true); err != nil || len(us.Locks) != 1 {
			t.Errorf("unlock --force: %+v %v", us, err)
		}
		st, serr = b.mgr.Sync(ctx, "r1", nil, nil)
	})
	_, perr := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1})
	a.faults[0].FailMatching(nil)
	if serr != nil || len(st.Copied) != 1 {
		t.Fatalf("b's sync after the forced unlock: %+v %v", st, serr)
	}
	if !errors.Is(perr, replicate.ErrConflict) {
		t.Errorf("prune whose lock was forced away: %v, want ErrConflict", perr)
	}
	checkCopied(t, b, st)
}

// A sync paused past LockStale while finishing an interrupted manifest
// write: meanwhile another host's prune removed that snapshot and its
// packs. The resumed sync must not put the pruned manifest back (a
// snapshot listed as available whose data is gone).
func TestAdversaryPausedSyncDoesNotResurrect(t *testing.T) {
	ctx := context.Background()
	hs, dirs, clk := clockFleet(t, 1, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "va", 16)
	writeBlocks(t, a.host, "va", 1, span(0, 8))
	snapshot(t, a.host, "a1", "va")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	a1 := listObjs(t, dirs[1], "snapshots")
	if len(a1) != 1 {
		t.Fatalf("manifests: %v", a1)
	}
	writeBlocks(t, a.host, "va", 2, span(0, 8))
	snapshot(t, a.host, "a2", "va")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	// a1's manifest write was interrupted: store 1 lacks its copy.
	if err := os.Remove(filepath.Join(dirs[1], "snapshots", a1[0])); err != nil {
		t.Fatal(err)
	}
	var perr error
	pauseAt(a.faults[1], store.MethodGet, "snapshots/"+a1[0], func() {
		time.Sleep(100 * time.Millisecond) // store 0's copy is read
		clk.advance(replicate.DefaultLockStale + time.Minute)
		_, perr = b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true})
	})
	_, serr := a.mgr.Sync(ctx, "r1", nil, nil)
	a.faults[1].FailMatching(nil)
	if perr != nil {
		t.Fatalf("b's prune while a's sync was paused: %v", perr)
	}
	if serr == nil {
		t.Error("the sync paused past its lease went on")
	}
	remote, err := b.mgr.ListRemote(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range remote {
		if err := restoreEq(t, a.host, "", r.Name, "va", readSnapshot(t, a.host, r.Name, "va")); err != nil {
			t.Errorf("listed snapshot %s (%s) does not restore: %v", r.Name, r.State, err)
		}
	}
}

// A pack that lost a shard (degraded, still readable from k shards) is
// used for dedup; a sync over it must succeed, not fail every time with
// "gone from the region (a concurrent prune?)" until someone repairs.
func TestAdversaryDegradedPackDoesNotBlockSync(t *testing.T) {
	ctx := context.Background()
	hs, dirs, _ := clockFleet(t, 2, 1, "a")
	a := hs[0]
	mkDisk(t, a.host, "va", 16)
	writeBlocks(t, a.host, "va", 1, span(0, 8))
	snapshot(t, a.host, "a1", "va")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	packs := listObjs(t, dirs[2], "packs")
	if len(packs) != 1 {
		t.Fatalf("packs: %v", packs)
	}
	if err := os.Remove(filepath.Join(dirs[2], "packs", packs[0])); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a.host, "va", 2, span(8, 9))
	snapshot(t, a.host, "a2", "va")
	st, err := a.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil || len(st.Copied) != 1 {
		t.Fatalf("sync over a degraded pack: %+v %v", st, err)
	}
	if err := restoreEq(t, a.host, "", "a2", "va", readSnapshot(t, a.host, "a2", "va")); err != nil {
		t.Fatal(err)
	}
}

// Repair makes a store usable again while it runs (it rewrites the
// store's config) while its lock is refreshed in the background: no data
// race, and the repair finishes under its lock.
func TestAdversaryRepairConfigUnderRefresh(t *testing.T) {
	ctx := context.Background()
	h := newHost(t, replicate.Options{LockRefresh: time.Millisecond})
	dirs, urls := storeDirs(t, 2)
	if _, err := h.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: 1, M: 1, Stores: urls, KeyFile: keyFile(t, 5)}); err != nil {
		t.Fatal(err)
	}
	mkDisk(t, h, "v", 16)
	writeBlocks(t, h, "v", 1, span(0, 8))
	snapshot(t, h, "s1", "v")
	if _, err := h.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dirs[1], "config")); err != nil {
		t.Fatal(err)
	}
	rep, err := h.mgr.Repair(ctx, "r1", nil)
	if err != nil || len(rep.Failed) != 0 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	if r, err := h.mgr.Check(ctx, "r1", true, nil); err != nil || !r.OK() {
		t.Fatalf("check after repair: %+v %v", r, err)
	}
}
