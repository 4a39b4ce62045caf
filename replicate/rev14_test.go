package replicate_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// Review of region14's tombstone format 2 (rev14region): a tombstone's
// copies differ once a store comes back from a backup (a store keeps the
// tombstone of an earlier prune of the same snapshot, with a lower
// sequence). Each reader must judge by the newest copy, not by the first
// store that answers.

// putBack replaces store directory dir with the backup taken earlier.
func putBack(t *testing.T, backup, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	copyTree(t, backup, dir)
}

func backupOf(t *testing.T, dir string) string {
	t.Helper()
	b := filepath.Join(t.TempDir(), "backup")
	copyTree(t, dir, b)
	return b
}

func s2Listed(t *testing.T, a *host) bool {
	t.Helper()
	list, err := a.mgr.ListRemote(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(list, func(s replicate.RemoteSnapshot) bool { return s.Name == "s2" })
}

// TestRev14RecopyAboveEveryTombstoneCopy: s2 pruned, copied again, pruned
// again, so the region's tombstone records the second manifest's sequence;
// store 0 comes back from a backup taken after the first prune (its copy
// of the tombstone the first one's). s2 is copied a third time: its
// manifest must be above every tombstone copy, so a store put back later
// from a backup taken after the second prune does not make it a pruned
// leftover (which repair and prune delete from every store). On main the
// copy read store 0's stale tombstone, wrote the second manifest's
// sequence again, and s2 was hidden once store 2 came back.
func TestRev14RecopyAboveEveryTombstoneCopy(t *testing.T) {
	ctx := context.Background()
	a, _, dirs, want := v4Host(t)
	only := replicate.PruneOptions{Only: []string{"s2"}}
	if _, err := a.mgr.Prune(ctx, "r1", only); err != nil {
		t.Fatal(err)
	}
	b0 := backupOf(t, dirs[0]) // tombstone of the first prune
	if _, err := a.mgr.CopySnapshot(ctx, "r1", "s2", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.mgr.Prune(ctx, "r1", only); err != nil {
		t.Fatal(err)
	}
	b2 := backupOf(t, dirs[2]) // tombstone of the second prune
	putBack(t, b0, dirs[0])
	if _, err := a.mgr.CopySnapshot(ctx, "r1", "s2", nil); err != nil {
		t.Fatal(err)
	}
	if !s2Listed(t, a) {
		t.Fatal("s2 not listed after its copy")
	}
	putBack(t, b2, dirs[2])
	if !s2Listed(t, a) {
		t.Fatal("s2, copied again after its second prune, is not listed once a store comes back holding the second prune's tombstone")
	}
	if _, err := a.mgr.Repair(ctx, "r1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 10}); err != nil {
		t.Fatal(err)
	}
	if !s2Listed(t, a) {
		t.Fatal("s2 not listed after repair and prune")
	}
	if err := restoreEq(t, a, "", "s2", "vol1", want); err != nil {
		t.Fatal(err)
	}
	mustClean(t, a)
}

// TestRev14PrunedStaysPrunedOverStaleTombstone: s2 pruned, copied again,
// pruned again. Store 0 comes back from a backup taken after the first
// prune (the first tombstone), store 1 from one taken before the second
// (the second manifest). That manifest is the one the second prune
// removed: s2 must stay pruned (not listed, and repair must not put the
// manifest back on every store). On main the first store's tombstone was
// read, the second manifest's sequence is above it, and s2 came back to
// life, listed, with the packs the second prune deleted.
func TestRev14PrunedStaysPrunedOverStaleTombstone(t *testing.T) {
	ctx := context.Background()
	a, _, dirs, _ := v4Host(t)
	only := replicate.PruneOptions{Only: []string{"s2"}}
	if _, err := a.mgr.Prune(ctx, "r1", only); err != nil {
		t.Fatal(err)
	}
	b0 := backupOf(t, dirs[0])
	if _, err := a.mgr.CopySnapshot(ctx, "r1", "s2", nil); err != nil {
		t.Fatal(err)
	}
	b1 := backupOf(t, dirs[1])
	if _, err := a.mgr.Prune(ctx, "r1", only); err != nil {
		t.Fatal(err)
	}
	putBack(t, b0, dirs[0])
	putBack(t, b1, dirs[1])
	if s2Listed(t, a) {
		t.Fatal("s2, pruned, is listed again: a store's stale tombstone of an earlier prune made the manifest the last prune removed look newer")
	}
	if _, err := a.mgr.Repair(ctx, "r1", nil); err != nil {
		t.Fatal(err)
	}
	if s2Listed(t, a) {
		t.Fatal("s2, pruned, is listed after repair")
	}
	if on := objectsOn(t, dirs, "snapshots"); len(on) != 0 {
		for name, stores := range on {
			t.Logf("manifest %s on stores %v", name, stores)
		}
	}
	mustClean(t, a)
}

// TestRev14DryRunDamagedRegionChangesNothing: prune --dry-run over a
// region with what the real prune writes besides its plan (an index copy
// missing on one of its homes, which the real prune heals; a stale store's
// manifest of a pruned snapshot, which it deletes)
// changes no byte on any store, and the real prune then does what the
// dry run said.
func TestRev14DryRunDamagedRegionChangesNothing(t *testing.T) {
	ctx := context.Background()
	a, dirs, _, _ := deltaHost(t)
	for i, fill := range []uint64{0x77, 0x78} {
		writeBlocks(t, a, "vol1", fill, span(100, 200))
		snapshot(t, a, fmt.Sprintf("s%d", i+3), "vol1")
		if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	const x = testK + testM - 1
	b := backupOf(t, dirs[x])
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{Only: []string{"s3"}}); err != nil {
		t.Fatal(err)
	}
	putBack(t, b, dirs[x]) // s3's manifest again, on store x only
	idx := objectsOn(t, dirs, "index")
	// The first index (by name) on all its homes: one copy goes.
	var name string
	home := -1
	for _, n := range slices.Sorted(maps.Keys(idx)) {
		if homes := replicate.IndexHomes(testK, testM, n); len(idx[n]) == len(homes) {
			name, home = n, homes[0]
			break
		}
	}
	if home < 0 {
		t.Fatalf("no index on all its homes: %v", idx)
	}
	if err := os.Remove(filepath.Join(dirs[home], "index", name)); err != nil {
		t.Fatal(err)
	}
	before := treeOf(t, dirs)
	o := replicate.PruneOptions{KeepLast: 1, DryRun: true}
	dry, err := a.mgr.Prune(ctx, "r1", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dry run: %+v", dry)
	if after := treeOf(t, dirs); !mapsEqual2(before, after) {
		for p, v := range after {
			if w, ok := before[p]; !ok || w != v {
				t.Errorf("written by the dry run: %s", p)
			}
		}
		for p := range before {
			if _, ok := after[p]; !ok {
				t.Errorf("deleted by the dry run: %s", p)
			}
		}
		t.Fatal("prune --dry-run changed the stores")
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

// TestRev14CopyKeepsLiveManifestBesideStaleTombstone: s2 pruned, copied
// again; a store comes back from a backup taken in between, holding the
// prune's tombstone. s2 is live (its manifest is newer than the
// tombstone) and listed. Copying s2 again must find it in the region and
// leave its manifest alone: on main the copy took the manifest for a
// pruned leftover, deleted it from every store (restores, lazy opens and
// other hosts' listings saw no s2 until the copy finished, and for good
// if the copy was stopped) and shipped s2 again.
func TestRev14CopyKeepsLiveManifestBesideStaleTombstone(t *testing.T) {
	ctx := context.Background()
	a, _, dirs, want := v4Host(t)
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{Only: []string{"s2"}}); err != nil {
		t.Fatal(err)
	}
	const x = 2
	b := backupOf(t, dirs[x])
	if _, err := a.mgr.CopySnapshot(ctx, "r1", "s2", nil); err != nil {
		t.Fatal(err)
	}
	putBack(t, b, dirs[x])
	if !s2Listed(t, a) {
		t.Fatal("s2 not listed")
	}
	mfs, err := os.ReadDir(filepath.Join(dirs[0], "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	content := map[string]string{}
	for _, e := range mfs {
		b, err := os.ReadFile(filepath.Join(dirs[0], "snapshots", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		content[e.Name()] = string(b)
	}
	st, err := a.mgr.CopySnapshot(ctx, "r1", "s2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Skipped != 1 || st.Snapshots != 0 {
		t.Errorf("copy of s2, live in the region: %+v (want it skipped, not shipped again)", st)
	}
	// (The copy puts the manifest on the stale store, which lacks it: the
	// same bytes everywhere, none written anew.)
	for name, b := range content {
		got, err := os.ReadFile(filepath.Join(dirs[0], "snapshots", name))
		if err != nil {
			t.Fatalf("manifest %s gone from store 0 after a copy of s2: %v", name, err)
		}
		if string(got) != b {
			t.Errorf("manifest %s written anew by a copy of s2, which the region held", name)
		}
	}
	if err := restoreEq(t, a, "", "s2", "vol1", want); err != nil {
		t.Fatal(err)
	}
}
