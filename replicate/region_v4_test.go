package replicate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/replicate/store/s3test"
)

// Index copies (index version 4): a pack's index is on m+1 of the k+m
// stores, its homes, so that any k stores hold one. These tests take
// stores away and check what users rely on: restore (eager and lazy),
// check --read-data and repair from any k stores, a missing copy
// reported and put back at its home, an interrupted index write finished
// by the next sync, and no pack deleted when its index is out of sight.

// v4Host is deltaHost (s1 synced, s2 with 51 deltas made) with s2 synced
// too, and a second host b whose stores can be taken down.
func v4Host(t *testing.T) (a *host, b *fleetHost, dirs []string, want []byte) {
	t.Helper()
	ctx := context.Background()
	a, dirs, urls, key := deltaHost(t)
	if st, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil || st.Deltas != 51 {
		t.Fatalf("sync: %+v %v", st, err)
	}
	b = newFleetHost(t, "b", testK+testM, replicate.Options{})
	addRegion(t, b.host, urls, key)
	return a, b, dirs, readSnapshot(t, a, "s2", "vol1")
}

// objectsOn lists sub/ of each store directory: name -> stores holding it.
func objectsOn(t *testing.T, dirs []string, sub string) map[string][]int {
	t.Helper()
	out := map[string][]int{}
	for i, d := range dirs {
		es, err := os.ReadDir(filepath.Join(d, sub))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		for _, e := range es {
			out[e.Name()] = append(out[e.Name()], i)
		}
	}
	return out
}

// assertIndexesAtHomes fails unless every index is on exactly its homes.
func assertIndexesAtHomes(t *testing.T, dirs []string) {
	t.Helper()
	idx := objectsOn(t, dirs, "index")
	if len(idx) == 0 {
		t.Fatal("no index in the region")
	}
	for name, on := range idx {
		if homes := slices.Sorted(slices.Values(replicate.IndexHomes(testK, testM, name))); !slices.Equal(on, homes) {
			t.Fatalf("index %s is on stores %v, want its homes %v", name, on, homes)
		}
	}
}

// homesAway takes away, for host b, the homes of the index of the pack
// that holds block 10 of s2 (a delta): fewer than k stores are left.
func homesAway(t *testing.T, b *fleetHost) (pack string, homes []int) {
	t.Helper()
	pack, _, err := b.mgr.PackOfBlock(context.Background(), "r1", "s2", "vol1", 10)
	if err != nil {
		t.Fatal(err)
	}
	homes = replicate.IndexHomes(testK, testM, pack)
	for _, i := range homes {
		b.faults[i].SetDown(true)
	}
	return pack, homes
}

// lazyDiskHomesAway is v4Host with, for host b, the homes of block 10's
// index away (homesAway) and s2's vol1 opened lazily meanwhile; a lazy
// disk tries its stores again every 100 ms for the test's length. The
// disk is closed at the test's end.
func lazyDiskHomesAway(t *testing.T) (b *fleetHost, d *replicate.RemoteDisk, homes []int, want []byte) {
	t.Helper()
	t.Cleanup(replicate.SetStoreRetry(100 * time.Millisecond))
	_, b, _, want = v4Host(t)
	pack, homes := homesAway(t, b)
	d, err := b.mgr.OpenRemoteDisk(context.Background(), "r1", "s2", "vol1")
	if err != nil {
		t.Fatalf("lazy open with the homes %v of pack %s away: %v", homes, pack, err)
	}
	t.Cleanup(func() { d.Close() })
	return b, d, homes, want
}

// storesBack puts the stores homes back for host b and waits 300 ms:
// three store retries of a lazy disk at the 100 ms these tests set.
func storesBack(b *fleetHost, homes []int) {
	for _, i := range homes {
		b.faults[i].SetDown(false)
	}
	time.Sleep(300 * time.Millisecond)
}

// TestRegionV4IndexOnHomes: a sync writes each pack's index on m+1 = 3 of
// the six stores (its homes, spread over every store), and the bytes it
// writes for indexes are half what six copies were.
func TestRegionV4IndexOnHomes(t *testing.T) {
	_, _, dirs, _ := v4Host(t)
	assertIndexesAtHomes(t, dirs)
	first := map[int]bool{}
	for name := range objectsOn(t, dirs, "index") {
		homes := replicate.IndexHomes(testK, testM, name)
		if len(homes) != testM+1 {
			t.Fatalf("index %s has %d homes, want m+1 = %d", name, len(homes), testM+1)
		}
		first[homes[0]] = true
	}
	if len(first) < 2 {
		t.Fatalf("every index starts at the same store: %v", first)
	}
}

