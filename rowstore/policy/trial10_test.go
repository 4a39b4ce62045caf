package policy

import (
	"testing"
	"time"
)

// Trial 10: after the clock went back, the snapshot a policy just took
// has the oldest creation time; count retention and quota eviction must
// still keep it and drop the one taken first (catalog order).
func TestTrial10RetentionOrderAfterClockBack(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	snaps := []Snap{
		{Name: "p-d-1", Created: now.Add(22 * time.Hour), Kind: KindAutomatic, Policy: "p", Seq: 10},
		{Name: "p-d-2", Created: now.Add(23 * time.Hour), Kind: KindAutomatic, Policy: "p", Seq: 11},
		{Name: "p-d-3", Created: now, Kind: KindAutomatic, Policy: "p", Seq: 12}, // taken after the clock went back a day
	}
	ex := Expired(snaps, "p", Retention{Count: 2}, now)
	if len(ex) != 1 || ex[0].Name != "p-d-1" {
		t.Fatalf("count retention 2 expired %+v, want p-d-1 (taken first)", ex)
	}
	ev, err := Evict(snaps, "p", Quota{Automatic: 3})
	if err != nil || len(ev) != 1 || ev[0].Name != "p-d-1" {
		t.Fatalf("quota eviction %+v %v, want p-d-1 (taken first)", ev, err)
	}
	// Without catalog order (Seq 0), creation times decide, as before.
	for i := range snaps {
		snaps[i].Seq = 0
	}
	if ex := Expired(snaps, "p", Retention{Count: 2}, now); len(ex) != 1 || ex[0].Name != "p-d-3" {
		t.Fatalf("without Seq: expired %+v", ex)
	}
}
