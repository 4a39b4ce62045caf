package service

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestHoldsReleasedBySweepAndDelete: restore --lazy leaves a hold; the
// daemon start's sweep releases a hold of this host whose layer no longer
// reads from the region (a release that failed before) and keeps the live
// one; deleting the lazy disk releases its hold.
func TestHoldsReleasedBySweepAndDelete(t *testing.T) {
	ctx := context.Background()
	l, m := syncedDisk(t, 4<<20, bytes.Repeat([]byte("held"), 1<<20))
	if _, err := l.Restore(ctx, RestoreRequest{Region: "dr", Snapshot: "s1", Disk: "d", To: "lz", Lazy: true, Rate: 1}, nil); err != nil {
		t.Fatal(err)
	}
	// A stale hold of this host: a layer that does not exist (any more).
	if _, err := m.PutHold(ctx, "dr", "", "s1", "d", 1<<40, "ghost"); err != nil {
		t.Fatal(err)
	}
	if got := holdDisks(t, m); len(got) != 2 {
		t.Fatalf("holds after restore --lazy and a stale one: %q", got)
	}
	l.sweepHolds()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := holdDisks(t, m)
		if len(got) == 1 && got[0] == "lz" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("holds after the sweep: %q, want [lz]", got)
		}
	}
	if err := l.DeleteDisk(ctx, "lz", true); err != nil {
		t.Fatal(err)
	}
	if got := holdDisks(t, m); len(got) != 0 {
		t.Fatalf("holds after deleting the lazy disk: %q", got)
	}
}
