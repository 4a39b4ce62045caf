package replicate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/rowstore"
)

// faultyHost wraps every store i with faults[i].
func faultyHost(t *testing.T, faults []*store.Faults) *host {
	return newHost(t, replicate.Options{OpenStore: func(ctx context.Context, i int, url string, o store.Options) (store.Store, error) {
		s, err := store.Open(ctx, url, o)
		if err != nil {
			return s, err
		}
		return store.Wrap(s, store.WrapOptions{Faults: faults[i]}), nil
	}})
}

func listObjs(t *testing.T, dir, sub string) []string {
	ents, _ := os.ReadDir(filepath.Join(dir, sub))
	var out []string
	for _, e := range ents {
		if !strings.Contains(e.Name(), ".tmp") {
			out = append(out, e.Name())
		}
	}
	return out
}

// RV1: a manifest put that failed on stores 1..5 is "skipped" by the next
// sync, which reports success; losing store 0 (one store of a 4+2 region)
// makes the snapshot unrestorable.
func TestRegressPartialManifestSkipped(t *testing.T) {
	ctx := context.Background()
	faults := make([]*store.Faults, testK+testM)
	for i := range faults {
		faults[i] = store.NewFaults()
	}
	a := faultyHost(t, faults)
	if _, err := a.rs.CreateDisk("vol1", 16<<20, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 1, span(0, 8)) // one pack
	snapshot(t, a, "s1", "vol1")
	dirs, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 9))
	// The first manifest put fails on stores 1..5 (by name: an index is
	// on its homes only, so the count of puts before it varies by store).
	for i := 1; i < len(faults); i++ {
		var failed atomic.Bool
		faults[i].FailMatching(func(m store.Method, name string) error {
			if m == store.MethodPut && strings.HasPrefix(name, "snapshots/") && failed.CompareAndSwap(false, true) {
				return errors.New("manifest put refused")
			}
			return nil
		})
	}
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err == nil {
		t.Fatal("first sync should fail")
	}
	st, err := a.mgr.Sync(ctx, "r1", nil, nil)
	t.Logf("second sync: %+v err=%v", st, err)
	for i, d := range dirs {
		t.Logf("store %d snapshots=%v copying=%v", i, listObjs(t, d, "snapshots"), listObjs(t, d, "copying"))
	}
	if err != nil {
		t.Fatal(err)
	}
	// store 0 is lost: one of six.
	os.RemoveAll(dirs[0])
	b := newHost(t, replicate.Options{})
	if _, err := b.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: keyFile(t, 9)}); err != nil {
		t.Logf("attach: %v", err)
	}
	_, rerr := a.mgr.Restore(ctx, "r1", "s1", "vol1", "v", nil)
	if rerr != nil {
		t.Errorf("BUG: sync said ok (skipped=%d), but after losing 1 of 6 stores restore fails: %v", st.Skipped, rerr)
	}
}

// RV2: same for an index written to only store 0.
func TestRegressPartialIndexSkipped(t *testing.T) {
	ctx := context.Background()
	faults := make([]*store.Faults, testK+testM)
	for i := range faults {
		faults[i] = store.NewFaults()
	}
	a := faultyHost(t, faults)
	if _, err := a.rs.CreateDisk("vol1", 16<<20, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 1, span(0, 8))
	snapshot(t, a, "s1", "vol1")
	dirs, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 9))
	for i := 1; i < len(faults); i++ { // the first index put on stores 1..5 (those that are its homes)
		var failed atomic.Bool
		faults[i].FailMatching(func(m store.Method, name string) error {
			if m == store.MethodPut && strings.HasPrefix(name, "index/") && failed.CompareAndSwap(false, true) {
				return errors.New("index put refused")
			}
			return nil
		})
	}
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err == nil {
		t.Fatal("first sync should fail")
	}
	for _, f := range faults { // the first sync's failures only
		f.FailMatching(nil)
	}
	st, err := a.mgr.Sync(ctx, "r1", nil, nil)
	t.Logf("second sync: %+v err=%v", st, err)
	for i, d := range dirs {
		t.Logf("store %d index=%v packs=%v", i, listObjs(t, d, "index"), listObjs(t, d, "packs"))
	}
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dirs[0])
	_, rerr := a.mgr.Restore(ctx, "r1", "s1", "vol1", "v", nil)
	if rerr != nil {
		t.Errorf("BUG: sync said ok (blocks read %d), but after losing 1 of 6 stores restore fails: %v", st.BlocksRead, rerr)
	}
}

