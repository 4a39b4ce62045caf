package replicate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
)

// TestLostIndexRebuildNotWrittenKeepsPack: repair rebuilds a deleted
// index from its pack's own table, but every home refuses the write (a
// full disk, a bucket quota). The pack, which s2 needs, is still
// unindexed when repair's garbage pass runs: it must be kept (the
// rebuild is reported failed), never deleted as an interrupted sync's
// leftover. A later repair, with the stores writable again, rebuilds the
// index and s2 restores byte for byte.
func TestLostIndexRebuildNotWrittenKeepsPack(t *testing.T) {
	ctx := context.Background()
	a, b, dirs, want2 := v4Host(t)
	pack := loseIndex(t, a, dirs, false)
	packs0 := objectsOn(t, dirs, "packs")
	refuse := func(m store.Method, name string) error {
		if m == store.MethodPut && name == "index/"+pack {
			return errors.New("injected: no space left on device")
		}
		return nil
	}
	b.eachFault(func(f *store.Faults) { f.FailMatching(refuse) })
	rr, err := b.mgr.Repair(ctx, "r1", nil)
	if err != nil {
		t.Fatalf("repair with every home refusing the rebuilt index: %v", err)
	}
	if p := objectsOn(t, dirs, "packs"); !mapsEqual(p, packs0) || rr.OrphansDeleted > 0 {
		t.Fatalf("repair deleted pack %s (s2 needs it) after its rebuilt index could not be written: %+v", pack, rr)
	}
	if slices.Contains(rr.IndexesRebuilt, pack) || !slices.ContainsFunc(rr.Failed, func(p replicate.Problem) bool { return p.Object == "index/"+pack }) {
		t.Fatalf("repair with the rebuilt index of pack %s not written: want it failed, not rebuilt: %+v", pack, rr)
	}
	b.eachFault(func(f *store.Faults) { f.FailMatching(nil) })
	rr, err = b.mgr.Repair(ctx, "r1", nil)
	if err != nil || !slices.Contains(rr.IndexesRebuilt, pack) || len(rr.Failed) > 0 {
		t.Fatalf("repair with the stores writable again: %+v %v", rr, err)
	}
	if err := restoreEq(t, b.host, "", "s2", "vol1", want2); err != nil {
		t.Fatalf("restore of s2 after repair: %v", err)
	}
	mustClean(t, b.host)
}

// TestLostIndexPruneTableUnreadableKeepsBases: s2's deltas are in a pack
// whose index is lost; prune drops s1, whose chunks the deltas are based
// on. The pack's own table names those bases, but its shards cannot be
// read while prune runs (more than m stores fail the reads: throttling,
// timeouts). Prune must not delete what it cannot know is unneeded: it
// fails unavailable (exit 11, run it again) before deleting any pack. Once
// the stores answer again, prune, repair and a restore of s2 byte for byte
// work. (On main prune went on and deleted the bases: s2 was lost.)
func TestLostIndexPruneTableUnreadableKeepsBases(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		name := "deleted"
		if corrupt {
			name = "corrupt"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			a, b, dirs, want2 := v4Host(t)
			pack := loseIndex(t, a, dirs, corrupt)
			packs0 := objectsOn(t, dirs, "packs")
			for i := range testM + 1 {
				b.faults[i].FailMatching(func(m store.Method, name string) error {
					if m == store.MethodGet && name == "packs/"+pack {
						return errors.New("injected: 503 SlowDown")
					}
					return nil
				})
			}
			_, err := b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true})
			if !errors.Is(err, replicate.ErrUnavailable) {
				t.Errorf("prune with the table of pack %s (index lost) unreadable: %v, want unavailable", pack, err)
			}
			if p := objectsOn(t, dirs, "packs"); !mapsEqual(p, packs0) {
				t.Fatalf("prune deleted packs while the table of pack %s (index lost, s2 needs it) could not be read", pack)
			}
			b.eachFault(func(f *store.Faults) { f.FailMatching(nil) })
			if _, err := b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true}); err != nil {
				t.Fatalf("prune again with the stores answering: %v", err)
			}
			if _, err := b.mgr.Repair(ctx, "r1", nil); err != nil {
				t.Fatalf("repair: %v", err)
			}
			if err := restoreEq(t, b.host, "", "s2", "vol1", want2); err != nil {
				t.Fatalf("restore of s2 after prune (table of pack %s unreadable at first) and repair: %v", pack, err)
			}
			mustClean(t, b.host)
		})
	}
}

