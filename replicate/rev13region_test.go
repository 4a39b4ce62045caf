package replicate_test

import (
	"context"
	"errors"
	"slices"
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