// RV3: Check with readData reports OK when a pack is gone from every store.
func TestRegressCheckMissesLostPack(t *testing.T) {
	ctx := context.Background()
	a := newHost(t, replicate.Options{})
	if _, err := a.rs.CreateDisk("vol1", 16<<20, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 1, span(0, 8))
	snapshot(t, a, "s1", "vol1")
	dirs, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 9))
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		os.RemoveAll(filepath.Join(d, "packs"))
	}
	rep, err := a.mgr.Check(ctx, "r1", true, nil)
	t.Logf("check: ok=%v %+v err=%v", rep.OK(), rep, err)
	_, rerr := a.mgr.Restore(ctx, "r1", "s1", "vol1", "v", nil)
	t.Logf("restore: %v", rerr)
	if rep.OK() && rerr != nil {
		t.Errorf("BUG: check --read-data says OK, restore fails")
	}
	// and the index-lost variant
	for _, d := range dirs {
		os.RemoveAll(filepath.Join(d, "index"))
	}
	rep, err = a.mgr.Check(ctx, "r1", true, nil)
	t.Logf("check (index gone too): ok=%v degraded=%v err=%v", rep.OK(), rep.Degraded, err)
	rs, _ := a.mgr.RemoteState(ctx, "r1", "s1")
	t.Logf("state: %v", rs.State)
	if rep.OK() {
		t.Errorf("BUG: check OK though s1 names chunks in no pack")
	}
}

// RV4: prune on the same host during a sync deletes the delta parent and
// the old packs the sync deduplicated against; the sync reports success.
func TestRegressPruneDuringSync(t *testing.T) {
	ctx := context.Background()
	a := newHost(t, replicate.Options{})
	if _, err := a.rs.CreateDisk("vol1", 16<<20, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 1, span(0, 16))
	snapshot(t, a, "s1", "vol1")
	_, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 9))
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 2, span(20, 22))
	snapshot(t, a, "s2", "vol1")
	// a second manager, as the prune command would be, 2 h later
	pm, err := replicate.New(a.dir, a.rs, replicate.Options{Now: func() time.Time { return time.Now().Add(2 * time.Hour) },
		OpenStore: clockedOpen(func() time.Duration { return 2 * time.Hour }, nil)}) // the stores' clocks pass too
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	pruned := false
	st, err := a.mgr.CopySnapshot(ctx, "r1", "s2", replicate.ProgressFunc(func(e replicate.Event) {
		if e.Type == replicate.EventSnapshot && !pruned {
			pruned = true
			ps, err := pm.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 0, KeepWithin: time.Hour, AllHosts: true})
			t.Logf("concurrent prune: %+v %v", ps, err)
		}
	}))
	t.Logf("sync s2: %+v err=%v", st, err)
	if err != nil {
		// The prune's clock made the sync's lock look stale: the prune
		// broke it, and the sync must notice and write no manifest.
		if !errors.Is(err, replicate.ErrConflict) {
			t.Fatalf("sync after its lock was broken: %v, want ErrConflict", err)
		}
		if _, err := a.mgr.CopySnapshot(ctx, "r1", "s2", nil); err != nil {
			t.Fatalf("sync again: %v", err)
		}
	}
	_, rerr := a.mgr.Restore(ctx, "r1", "s2", "vol1", "v", nil)
	if rerr != nil {
		t.Errorf("BUG: sync of s2 succeeded while a prune ran (copying marker present), restore fails: %v", rerr)
	}
}

type failSnapPuts struct {
	store.Store
	on *bool
}

func (f failSnapPuts) Put(ctx context.Context, name string, data []byte) error {
	if *f.on && strings.HasPrefix(name, "snapshots/") {
		return store.ErrInjected
	}
	return f.Store.Put(ctx, name, data)
}