// TestLostIndexNewerPackFailsClosed: the index of a pack of s2's deltas
// is lost and the pack is of a newer version than this snapfs reads (a
// newer host wrote it). Its table cannot tell this prune the bases of its
// deltas, so prune fails (format.ErrUnsupportedVersion, exit 8) and deletes
// no pack, as with an index of a newer version
// (TestOldDecoderFailsClosed); on main it went on and deleted the bases.
func TestLostIndexNewerPackFailsClosed(t *testing.T) {
	ctx := context.Background()
	a, b, dirs, _ := v4Host(t)
	pack := loseIndex(t, a, dirs, true)
	if err := b.mgr.SetPackVersion(ctx, "r1", pack, format.PackVersion+1); err != nil {
		t.Fatal(err)
	}
	packs0 := objectsOn(t, dirs, "packs")
	_, err := b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true})
	if !errors.Is(err, format.ErrUnsupportedVersion) {
		t.Errorf("prune with the index of newer pack %s lost: %v, want unsupported version", pack, err)
	}
	if p := objectsOn(t, dirs, "packs"); !mapsEqual(p, packs0) {
		t.Fatalf("prune deleted packs while the lost index's pack %s is of a newer version", pack)
	}
	if rr, err := b.mgr.Repair(ctx, "r1", nil); err != nil || rr.OrphansDeleted+rr.DeadPacksDeleted > 0 || len(rr.IndexesRebuilt) > 0 {
		t.Fatalf("repair with the index of newer pack %s lost: %+v %v", pack, rr, err)
	}
	if p := objectsOn(t, dirs, "packs"); !mapsEqual(p, packs0) {
		t.Fatalf("repair deleted packs while the lost index's pack %s is of a newer version", pack)
	}
}

// TestLostIndexRepairOnCachingHost: every copy of an index is corrupt,
// and repair runs on the host that wrote it (its index cache still holds
// a good copy). Repair must put the index back on the stores (from the
// cache or the pack's table) so that every other host reads s2 again.
func TestLostIndexRepairOnCachingHost(t *testing.T) {
	ctx := context.Background()
	a, b, dirs, want2 := v4Host(t)
	pack := loseIndex(t, a, dirs, true)
	rr, err := a.mgr.Repair(ctx, "r1", nil)
	if err != nil || len(rr.Failed) > 0 {
		t.Fatalf("repair on the host caching the index of pack %s: %+v %v", pack, rr, err)
	}
	if err := restoreEq(t, b.host, "", "s2", "vol1", want2); err != nil {
		t.Fatalf("restore of s2 on another host after repair on the caching host: %v", err)
	}
	mustClean(t, b.host)
}

// TestLostIndexFixturesRebuilt: every pack index of each region fixture
// (pack formats 1 to 3, index formats up to 4) deleted from every store;
// repair rebuilds each from its pack's own table, where a sync of that
// version put it (every store before index version 4, its homes after),
// and every snapshot restores byte for byte, check clean: a rebuilt index
// is the one the pack's writer made (entries, offsets, delta bases, pack
// version, sealed size).
func TestLostIndexFixturesRebuilt(t *testing.T) {
	for _, dir := range []string{fixtureDir, fixtureDirV2, fixtureDirV3, fixtureDirV4} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			ctx := context.Background()
			b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			var exp fixtureExpect
			if err := json.Unmarshal(b, &exp); err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(tmpDir(t), "fixture")
			copyTree(t, dir, root)
			if err := os.Chmod(filepath.Join(root, "key"), 0o600); err != nil {
				t.Fatal(err)
			}
			var urls, dirs []string
			for i := range exp.K + exp.M {
				d := filepath.Join(root, "stores", "s"+string(rune('0'+i)))
				dirs, urls = append(dirs, d), append(urls, "file://"+d)
			}
			before := objectsOn(t, dirs, "index")
			if len(before) == 0 {
				t.Fatal("fixture has no index")
			}
			for _, d := range dirs {
				if err := os.RemoveAll(filepath.Join(d, "index")); err != nil {
					t.Fatal(err)
				}
			}
			h := newHost(t, replicate.Options{})
			if _, err := h.mgr.AddRegion(ctx, replicate.RegionConfig{Name: exp.Region, K: exp.K, M: exp.M, Stores: urls, KeyFile: filepath.Join(root, "key")}); err != nil {
				t.Fatal(err)
			}
			rr, err := h.mgr.Repair(ctx, exp.Region, nil)
			if err != nil || len(rr.Failed) > 0 || rr.OrphansDeleted > 0 || len(rr.IndexesRebuilt) != len(before) {
				t.Fatalf("repair with every index deleted: %+v %v (want %d rebuilt)", rr, err, len(before))
			}
			// Where today's sync writes the index of such a pack: every
			// store for pack versions 1 and 2 (index versions before 4),
			// its m+1 homes for version 3 (index version 4, also for
			// region-v3, whose version 3 indexes were on every store).
			want := before
			if dir == fixtureDirV3 || dir == fixtureDirV4 {
				want = map[string][]int{}
				for name := range before {
					want[name] = slices.Sorted(slices.Values(replicate.IndexHomes(exp.K, exp.M, name)))
				}
			}
			if after := objectsOn(t, dirs, "index"); !mapsEqual(after, want) {
				t.Fatalf("rebuilt indexes on %v, want %v (the fixture's were on %v)", after, want, before)
			}
			for _, snap := range slices.Sorted(mapKeys(exp.Disks)) {
				for _, disk := range slices.Sorted(mapKeys(exp.Disks[snap])) {
					to := "rb-" + snap + "-" + disk
					if _, err := h.mgr.Restore(ctx, exp.Region, snap, disk, to, nil); err != nil {
						t.Fatalf("restore %s/%s after the rebuild: %v", snap, disk, err)
					}
					sum := sha256.Sum256(readDisk(t, h, to))
					if got := hex.EncodeToString(sum[:]); got != exp.Disks[snap][disk] {
						t.Fatalf("restored %s/%s after the rebuild: sha256 %s, want %s", snap, disk, got, exp.Disks[snap][disk])
					}
				}
			}
			if rep, err := h.mgr.Check(ctx, exp.Region, true, nil); err != nil || !rep.OK() || len(rep.Unindexed) > 0 {
				t.Fatalf("check after the rebuild: %+v %v", rep, err)
			}
		})
	}
}

