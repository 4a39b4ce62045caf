package replicate_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/snapfs/snapfs/replicate"
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
