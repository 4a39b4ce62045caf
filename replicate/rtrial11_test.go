package replicate_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// TestRtrial11CheckBaseGoneNamesOnlyItsSnapshots (trial 11, stale or
// damaged stores): when the pack holding the bases of some deltas is gone
// from every store (and prune has dropped its orphaned index), check
// must name the snapshots whose deltas need those bases as lost, and
// only those: a snapshot that needs other chunks of the deltas' pack
// (full chunks, and deltas whose bases are fine) restores byte for byte
// and must not be reported lost (an operator deletes what check calls
// lost).
func TestRtrial11CheckBaseGoneNamesOnlyItsSnapshots(t *testing.T) {
	ctx := context.Background()
	a, dirs, urls, key := deltaHost(t)
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	// s3: blocks 0-15 rewritten whole, so s3 needs none of s2's deltas of
	// them (their bases are the ones that go), but s2's other deltas and
	// full chunks (same pack).
	writeBlocks(t, a, "vol1", 7, span(0, 16))
	snapshot(t, a, "s3", "vol1")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	p2, pb, err := a.mgr.PackOfBlock(ctx, "r1", "s2", "vol1", 0)
	if err != nil || pb == "" {
		t.Fatalf("s2's block 0: pack %s base pack %q: %v", p2, pb, err)
	}
	p3, _, err := a.mgr.PackOfBlock(ctx, "r1", "s3", "vol1", 20) // a delta of s2 that s3 keeps
	if err != nil || p3 != p2 {
		t.Fatalf("s3's block 20 in pack %s, s2's deltas in %s (%v)", p3, p2, err)
	}
	for _, b := range []uint64{16, 30, 40, 60, 80, 150} { // s3's other blocks: not in the base pack
		if p, base, err := a.mgr.PackOfBlock(ctx, "r1", "s3", "vol1", b); err != nil || p == pb || base == pb {
			t.Fatalf("s3's block %d: pack %s base %s, the pack that goes is %s (%v)", b, p, base, pb, err)
		}
	}
	want3 := readSnapshot(t, a, "s3", "vol1")
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 2}); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if err := os.Remove(filepath.Join(d, "packs", pb)); err != nil {
			t.Fatal(err)
		}
	}
	// Prune drops the index of a pack with no shard left.
	if st, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 2}); err != nil || st.IndexesDeleted != 1 {
		t.Fatalf("prune: %+v %v", st, err)
	}
	b := newHost(t, replicate.Options{})
	addRegion(t, b, urls, key)
	if _, err := b.mgr.Restore(ctx, "r1", "s3", "vol1", "v3", nil); err != nil {
		t.Fatalf("s3 needs nothing of the pack that went: restore: %v", err)
	}
	if !bytes.Equal(readDisk(t, b, "v3"), want3) {
		t.Fatal("restored s3 differs")
	}
	for _, data := range []bool{false, true} {
		rep, err := b.mgr.Check(ctx, "r1", data, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("check (read data %v): lost %v degraded %v problems %v", data, rep.Lost, rep.Degraded, rep.Problems)
		if !slices.ContainsFunc(rep.Lost, func(s string) bool { return strings.HasPrefix(s, "s2@") }) {
			t.Errorf("check (read data %v): s2's deltas over the bases that went: not reported lost: %v", data, rep.Lost)
		}
		if slices.ContainsFunc(rep.Lost, func(s string) bool { return strings.HasPrefix(s, "s3@") }) {
			t.Errorf("check (read data %v): s3 (restored byte for byte) reported lost: %v", data, rep.Lost)
		}
	}
}
