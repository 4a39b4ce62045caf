package rowstore

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

var (
	overwriteSize   = flag.Int64("overwrite.size", 64<<20, "disk size of BenchmarkOverwriteSpace")
	overwritePasses = flag.Int("overwrite.passes", 50, "rewrites of the disk in BenchmarkOverwriteSpace")
)

// overwriteResult is what one sustained-overwrite run measured.
type overwriteResult struct {
	maxRatio   float64 // max over samples of segment bytes / live bytes, after the first pass
	finalRatio float64
	mbps       float64 // guest write throughput, MB/s (10^6), syncs included
	// cpu is the process's CPU time (user + system) during the rewrites,
	// in seconds: what the run cost, whatever share of the machine it got.
	cpu     float64
	samples []string
	cleaner CleanerStats
}

// runOverwrite fills a disk, then rewrites it passes times with random
// 4 KiB writes (a Sync every 256 writes), sampling the segment bytes
// against the live bytes (the disk's allocation: no snapshots) 10 times a
// pass. The model of the disk is checked at the end.
func runOverwrite(t testing.TB, dir string, opts Options, size int64, passes int, seed int64) overwriteResult {
	const bs = 4096
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateDisk("d", size, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rng := rand.New(rand.NewSource(seed))
	model := make([]byte, size)
	rng.Read(model)
	for off := int64(0); off < size; off += 1 << 20 {
		if _, err := h.WriteAt(model[off:off+1<<20], off); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	var res overwriteResult
	nblocks := size / bs
	writes := int(nblocks) * passes
	sample := max(writes/(passes*10), 1)
	buf := make([]byte, bs)
	start := time.Now()
	cpu0 := cpuSeconds()
	for i := 0; i < writes; i++ {
		b := rng.Int63n(nblocks)
		rng.Read(buf)
		copy(model[b*bs:], buf)
		if _, err := h.WriteAt(buf, b*bs); err != nil {
			t.Fatal(err)
		}
		if i%256 == 255 {
			if err := h.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		if i%sample == sample-1 {
			segs, live := s.segmentBytes(), h.Allocated()
			r := float64(segs) / float64(live)
			if i >= int(nblocks) {
				res.maxRatio = max(res.maxRatio, r)
			}
			if len(res.samples) < 1000 {
				// pass:segments/live:segment MiB:seconds
				res.samples = append(res.samples, fmt.Sprintf("%.1f:%.2f:%d:%.1f", float64(i)/float64(nblocks), r, segs>>20, time.Since(start).Seconds()))
			}
		}
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	res.mbps = float64(writes) * bs / time.Since(start).Seconds() / 1e6
	res.cpu = cpuSeconds() - cpu0
	res.finalRatio = float64(s.segmentBytes()) / float64(h.Allocated())
	res.cleaner = s.CleanerStats()
	got := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(got)) {
		if _, err := h.ReadAt(got, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, model[off:off+int64(len(got))]) {
			t.Fatalf("disk differs from the model in the MiB at %d", off)
		}
	}
	return res
}

func overwriteOptions(cleaner bool) Options {
	o := Options{SyncInterval: -1, GCInterval: -1, ReserveBytes: -1}
	if cleaner {
		o.GCInterval = time.Hour // the background cleaner alone does the work
	}
	if v := os.Getenv("SNAPFS_OVERWRITE_SEGMENT"); v != "" {
		fmt.Sscan(v, &o.SegmentSize)
	}
	if v := os.Getenv("SNAPFS_CLEANER_TUNE"); v != "" { // experiments: start,target,batchdiv,segdiv[,limit]
		fmt.Sscanf(v, "%g,%g,%d,%d,%g", &incStart, &incTarget, &incBatchDiv, &incSegDiv, &cleanerLimit)
	}
	if os.Getenv("SNAPFS_CLEANER_DEBUG") != "" {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return o
}

// TestCleanerBound: under sustained random overwrite, the background
// cleaner alone keeps the segments within 1.5 × live, and Usage says the
// same before and after it cleaned.
func TestCleanerBound(t *testing.T) {
	size, passes := int64(16<<20), 6
	if testing.Short() || raceEnabled {
		size, passes = 8<<20, 3 // the cleaner starts at an 8 MiB log
	}
	res := runOverwrite(t, filepath.Join(t.TempDir(), "store"), overwriteOptions(true), size, passes, 1)
	t.Logf("max ratio %.2f, final %.2f, %.1f MB/s, cleaner %+v", res.maxRatio, res.finalRatio, res.mbps, res.cleaner)
	if res.cleaner.Rounds == 0 || res.cleaner.BytesFreed == 0 {
		t.Fatalf("the background cleaner did nothing: %+v", res.cleaner)
	}
	if res.maxRatio > 1.5 {
		t.Errorf("segments reached %.2f × live (samples %v)", res.maxRatio, res.samples)
	}
}

// TestCleanerUsage: Usage agrees before and after the cleaner moved records
// (per disk, snapshot and image, and live bytes), and reads are unchanged.
func TestCleanerUsage(t *testing.T) {
	const bs = 4096
	opts := testOptions()
	opts.SegmentSize = 1 << 20
	s, _ := newTestStore(t, opts)
	rng := rand.New(rand.NewSource(2))
	if _, err := s.CreateDisk("a", 4<<20, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("a")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, bs)
	write := func(n int) {
		for i := 0; i < n; i++ {
			rng.Read(buf)
			if _, err := h.WriteAt(buf, rng.Int63n(1024)*bs); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	n := 3000
	if raceEnabled {
		n = 1000
	}
	write(n)
	if _, err := s.CreateSnapshot("s1", []string{"a"}, ""); err != nil {
		t.Fatal(err)
	}
	write(n / 2)
	if _, err := s.CreateImage("img", "s1", "a"); err != nil {
		t.Fatal(err)
	}
	write(n / 2)
	before, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 4<<20)
	if _, err := h.ReadAt(content, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.cleanRound(); err != nil {
		t.Fatal(err)
	}
	if st := s.CleanerStats(); st.BytesFreed == 0 {
		t.Fatalf("the round freed nothing: %+v", st)
	}
	after, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	before.Store, after.Store = StoreUsage{LiveBytes: before.Store.LiveBytes}, StoreUsage{LiveBytes: after.Store.LiveBytes}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("usage changed by cleaning:\nbefore %+v\nafter  %+v", before, after)
	}
	got := make([]byte, 4<<20)
	if _, err := h.ReadAt(got, 0); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("disk changed by cleaning (err %v)", err)
	}
}

// BenchmarkOverwriteSpace rewrites a disk -overwrite.passes times with
// random 4 KiB writes, with and without the background cleaner, and
// reports the segment bytes over time (max and final ratio to live, and
// samples of pass:ratio:MiB:seconds), the write throughput and the CPU
// time per GB written. One iteration is one whole run (use -benchtime=1x;
// -test.count N runs the two cases interleaved, A/B/A/B).
func BenchmarkOverwriteSpace(b *testing.B) {
	for _, cl := range []bool{false, true} {
		b.Run(fmt.Sprintf("cleaner=%v", cl), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				res := runOverwrite(b, filepath.Join(b.TempDir(), "store"), overwriteOptions(cl), *overwriteSize, *overwritePasses, int64(i+1))
				b.ReportMetric(res.maxRatio, "max-segs/live")
				b.ReportMetric(res.finalRatio, "final-segs/live")
				b.ReportMetric(res.mbps, "MB/s")
				b.ReportMetric(res.cpu/(float64(*overwriteSize)*float64(*overwritePasses)/1e9), "cpu-s/GB")
				b.ReportMetric(float64(res.cleaner.BytesRelocated)/float64(*overwriteSize)/float64(*overwritePasses), "relocated/written")
				b.Logf("cleaner=%v: max %.2f final %.2f %.1f MB/s, %.1f s CPU %+v\nsamples (pass:segments/live:segment MiB:seconds) %v", cl, res.maxRatio, res.finalRatio, res.mbps, res.cpu, res.cleaner, res.samples)
			}
		})
	}
}

// cpuSeconds is the CPU time (user + system) the process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
