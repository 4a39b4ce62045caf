package replicate_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
)

// TestRegion14IndexHomeAwayUnavailable: the index of a pack s2 needs is
// deleted (or corrupt) on every usable home while its last home is away:
// a good copy may be there, so every reader says unavailable (exit 11,
// naming the away store), never lost/corrupt (exit 6/12), and repair
// deletes nothing. With the store back, s2 restores and repair leaves the
// region clean.
func TestRegion14IndexHomeAwayUnavailable(t *testing.T) {
	// staleToo: the away home's copy is corrupt as well: it comes back
	// stale after repair rebuilt the index on the others.
	for _, tc := range []struct {
		name              string
		corrupt, staleToo bool
	}{{"deleted", false, false}, {"corrupt", true, false}, {"corrupt-stale-home", true, true}} {
		corrupt := tc.corrupt
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			a, b, dirs, want := v4Host(t)
			pack, _, err := a.mgr.PackOfBlock(ctx, "r1", "s2", "vol1", 10)
			if err != nil {
				t.Fatal(err)
			}
			homes := replicate.IndexHomes(testK, testM, pack)
			away := homes[len(homes)-1]
			bad := homes[:len(homes)-1]
			if tc.staleToo {
				bad = homes
			}
			for _, i := range bad {
				p := filepath.Join(dirs[i], "index", pack)
				if corrupt {
					raw, err := os.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					raw[len(raw)/2] ^= 0x40
					err = os.WriteFile(p, raw, 0o644)
				} else {
					err = os.Remove(p)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			b.faults[away].SetDown(true)
			packs0 := objectsOn(t, dirs, "packs")
			unavail := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, replicate.ErrUnavailable) || errors.Is(err, replicate.ErrCorrupt) {
					t.Fatalf("%s with index %s bad on its usable homes and store %d (a home) away: %v (want unavailable)", what, pack, away, err)
				}
			}
			_, err = b.mgr.Restore(ctx, "r1", "s2", "vol1", "v", nil)
			unavail("restore", err)
			if !strings.Contains(err.Error(), fmt.Sprintf("store %d (", away)) {
				t.Fatalf("restore's error does not name store %d, the home away: %v", away, err)
			}
			d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s2", "vol1")
			if err == nil {
				buf := make([]byte, d.Size())
				_, err = d.ReadAt(buf, 0)
				d.Close()
			}
			unavail("lazy read", err)
			rep, err := b.mgr.Check(ctx, "r1", false, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Deleted: unavailable (a good copy may be away); corrupt:
			// degraded as well (repair rebuilds the index from the pack
			// over the corrupt copies). Never lost.
			if (rep.Verdict != "unavailable" && !(corrupt && rep.Verdict == "degraded")) || len(rep.Lost) > 0 {
				t.Fatalf("check with index %s bad on its usable homes and store %d away: verdict %q lost %v (want unavailable)", pack, away, rep.Verdict, rep.Lost)
			}
			_, err = b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 10, AllHosts: true})
			unavail("prune", err)
			rrep, err := b.mgr.Repair(ctx, "r1", nil)
			if err != nil && !errors.Is(err, replicate.ErrUnavailable) {
				t.Fatalf("repair with store %d away: %v", away, err)
			}
			t.Logf("repair with store %d away: err %v, failed %+v, rebuilt %v, orphans %d", away, err, rrep.Failed, rrep.IndexesRebuilt, rrep.OrphansDeleted)
			if p := objectsOn(t, dirs, "packs"); !mapsEqual(p, packs0) {
				t.Fatalf("with index %s bad on its usable homes and store %d away, shards were deleted", pack, away)
			}
			b.faults[away].SetDown(false)
			if _, err := b.mgr.Repair(ctx, "r1", nil); err != nil {
				t.Fatal(err)
			}
			if err := restoreEq(t, b.host, "", "s2", "vol1", want); err != nil {
				t.Fatal(err)
			}
			mustClean(t, b.host)
		})
	}
}

