package service

import (
	"context"
	"slices"
	"testing"

	"github.com/snapfs/snapfs/rowstore"
)

// TestRev12lazyImageKeepsHold: an image made from a snapshot of a lazy disk
// not yet hydrated reads through the disk's lazy layer; once the disk and
// the snapshot are deleted, the image is all that reads it, and its
// missing blocks still come from the region. The hold must stay, or
// another host's prune removes those blocks and the image reads EIO for
// good. Before the fix, holdLive judged by names only (a disk reads the
// layer, or a snapshot holds a disk of the hold's name) and released it.
func TestRev12lazyImageKeepsHold(t *testing.T) {
	ctx := context.Background()
	l, m := syncedLocal(t)
	if _, err := l.Restore(ctx, RestoreRequest{Region: "dr", Snapshot: "s1", Disk: "d", To: "lz", Lazy: true, Rate: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateSnapshot(ctx, "s2", []string{"lz"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateImage(ctx, "img", "s2", "lz"); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteSnapshot(ctx, "s2"); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteDisk(ctx, "lz", false); err != nil {
		t.Fatal(err)
	}
	if err := l.releaseHolds(ctx, "dr"); err != nil {
		t.Fatal(err)
	}
	ls, err := l.store.ListLazy()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 {
		t.Fatalf("lazy layers: %+v; want the image's", ls)
	}
	if got := holdDisks(t, m); !slices.Equal(got, []string{"lz"}) {
		t.Fatalf("holds while an image reads the unhydrated layer: %q; want lz's", got)
	}
	// The image gone, nothing reads the layer: the hold goes.
	if err := l.store.DeleteImage("img"); err != nil {
		t.Fatal(err)
	}
	if err := l.releaseHolds(ctx, "dr"); err != nil {
		t.Fatal(err)
	}
	if got := holdDisks(t, m); len(got) != 0 {
		t.Fatalf("holds once nothing reads the layer: %q", got)
	}
}

// TestRev12lazySnapshotOfTempDiskKeepsHold: a snapshot taken of restore
// --lazy's temporary disk while it is built (it is listed meanwhile, under
// its temporary name) reads through the lazy layer. Once the restored disk
// is deleted, that snapshot still reads the layer's missing blocks from
// the region: the hold must stay. Before the fix the hold went (no
// snapshot holds a disk of the hold's name, lz).
func TestRev12lazySnapshotOfTempDiskKeepsHold(t *testing.T) {
	ctx := context.Background()
	l, m := syncedLocal(t)
	testLazyStep = func(step string) {
		if step != "lazy-attached" {
			return
		}
		for _, d := range diskList(t, l) {
			if rowstore.IsTempDiskName(d) {
				if _, err := l.CreateSnapshot(ctx, "of-tmp", []string{d}); err != nil {
					t.Error(err)
				}
				return
			}
		}
		t.Error("no temporary disk listed at lazy-attached")
	}
	t.Cleanup(func() { testLazyStep = nil })
	if _, err := l.Restore(ctx, RestoreRequest{Region: "dr", Snapshot: "s1", Disk: "d", To: "lz", Lazy: true, Rate: 1}, nil); err != nil {
		t.Fatal(err)
	}
	testLazyStep = nil
	if err := l.DeleteDisk(ctx, "lz", false); err != nil {
		t.Fatal(err)
	}
	if err := l.releaseHolds(ctx, "dr"); err != nil {
		t.Fatal(err)
	}
	if got := holdDisks(t, m); !slices.Equal(got, []string{"lz"}) {
		t.Fatalf("holds while a snapshot of the temporary disk reads the unhydrated layer: %q; want lz's", got)
	}
	if err := l.DeleteSnapshot(ctx, "of-tmp"); err != nil {
		t.Fatal(err)
	}
	if err := l.releaseHolds(ctx, "dr"); err != nil {
		t.Fatal(err)
	}
	if got := holdDisks(t, m); len(got) != 0 {
		t.Fatalf("holds once nothing reads the layer: %q", got)
	}
}

// TestRev12lazyDaemonlessLeftoverHoldReleased: a restore --lazy killed
// after its hold, its temporary disk then deleted by a daemonless region
// command (replicate's CleanTempDisks, as at a daemon's start), leaves a layer
// nothing reads. Its hold must go at the next sweep even though a local
// snapshot holds an earlier, unrelated disk of the hold's name (lz): that
// snapshot does not read the layer. Before, the name rule kept the hold,
// and so the region's snapshot from every host's prune, until a GC
// happened to remove the layer.
func TestRev12lazyDaemonlessLeftoverHoldReleased(t *testing.T) {
	ctx := context.Background()
	l, m := syncedLocal(t)
	killedLazyRestore(t, l, m)
	if l.store.CleanTempDisks() != 1 { // a daemonless region command's
		t.Fatal("the temporary disk was not deleted")
	}
	if err := l.releaseHolds(ctx, "dr"); err != nil {
		t.Fatal(err)
	}
	if got := holdDisks(t, m); len(got) != 0 {
		t.Fatalf("holds of a layer nothing reads: %q", got)
	}
}
