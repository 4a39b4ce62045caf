package rowstore

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"
	"time"
)

// TestSnapshotFrozenCache: the orderings of a snapshot that takes the
// write-back cache by reference (snapshot.go). Between the freeze and the
// write-back of the frozen entries (testHookSnapshotFrozen) the disk is
// written (partial and whole writes to frozen blocks and to others), read
// (new content: cache, then frozen entries, then the log), synced and
// punched (both must wait for the snapshot's end). The snapshot must read
// as the disk was when it began, the disk as every write made, the space
// accounting must equal a full count, and all of it again after a reopen.
// A snapshot that fails after the freeze gives the cache back: the disk
// keeps every write, and a later Sync makes them durable.
func TestSnapshotFrozenCache(t *testing.T) {
	dir := fastTempDir(t)
	opts := testOptions()
	opts.CacheBytes = 256 << 10 // the writes below never reach the bound
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	defer func() { testHookSnapshotFrozen = nil }()
	const bs = 16 << 10
	const size = 16 * bs
	if _, err := s.CreateDisk("d", size, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	want := make([]byte, size)
	write := func(off int64, n int, zeros bool) {
		t.Helper()
		p := make([]byte, n)
		if !zeros {
			rng.Read(p)
		}
		if _, err := h.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], p)
	}
	check := func(what string, r interface {
		ReadAt([]byte, int64) (int, error)
	}, exp []byte) {
		t.Helper()
		got := make([]byte, size)
		if _, err := r.ReadAt(got, 0); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for b := 0; b < size/bs; b++ {
			if !bytes.Equal(got[b*bs:(b+1)*bs], exp[b*bs:(b+1)*bs]) {
				t.Fatalf("%s: block %d differs", what, b)
			}
		}
	}
	checkSnap := func(what, name string, exp []byte) {
		t.Helper()
		r, err := s.OpenSnapshotDisk(name, "d")
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer r.Close()
		check(what, r, exp)
	}
	// Blocks 0-7 stored; then partial writes in the cache: over stored
	// blocks (0, 1, 2), over an empty one (9), zeros over an empty one (10).
	write(0, 8*bs, false)
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	write(4<<10, 4<<10, false)
	write(bs, 4<<10, false)
	write(2*bs+8<<10, 8<<10, false)
	write(9*bs+8<<10, 4<<10, false)
	write(10*bs, 4<<10, true)
	snapWant := append([]byte(nil), want...)

	var syncDone, punchDone chan error
	testHookSnapshotFrozen = func() error {
		write(8<<10, 4<<10, false)    // partial, frozen block 0
		write(bs, bs, false)          // whole, frozen block 1
		write(2*bs, 4<<10, false)     // partial, frozen block 2 (its copy)
		write(5*bs+4<<10, 100, false) // partial, stored block 5
		write(6*bs, bs, false)        // whole, stored block 6
		write(11*bs, bs, false)       // whole, empty block 11
		check("disk during the snapshot", h, want)
		syncDone, punchDone = make(chan error, 1), make(chan error, 1)
		go func() { syncDone <- h.Sync() }()
		go func() { punchDone <- h.PunchHole(9*bs, bs) }() // frozen block 9
		time.Sleep(50 * time.Millisecond)
		select {
		case err := <-syncDone:
			t.Errorf("a Sync returned (%v) while a snapshot held the cache", err)
		case err := <-punchDone:
			t.Errorf("a PunchHole returned (%v) while a snapshot held the cache", err)
		default:
		}
		return nil
	}
	if _, err := s.CreateSnapshot("s1", []string{"d"}, ""); err != nil {
		t.Fatal(err)
	}
	testHookSnapshotFrozen = nil
	if err := <-syncDone; err != nil {
		t.Fatal(err)
	}
	if err := <-punchDone; err != nil {
		t.Fatal(err)
	}
	clear(want[9*bs : 10*bs])
	check("disk after the snapshot", h, want)
	checkSnap("snapshot", "s1", snapWant)

	// A snapshot failing after the freeze.
	write(3*bs+4<<10, 4<<10, false)
	write(12*bs, 4<<10, false)
	write(14*bs+4<<10, 4<<10, false) // frozen, untouched until the failure
	errFail := errors.New("injected")
	testHookSnapshotFrozen = func() error {
		write(3*bs, 4<<10, false)  // partial, frozen block 3
		write(12*bs, bs, false)    // whole, frozen block 12
		write(13*bs, 4<<10, false) // partial, new
		return errFail
	}
	if _, err := s.CreateSnapshot("s2", []string{"d"}, ""); !errors.Is(err, errFail) {
		t.Fatalf("snapshot with a failure after the freeze: %v", err)
	}
	testHookSnapshotFrozen = nil
	if _, err := s.GetSnapshot("s2"); err == nil {
		t.Fatal("the failed snapshot exists")
	}
	check("disk after a failed snapshot", h, want)
	write(3*bs+12<<10, 4<<10, false)
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	check("disk after a failed snapshot and a sync", h, want)
	if err := s.verifyAccounting(); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	if h, err = s.OpenDisk("d"); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	check("disk after a reopen", h, want)
	checkSnap("snapshot after a reopen", "s1", snapWant)
	if err := s.verifyAccounting(); err != nil {
		t.Fatal(err)
	}
}
