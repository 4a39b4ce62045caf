package service

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// TestRegion14PruneNamesOwnLazyDisk: this host's lazily restored disk
// (hydrating slowly) holds the region's shared lock; this host's prune
// fails locked (exit 15) naming the lazy disk and the snapshot it reads,
// and not sending the engineer to region unlock (which keeps a live
// lock). On main it said only "shared lock of remote-disk on host ...;
// ... run `snapfs region unlock dr` on this host". A dry run, which takes
// a shared lock, runs beside it and changes nothing.
func TestRegion14PruneNamesOwnLazyDisk(t *testing.T) {
	ctx := context.Background()
	l, _ := syncedLocal(t)
	if _, err := l.Restore(ctx, RestoreRequest{Region: "dr", Snapshot: "s1", Disk: "d", To: "lz", Lazy: true, Rate: 1}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := l.PruneRegion(ctx, PruneRequest{Region: "dr", KeepLast: 1})
	if !errors.Is(err, replicate.ErrLocked) {
		t.Fatalf("prune beside this host's lazy disk: %v (want locked)", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "lazy disk lz") || !strings.Contains(msg, "snapshot s1 disk d") || strings.Contains(msg, "run `snapfs region unlock") {
		t.Fatalf("prune blocked by this host's lazy disk: %s", msg)
	}
	st, err := l.PruneRegion(ctx, PruneRequest{Region: "dr", KeepLast: 1, DryRun: true})
	if err != nil || !st.DryRun {
		t.Fatalf("prune --dry-run beside this host's lazy disk: %+v %v", st, err)
	}
}
