package rowstore

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// fillDisk makes disk name of size bytes (16 KiB blocks) with every block
// written, committed.
func fillDisk(t testing.TB, s *Store, name string, size int64) {
	t.Helper()
	if _, err := s.CreateDisk(name, size, 16<<10); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk(name)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	for off := int64(0); off < size; off += int64(len(buf)) {
		buf[0]++
		if _, err := h.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.commit(); err != nil {
		t.Fatal(err)
	}
}

// TestAccountingCheckStall: check's accounting comparison (run by `snapfs
// check` through the daemon, writes going on) does not hold a disk's writes
// for the time of counting the whole disk: on a full 1 GiB disk, the
// longest write while it runs stays well under the count's duration.
func TestAccountingCheckStall(t *testing.T) {
	opts := testOptions()
	opts.SegmentSize = 64 << 20
	s, _ := newTestStore(t, opts)
	fillDisk(t, s, "big", 1<<30)
	h, err := s.OpenDisk("big")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// writeDuring writes to the disk while fn runs: fn's duration, the
	// writes made and the longest.
	writeDuring := func(fn func() error) (took time.Duration, n int, worst time.Duration) {
		var done atomic.Bool
		var ferr error
		go func() {
			defer done.Store(true)
			start := time.Now()
			ferr = fn()
			took = time.Since(start)
		}()
		buf := make([]byte, 16<<10)
		for !done.Load() {
			buf[0]++
			start := time.Now()
			if _, err := h.WriteAt(buf, int64(n%1000)*int64(len(buf))); err != nil {
				t.Fatal(err)
			}
			worst = max(worst, time.Since(start))
			n++
			time.Sleep(time.Millisecond)
		}
		if ferr != nil {
			t.Fatal(ferr)
		}
		return took, n, worst
	}
	took, n, worst := writeDuring(s.verifyAccounting)
	t.Logf("verifyAccounting took %v; %d writes meanwhile, the longest %v", took, n, worst)
	if took > 200*time.Millisecond && worst > took/2 {
		t.Fatalf("a write waited %v while the accounting check ran (%v): it holds the disk's lock while counting", worst, took)
	}
	// The exclusive figures' count (background, usage --fresh, check)
	// holds no engine lock either.
	s.excl.changed()
	took, n, worst = writeDuring(func() error { _, err := s.refreshExclusive(); return err })
	t.Logf("exclusive count took %v; %d writes meanwhile, the longest %v", took, n, worst)
	if took > 200*time.Millisecond && worst > took/2 {
		t.Fatalf("a write waited %v while the exclusive figures were counted (%v)", worst, took)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	// Writes stopped: the count is compared, and a wrong one reported.
	if err := s.verifyAccounting(); err != nil {
		t.Fatalf("quiet disk: %v", err)
	}
	id := s.diskNames["big"]
	c, _ := s.acct.get(id)
	s.acct.set(id, s.acct.disks[id].layer, c+1)
	if err := s.verifyAccounting(); !errors.Is(err, errAccounting) {
		t.Fatalf("a wrong count on a quiet disk: %v, want errAccounting", err)
	}
	s.acct.set(id, s.acct.disks[id].layer, c)
}
