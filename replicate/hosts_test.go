package replicate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
)

// Regression tests of issue 14 (one region, many hosts): findings 1-8, each
// with the delay or fault that made it happen, so it reproduces every time.

// fleetHost is a host whose stores go through a fault wrapper.
type fleetHost struct {
	*host
	faults []*store.Faults
}

func newFleetHost(t *testing.T, name string, n int, opts replicate.Options) *fleetHost {
	t.Helper()
	faults := make([]*store.Faults, n)
	for i := range faults {
		faults[i] = store.NewFaults()
	}
	opts.HostName = name
	opts.OpenStore = func(ctx context.Context, i int, url string, o store.Options) (store.Store, error) {
		s, err := store.Open(ctx, url, o)
		if err != nil {
			return s, err
		}
		return store.Wrap(s, store.WrapOptions{Faults: faults[i]}), nil
	}
	return &fleetHost{host: newHost(t, opts), faults: faults}
}

func (h *fleetHost) eachFault(fn func(f *store.Faults)) {
	for _, f := range h.faults {
		fn(f)
	}
}

// fleet makes hosts attached to one k+m region "r1" over file:// stores.
func fleet(t *testing.T, k, m int, names ...string) ([]*fleetHost, []string) {
	t.Helper()
	dirs, urls := storeDirs(t, k+m)
	key := keyFile(t, 5)
	var hs []*fleetHost
	for _, n := range names {
		h := newFleetHost(t, n, k+m, replicate.Options{})
		if _, err := h.mgr.AddRegion(context.Background(), replicate.RegionConfig{Name: "r1", K: k, M: m, Stores: urls, KeyFile: key}); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	return hs, dirs
}

func mkDisk(t *testing.T, h *host, disk string, blocks uint64) {
	t.Helper()
	if _, err := h.rs.CreateDisk(disk, int64(blocks)*bs, bs); err != nil {
		t.Fatal(err)
	}
}

// restoreEq restores snapshot/disk (of host sel) on h and compares it
// with want.
func restoreEq(t *testing.T, h *host, sel, snap, disk string, want []byte) error {
	t.Helper()
	to := fmt.Sprintf("r-%s-%d", disk, time.Now().UnixNano())
	if _, err := h.mgr.RestoreFrom(context.Background(), "r1", sel, snap, disk, to, nil); err != nil {
		return err
	}
	got := readDisk(t, h, to)
	if err := h.rs.DeleteDisk(to, true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("restored %s/%s differs from the snapshot", snap, disk)
	}
	return nil
}

func mustClean(t *testing.T, h *host) replicate.Report {
	t.Helper()
	rep, err := h.mgr.Check(context.Background(), "r1", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("check not clean: %+v", rep)
	}
	return rep
}

// Finding 1: prune on host A racing host B's sync lost B's snapshots
// (sync exit 0, restore failed). The prune now waits on B's lock: it gets
// ErrLocked (exit 15), B's sync succeeds, everything restores.
func TestHostsFinding1PruneRacingSync(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "va", 32)
	writeBlocks(t, a.host, "va", 1, span(0, 16))
	snapshot(t, a.host, "a1", "va")
	mkDisk(t, b.host, "ve", 32)
	for i := range 3 {
		writeBlocks(t, b.host, "ve", uint64(10+i), span(uint64(i*4), uint64(i*4+6)))
		snapshot(t, b.host, fmt.Sprintf("b%d", i), "ve")
	}
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	// B's manifest puts wait 300 ms: the window in which A's prune ran.
	b.eachFault(func(f *store.Faults) {
		f.DelayMatching(func(m store.Method, name string) time.Duration {
			if m == store.MethodPut && strings.HasPrefix(name, "snapshots/") {
				return 300 * time.Millisecond
			}
			return 0
		})
	})
	var wg sync.WaitGroup
	var serr error
	var st replicate.Stats
	wg.Add(1)
	go func() {
		defer wg.Done()
		st, serr = b.mgr.Sync(ctx, "r1", []string{"ve"}, nil)
	}()
	var prunes []error
	for range 5 { // prune started 0-400 ms after the sync
		time.Sleep(80 * time.Millisecond)
		_, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true})
		prunes = append(prunes, err)
	}
	wg.Wait()
	if serr != nil {
		t.Fatalf("sync: %v", serr)
	}
	locked := 0
	for _, err := range prunes {
		if errors.Is(err, replicate.ErrLocked) {
			locked++
		} else if err != nil {
			t.Fatalf("prune: %v", err)
		}
	}
	if locked == 0 {
		t.Fatal("no prune met the sync's lock: the race was not provoked")
	}
	b.eachFault(func(f *store.Faults) { f.DelayMatching(nil) })
	remote, err := b.mgr.ListRemote(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	// Whatever a later prune removed, every snapshot still listed restores.
	for _, r := range remote {
		if !r.Mine {
			continue
		}
		if err := restoreEq(t, b.host, "", r.Name, "ve", readSnapshot(t, b.host, r.Name, "ve")); err != nil {
			t.Errorf("snapshot %s reported copied (%v): %v", r.Name, st.Copied, err)
		}
	}
	mustClean(t, a.host)
}

