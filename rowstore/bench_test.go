package rowstore

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The benchmarks compare the engine with a plain file on the same
// filesystem doing the same writes, reads and syncs, in the same run:
// report ratios, not absolute numbers (scripts/bench.sh prints them).

var benchBlockSizes = []int{4 << 10, 16 << 10, 64 << 10}

type rw interface {
	ReadAt([]byte, int64) (int, error)
	WriteAt([]byte, int64) (int, error)
	Sync() error
}

type plainFile struct{ *os.File }

func (f plainFile) Sync() error { return f.File.Sync() }

func benchStoreOptions() Options {
	return Options{SyncInterval: -1, GCInterval: -1}
}

func openTargets(b *testing.B, size int64, fn func(b *testing.B, name string, t rw)) {
	for _, bs := range benchBlockSizes {
		b.Run(fmt.Sprintf("engine-bs%dK", bs>>10), func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "store")
			opts := benchStoreOptions()
			if err := Create(dir, opts); err != nil {
				b.Fatal(err)
			}
			s, err := Open(dir, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, err := s.CreateDisk("d", size, bs); err != nil {
				b.Fatal(err)
			}
			h, err := s.OpenDisk("d")
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			fn(b, "engine", h)
		})
	}
	b.Run("plainfile", func(b *testing.B) {
		f, err := os.OpenFile(filepath.Join(b.TempDir(), "file"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			b.Fatal(err)
		}
		fn(b, "file", plainFile{f})
	})
}

