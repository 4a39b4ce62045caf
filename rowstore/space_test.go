package rowstore

import (
	"fmt"
	"math/rand"
	"testing"
)

func within(got, want int64, tol float64) bool {
	return float64(got) >= float64(want)*(1-tol) && float64(got) <= float64(want)*(1+tol)
}

// TestSpace checks that only written blocks are stored, that a snapshot
// followed by a rewrite costs the rewritten bytes, and that GC and the
// cleaner give the space back once snapshots are deleted.
func TestSpace(t *testing.T) {
	opts := testOptions()
	opts.SegmentSize = 16 << 20
	opts.CacheBytes = 32 << 20
	s, _ := newTestStore(t, opts)
	const MiB = 1 << 20
	if _, err := s.CreateDisk("big", 10<<30, 64<<10); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("big")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rng := rand.New(rand.NewSource(1))
	buf := make([]byte, MiB)
	write := func(off int64, n int) {
		for i := 0; i < n; i++ {
			rng.Read(buf)
			if _, err := h.WriteAt(buf, off+int64(i)*MiB); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	// 100 MiB spread over the 10 GiB disk: 1 MiB every 100 MiB.
	for i := 0; i < 100; i++ {
		write(int64(i)*100*MiB, 1)
	}
	segBytes := func() int64 {
		var n int64
		for _, si := range s.seg.Segments() {
			n += si.Size
		}
		return n
	}
	if a := h.Allocated(); a != 100*MiB {
		t.Fatalf("allocated %d bytes after writing 100 MiB, want %d", a, 100*MiB)
	}
	base := segBytes()
	if !within(base, 100*MiB, 0.05) {
		t.Fatalf("store holds %d bytes of segments after 100 MiB written", base)
	}
	t.Logf("100 MiB written: %d MiB of segments", base/MiB)
	// Ten snapshots, each followed by rewriting the same 64 MiB.
	for i := 0; i < 10; i++ {
		if _, err := s.CreateSnapshot(fmt.Sprintf("s%d", i), []string{"big"}, ""); err != nil {
			t.Fatal(err)
		}
		write(5<<30, 64)
	}
	grown := segBytes() - base
	if !within(grown, 10*64*MiB, 0.05) {
		t.Fatalf("ten snapshots and 64 MiB rewrites grew the store by %d MiB, want about %d", grown/MiB, 640)
	}
	u, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if excl := u.Snapshots[3].Exclusive; excl != 64*MiB {
		t.Fatalf("snapshot s3 holds %d bytes exclusively, want 64 MiB", excl)
	}
	t.Logf("after 10 snapshots: %d MiB of segments; s3 exclusive %d MiB", segBytes()/MiB, u.Snapshots[3].Exclusive/MiB)
	for i := 0; i < 10; i++ {
		if err := s.DeleteSnapshot(fmt.Sprintf("s%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.GC()
	if err != nil {
		t.Fatal(err)
	}
	live := h.Allocated()
	after := segBytes()
	t.Logf("after deleting the snapshots and GC: %d MiB of segments for %d MiB live (%+v)", after/MiB, live/MiB, st)
	if after > live+live/4+opts.SegmentSize {
		t.Fatalf("GC left %d MiB of segments for %d MiB of live data", after/MiB, live/MiB)
	}
	// Everything still reads back.
	if _, err := h.ReadAt(buf, 5<<30); err != nil {
		t.Fatal(err)
	}
}