// TestRegionV4AnyKStores: with any m of the k+m stores away (all 15
// pairs), another host restores s2 (51 deltas) eagerly and lazily byte
// for byte, check --read-data finds nothing lost, and repair deletes
// nothing; with them back, check is clean.
func TestRegionV4AnyKStores(t *testing.T) {
	ctx := context.Background()
	_, b, dirs, want := v4Host(t)
	packs0, idx0 := objectsOn(t, dirs, "packs"), objectsOn(t, dirs, "index")
	for x := range testK + testM {
		for y := x + 1; y < testK+testM; y++ {
			t.Run(fmt.Sprintf("away-%d-%d", x, y), func(t *testing.T) {
				b.faults[x].SetDown(true)
				b.faults[y].SetDown(true)
				defer b.faults[x].SetDown(false)
				defer b.faults[y].SetDown(false)
				to := fmt.Sprintf("v-%d-%d", x, y)
				if _, err := b.mgr.Restore(ctx, "r1", "s2", "vol1", to, nil); err != nil {
					t.Fatalf("restore: %v", err)
				}
				if !bytes.Equal(readDisk(t, b.host, to), want) {
					t.Fatal("restored s2 differs")
				}
				if got, err := readRemoteSnap(t, b.host, "s2"); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("lazy read of s2 differs (%v)", err)
				}
				rep, err := b.mgr.Check(ctx, "r1", true, nil)
				if err != nil || len(rep.Lost) > 0 || rep.Verdict != "unavailable" || rep.DeltasChecked != 51 {
					t.Fatalf("check: %+v %v", rep, err)
				}
				if _, err := b.mgr.Repair(ctx, "r1", nil); err != nil {
					t.Fatalf("repair: %v", err)
				}
				if p, i := objectsOn(t, dirs, "packs"), objectsOn(t, dirs, "index"); !mapsEqual(p, packs0) || !mapsEqual(i, idx0) {
					t.Fatal("repair with two stores away changed packs or indexes")
				}
			})
		}
	}
	if rep, err := b.mgr.Check(ctx, "r1", true, nil); err != nil || !rep.OK() {
		t.Fatalf("check with every store: %+v %v", rep, err)
	}
}

