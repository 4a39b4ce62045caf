package replicate_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// TestTrial11BaseDeletedDuringSync: `snapfs snapshot delete q1` while
// `snapfs sync` ran (q1 had just been copied, q2 was next with q1 as its
// base) ended the sync with exit 3 and "sync snapshot "q2" ...: not found:
// snapshot "q1"": a user who deleted q1 on purpose is told q1 is missing,
// with no word of what to do. It is a conflict with a concurrent change
// (exit 14: run it again); the next sync ships q2 from another base.
func TestTrial11BaseDeletedDuringSync(t *testing.T) {
	ctx := context.Background()
	h := newHost(t, replicate.Options{})
	_, urls := storeDirs(t, testK+testM)
	addRegion(t, h, urls, keyFile(t, 3))
	mkDisk(t, h, "v", 64)
	writeBlocks(t, h, "v", 1, span(0, 32))
	snapshot(t, h, "q1", "v")
	if _, err := h.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, h, "v", 2, span(16, 48))
	snapshot(t, h, "q2", "v")
	want := readSnapshot(t, h, "q2", "v")
	deleted := false
	_, err := h.mgr.Sync(ctx, "r1", nil, replicate.ProgressFunc(func(e replicate.Event) {
		if e.Type == replicate.EventSnapshot && e.Snapshot == "q2" && !deleted {
			deleted = true // its base is chosen: the user deletes it now
			if err := h.rs.DeleteSnapshot("q1"); err != nil {
				t.Error(err)
			}
		}
	}))
	if !deleted {
		t.Fatal("the sync never reached q2")
	}
	if err == nil {
		t.Log("the sync shipped q2 although its base was deleted meanwhile")
	} else if !errors.Is(err, replicate.ErrConflict) || errors.Is(err, rowstore.ErrNotFound) || !strings.Contains(err.Error(), "run it again") {
		t.Fatalf("sync whose base snapshot was deleted meanwhile: %v; want a conflict (run it again), not 'not found'", err)
	}
	if _, err := h.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatalf("the next sync: %v", err)
	}
	if _, err := h.mgr.Restore(ctx, "r1", "q2", "v", "back", nil); err != nil {
		t.Fatal(err)
	}
	r, err := h.rs.OpenDisk("back")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make([]byte, len(want))
	if _, err := r.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("q2 restored from the region differs from the local q2")
	}
}
