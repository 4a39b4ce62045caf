package replicate_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
)

// BenchmarkSync measures a full sync of a 256 MiB disk of random data into
// a 4+2 region of file:// stores on tmpfs against a baseline in the same
// run: reading the snapshot through rowstore and writing it once to a
// plain file (fsynced), as a copy tool would. It reports both rates and
// their ratio.
func BenchmarkSync(b *testing.B) {
	const size = 256 << 20
	ctx := context.Background()
	a := newHost(b, replicate.Options{})
	if _, err := a.rs.CreateDisk("vol1", size, bs); err != nil {
		b.Fatal(err)
	}
	writeBlocks(b, a, "vol1", 21, span(0, size/bs))
	snapshot(b, a, "s1", "vol1")
	b.SetBytes(size)
	var syncTime, copyTime time.Duration
	for i := 0; i < b.N; i++ {
		_, urls := storeDirs(b, testK+testM)
		os.RemoveAll(filepath.Join(a.dir, "regions"))
		addRegion(b, a, urls, keyFile(b, 1))
		t0 := time.Now()
		if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
			b.Fatal(err)
		}
		syncTime += time.Since(t0)

		t0 = time.Now()
		data := readSnapshot(b, a, "s1", "vol1")
		f, err := os.Create(filepath.Join(tmpDir(b), "copy.img"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		copyTime += time.Since(t0)
	}
	mibs := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / (1 << 20) }
	b.ReportMetric(mibs(syncTime), "sync-MiB/s")
	b.ReportMetric(mibs(copyTime), "copy-MiB/s")
	b.ReportMetric(syncTime.Seconds()/copyTime.Seconds(), "sync/copy-time")
}
