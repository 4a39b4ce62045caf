package replicate_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// TestTrial9NewStoreRepairCopiesHolds (trial 9, shared regions): a hold
// must survive the replacement of the stores that hold it. Repair
// --new-store rebuilds a replaced store's packs, indexes, manifests and
// markers, but not its holds; the service puts a lazy disk's hold again
// only when it attaches the disk (daemon start). So on a daemon that
// runs on, each store replaced (one at a time, each followed by repair,
// the region healthy in between) drops the hold from one store; once the
// stores that held it are all replaced, another host's routine prune
// deletes the snapshot the lazy disk still reads from: its missing blocks
// read EIO for good.
//
// Seen on main 7e801ae: after stores 0, 1 and 2 of a 2+1 region were
// replaced in turn, holds/ was empty on every store and a's prune
// --keep-last 1 deleted s1 while b's hold was live.
func TestTrial9NewStoreRepairCopiesHolds(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 32)
	writeBlocks(t, a.host, "v", 1, span(0, 20))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.mgr.PutHold(ctx, "r1", "a", "s1", "v", 7, "lz"); err != nil {
		t.Fatal(err)
	}
	for i, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		rep, err := a.mgr.RepairWith(ctx, "r1", replicate.RepairOptions{NewStores: []int{i}}, nil)
		if err != nil || len(rep.Failed) > 0 {
			t.Fatalf("repair --new-store %d: %+v %v", i, rep.Failed, err)
		}
		if got := listObjs(t, d, "holds"); len(got) != 1 {
			t.Errorf("store %d after repair --new-store: holds %v, want b's hold", i, got)
		}
	}
	writeBlocks(t, a.host, "v", 2, span(0, 20))
	snapshot(t, a.host, "s2", "v")
	if err := a.rs.DeleteSnapshot("s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	st, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Deleted) != 0 || len(st.Held) != 1 || !strings.HasPrefix(st.Held[0], "s1 (held by b/lz)") {
		t.Fatalf("prune after every store was replaced: deleted %v held %v, want s1 kept for b's hold", st.Deleted, st.Held)
	}
}