// BenchmarkSeqWrite1M: sequential 1 MiB writes, one sync at the end.
func BenchmarkSeqWrite1M(b *testing.B) {
	const size = 4 << 30
	openTargets(b, size, func(b *testing.B, _ string, t rw) {
		buf := make([]byte, 1<<20)
		rand.New(rand.NewSource(1)).Read(buf)
		b.SetBytes(int64(len(buf)))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			buf[0] = byte(i)
			if _, err := t.WriteAt(buf, int64(i)*(1<<20)%size); err != nil {
				b.Fatal(err)
			}
		}
		if err := t.Sync(); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkRandWrite4K: random 4 KiB writes over 1 GiB, a sync every 64.
func BenchmarkRandWrite4K(b *testing.B) {
	const size = 1 << 30
	openTargets(b, size, func(b *testing.B, _ string, t rw) {
		rng := rand.New(rand.NewSource(2))
		buf := make([]byte, 4096)
		rng.Read(buf)
		b.SetBytes(4096)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			buf[0] = byte(i)
			if _, err := t.WriteAt(buf, rng.Int63n(size/4096)*4096); err != nil {
				b.Fatal(err)
			}
			if i%64 == 63 {
				if err := t.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := t.Sync(); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkSeqRead1M: sequential 1 MiB reads of 256 MiB written before.
func BenchmarkSeqRead1M(b *testing.B) {
	const size = 256 << 20
	openTargets(b, size, func(b *testing.B, _ string, t rw) {
		buf := make([]byte, 1<<20)
		rng := rand.New(rand.NewSource(3))
		for off := int64(0); off < size; off += int64(len(buf)) {
			rng.Read(buf)
			if _, err := t.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := t.Sync(); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(buf)))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := t.ReadAt(buf, int64(i)*(1<<20)%size); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRandRead4K: random 4 KiB reads of 256 MiB written before (the
// block map's case: a partial block of a known place, no index transaction).
func BenchmarkRandRead4K(b *testing.B) {
	const size = 256 << 20
	openTargets(b, size, func(b *testing.B, _ string, t rw) {
		buf := make([]byte, 1<<20)
		rng := rand.New(rand.NewSource(4))
		for off := int64(0); off < size; off += int64(len(buf)) {
			rng.Read(buf)
			if _, err := t.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := t.Sync(); err != nil {
			b.Fatal(err)
		}
		buf = buf[:4096]
		b.SetBytes(int64(len(buf)))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := t.ReadAt(buf, rng.Int63n(size/4096)*4096); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMetadataOps: snapshot, clone and rollback with 1 GiB and 8 GiB
// written; their time must not grow with the data.
func BenchmarkMetadataOps(b *testing.B) {
	for _, gib := range []int64{1, 8} {
		b.Run(fmt.Sprintf("written=%dGiB", gib), func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "store")
			opts := benchStoreOptions()
			if err := Create(dir, opts); err != nil {
				b.Fatal(err)
			}
			s, err := Open(dir, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, err := s.CreateDisk("d", 16<<30, 0); err != nil {
				b.Fatal(err)
			}
			h, _ := s.OpenDisk("d")
			buf := make([]byte, 1<<20)
			rand.New(rand.NewSource(4)).Read(buf)
			for off := int64(0); off < gib<<30; off += 1 << 20 {
				buf[0]++
				if _, err := h.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
			}
			if err := h.Sync(); err != nil {
				b.Fatal(err)
			}
			h.Close()
			if _, err := s.CreateSnapshot("base", []string{"d"}, ""); err != nil {
				b.Fatal(err)
			}
			n := 0
			b.Run("fsync-baseline", func(b *testing.B) {
				// One durable metadata change costs one fsync of Badger's
				// log; this is what an fsync of a small write costs here.
				f, err := os.Create(filepath.Join(dir, "fsync-probe"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				for i := 0; i < b.N; i++ {
					f.WriteAt(buf[:4096], 0)
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("snapshot", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					n++
					if _, err := s.CreateSnapshot(fmt.Sprintf("s%d", n), []string{"d"}, ""); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("clone", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					n++
					if _, err := s.CloneDisk(fmt.Sprintf("c%d", n), "base", "d"); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("rollback", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if err := s.RollbackDisk("d", "base", false); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkBlockSizeStudy measures, per block size, what a snapshot costs
// after 1 % of a 1 GiB disk was rewritten with random 4 KiB writes, and the
// index size per GiB written. Custom metrics: snap-MiB, index-MiB/GiB.
func BenchmarkBlockSizeStudy(b *testing.B) {
	for _, bs := range benchBlockSizes {
		b.Run(fmt.Sprintf("bs%dK", bs>>10), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				dir := filepath.Join(b.TempDir(), "store")
				opts := benchStoreOptions()
				if err := Create(dir, opts); err != nil {
					b.Fatal(err)
				}
				s, err := Open(dir, opts)
				if err != nil {
					b.Fatal(err)
				}
				const size = 1 << 30
				s.CreateDisk("d", size, bs)
				h, _ := s.OpenDisk("d")
				buf := make([]byte, 1<<20)
				rng := rand.New(rand.NewSource(5))
				for off := int64(0); off < size; off += 1 << 20 {
					rng.Read(buf)
					h.WriteAt(buf, off)
				}
				h.Sync()
				s.CreateSnapshot("s1", []string{"d"}, "")
				seg := func() int64 {
					var n int64
					for _, si := range s.seg.Segments() {
						n += si.Size
					}
					return n
				}
				before := seg()
				small := make([]byte, 4096)
				for j := 0; j < size/100/4096; j++ {
					rng.Read(small)
					h.WriteAt(small, rng.Int63n(size/4096)*4096)
				}
				h.Sync()
				s.CreateSnapshot("s2", []string{"d"}, "")
				grown := seg() - before
				h.Close()
				s.Close()
				b.ReportMetric(float64(grown)/(1<<20), "snap-MiB")
				b.ReportMetric(float64(dirSize(filepath.Join(dir, "index")))/(1<<20)/1.01, "index-MiB/GiB")
			}
		})
	}
}

// BenchmarkRandWrite4KParallel: random 4 KiB writes from 16 goroutines (as
// fio's iodepth 16 through the mount) over a disk written whole before,
// with the daemon's background write-back, commit and cleaner running: the
// read-modify-write path of the write-back cache under its real
// contention. It reports the process's CPU time per write (cpu-us/op),
// which a loaded machine blurs less than the time per write.
func BenchmarkRandWrite4KParallel(b *testing.B) {
	const size, writers = 256 << 20, 16
	dir := filepath.Join(b.TempDir(), "store")
	opts := Options{} // the daemon's defaults
	if err := Create(dir, opts); err != nil {
		b.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateDisk("d", size, DefaultBlockSize); err != nil {
		b.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, 1<<20)
	rng := rand.New(rand.NewSource(3))
	for off := int64(0); off < size; off += int64(len(buf)) {
		rng.Read(buf)
		if _, err := h.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := h.Sync(); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	b.SetBytes(4096)
	cpu0 := processCPU()
	b.ResetTimer()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			p := make([]byte, 4096)
			rng.Read(p)
			for next.Add(1) <= int64(b.N) {
				p[0]++
				if _, err := h.WriteAt(p, rng.Int63n(size/4096)*4096); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if err := h.Sync(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
}

// processCPU is the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
