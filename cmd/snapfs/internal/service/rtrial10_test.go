package service

import (
	"context"
	"testing"
)

// TestRtrial10SyncReleasesOwnDeadHolds (trial 10, holds and stale
// stores): a hold this host released (its lazy disk was deleted) can come
// back: a store that was away during the release, or put back from a
// backup, still holds it, and region repair copies every hold to each
// store that lacks it. It then keeps its snapshot from every host's prune
// for ever ("held by host/disk" of a disk gone), as only the holder's
// daemon start swept such holds. The holder's sync (the hourly job)
// releases its own holds that no longer hold anything.
//
// Seen on main e1f8edc (4+2 region, CLI): after `disk delete` of a lazy
// disk released its hold and store 2 came back from a copy taken before,
// `region repair` put the hold on all six stores and `region snapshots`
// showed the snapshot "held by hostA/sth" while hostA's daemon ran on.
func TestRtrial10SyncReleasesOwnDeadHolds(t *testing.T) {
	ctx := context.Background()
	l, m := syncedDisk(t, 4<<20, nil)
	// The hold of a lazy disk long gone, back from a stale store and
	// spread by repair: on every store, of this host.
	if _, err := m.PutHold(ctx, "dr", "", "s1", "d", 1<<40, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Sync(ctx, SyncRequest{Region: "dr"}, nil); err != nil {
		t.Fatal(err)
	}
	hs, err := m.Holds(ctx, "dr")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 0 {
		t.Errorf("holds after this host's sync: %+v; want its dead hold released", hs)
	}
}
