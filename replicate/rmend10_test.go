package replicate_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// TestRmend10RecreatedName (rmend10 item 1): a snapshot deleted and
// re-created under the same name after its first copy reached the region.
// The region's copy is never replaced (it may be the only one left of the
// old snapshot): sync ships every other snapshot and fails with ErrExists
// naming the one left out (the sync job goes on with prune and check on
// it); once prune has removed the old copy, the next sync ships the new
// snapshot, which restores as itself.
func TestRmend10RecreatedName(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a")
	a := hs[0]
	mkDisk(t, a.host, "v", 32)
	writeBlocks(t, a.host, "v", 1, span(0, 10))
	snapshot(t, a.host, "daily", "v")
	wantOld := readSnapshot(t, a.host, "daily", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.host.rs.DeleteSnapshot("daily"); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a.host, "v", 2, span(0, 10))
	snapshot(t, a.host, "daily", "v")
	wantNew := readSnapshot(t, a.host, "daily", "v")
	writeBlocks(t, a.host, "v", 3, span(5, 10))
	snapshot(t, a.host, "x", "v")

	st, err := a.mgr.Sync(ctx, "r1", nil, nil)
	if !errors.Is(err, replicate.ErrExists) || !slices.Equal(st.Copied, []string{"x"}) {
		t.Fatalf("sync with a re-created name: copied %v, %v; want x copied and ErrExists", st.Copied, err)
	}
	t.Logf("refused as it should: %v", err)
	if err := restoreEq(t, a.host, "a", "daily", "v", wantOld); err != nil {
		t.Fatalf("the region's old copy of daily: %v", err)
	}
	pst, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1})
	if err != nil || !slices.Equal(pst.Deleted, []string{"daily"}) {
		t.Fatalf("prune: deleted %v, %v; want the old daily", pst.Deleted, err)
	}
	st, err = a.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil || !slices.Equal(st.Copied, []string{"daily"}) {
		t.Fatalf("sync after the old copy was pruned: copied %v, %v; want the new daily", st.Copied, err)
	}
	if err := restoreEq(t, a.host, "a", "daily", "v", wantNew); err != nil {
		t.Fatalf("restore of the new daily: %v", err)
	}
}
