package rowstore

import (
	"math/rand"
	"testing"
	"time"
)

// TestCleanerFillMovesNothing: while a disk is filled with new blocks and
// nothing is synced (so the log runs ahead of the committed live total and
// incremental rounds commit first to make the sealed segments eligible),
// nothing is dead, so the background cleaner must move nothing. Before the
// fix a round judged the segments its own commit made eligible with the
// usage table taken before that commit, found them empty (every record in
// them live) and moved them whole: through the mount, 21 MB moved for 640
// bytes freed in a 256 MiB fill.
func TestCleanerFillMovesNothing(t *testing.T) {
	const bs = 4096
	size, first := int64(48<<20), int64(12<<20)
	opts := overwriteOptions(true) // the background cleaner, no background commit
	s, _ := newTestStore(t, opts)
	if _, err := s.CreateDisk("d", size, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rng := rand.New(rand.NewSource(14))
	buf := make([]byte, 1<<20)
	write := func(from, to int64) {
		for off := from; off < to; off += int64(len(buf)) {
			rng.Read(buf)
			if _, err := h.WriteAt(buf, off); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, first)
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	// The first round (a full one, past the 8 MiB the cleaner starts at)
	// builds the live map; then rounds are incremental.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ok, _ := s.cleaner.mapUsable(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cleaner never installed its live map")
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := s.CleanerStats()
	write(first, size) // new blocks, not synced: the log outruns the committed live total
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // rounds the fill's end kicked
	after := s.CleanerStats()
	if moved := after.BytesRelocated - before.BytesRelocated; moved > 0 {
		t.Errorf("the cleaner moved %d bytes (freed %d, %d rounds) while new blocks were written: nothing was dead",
			moved, after.BytesFreed-before.BytesFreed, after.Rounds-before.Rounds)
	}
	if after.Rounds == before.Rounds {
		t.Errorf("no round ran during the fill: the test did not reach the case it is for")
	}
}