// treeOf is every file under the store directories with its content.
func treeOf(t *testing.T, dirs []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			out[p] = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestRegion14PruneDryRun: prune --dry-run says what prune then does
// (snapshots, rewrites, packs, bytes per store) and changes nothing on
// any store; the real prune's stats are the same.
func TestRegion14PruneDryRun(t *testing.T) {
	ctx := context.Background()
	a, dirs, _, _ := deltaHost(t)
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	// A snapshot of its own whose packs nothing else needs: its chunks
	// are new (s3), then dropped by keeping the newest 1 per disk set.
	writeBlocks(t, a, "vol1", 0x77, span(100, 200))
	snapshot(t, a, "s3", "vol1")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 0x78, span(100, 200))
	snapshot(t, a, "s4", "vol1")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	before := treeOf(t, dirs)
	o := replicate.PruneOptions{KeepLast: 1}
	o.DryRun = true
	dry, err := a.mgr.Prune(ctx, "r1", o)
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || len(dry.Deleted) == 0 || dry.PacksDeleted == 0 || dry.BytesFreed == 0 || len(dry.BytesPerStore) != testK+testM {
		t.Fatalf("dry run: %+v", dry)
	}
	t.Logf("dry run: %+v", dry)
	after := treeOf(t, dirs)
	if !mapsEqual2(before, after) {
		t.Fatalf("prune --dry-run changed the stores")
	}
	real, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1})
	if err != nil {
		t.Fatal(err)
	}
	real.DryRun = true
	if fmt.Sprintf("%+v", real) != fmt.Sprintf("%+v", dry) {
		t.Fatalf("dry run said %+v, prune did %+v", dry, real)
	}
	mustClean(t, a)
}

func mapsEqual2(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRegion14PruneBlockedByOwnRemoteDisk: this host's own region disk
// (a lazy disk, a .files view, a read under regions/) holds the shared
// lock: prune's error names the snapshot disk it reads and how to let it
// go, and does not send the engineer to region unlock (which keeps a live
// lock). On main it said "run `snapfs region unlock r1` on this host".
func TestRegion14PruneBlockedByOwnRemoteDisk(t *testing.T) {
	ctx := context.Background()
	a, _, _, _ := v4Host(t)
	d, err := a.mgr.OpenRemoteDisk(ctx, "r1", "s2", "vol1")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1})
	if !errors.Is(err, replicate.ErrLocked) {
		t.Fatalf("prune with this host's region disk open: %v (want locked)", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "s2/vol1") || !strings.Contains(msg, "restore --lazy") || strings.Contains(msg, "run `snapfs region unlock") {
		t.Fatalf("prune blocked by this host's region disk: %s", msg)
	}
}

// TestRegion14RestoreOtherHostNamed: a snapshot name the region holds
// only under another host, asked for under a host that has none (here
// this host's own name): the error says whose it is and to choose it
// with --host, for restore and a lazy open alike. On main: "snapshot "s1"
// of host "b" in region "r1"" and nothing more.
func TestRegion14RestoreOtherHostNamed(t *testing.T) {
	ctx := context.Background()
	a, b, _, _ := v4Host(t)
	want := "--host " + a.mgr.Host().Name
	_, err := b.mgr.RestoreFrom(ctx, "r1", "b", "s1", "vol1", "x", nil)
	if !errors.Is(err, replicate.ErrNotFound) || !strings.Contains(err.Error(), want) {
		t.Fatalf("restore of another host's snapshot under this host's name: %v", err)
	}
	_, err = b.mgr.OpenRemoteDiskOf(ctx, "r1", "b", "s1", "vol1")
	if !errors.Is(err, replicate.ErrNotFound) || !strings.Contains(err.Error(), want) {
		t.Fatalf("lazy open of another host's snapshot under this host's name: %v", err)
	}
}