// Finding 2: an index whose pack is gone wedged every later sync of the
// disk ("...is gone from the region (a concurrent prune?)", forever).
// Sync no longer deduplicates against it, prune removes it, and check
// names it and counts the snapshots it makes lost.
func TestHostsFinding2OrphanIndexDoesNotWedge(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a")
	a := hs[0]
	mkDisk(t, a.host, "vc", 16)
	writeBlocks(t, a.host, "vc", 1, span(0, 8))
	snapshot(t, a.host, "c1", "vc")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	// What prune left when sync's heal re-put the index it was deleting.
	packs := listObjs(t, dirs[0], "packs")
	if len(packs) != 1 {
		t.Fatalf("packs: %v", packs)
	}
	for _, d := range dirs {
		if err := os.Remove(filepath.Join(d, "packs", packs[0])); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := a.mgr.Check(ctx, "r1", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.OrphanIndexes) != 1 || len(rep.Lost) != 1 || rep.Lost[0] != "c1" {
		t.Fatalf("check: orphan indexes %v, lost %v; want the index and snapshot c1", rep.OrphanIndexes, rep.Lost)
	}
	writeBlocks(t, a.host, "vc", 2, span(8, 9))
	snapshot(t, a.host, "c2", "vc")
	for i := range 3 {
		if _, err := a.mgr.Sync(ctx, "r1", []string{"vc"}, nil); err != nil {
			t.Fatalf("sync %d after the orphaned index: %v", i, err)
		}
	}
	if err := restoreEq(t, a.host, "", "c2", "vc", readSnapshot(t, a.host, "c2", "vc")); err != nil {
		t.Fatal(err)
	}
	// c1's chunks were sent again with c2: c1 restores again too.
	if err := restoreEq(t, a.host, "", "c1", "vc", readSnapshot(t, a.host, "c1", "vc")); err != nil {
		t.Fatalf("c1 after c2 resent its chunks: %v", err)
	}
	st, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 5})
	if err != nil {
		t.Fatal(err)
	}
	if st.IndexesDeleted != 1 {
		t.Fatalf("prune removed %d orphaned indexes, want 1", st.IndexesDeleted)
	}
	rep = mustClean(t, a.host)
	if len(rep.OrphanIndexes) != 0 {
		t.Fatalf("orphan indexes left: %v", rep.OrphanIndexes)
	}
}