func mapsEqual(a, b map[string][]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestRegionV4HomesAwayDeletesNothing: with the m+1 homes of a pack's
// index away (fewer than k stores left), nothing can say that pack is
// unindexed: check calls no snapshot lost (its chunks' index is out of
// sight: unavailable) and no pack unindexed, and repair, which deletes
// unindexed packs as garbage, leaves its shards. (With the homes chosen
// without that care, repair deleted them.)
func TestRegionV4HomesAwayDeletesNothing(t *testing.T) {
	ctx := context.Background()
	_, b, dirs, want := v4Host(t)
	packs0 := objectsOn(t, dirs, "packs")
	pack, homes := homesAway(t, b)
	rep, err := b.mgr.Check(ctx, "r1", false, nil)
	if err != nil || len(rep.Lost) > 0 || len(rep.Unindexed) > 0 || rep.Verdict != "unavailable" {
		t.Fatalf("check with the homes of pack %s (%v) away: %+v %v", pack, homes, rep, err)
	}
	if _, err := b.mgr.Repair(ctx, "r1", nil); err != nil {
		t.Fatalf("repair: %v", err)
	}
	if p := objectsOn(t, dirs, "packs"); !mapsEqual(p, packs0) {
		t.Fatalf("repair with the homes of pack %s away deleted shards", pack)
	}
	for _, i := range homes {
		b.faults[i].SetDown(false)
	}
	if err := restoreEq(t, b.host, "", "s2", "vol1", want); err != nil {
		t.Fatal(err)
	}
}

// TestRegionV4MissingCopy: an index copy lost on one of its homes is
// reported by check (missing, that store and object), put back there by
// repair and nowhere else; restore and lazy reads never needed it.
func TestRegionV4MissingCopy(t *testing.T) {
	ctx := context.Background()
	_, b, dirs, want := v4Host(t)
	pack, _, err := b.mgr.PackOfBlock(ctx, "r1", "s2", "vol1", 10)
	if err != nil {
		t.Fatal(err)
	}
	home := replicate.IndexHomes(testK, testM, pack)[1]
	if err := os.Remove(filepath.Join(dirs[home], "index", pack)); err != nil {
		t.Fatal(err)
	}
	if got, err := readRemoteSnap(t, b.host, "s2"); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("lazy read of s2 differs (%v)", err)
	}
	rep, err := b.mgr.Check(ctx, "r1", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != "degraded" || len(rep.Problems) != 1 || rep.Problems[0].Store != home || rep.Problems[0].Object != "index/"+pack || rep.Problems[0].Kind != replicate.ProblemMissing {
		t.Fatalf("check of an index copy lost on store %d: %+v", home, rep)
	}
	if _, err := b.mgr.Repair(ctx, "r1", nil); err != nil {
		t.Fatal(err)
	}
	assertIndexesAtHomes(t, dirs)
	if rep, err := b.mgr.Check(ctx, "r1", true, nil); err != nil || !rep.OK() {
		t.Fatalf("check after repair: %+v %v", rep, err)
	}
	if err := restoreEq(t, b.host, "", "s2", "vol1", want); err != nil {
		t.Fatal(err)
	}
}

// TestRegionV4InterruptedIndexWrite: a sync whose index puts fail after
// each index's first copy (a home down during the sync, or a sync stopped
// between index copies) fails and writes no manifest; its packs are
// listed through the copies that landed. Once the store is back, the next sync finishes each index
// on its homes (a heal, not a resend of the packs) and ships the
// snapshot; check is clean and another host restores it byte for byte.
func TestRegionV4InterruptedIndexWrite(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, testK, testM, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 256)
	writeBlocks(t, a.host, "v", 1, span(0, 256))
	snapshot(t, a.host, "s1", "v")
	// Of each index, the first copy lands and the others fail: the sync
	// stops between index copies, whichever stores are the homes.
	var mu sync.Mutex
	landed := map[string]bool{}
	a.eachFault(func(f *store.Faults) {
		f.FailMatching(func(m store.Method, name string) error {
			if m != store.MethodPut || !strings.HasPrefix(name, "index/") {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			if landed[name] {
				return errors.New("index put refused")
			}
			landed[name] = true
			return nil
		})
	})
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err == nil {
		t.Fatal("a sync whose index puts failed succeeded")
	}
	idx := objectsOn(t, dirs, "index")
	if len(idx) == 0 {
		t.Fatal("no index copy landed")
	}
	for name, on := range idx {
		if len(on) != 1 {
			t.Fatalf("index %s is on stores %v, want one copy", name, on)
		}
	}
	remote, err := b.mgr.ListRemote(ctx, "r1")
	if err != nil || slices.ContainsFunc(remote, func(r replicate.RemoteSnapshot) bool { return r.State != replicate.StateCopying }) {
		t.Fatalf("after the failed sync the region lists %+v (%v), want s1 copying", remote, err)
	}
	packs0 := len(objectsOn(t, dirs, "packs"))
	if packs0 == 0 {
		t.Fatal("the failed sync wrote no pack")
	}
	a.eachFault(func(f *store.Faults) { f.FailMatching(nil) })
	st, err := a.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil || st.Snapshots != 1 {
		t.Fatalf("sync after the store came back: %+v %v", st, err)
	}
	// The first sync's indexed packs (each 4 MiB: 64 blocks) are reused,
	// not sent again (a pack whose index it never put is garbage).
	if st.BlocksRead != 256-64*int64(len(idx)) {
		t.Fatalf("the second sync read %d blocks after %d packs were indexed: the first sync's packs were not reused", st.BlocksRead, len(idx))
	}
	assertIndexesAtHomes(t, dirs)
	if rep, err := b.mgr.Check(ctx, "r1", true, nil); err != nil || !rep.OK() {
		t.Fatalf("check: %+v %v", rep, err)
	}
	if err := restoreEq(t, b.host, "", "s1", "v", readSnapshot(t, a.host, "s1", "v")); err != nil {
		t.Fatal(err)
	}
}

// TestRegionV4S3: the same over six S3 stores (versitygw): indexes on
// their homes; with any two stores away (three pairs covering all six)
// another host restores s2 eagerly and lazily, check --read-data finds
// nothing lost and repair runs; its prune of s1 (every store back) keeps
// the deltas' bases, and s2 restores byte for byte after.
func TestRegionV4S3(t *testing.T) {
	endpoint, access, secret := s3test.Start(t)
	ctx := context.Background()
	var faults []*store.Faults
	for range testK + testM {
		faults = append(faults, store.NewFaults())
	}
	open := func(wrap bool) func(ctx context.Context, i int, u string, o store.Options) (store.Store, error) {
		return func(ctx context.Context, i int, u string, o store.Options) (store.Store, error) {
			o.AccessKey, o.SecretKey = access, secret
			s, err := store.Open(ctx, u, o)
			if err != nil {
				return nil, err
			}
			wo := store.WrapOptions{Retry: store.DefaultRetry()}
			if wrap {
				wo = store.WrapOptions{Faults: faults[i]}
			}
			return store.Wrap(s, wo), nil
		}
	}
	var urls []string
	for i := range testK + testM {
		urls = append(urls, fmt.Sprintf("s3://bucket%d/v4/st%d", i%3, i))
	}
	cfg := replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: keyFile(t, 7),
		S3: replicate.S3Options{Endpoint: endpoint, PathStyle: true, Insecure: true}}
	a := newHost(t, replicate.Options{PackSize: 1 << 20, OpenStore: open(false)})
	deltaScenario(t, a, func() {
		if _, err := a.mgr.AddRegion(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	})
	if st, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil || st.Deltas != 51 {
		t.Fatalf("sync: %+v %v", st, err)
	}
	want := readSnapshot(t, a, "s2", "vol1")
	// Where the indexes are, as the stores list them.
	for i, u := range urls {
		s, err := open(false)(ctx, i, u, store.Options{Endpoint: endpoint, PathStyle: true, Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = s.List(ctx, "index/", func(name string, _ int64) error {
			n++
			if !slices.Contains(replicate.IndexHomes(testK, testM, strings.TrimPrefix(name, "index/")), i) {
				return fmt.Errorf("%s on store %d, not one of its homes", name, i)
			}
			return nil
		})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("store %d holds %d indexes", i, n)
	}
	b := newHost(t, replicate.Options{OpenStore: open(true)})
	if _, err := b.mgr.AddRegion(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for _, away := range [][2]int{{0, 1}, {2, 3}, {4, 5}} {
		faults[away[0]].SetDown(true)
		faults[away[1]].SetDown(true)
		to := fmt.Sprintf("v-%d-%d", away[0], away[1])
		if _, err := b.mgr.Restore(ctx, "r1", "s2", "vol1", to, nil); err != nil {
			t.Fatalf("stores %v away: restore: %v", away, err)
		}
		if !bytes.Equal(readDisk(t, b, to), want) {
			t.Fatalf("stores %v away: restored s2 differs", away)
		}
		if got, err := readRemoteSnap(t, b, "s2"); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("stores %v away: lazy read differs (%v)", away, err)
		}
		rep, err := b.mgr.Check(ctx, "r1", true, nil)
		if err != nil || len(rep.Lost) > 0 || rep.Verdict != "unavailable" || rep.DeltasChecked != 51 {
			t.Fatalf("stores %v away: check: %+v %v", away, rep, err)
		}
		if _, err := b.mgr.Repair(ctx, "r1", nil); err != nil {
			t.Fatalf("stores %v away: repair: %v", away, err)
		}
		faults[away[0]].SetDown(false)
		faults[away[1]].SetDown(false)
	}
	if _, err := b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.mgr.Restore(ctx, "r1", "s2", "vol1", "v-pruned", nil); err != nil || !bytes.Equal(readDisk(t, b, "v-pruned"), want) {
		t.Fatalf("restore after prune: %v", err)
	}
	if rep, err := b.mgr.Check(ctx, "r1", true, nil); err != nil || !rep.OK() || rep.DeltasChecked != 51 {
		t.Fatalf("check after prune: %+v %v", rep, err)
	}
}

// TestRegionV4LazyOpenHomesAway: with the homes of a pack's index away
// (fewer than k stores), a lazy disk still opens (as with every index on
// every store: a lazily restored disk serves what is local and waits for
// the stores); a block in that pack is unavailable (never zeros, never
// "corrupt"), as is an eager restore (exit 11, not 12); once the stores
// are back the disk loads the indexes again and reads byte for byte.
// (Before, the open failed with ErrCorrupt: "chunk in no pack".)
func TestRegionV4LazyOpenHomesAway(t *testing.T) {
	ctx := context.Background()
	b, d, homes, want := lazyDiskHomesAway(t)
	buf := bytes.Repeat([]byte{1}, bs)
	if err := d.ReadBlock(ctx, 10, buf); !errors.Is(err, replicate.ErrUnavailable) || errors.Is(err, replicate.ErrCorrupt) {
		t.Fatalf("block 10 with its index's homes away: %v", err)
	}
	if !bytes.Equal(buf, make([]byte, bs)) {
		t.Fatal("a failed read left bytes in the buffer")
	}
	if _, err := b.mgr.Restore(ctx, "r1", "s2", "vol1", "v", nil); !errors.Is(err, replicate.ErrUnavailable) || errors.Is(err, replicate.ErrCorrupt) {
		t.Fatalf("restore with the homes away: %v", err)
	}
	storesBack(b, homes)
	// This read opens the stores again and loads the indexes (reads that
	// run meanwhile go on with what the disk had).
	if err := d.ReadBlock(ctx, 10, buf); err != nil || !bytes.Equal(buf, want[10*bs:11*bs]) {
		t.Fatalf("block 10 with the stores back: %v", err)
	}
	got := make([]byte, d.Size())
	if _, err := d.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("lazy read with the stores back: %v", err)
	}
}
