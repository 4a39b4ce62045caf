package rowstore

import (
	"testing"
	"time"
)

// TestRev12lazyNoHydrateAttachIdles: the daemon's start attaches the
// source of a lazy layer no disk reads (only a snapshot or an image of a
// deleted lazy disk does) for reads only (NoHydrate). Its source must be
// told idle, as when hydration stops for lack of disks: a region disk
// held open keeps its shared region lock, and every host's prune fails
// with ErrLocked (exit 15) for as long as the daemon runs. Before the fix
// Idle was called only after a hydration run, never for a NoHydrate attach.
func TestRev12lazyNoHydrateAttachIdles(t *testing.T) {
	const blocks = 64
	b, src, layer := idleLazyDisk(t, blocks)
	if _, err := b.CreateSnapshot("keep", []string{"x"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteDisk("x", false); err != nil {
		t.Fatal(err)
	}
	if err := b.AttachLazy(layer, src, HydrateOptions{NoHydrate: true}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); src.idled.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a source attached for reads only (no disk uses the layer) was never told idle")
		}
	}
	// The snapshot still reads the layer's missing blocks through it.
	r, err := b.OpenSnapshotDisk("keep", "x")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, lazyBS)
	for blk := range int64(blocks) {
		if src.stored[blk] {
			if _, err := r.ReadAt(buf, blk*lazyBS); err != nil {
				t.Fatalf("snapshot read of block %d after idle: %v", blk, err)
			}
			break
		}
	}
}