// TestRegion14StaleStoreSpaceReclaimed: a store put back from a backup
// taken before a prune (stale: it holds the pruned snapshots' manifests,
// the shards of the packs prune deleted, and their indexes where it is a
// home) is reported by check, and repair removes every leftover: after
// it the store holds exactly what the others hold (the same packs, the
// indexes it is a home of, the same manifests), no space leaks, no
// pruned snapshot comes back, and the kept one restores.
func TestRegion14StaleStoreSpaceReclaimed(t *testing.T) {
	ctx := context.Background()
	a, dirs, _, _ := deltaHost(t)
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 0x77, span(100, 200))
	snapshot(t, a, "s3", "vol1")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 0x78, span(100, 200))
	snapshot(t, a, "s4", "vol1")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	const x = 1
	backup := filepath.Join(t.TempDir(), "backup")
	copyTree(t, dirs[x], backup)
	st, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1})
	if err != nil || st.PacksDeleted == 0 {
		t.Fatalf("prune: %+v %v", st, err)
	}
	// The store comes back from its backup.
	if err := os.RemoveAll(dirs[x]); err != nil {
		t.Fatal(err)
	}
	copyTree(t, backup, dirs[x])
	rep, err := a.mgr.Check(ctx, "r1", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatalf("check of a region with a stale store found nothing: %+v", rep)
	}
	if _, err := a.mgr.Repair(ctx, "r1", nil); err != nil {
		t.Fatal(err)
	}
	ref := 0
	if ref == x {
		ref = 2
	}
	// (Tombstones, pruned/, are not put back on the stale store: the
	// other stores hold them, and each only lives while its host still
	// has the snapshot. Left as it is: a few bytes, never data.)
	for _, sub := range []string{"packs", "snapshots", "copying", "holds"} {
		on := objectsOn(t, dirs, sub)
		for name, stores := range on {
			if len(stores) != testK+testM {
				t.Errorf("after repair, %s/%s is on stores %v only", sub, name, stores)
			}
		}
	}
	for name, stores := range objectsOn(t, dirs, "index") {
		homes := slices.Sorted(slices.Values(replicate.IndexHomes(testK, testM, name)))
		if !slices.Equal(stores, homes) {
			t.Errorf("after repair, index/%s is on stores %v, its homes are %v", name, stores, homes)
		}
	}
	var live, stale int64
	for _, d := range []int{ref, x} {
		var n int64
		_ = filepath.WalkDir(filepath.Join(dirs[d], "packs"), func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				if fi, err := e.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		if d == x {
			stale = n
		} else {
			live = n
		}
	}
	if stale != live {
		t.Errorf("after repair the stale store holds %d bytes of packs, store %d %d", stale, ref, live)
	}
	list, err := a.mgr.ListRemote(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "s4" {
		t.Errorf("after repair the region lists %+v, want s4 only", list)
	}
	if err := restoreEq(t, a, "", "s4", "vol1", readSnapshot(t, a, "s4", "vol1")); err != nil {
		t.Fatal(err)
	}
	mustClean(t, a)
}

// TestRegion14PruneStoreAwayRefuses: prune with a store away changes
// nothing and fails unavailable (exit 11), naming the store and saying
// what to do (bring it back, or replace it with repair --new-store).
// Prune deletes a pack's shards on every store and its index on every
// home: pruning "what is provably safe" with a store away would leave that
// store's shards and copies to be judged later by what the others say
// (as a stale store), and its manifests unrewritten; refusing costs one
// prune, never space for good. On main the error named the store only.
func TestRegion14PruneStoreAwayRefuses(t *testing.T) {
	ctx := context.Background()
	_, b, dirs, _ := v4Host(t)
	before := treeOf(t, dirs)
	b.faults[3].SetDown(true)
	_, err := b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true})
	if !errors.Is(err, replicate.ErrUnavailable) || !strings.Contains(err.Error(), "store 3") ||
		!strings.Contains(err.Error(), "nothing was changed") || !strings.Contains(err.Error(), "--new-store") {
		t.Fatalf("prune with store 3 away: %v", err)
	}
	b.faults[3].SetDown(false)
	if !mapsEqual2(before, treeOf(t, dirs)) {
		t.Fatal("prune with a store away changed the stores")
	}
}

