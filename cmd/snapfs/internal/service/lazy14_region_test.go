package service

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/rowstore"
)

// TestLazy14RegionRemoveGuardsSnapshotsOfDeletedLazyDisk: a snapshot of a
// lazy disk that was deleted before it was whole still reads its missing
// blocks from the region: region remove is refused and says so; once the
// snapshot is deleted too, nothing reads the region and it is removed.
func TestLazy14RegionRemoveGuardsSnapshotsOfDeletedLazyDisk(t *testing.T) {
	ctx := context.Background()
	l, _ := syncedLocal(t)
	// 1 B/s: hydration does not end during the test.
	if _, err := l.Restore(ctx, RestoreRequest{Region: "dr", Snapshot: "s1", Disk: "d", To: "lz", Lazy: true, Rate: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateSnapshot(ctx, "keep", []string{"lz"}); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteDisk(ctx, "lz", false); err != nil {
		t.Fatal(err)
	}
	err := l.RemoveRegion(ctx, "dr")
	if !errors.Is(err, rowstore.ErrBusy) {
		t.Fatalf("region remove with a snapshot of a deleted lazy disk reading it: %v, want ErrBusy", err)
	}
	if !strings.Contains(err.Error(), "1 snapshot(s) or image(s) of a deleted lazy disk") {
		t.Errorf("refusal does not say what reads the region: %v", err)
	}
	if err := l.DeleteSnapshot(ctx, "keep"); err != nil {
		t.Fatal(err)
	}
	if err := l.RemoveRegion(ctx, "dr"); err != nil {
		t.Fatalf("region remove once nothing reads it: %v", err)
	}
}
