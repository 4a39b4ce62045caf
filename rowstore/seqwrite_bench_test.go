package rowstore

import (
	"math/rand"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSeqWriteFresh is the mount's sequential-write job at engine
// level: a fresh store with its background (the cleaner on, as the daemon
// runs it, or off), one writer of 1 MiB writes of new content over 1 GiB
// of a 16 KiB-block disk, one Sync at the end (fio's end_fsync). It
// reports MB/s, the process's CPU seconds per GiB written and the log's
// segment count, so that write-path changes can be compared with the
// cleaner's small segments (a rotation every few writes on a fresh
// store) and without them.
func BenchmarkSeqWriteFresh(b *testing.B) {
	const size = 1 << 30
	for _, mode := range []string{"cleaner", "nocleaner"} {
		b.Run(mode, func(b *testing.B) {
			pool := make([]byte, 64<<20)
			rand.New(rand.NewSource(4)).Read(pool)
			b.SetBytes(size)
			var cpu, wall time.Duration
			var segs int
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dir := filepath.Join(b.TempDir(), "store")
				opts := Options{NoCleaner: mode == "nocleaner"}
				if err := Create(dir, opts); err != nil {
					b.Fatal(err)
				}
				s, err := Open(dir, opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.CreateDisk("d", size, 16<<10); err != nil {
					b.Fatal(err)
				}
				h, err := s.OpenDisk("d")
				if err != nil {
					b.Fatal(err)
				}
				c0, t0 := procCPU(), time.Now()
				b.StartTimer()
				for off := int64(0); off < size; off += 1 << 20 {
					p := pool[off%int64(len(pool)-(2<<20)) : off%int64(len(pool)-(2<<20))+1<<20]
					p[0]++ // new content at every write
					if _, err := h.WriteAt(p, off); err != nil {
						b.Fatal(err)
					}
				}
				if err := h.Sync(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += procCPU() - c0
				wall += time.Since(t0)
				segs += len(s.seg.Segments())
				h.Close()
				s.Close()
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/GiB")
			b.ReportMetric(float64(segs)/float64(b.N), "segments")
		})
	}
}

// procCPU is the process's user and system CPU time so far.
func procCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRandAfterSeqWrite: the bench's random jobs after its sequential
// write, at engine level: a fresh store with its background (the cleaner
// on, as the daemon runs it), 1 GiB written sequentially in 1 MiB writes
// (hundreds of small segments: the cleaner's rotation size), then 16
// goroutines (fio's iodepth) of random 4 KiB writes, a Sync every 64 per
// goroutine, or of random 4 KiB reads. It reports the operations' rate and
// the process's CPU per operation.
func BenchmarkRandAfterSeqWrite(b *testing.B) {
	const size = 1 << 30
	for _, mode := range []string{"write", "read"} {
		b.Run(mode, func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "store")
			if err := Create(dir, Options{}); err != nil {
				b.Fatal(err)
			}
			s, err := Open(dir, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, err := s.CreateDisk("d", size, 16<<10); err != nil {
				b.Fatal(err)
			}
			h, err := s.OpenDisk("d")
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			buf := make([]byte, 1<<20)
			rng := rand.New(rand.NewSource(6))
			for off := int64(0); off < size; off += int64(len(buf)) {
				rng.Read(buf)
				if _, err := h.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
			}
			if err := h.Sync(); err != nil {
				b.Fatal(err)
			}
			const workers = 16
			var next atomic.Int64
			var wg sync.WaitGroup
			c0 := procCPU()
			b.ResetTimer()
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					rng := rand.New(rand.NewSource(int64(w)))
					p := make([]byte, 4096)
					rng.Read(p)
					for i := 0; next.Add(1) <= int64(b.N); i++ {
						off := rng.Int63n(size/4096) * 4096
						if mode == "read" {
							if _, err := h.ReadAt(p, off); err != nil {
								b.Error(err)
								return
							}
							continue
						}
						p[0] = byte(i)
						if _, err := h.WriteAt(p, off); err != nil {
							b.Error(err)
							return
						}
						if i%64 == 63 {
							if err := h.Sync(); err != nil {
								b.Error(err)
								return
							}
						}
					}
				}(w)
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64((procCPU()-c0).Microseconds())/float64(b.N), "cpu-us/op")
			b.ReportMetric(float64(len(s.seg.Segments())), "segments")
		})
	}
}