// Finding 3: a failed sync's copying marker blocked every prune for 24 h
// once its snapshot was deleted locally. Prune (exclusive: no sync runs)
// removes it, and so does region unlock.
func TestHostsFinding3DeadMarkerDoesNotBlock(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a")
	a := hs[0]
	mkDisk(t, a.host, "v", 16)
	writeBlocks(t, a.host, "v", 1, span(0, 4))
	snapshot(t, a.host, "c0", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	for round, breakIt := range []func(context.Context) error{
		func(ctx context.Context) error {
			_, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 5})
			return err
		},
		func(ctx context.Context) error {
			st, err := a.mgr.Unlock(ctx, "r1", false)
			if err == nil && len(st.Markers) != 1 {
				err = fmt.Errorf("unlock removed markers %v, want one", st.Markers)
			}
			return err
		},
	} {
		name := fmt.Sprintf("c%d", round+1)
		writeBlocks(t, a.host, "v", uint64(round+2), span(4, 8))
		snapshot(t, a.host, name, "v")
		a.faults[1].FailMatching(func(m store.Method, n string) error {
			if m == store.MethodPut && strings.HasPrefix(n, "packs/") {
				return store.ErrInjected
			}
			return nil
		})
		if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err == nil {
			t.Fatal("sync with a failing store succeeded")
		}
		a.faults[1].FailMatching(nil)
		if len(listObjs(t, dirs[0], "copying")) != 1 {
			t.Fatalf("no copying marker left by the failed sync")
		}
		if err := a.rs.DeleteSnapshot(name); err != nil {
			t.Fatal(err)
		}
		if err := breakIt(ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if m := listObjs(t, dirs[0], "copying"); len(m) != 0 {
			t.Fatalf("round %d: markers left: %v", round, m)
		}
	}
	mustClean(t, a.host)
}