// TestRegion14PackTableReadsK: the own table of a pack whose index is
// lost is read as restore reads a pack: its k data shards, parity only
// for those that fail (packTable fetched every store's shard before: k+m
// whole shards for k needed). With a data shard's store failing reads the
// table still reads (parity stands in); with m+1 failing it is
// unavailable, not lost (prune's safety depends on that split).
func TestRegion14PackTableReadsK(t *testing.T) {
	ctx := context.Background()
	a, b, dirs, _ := v4Host(t)
	pack := loseIndex(t, a, dirs, false)
	var gets atomic.Int64
	count := func(m store.Method, name string) error {
		if m == store.MethodGet && name == "packs/"+pack {
			gets.Add(1)
		}
		return nil
	}
	b.eachFault(func(f *store.Faults) { f.FailMatching(count) })
	rep, err := b.mgr.Check(ctx, "r1", false, nil)
	if err != nil || !slices.Contains(rep.RebuildableIndexes, pack) {
		t.Fatalf("check: %+v %v", rep, err)
	}
	if n := gets.Load(); n != testK {
		t.Fatalf("the table of pack %s read %d shards, want %d (k)", pack, n, testK)
	}
	t.Logf("shards read for a lost index's table: %d of %d stores", gets.Load(), testK+testM)
	// Reads failing on store 0 (a data shard): parity stands in.
	b.faults[0].FailMatching(func(m store.Method, name string) error {
		if m == store.MethodGet && name == "packs/"+pack {
			return errors.New("timeout")
		}
		return nil
	})
	if rep, err := b.mgr.Check(ctx, "r1", false, nil); err != nil || !slices.Contains(rep.RebuildableIndexes, pack) {
		t.Fatalf("check with store 0 failing reads of pack %s: %+v %v", pack, rep, err)
	}
	// Reads failing on m+1 stores: the table cannot be read because
	// stores failed reads: prune deletes nothing and says unavailable.
	for i := range testM + 1 {
		b.faults[i].FailMatching(func(m store.Method, name string) error {
			if m == store.MethodGet && name == "packs/"+pack {
				return errors.New("timeout")
			}
			return nil
		})
	}
	packs0 := objectsOn(t, dirs, "packs")
	_, err = b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true})
	if !errors.Is(err, replicate.ErrUnavailable) {
		t.Fatalf("prune with the table of pack %s unreadable (stores failing reads): %v (want unavailable)", pack, err)
	}
	if !mapsEqual(objectsOn(t, dirs, "packs"), packs0) {
		t.Fatal("prune deleted packs while a table could not be read")
	}
}

// TestRegion14StaleTombstoneKeepsRecopy: a store put back from a backup
// taken after a prune removed s2 (it holds s2's tombstone, not its
// manifest) while s2 was copied to the region again since (an explicit
// snapshot copy: the tombstone removed, the manifest put on every store).
// The stale store's tombstone must not make the region take the new copy
// for a pruned leftover: s2 stays listed and restorable, and repair and
// prune keep it.
func TestRegion14StaleTombstoneKeepsRecopy(t *testing.T) {
	ctx := context.Background()
	a, _, dirs, want := v4Host(t)
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{Only: []string{"s2"}}); err != nil {
		t.Fatal(err)
	}
	const x = 2
	backup := filepath.Join(t.TempDir(), "backup")
	copyTree(t, dirs[x], backup)
	if _, err := a.mgr.CopySnapshot(ctx, "r1", "s2", nil); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dirs[x]); err != nil {
		t.Fatal(err)
	}
	copyTree(t, backup, dirs[x])
	listed := func(what string) {
		t.Helper()
		list, err := a.mgr.ListRemote(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(list, func(s replicate.RemoteSnapshot) bool { return s.Name == "s2" }) {
			t.Fatalf("%s: s2, copied again after its prune, is not listed: %+v", what, list)
		}
	}
	listed("with the stale store back")
	if _, err := a.mgr.Repair(ctx, "r1", nil); err != nil {
		t.Fatal(err)
	}
	listed("after repair")
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 10}); err != nil {
		t.Fatal(err)
	}
	listed("after prune")
	if err := restoreEq(t, a, "", "s2", "vol1", want); err != nil {
		t.Fatal(err)
	}
	mustClean(t, a)
}