// RV5: a prune whose full-manifest rewrite reached only store 0 is retried;
// the retry reads store 0's copy, deletes the parent, and stores 1..5 keep a
// delta manifest over a deleted parent. Check reports OK; losing store 0
// makes the kept snapshot unrestorable.
func TestRegressPruneDivergentRewrite(t *testing.T) {
	ctx := context.Background()
	on := false
	a := sourceHost(t)
	a2 := newHost(t, replicate.Options{})
	_ = a2
	m, err := replicate.New(a.dir, a.rs, replicate.Options{OpenStore: func(ctx context.Context, i int, url string, o store.Options) (store.Store, error) {
		s, err := store.Open(ctx, url, o)
		if err != nil || i == 0 {
			return s, err
		}
		return failSnapPuts{s, &on}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dirs, urls := storeDirs(t, testK+testM)
	if _, err := m.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: keyFile(t, 4)}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	on = true
	st, err := m.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, KeepWithin: 0, AllHosts: true})
	t.Logf("prune 1: %+v %v", st, err)
	on = false
	st, err = m.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, KeepWithin: 0, AllHosts: true})
	t.Logf("prune 2: %+v %v", st, err)
	rep, err := m.Check(ctx, "r1", true, nil)
	t.Logf("check ok=%v problems=%v err=%v", rep.OK(), rep.Problems, err)
	os.RemoveAll(dirs[0])
	_, rerr := m.Restore(ctx, "r1", "s3", "vol1", "v", nil)
	if rerr != nil {
		t.Errorf("BUG: prune succeeded, check OK, one store lost, restore of kept s3 fails: %v", rerr)
	}
}

// Prune keeps an unindexed (orphan) pack while a kept snapshot needs a
// chunk that is in no index.
func TestRegressPruneKeepsNeededOrphan(t *testing.T) {
	ctx := context.Background()
	a := newHost(t, replicate.Options{})
	if _, err := a.rs.CreateDisk("vol1", 16<<20, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 1, span(0, 8))
	snapshot(t, a, "s1", "vol1")
	dirs, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 9))
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		os.RemoveAll(filepath.Join(d, "index"))
	}
	pm, err := replicate.New(a.dir, a.rs, replicate.Options{Now: func() time.Time { return time.Now().Add(48 * time.Hour) },
		OpenStore: clockedOpen(func() time.Duration { return 48 * time.Hour }, nil)}) // the stores' clocks pass too
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	st, err := pm.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, KeepWithin: 0, AllHosts: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.OrphansDeleted != 0 || len(listObjs(t, dirs[0], "packs")) == 0 {
		t.Fatalf("prune deleted a needed unindexed pack: %+v", st)
	}
}