// Finding 4: two hosts, one snapshot name, synced at the same time: one
// host's data was silently lost. Each host's snapshot is its own object.
func TestHostsFinding4SameNameConcurrently(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b", "c")
	a, b, c := hs[0], hs[1], hs[2]
	for i, h := range []*fleetHost{a, b} {
		mkDisk(t, h.host, "vol", 16)
		writeBlocks(t, h.host, "vol", uint64(100+i), span(0, 10))
		snapshot(t, h.host, "dup1", "vol")
		h.eachFault(func(f *store.Faults) { f.SetRandom(uint64(i+1), store.RandomFaults{MaxDelay: 5 * time.Millisecond}) })
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, h := range []*fleetHost{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = h.mgr.Sync(ctx, "r1", nil, nil)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	da, db := readSnapshot(t, a.host, "dup1", "vol"), readSnapshot(t, b.host, "dup1", "vol")
	if err := restoreEq(t, a.host, "", "dup1", "vol", da); err != nil {
		t.Errorf("a restores its own dup1: %v", err)
	}
	if err := restoreEq(t, b.host, "", "dup1", "vol", db); err != nil {
		t.Errorf("b restores its own dup1: %v", err)
	}
	if _, err := c.mgr.Restore(ctx, "r1", "dup1", "vol", "x", nil); !errors.Is(err, replicate.ErrInvalid) || !strings.Contains(err.Error(), "--host") {
		t.Errorf("c restores an ambiguous name: %v, want ErrInvalid naming --host", err)
	}
	if err := restoreEq(t, c.host, "b", "dup1", "vol", db); err != nil {
		t.Errorf("c restores b's dup1 with --host b: %v", err)
	}
	if err := restoreEq(t, c.host, b.mgr.Host().ID.String(), "dup1", "vol", db); err != nil {
		t.Errorf("c restores b's dup1 by host id: %v", err)
	}
	remote, err := c.mgr.ListRemote(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]bool{}
	for _, r := range remote {
		hosts[r.Host] = true
	}
	if len(remote) != 2 || !hosts["a"] || !hosts["b"] {
		t.Fatalf("region lists %+v, want dup1 of a and of b", remote)
	}
	mustClean(t, c.host)
}

// Finding 5: the same name one after the other: B's sync was refused and
// B's restore returned A's data. Now B's copy is B's.
func TestHostsFinding5SameNameInTurn(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	for i, h := range []*fleetHost{a, b} {
		mkDisk(t, h.host, "vol", 16)
		writeBlocks(t, h.host, "vol", uint64(200+i), span(0, 6))
		snapshot(t, h.host, "daily", "vol")
		if _, err := h.mgr.Sync(ctx, "r1", nil, nil); err != nil {
			t.Fatalf("sync of %s: %v", h.mgr.Host().Name, err)
		}
	}
	writeBlocks(t, b.host, "vol", 9, span(6, 8))
	snapshot(t, b.host, "later", "vol")
	st, err := b.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil || st.Snapshots != 1 {
		t.Fatalf("b's later snapshot: %+v %v", st, err)
	}
	if err := restoreEq(t, b.host, "", "daily", "vol", readSnapshot(t, b.host, "daily", "vol")); err != nil {
		t.Fatalf("b's daily: %v", err)
	}
	if err := restoreEq(t, a.host, "", "daily", "vol", readSnapshot(t, a.host, "daily", "vol")); err != nil {
		t.Fatalf("a's daily: %v", err)
	}
}

// Finding 6: A's prune --keep-last 1 removed all of B's snapshots, and each
// host's next sync re-copied what was pruned. Retention is per host and
// disk, and a pruned snapshot is not shipped again.
func TestHostsFinding6RetentionPerHost(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	for i, h := range []*fleetHost{a, b} {
		mkDisk(t, h.host, "vol", 16)
		mkDisk(t, h.host, "aux", 16)
		for j := range 3 {
			writeBlocks(t, h.host, "vol", uint64(300+10*i+j), span(uint64(j), uint64(j+3)))
			snapshot(t, h.host, fmt.Sprintf("s%d", j), "vol")
			writeBlocks(t, h.host, "aux", uint64(400+10*i+j), span(0, 2))
			snapshot(t, h.host, fmt.Sprintf("x%d", j), "aux")
		}
		if _, err := h.mgr.Sync(ctx, "r1", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	st, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Deleted) != 4 { // s0 s1 x0 x1 of a
		t.Fatalf("a's prune removed %v, want a's s0, s1, x0, x1", st.Deleted)
	}
	remote, err := b.mgr.ListRemote(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	mine := 0
	for _, r := range remote {
		if r.Mine {
			mine++
		}
	}
	if mine != 6 {
		t.Fatalf("b has %d snapshots in the region after a's prune, want all 6", mine)
	}
	for _, h := range []*fleetHost{a, b} {
		s, err := h.mgr.Sync(ctx, "r1", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Snapshots != 0 || s.PacksWritten != 0 {
			t.Fatalf("%s's next sync re-copied %d snapshot(s), %d pack(s)", h.mgr.Host().Name, s.Snapshots, s.PacksWritten)
		}
		if h == a && s.Pruned != 4 {
			t.Fatalf("a's sync: %d pruned snapshots recognised, want 4", s.Pruned)
		}
	}
	// --all-hosts keeps the newest of each host and disk.
	st, err = b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true})
	if err != nil || len(st.Deleted) != 4 {
		t.Fatalf("prune --all-hosts: %+v %v", st, err)
	}
	// An explicit copy of a pruned snapshot is honoured.
	if s, err := a.mgr.CopySnapshot(ctx, "r1", "s0", nil); err != nil || s.Snapshots != 1 {
		t.Fatalf("explicit copy of a pruned snapshot: %+v %v", s, err)
	}
	if err := restoreEq(t, a.host, "", "s0", "vol", readSnapshot(t, a.host, "s0", "vol")); err != nil {
		t.Fatal(err)
	}
	mustClean(t, a.host)
}

// Finding 7: after an interrupted sync (a store gone mid-pack) and a rerun,
// check --read-data reported the unindexed pack as lost and "1 snapshot(s)
// lost" (a count of packs). It is garbage, and repair removes it.
func TestHostsFinding7InterruptedSyncIsGarbage(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 2, "a")
	a := hs[0]
	mkDisk(t, a.host, "v", 16)
	writeBlocks(t, a.host, "v", 1, span(0, 10))
	snapshot(t, a.host, "s1", "v")
	// Stores 1, 2 and 3 fail the pack: one shard, fewer than k.
	for i := 1; i < 4; i++ {
		a.faults[i].FailMatching(func(m store.Method, n string) error {
			if m == store.MethodPut && strings.HasPrefix(n, "packs/") {
				return store.ErrInjected
			}
			return nil
		})
	}
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err == nil {
		t.Fatal("sync succeeded")
	}
	a.eachFault(func(f *store.Faults) { f.FailMatching(nil) })
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	rep, err := a.mgr.Check(ctx, "r1", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Lost) != 0 || len(rep.Unindexed) != 1 {
		t.Fatalf("check after the rerun: ok=%v lost=%v unindexed=%v problems=%v", rep.OK(), rep.Lost, rep.Unindexed, rep.Problems)
	}
	rr, err := a.mgr.Repair(ctx, "r1", nil)
	if err != nil || rr.OrphansDeleted != 1 || len(rr.Failed) != 0 {
		t.Fatalf("repair: %+v %v", rr, err)
	}
	if rep := mustClean(t, a.host); len(rep.Unindexed) != 0 {
		t.Fatalf("unindexed left: %v", rep.Unindexed)
	}
	if got := len(listObjs(t, dirs[0], "packs")); got != 1 {
		t.Fatalf("%d packs on store 0, want 1", got)
	}
	if err := restoreEq(t, a.host, "", "s1", "v", readSnapshot(t, a.host, "s1", "v")); err != nil {
		t.Fatal(err)
	}
}

// Issue 9 finding 4: unreachable stores are unavailable, never lost.
func TestHostsUnreachableIsNotLost(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 4, 2, "a")
	a := hs[0]
	mkDisk(t, a.host, "v", 16)
	writeBlocks(t, a.host, "v", 1, span(0, 10))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < 6; i++ {
		a.faults[i].SetDown(true)
	}
	rep, err := a.mgr.Check(ctx, "r1", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Lost) != 0 || len(rep.LostPacks) != 0 || len(rep.Degraded) != 0 || len(rep.Unavailable) != 1 || len(rep.Unreachable) != 3 {
		t.Fatalf("check with 3 of 6 stores down: lost %v lost packs %v degraded %v unavailable %v unreachable %v",
			rep.Lost, rep.LostPacks, rep.Degraded, rep.Unavailable, rep.Unreachable)
	}
	for i := 3; i < 6; i++ {
		a.faults[i].SetDown(false)
	}
	mustClean(t, a.host)
}

// Locks: a dead holder's lock blocks nobody once stale; a live exclusive
// lock blocks a sync (ErrLocked) until unlock --force; the sync whose
// lock was forced away fails with ErrConflict and writes no manifest.
func TestHostsLocks(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 16)
	writeBlocks(t, a.host, "v", 1, span(0, 4))
	snapshot(t, a.host, "s1", "v")
	// b's prune stalls on its first delete with its exclusive lock held.
	mkDisk(t, b.host, "w", 16)
	writeBlocks(t, b.host, "w", 2, span(0, 4))
	snapshot(t, b.host, "t1", "w")
	writeBlocks(t, b.host, "w", 3, span(0, 4))
	snapshot(t, b.host, "t2", "w")
	if _, err := b.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	b.faults[0].DelayMatching(func(m store.Method, n string) time.Duration {
		if m == store.MethodDelete && strings.HasPrefix(n, "snapshots/") {
			<-release
		}
		return 0
	})
	done := make(chan error, 1)
	go func() {
		_, err := b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1})
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(listObjs(t, dirs[0], "locks")) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); !errors.Is(err, replicate.ErrLocked) || !strings.Contains(err.Error(), "prune") {
		t.Fatalf("sync during prune: %v, want ErrLocked naming the prune", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b.faults[0].DelayMatching(nil)
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	// unlock --force while a's sync waits to write its manifest: the sync
	// finds its lock gone and fails with ErrConflict, writing nothing.
	writeBlocks(t, a.host, "v", 7, span(4, 8))
	snapshot(t, a.host, "s2", "v")
	entered := make(chan struct{})
	var once sync.Once
	a.eachFault(func(f *store.Faults) { // an index goes to its homes only
		f.DelayMatching(func(m store.Method, n string) time.Duration {
			if m == store.MethodPut && strings.HasPrefix(n, "index/") {
				once.Do(func() { close(entered) })
				return 200 * time.Millisecond
			}
			return 0
		})
	})
	go func() {
		<-entered
		if st, err := b.mgr.Unlock(ctx, "r1", true); err != nil || len(st.Locks) != 1 {
			t.Errorf("unlock --force: %+v %v", st, err)
		}
	}()
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); !errors.Is(err, replicate.ErrConflict) {
		t.Fatalf("sync whose lock was forced away: %v, want ErrConflict", err)
	}
	a.faults[0].DelayMatching(nil)
	// (unlock also removed s2's copying marker: no lock was left.)
	if r, err := b.mgr.ListRemote(ctx, "r1"); err != nil || len(r) != 2 {
		t.Fatalf("after the forced unlock the region lists %+v %v, want t2 and s1 only", r, err)
	}
	if st, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil || st.Snapshots != 1 {
		t.Fatalf("sync again: %+v %v", st, err)
	}
	locks, err := a.mgr.Locks(ctx, "r1")
	if err != nil || len(locks) != 0 {
		t.Fatalf("locks left: %+v %v", locks, err)
	}
	mustClean(t, a.host)
}