// TestLostIndexBlockSourceSaysSo: a local repair fetching from the region
// a block whose chunk is in a pack whose index is lost gets an error
// naming the pack and region repair (the chunk is there, repair makes it
// readable), not "the region has no such block"; a block of another pack
// still fetches.
func TestLostIndexBlockSourceSaysSo(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		name := "deleted"
		if corrupt {
			name = "corrupt"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			a, b, dirs, want2 := v4Host(t)
			pack := loseIndex(t, a, dirs, corrupt)
			src, done, err := b.mgr.BlockSource(ctx, "r1")
			if err != nil {
				t.Fatalf("block source with the index of pack %s lost: %v", pack, err)
			}
			defer done()
			dst := make([]byte, bs)
			found, err := src.FetchBlock(ctx, sha256.Sum256(want2[10*bs:11*bs]), dst)
			if found || err == nil || !strings.Contains(err.Error(), pack) || !strings.Contains(err.Error(), "region repair") {
				t.Fatalf("fetch of s2's block 10 (in pack %s, index lost): found %v, %v; want an error naming the pack and region repair", pack, found, err)
			}
			if found, err := src.FetchBlock(ctx, sha256.Sum256(want2[150*bs:151*bs]), dst); err != nil || !found || !bytes.Equal(dst, want2[150*bs:151*bs]) {
				t.Fatalf("block 150: %v %v", found, err)
			}
		})
	}
}

// TestLostIndexNotRebuiltIsReported: repair finds a lost index its
// pack's table rebuilds, repairs a store's config, checks again (the
// store is usable again), and this time the pack's table does not read
// (stores fail the reads). The index is not rebuilt: repair must say so
// (in Failed: exit 12, run it again), not report success with the index
// still lost. The next repair rebuilds it and s2 restores.
func TestLostIndexNotRebuiltIsReported(t *testing.T) {
	ctx := context.Background()
	a, b, dirs, want2 := v4Host(t)
	pack := loseIndex(t, a, dirs, false)
	// A store that is no home of the index (while a home is unusable the
	// index may be there: not rebuildable), and m+1 others to fail reads.
	homes := replicate.IndexHomes(testK, testM, pack)
	cfg := -1
	var failing []int
	for i := range testK + testM {
		if !slices.Contains(homes, i) && cfg < 0 {
			cfg = i
		} else if len(failing) <= testM {
			failing = append(failing, i)
		}
	}
	if err := os.Remove(filepath.Join(dirs[cfg], "config")); err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool // set once repair re-made store cfg's config
	for i, f := range b.faults {
		f.FailMatching(func(m store.Method, name string) error {
			if m == store.MethodPut && name == "config" {
				armed.Store(true)
			}
			if slices.Contains(failing, i) && armed.Load() && m == store.MethodGet && name == "packs/"+pack {
				return errors.New("injected: 503 SlowDown")
			}
			return nil
		})
	}
	rr, err := b.mgr.Repair(ctx, "r1", nil)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	if !armed.Load() {
		t.Fatalf("repair did not re-make store %d's config: %+v", cfg, rr)
	}
	rebuilt := slices.Contains(rr.IndexesRebuilt, pack)
	failed := slices.ContainsFunc(rr.Failed, func(p replicate.Problem) bool { return p.Object == "index/"+pack })
	if rebuilt == failed {
		t.Fatalf("repair with the table of pack %s unreadable at its second check: rebuilt %v, failed %v (want one): %+v", pack, rebuilt, failed, rr)
	}
	b.eachFault(func(f *store.Faults) { f.FailMatching(nil) })
	if rr, err := b.mgr.Repair(ctx, "r1", nil); err != nil || len(rr.Failed) > 0 {
		t.Fatalf("repair again: %+v %v", rr, err)
	}
	if err := restoreEq(t, b.host, "", "s2", "vol1", want2); err != nil {
		t.Fatalf("restore of s2 after repair: %v", err)
	}
	mustClean(t, b.host)
}