// Check reports a manifest whose copies differ (a prune rewrite that
// reached one store) and Repair makes them match.
func TestRegressCheckRepairStaleManifest(t *testing.T) {
	ctx := context.Background()
	on := false
	a := sourceHost(t)
	m, err := replicate.New(a.dir, a.rs, replicate.Options{OpenStore: func(ctx context.Context, i int, url string, o store.Options) (store.Store, error) {
		s, err := store.Open(ctx, url, o)
		if err != nil || i == 0 {
			return s, err
		}
		return failSnapPuts{s, &on}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dirs, urls := storeDirs(t, testK+testM)
	if _, err := m.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: keyFile(t, 4)}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	on = true
	if _, err := m.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, KeepWithin: 0, AllHosts: true}); err == nil {
		t.Fatal("prune with failing manifest puts should fail")
	}
	on = false
	rep, err := m.Check(ctx, "r1", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	stale := 0
	for _, p := range rep.Problems {
		if p.Kind == replicate.ProblemStale {
			stale++
		}
	}
	if rep.OK() || stale != testK+testM-1 {
		t.Fatalf("check: ok=%v, %d stale copies, want %d: %+v", rep.OK(), stale, testK+testM-1, rep.Problems)
	}
	fix, err := m.Repair(ctx, "r1", nil)
	if err != nil || len(fix.Failed) > 0 {
		t.Fatalf("repair: %+v %v", fix, err)
	}
	if rep, err = m.Check(ctx, "r1", true, nil); err != nil || !rep.OK() {
		t.Fatalf("check after repair: ok=%v %+v %v", rep.OK(), rep.Problems, err)
	}
	os.RemoveAll(dirs[0])
	if _, err := m.Restore(ctx, "r1", "s3", "vol1", "v", nil); err != nil {
		t.Fatalf("restore after repair without store 0: %v", err)
	}
}

// A sync whose delta parent and deduplicated packs vanish while it runs
// (a prune on another host) fails with ErrConflict instead of writing a
// manifest over them; the next sync resends and the snapshot restores.
func TestRegressSyncRechecksRefs(t *testing.T) {
	ctx := context.Background()
	a := newHost(t, replicate.Options{})
	if _, err := a.rs.CreateDisk("vol1", 16<<20, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 1, span(0, 16))
	snapshot(t, a, "s1", "vol1")
	dirs, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 9))
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 2, span(20, 22))
	snapshot(t, a, "s2", "vol1")
	gone := false
	_, err := a.mgr.CopySnapshot(ctx, "r1", "s2", replicate.ProgressFunc(func(e replicate.Event) {
		if e.Type == replicate.EventSnapshot && !gone {
			gone = true
			for _, d := range dirs {
				for _, sub := range []string{"snapshots", "index", "packs"} {
					os.RemoveAll(filepath.Join(d, sub))
				}
			}
		}
	}))
	if !errors.Is(err, replicate.ErrConflict) {
		t.Fatalf("sync with its parent and packs deleted meanwhile: %v, want ErrConflict", err)
	}
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"s1", "s2"} {
		if _, err := a.mgr.Restore(ctx, "r1", s, "vol1", "v-"+s, nil); err != nil {
			t.Fatalf("restore %s: %v", s, err)
		}
	}
}

// A killed restore's temporary disk is deleted at Manager start and at the
// next restore; restore's temporary names cannot be restore targets.
func TestRegressRestoreTempCleaned(t *testing.T) {
	ctx := context.Background()
	a := newHost(t, replicate.Options{})
	if _, err := a.rs.CreateDisk("vol1", 16<<20, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 1, span(0, 8))
	snapshot(t, a, "s1", "vol1")
	_, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 9))
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	has := func(name string) bool {
		_, err := a.rs.GetDisk(name)
		return err == nil
	}
	// left by a killed restore: made under its registered temporary name,
	// then the build gone (only a build may make such a name)
	leftover := func() string {
		name, release := rowstore.NewTempDiskName()
		defer release()
		if _, err := a.rs.CreateDisk(name, 1<<20, bs); err != nil {
			t.Fatal(err)
		}
		return name
	}
	left1 := leftover()
	m2, err := replicate.New(a.dir, a.rs, replicate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m2.Close()
	if has(left1) {
		t.Fatal("Manager start left a temporary restore disk")
	}
	left2 := leftover()
	if _, err := a.rs.CreateDisk("restore-keep", 1<<20, bs); err != nil {
		t.Fatal(err)
	}
	if _, err := a.mgr.Restore(ctx, "r1", "s1", "vol1", "v", nil); err != nil {
		t.Fatal(err)
	}
	if has(left2) || !has("restore-keep") || !has("v") {
		t.Fatalf("after restore: disks %v", diskNames(t, a))
	}
	if _, err := a.mgr.Restore(ctx, "r1", "s1", "vol1", "restore-00000000000000aa", nil); !errors.Is(err, replicate.ErrInvalid) {
		t.Fatalf("restore to a temporary name: %v, want ErrInvalid", err)
	}
}

// A region without parity (M < 1) is rejected.
func TestRegressNoParityRejected(t *testing.T) {
	a := newHost(t, replicate.Options{})
	_, urls := storeDirs(t, 2)
	_, err := a.mgr.AddRegion(context.Background(), replicate.RegionConfig{Name: "r1", K: 2, M: 0, Stores: urls, KeyFile: keyFile(t, 9)})
	if !errors.Is(err, replicate.ErrInvalid) {
		t.Fatalf("AddRegion with m=0: %v, want ErrInvalid", err)
	}
}