// Issue 9 finding 3 / issue 14 finding 8: a missing file:// store
// directory is never created: region add fails clearly (ErrNotFound: exit 3,
// nothing written), restore uses the other stores and leaves it missing.
func TestMissingStoreDirNotCreated(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a")
	a := hs[0]
	mkDisk(t, a.host, "v", 16)
	writeBlocks(t, a.host, "v", 1, span(0, 4))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(t.TempDir(), "unmounted", "nas")
	b := newHost(t, replicate.Options{})
	_, err := b.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: 2, M: 1, Stores: []string{"file://" + dirs[0], "file://" + dirs[1], "file://" + gone}, KeyFile: keyFile(t, 5)})
	if !errors.Is(err, replicate.ErrNotFound) || !errors.Is(err, store.ErrMissing) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("region add with a missing store directory: %v", err)
	}
	if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("region add created %s", gone)
	}
	if err := os.Rename(dirs[2], dirs[2]+".away"); err != nil {
		t.Fatal(err)
	}
	if err := restoreEq(t, a.host, "", "s1", "v", readSnapshot(t, a.host, "s1", "v")); err != nil {
		t.Fatalf("restore with one store directory missing: %v", err)
	}
	if _, err := os.Stat(dirs[2]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("restore re-created %s", dirs[2])
	}
}

// Issue 14 finding 8: messages are whole. The CLI prints the first line of
// an error; a joined error used to break inside a parenthesis.
func TestErrorsAreOneLine(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a")
	a := hs[0]
	mkDisk(t, a.host, "v", 16)
	writeBlocks(t, a.host, "v", 1, span(0, 4))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	a.faults[0].SetDown(true)
	a.faults[1].FailMatching(func(m store.Method, n string) error {
		if strings.HasPrefix(n, "packs/") {
			return store.ErrNotFound
		}
		return nil
	})
	_, err := a.mgr.Restore(ctx, "r1", "s1", "v", "x", nil)
	if err == nil {
		t.Fatal("restore with two of three stores failing worked")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || strings.Count(msg, "(") != strings.Count(msg, ")") {
		t.Fatalf("message not one whole line: %q", msg)
	}
}
