package replicate_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
)

// A hold keeps a snapshot, and what it needs, from any host's prune, and
// prune says so; a hold that reaches fewer than k stores fails and leaves
// nothing; once released, the next prune removes the snapshot.
func TestHoldKeepsSnapshotFromPrune(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 32)
	writeBlocks(t, a.host, "v", 1, span(0, 20))
	snapshot(t, a.host, "s1", "v")
	want := readSnapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	h, err := b.mgr.PutHold(ctx, "r1", "a", "s1", "v", 7, "lz")
	if err != nil {
		t.Fatal(err)
	}
	if h.Snapshot != "s1" || h.Disk != "lz" || h.Layer != 7 {
		t.Fatalf("hold: %+v", h)
	}
	// Two stores up that refuse the hold: it reaches 1 < k, fails, and
	// leaves no copy on the one it reached.
	refuse := func(m store.Method, name string) error {
		if m == store.MethodPut && strings.HasPrefix(name, "holds/") {
			return errors.New("injected: put refused")
		}
		return nil
	}
	b.faults[0].FailMatching(refuse)
	b.faults[1].FailMatching(refuse)
	if _, err := b.mgr.PutHold(ctx, "r1", "a", "s1", "v", 8, "lz2"); !errors.Is(err, replicate.ErrUnavailable) {
		t.Fatalf("a hold taken by 1 of 3 stores up (k=2): %v", err)
	}
	b.faults[0].FailMatching(nil)
	b.faults[1].FailMatching(nil)
	// Two stores down from the start: the hold lands on the one up (prune
	// runs only with every store up, and keeps a manifest held on any).
	b.faults[0].SetDown(true)
	b.faults[1].SetDown(true)
	if _, err := b.mgr.PutHold(ctx, "r1", "a", "s1", "v", 9, "lz3"); err != nil {
		t.Fatalf("a hold with 2 of 3 stores down: %v", err)
	}
	b.faults[0].SetDown(false)
	b.faults[1].SetDown(false)
	if rel, err := b.mgr.ReleaseHolds(ctx, "r1", func(h replicate.HoldInfo) bool { return h.Layer == 9 }); err != nil || len(rel) != 1 {
		t.Fatalf("release of layer 9's hold: %+v %v", rel, err)
	}
	if got, err := a.mgr.Holds(ctx, "r1"); err != nil || len(got) != 1 || got[0].Layer != 7 {
		t.Fatalf("holds after a failed hold: %+v %v", got, err)
	}

	// a's data rewritten, s2 synced, s1 deleted: prune keeps s1 for b.
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
		t.Fatalf("prune: %+v", st)
	}
	rd, err := b.mgr.OpenRemoteDiskOf(ctx, "r1", "a", "s1", "v")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := rd.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("held s1 after prune: err %v equal %v", err, bytes.Equal(got, want))
	}
	rd.Close()

	// Release: a selector matching nothing releases nothing; b's own
	// release of a layer no longer live does; then prune removes s1.
	if rel, err := a.mgr.ReleaseHolds(ctx, "r1", replicate.HoldMatch("s1", "", "nosuchhost")); err != nil || len(rel) != 0 {
		t.Fatalf("release of no hold: %+v %v", rel, err)
	}
	rel, err := b.mgr.ReleaseOwnHolds(ctx, "r1", func(h replicate.HoldInfo) bool { return false })
	if err != nil || len(rel) != 1 {
		t.Fatalf("release: %+v %v", rel, err)
	}
	st, err = a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1})
	if err != nil || len(st.Deleted) != 1 || len(st.Held) != 0 {
		t.Fatalf("prune after release: %+v %v", st, err)
	}
	if _, err := b.mgr.OpenRemoteDiskOf(ctx, "r1", "a", "s1", "v"); !errors.Is(err, replicate.ErrNotFound) {
		t.Fatalf("s1 after release and prune: %v", err)
	}
}
