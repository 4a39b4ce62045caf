package replicate_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// TestRtrial10StaleStoreDoesNotUndoPrune (trial 10, repair from any k): a
// store that comes back stale (a NAS that was away, a store tree put back
// from a backup) holds manifests, indexes and pack shards of snapshots
// that prune removed meanwhile. They must stay removed: the listing must
// not show them again (one of them "available" though it cannot be
// restored), check must not call the others' lack of them missing (nor the
// snapshot "lost"), and repair must delete the stale copies instead of
// spreading them to every store and failing on packs it cannot rebuild.
//
// Seen on main e1f8edc (4+2 file:// region, CLI): after prune --keep-last 1
// removed t1 (its packs freed) and s1, store 2 was put back from a copy
// taken before; `region snapshots` listed t1 and s1 "available", check
// said "lost: t1" (exit 12), repair put t1's manifest and indexes back on
// the five other stores and failed on its packs ("1 good of 4 needed",
// exit 12, every hour in the scheduled job) until the next prune.
func TestRtrial10StaleStoreDoesNotUndoPrune(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 32)
	writeBlocks(t, a.host, "v", 1, span(0, 20))
	snapshot(t, a.host, "s1", "v")
	writeBlocks(t, a.host, "v", 2, span(0, 20)) // s2 shares nothing with s1
	snapshot(t, a.host, "s2", "v")
	want2 := readSnapshot(t, a.host, "s2", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	// Store 1 comes back from its backup.
	if st := pruneBehindBackup(t, a, dirs[1]); !slices.Equal(st.Deleted, []string{"s1"}) {
		t.Fatalf("prune: deleted %v; want s1", st.Deleted)
	}
	l, err := b.mgr.ListRemote(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range l {
		if rs.Name == "s1" {
			t.Errorf("listing after a stale store came back: pruned s1 listed again (%s)", rs.State)
		}
	}
	rep, err := b.mgr.Check(ctx, "r1", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Lost) > 0 || len(rep.LostPacks) > 0 {
		t.Errorf("check after a stale store came back: lost %v, lost packs %v; want none (s1 was pruned)", rep.Lost, rep.LostPacks)
	}
	rr, err := b.mgr.Repair(ctx, "r1", nil)
	if err != nil || len(rr.Failed) > 0 {
		t.Fatalf("repair after a stale store came back: failed %+v, %v", rr.Failed, err)
	}
	for i, d := range dirs {
		if got := listObjs(t, d, "snapshots"); len(got) != 1 {
			t.Errorf("store %d after repair: %d manifests, want 1 (s2's)", i, len(got))
		}
	}
	mustClean(t, b.host)
	if err := restoreEq(t, b.host, "a", "s2", "v", want2); err != nil {
		t.Errorf("restore s2: %v", err)
	}
}

// TestRtrial10StaleStorePrunedByPrune: the scheduled job runs sync, prune
// and check, not repair: its prune deletes what a stale store kept of
// pruned snapshots (manifests and the packs only they name), so its check
// is clean again without an operator.
func TestRtrial10StaleStorePrunedByPrune(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a")
	a := hs[0]
	mkDisk(t, a.host, "v", 32)
	writeBlocks(t, a.host, "v", 1, span(0, 20))
	snapshot(t, a.host, "s1", "v")
	writeBlocks(t, a.host, "v", 2, span(0, 20))
	snapshot(t, a.host, "s2", "v")
	want2 := readSnapshot(t, a.host, "s2", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	pruneBehindBackup(t, a, dirs[0])
	rep, err := a.mgr.Check(ctx, "r1", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Lost) > 0 || !slices.ContainsFunc(rep.Problems, func(p replicate.Problem) bool { return p.Kind == replicate.ProblemPruned && p.Store == 0 }) {
		t.Errorf("check: %+v; want the stale copy on store 0 reported as pruned, nothing lost", rep)
	}
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1}); err != nil {
		t.Fatal(err)
	}
	mustClean(t, a.host)
	if got := listObjs(t, dirs[0], "snapshots"); len(got) != 1 {
		t.Errorf("store 0 after prune: %d manifests, want 1", len(got))
	}
	// An explicit copy of the pruned snapshot is a copy, not a leftover.
	if _, err := a.mgr.CopySnapshot(ctx, "r1", "s1", nil); err != nil {
		t.Fatal(err)
	}
	l, err := a.mgr.ListRemote(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(l, func(rs replicate.RemoteSnapshot) bool { return rs.Name == "s1" && rs.State == replicate.StateAvailable }) {
		t.Errorf("s1 copied again explicitly: listing %+v, want s1 available", l)
	}
	mustClean(t, a.host)
	if err := restoreEq(t, a.host, "a", "s2", "v", want2); err != nil {
		t.Errorf("restore s2: %v", err)
	}
}

// TestRtrial10RestoreUnalignedDisk (trial 10, large and odd): a disk whose
// size is a multiple of 512 bytes but not of its block size syncs, and
// must restore: its last block is stored whole, and restore wrote it
// whole, past the disk's end.
//
// Seen on main e1f8edc: `disk create odd --size 1000448` (16 KiB blocks),
// written, snapshotted and copied, then `restore` failed with "write of
// 1015808 bytes at 0 is beyond the end of disk" (exit 2), every time: the
// region's copy could be restored only lazily.
func TestRtrial10RestoreUnalignedDisk(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	const size = 5*bs + 1536
	if _, err := a.rs.CreateDisk("odd", size, bs); err != nil {
		t.Fatal(err)
	}
	d, err := a.rs.OpenDisk("odd")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*7 + 1)
	}
	if _, err := d.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	snapshot(t, a.host, "s1", "odd")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := restoreEq(t, b.host, "a", "s1", "odd", want); err != nil {
		t.Errorf("restore of a disk not a multiple of its block size: %v", err)
	}
}

