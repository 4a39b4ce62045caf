package replicate_test

import (
	"context"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// TestChunkCachePrunedByOtherHost: host a keeps its region's chunk set in
// memory between syncs; host b prunes, between two of a's syncs, the
// packs of a snapshot whose blocks a then writes again. a's next sync must
// see that the region changed and upload those blocks again (a stale set
// would name chunks the region no longer holds in the new manifest), and
// the snapshot restores.
func TestChunkCachePrunedByOtherHost(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	const blocks = 32
	mkDisk(t, a.host, "vol", blocks)
	writeBlocks(t, a.host, "vol", 601, span(0, blocks))
	snapshot(t, a.host, "s1", "vol")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a.host, "vol", 602, span(0, blocks))
	snapshot(t, a.host, "s2", "vol")
	st, err := a.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil || st.Snapshots != 1 {
		t.Fatalf("sync of s2: %+v %v", st, err)
	}
	// b prunes a's s1 and with it the only packs of seed 601's blocks.
	pst, err := b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(pst.Deleted) != 1 || pst.PacksDeleted == 0 {
		t.Fatalf("b's prune: %+v, want s1 and its packs removed", pst)
	}
	// a writes s1's blocks again: the chunks its kept set knew are gone.
	writeBlocks(t, a.host, "vol", 601, span(0, blocks))
	snapshot(t, a.host, "s3", "vol")
	st, err = a.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil || st.Snapshots != 1 {
		t.Fatalf("sync of s3: %+v %v", st, err)
	}
	if st.BlocksRead != blocks || st.PacksWritten == 0 {
		t.Fatalf("sync of s3 after b's prune read %d blocks, wrote %d packs; want all %d blocks uploaded again", st.BlocksRead, st.PacksWritten, blocks)
	}
	if err := restoreEq(t, b.host, "a", "s3", "vol", readSnapshot(t, a.host, "s3", "vol")); err != nil {
		t.Fatal(err)
	}
	mustClean(t, a.host)

	// And the other way: with nothing changed in the region, a sync of a
	// snapshot whose blocks the kept set has uploads nothing.
	snapshot(t, a.host, "s4", "vol")
	st, err = a.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil || st.Snapshots != 1 || st.PacksWritten != 0 {
		t.Fatalf("sync of unchanged s4: %+v %v", st, err)
	}
}
