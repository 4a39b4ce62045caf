package rowstore

import (
	"flag"
	"fmt"
	"math/rand"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	snapLoadDur    = flag.Duration("snapload.dur", 10*time.Second, "BenchmarkSnapshotUnderLoad: length of each phase")
	snapLoadEvery  = flag.Duration("snapload.every", time.Second, "BenchmarkSnapshotUnderLoad: time between snapshots")
	snapLoadSize   = flag.Int64("snapload.size", 1<<30, "BenchmarkSnapshotUnderLoad: disk size")
	snapLoadWriter = flag.Int("snapload.writers", 16, "BenchmarkSnapshotUnderLoad: concurrent writers")
	snapLoadBS     = flag.Int("snapload.wsize", 4096, "BenchmarkSnapshotUnderLoad: bytes a write (4096: random; larger: sequential)")
	snapLoadCache  = flag.Int64("snapload.cache", 0, "BenchmarkSnapshotUnderLoad: Options.CacheBytes (0: the default)")
)

// BenchmarkSnapshotUnderLoad: writers at full speed on a disk of 16 KiB
// blocks (random 4 KiB writes, or sequential ones of -snapload.wsize), a
// phase without snapshots then one with a snapshot every -snapload.every:
// reports the snapshots' p50/p99 latency and the writers' dip. The engine's
// analog of the under-load phase of scripts/bench-snapload.sh.
func BenchmarkSnapshotUnderLoad(b *testing.B) {
	for i := 0; i < b.N; i++ {
		dir := filepath.Join(b.TempDir(), "store")
		opts := Options{CacheBytes: *snapLoadCache}
		if err := Create(dir, opts); err != nil {
			b.Fatal(err)
		}
		s, err := Open(dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		size := *snapLoadSize
		if _, err := s.CreateDisk("d", size, 16<<10); err != nil {
			b.Fatal(err)
		}
		h, err := s.OpenDisk("d")
		if err != nil {
			b.Fatal(err)
		}
		// Half the disk written first, so partial writes read something.
		buf := make([]byte, 1<<20)
		rand.New(rand.NewSource(1)).Read(buf)
		for off := int64(0); off < size/2; off += int64(len(buf)) {
			if _, err := h.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := h.Sync(); err != nil {
			b.Fatal(err)
		}
		run := func(snaps bool) (float64, []time.Duration) {
			var stop atomic.Bool
			var ops atomic.Int64
			var wg sync.WaitGroup
			wsize := *snapLoadBS
			var seqOff atomic.Int64
			for w := 0; w < *snapLoadWriter; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					rng := rand.New(rand.NewSource(int64(w) + 7))
					p := make([]byte, wsize)
					rng.Read(p)
					for !stop.Load() {
						var off int64
						if wsize == 4096 {
							off = rng.Int63n(size/4096) * 4096
						} else {
							off = (seqOff.Add(int64(wsize)) - int64(wsize)) % (size - int64(wsize))
							off -= off % int64(wsize)
						}
						p[0]++
						if _, err := h.WriteAt(p, off); err != nil {
							b.Error(err)
							return
						}
						ops.Add(1)
					}
				}(w)
			}
			var lats []time.Duration
			start := time.Now()
			n := 0
			for time.Since(start) < *snapLoadDur {
				time.Sleep(*snapLoadEvery)
				if !snaps {
					continue
				}
				t0 := time.Now()
				if _, err := s.CreateSnapshot(fmt.Sprintf("s%d-%d", i, n), []string{"d"}, ""); err != nil {
					b.Error(err)
				}
				lats = append(lats, time.Since(t0))
				n++
			}
			el := time.Since(start)
			stop.Store(true)
			wg.Wait()
			return float64(ops.Load()) / el.Seconds(), lats
		}
		without, _ := run(false)
		with, lats := run(true)
		sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
		pct := func(p int) time.Duration {
			if len(lats) == 0 {
				return 0
			}
			k := (len(lats)*p + 99) / 100
			return lats[max(k-1, 0)]
		}
		b.ReportMetric(without, "ops/s-without")
		b.ReportMetric(with, "ops/s-with")
		b.ReportMetric(100*(without-with)/without, "dip%")
		b.ReportMetric(float64(pct(50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(pct(99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lats[len(lats)-1].Microseconds())/1000, "max-ms")
		h.Close()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