// TestRtrial10NoDeltaOverPrunedLeftover: a snapshot prune removed must not
// become a new snapshot's delta base because a stale store kept its
// manifest: the leftover is deleted by repair and prune, and the delta
// over it could no longer be restored.
func TestRtrial10NoDeltaOverPrunedLeftover(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a")
	a := hs[0]
	mkDisk(t, a.host, "v", 32)
	writeBlocks(t, a.host, "v", 1, span(0, 20))
	snapshot(t, a.host, "s1", "v")
	snapshot(t, a.host, "s2", "v") // same blocks: s1's packs stay for s2
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	pruneBehindBackup(t, a, dirs[1])
	if err := a.rs.DeleteSnapshot("s2"); err != nil { // s1 is kept locally
		t.Fatal(err)
	}
	writeBlocks(t, a.host, "v", 3, span(2, 4))
	snapshot(t, a.host, "s3", "v")
	want3 := readSnapshot(t, a.host, "s3", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if rr, err := a.mgr.Repair(ctx, "r1", nil); err != nil || len(rr.Failed) > 0 {
		t.Fatalf("repair: %+v %v", rr.Failed, err)
	}
	if err := a.rs.DeleteSnapshot("s3"); err != nil { // copied: the region has it
		t.Fatal(err)
	}
	mustClean(t, a.host)
	if err := restoreEq(t, a.host, "a", "s3", "v", want3); err != nil {
		t.Errorf("restore s3 after the stale store's s1 was deleted: %v", err)
	}
}

// TestRtrial10ExplicitCopyOverPrunedLeftover: snapshot copy of a snapshot
// prune removed, while a stale store still holds its manifest (and
// shards of packs prune deleted), copies it anew: restorable, check clean.
func TestRtrial10ExplicitCopyOverPrunedLeftover(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a")
	a := hs[0]
	mkDisk(t, a.host, "v", 32)
	writeBlocks(t, a.host, "v", 1, span(0, 20))
	snapshot(t, a.host, "s1", "v")
	want1 := readSnapshot(t, a.host, "s1", "v")
	writeBlocks(t, a.host, "v", 2, span(0, 20))
	snapshot(t, a.host, "s2", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	pruneBehindBackup(t, a, dirs[2])
	if _, err := a.mgr.CopySnapshot(ctx, "r1", "s1", nil); err != nil {
		t.Fatal(err)
	}
	if err := restoreEq(t, a.host, "a", "s1", "v", want1); err != nil {
		t.Errorf("restore of s1 copied again: %v", err)
	}
	if rr, err := a.mgr.Repair(ctx, "r1", nil); err != nil || len(rr.Failed) > 0 {
		t.Fatalf("repair: %+v %v", rr.Failed, err)
	}
	mustClean(t, a.host)
}

// pruneBehindBackup backs store dir up, prunes region r1 to its newest
// snapshot (host h), then puts the store back from the backup: the store
// is stale, holding what prune deleted (as one that was away, or restored
// from a backup, would).
func pruneBehindBackup(t *testing.T, h *fleetHost, dir string) replicate.PruneStats {
	t.Helper()
	old := filepath.Join(t.TempDir(), "store-backup")
	copyTree(t, dir, old)
	st, err := h.mgr.Prune(context.Background(), "r1", replicate.PruneOptions{KeepLast: 1})
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	copyTree(t, old, dir)
	return st
}
