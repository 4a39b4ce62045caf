package rowstore

import (
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkRebuild15 times Rebuild of a clean store holding one 1 GiB disk
// of 4 KiB blocks, every block written once (a clean scan: scan15's resync
// must cost nothing there). SNAPFS_SCAN15_STORE names a store directory
// kept between runs (created on the first), so that builds before and
// after a change rebuild the same store; without it the store is made in
// a temporary directory. Each iteration moves the old index aside (not
// timed: removed) and rebuilds.
func BenchmarkRebuild15(b *testing.B) {
	const size, bs = 1 << 30, 4096
	dir := os.Getenv("SNAPFS_SCAN15_STORE")
	if dir == "" {
		dir = filepath.Join(b.TempDir(), "store")
	}
	opts := benchStoreOptions()
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := Create(dir, opts); err != nil {
			b.Fatal(err)
		}
		s, err := Open(dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.CreateDisk("d", size, bs); err != nil {
			b.Fatal(err)
		}
		h, err := s.OpenDisk("d")
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		rng := rand.New(rand.NewSource(1))
		for off := int64(0); off < size; off += int64(len(buf)) {
			rng.Read(buf)
			if _, err := h.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := h.Sync(); err != nil {
			b.Fatal(err)
		}
		h.Close()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	} else if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		old, _ := filepath.Glob(filepath.Join(dir, "index.bad-*"))
		for _, o := range old {
			if err := os.RemoveAll(o); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		rep, err := Rebuild(dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Records < size/bs || !rep.Whole() {
			b.Fatalf("rebuild report %+v: want %d block records, whole", rep, size/bs)
		}
	}
}
