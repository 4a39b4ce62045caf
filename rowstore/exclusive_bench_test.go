package rowstore

import (
	"fmt"
	"math/rand"
	"sort"
	"testing"
	"time"
)

// BenchmarkUsage times Usage with 0 and 1 GiB written to a disk of 16 KiB
// blocks and 100 snapshots taken along the way (a tenth of the data
// rewritten between snapshots), three ways, interleaved in the same loop:
//
//   - before: what Usage did before the figures were kept: GC's full scan
//     of the index (gc.go) plus the listings;
//   - fresh: FreshUsage after a change (`usage --fresh`): one count;
//   - kept: Usage with figures kept (exclusive.go): no count.
//
// Metrics: the median of each, in ms, and before/kept.
func BenchmarkUsage(b *testing.B) {
	for _, mib := range []int64{0, 1024} {
		b.Run(fmt.Sprintf("written=%dMiB", mib), func(b *testing.B) {
			s, _ := newTestStore(b, benchStoreOptions())
			const diskSize = 1 << 30
			if _, err := s.CreateDisk("d", diskSize, 16<<10); err != nil {
				b.Fatal(err)
			}
			h, err := s.OpenDisk("d")
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 1<<20)
			rng := rand.New(rand.NewSource(5))
			rng.Read(buf)
			per := mib / 100 // MiB written between snapshots
			for i := 0; i < 100; i++ {
				for j := int64(0); j < per; j++ {
					buf[0]++
					// The first half of the rounds fills the disk, the rest rewrites random MiBs.
					off := (int64(i)*per + j) << 20
					if off >= diskSize || i >= 50 {
						off = rng.Int63n(diskSize>>20) << 20
					}
					if _, err := h.WriteAt(buf, off); err != nil {
						b.Fatal(err)
					}
				}
				if err := h.Sync(); err != nil {
					b.Fatal(err)
				}
				if _, err := s.CreateSnapshot(fmt.Sprintf("s%d", i), []string{"d"}, ""); err != nil {
					b.Fatal(err)
				}
			}
			h.Close()
			if _, err := s.FreshUsage(); err != nil {
				b.Fatal(err)
			}
			var before, fresh, kept []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := s.scan(); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Usage(); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				s.excl.changed()
				if _, err := s.FreshUsage(); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				if u, err := s.Usage(); err != nil || u.Store.ExclusiveStale {
					b.Fatal(err, u.Store.ExclusiveStale)
				}
				t3 := time.Now()
				before, fresh, kept = append(before, t1.Sub(t0)), append(fresh, t2.Sub(t1)), append(kept, t3.Sub(t2))
			}
			med := func(d []time.Duration) float64 {
				sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
				return float64(d[len(d)/2]) / 1e6
			}
			mb, mf, mk := med(before), med(fresh), med(kept)
			b.ReportMetric(mb, "before-ms")
			b.ReportMetric(mf, "fresh-ms")
			b.ReportMetric(mk, "kept-ms")
			b.ReportMetric(mb/mk, "before/kept")
			b.ReportMetric(0, "ns/op")
		})
	}
}
