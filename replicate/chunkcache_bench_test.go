package replicate_test

import (
	"bufio"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
)

// timings collects the "chunks" step of sync's debug timings.
type timings struct {
	mu     sync.Mutex
	chunks []time.Duration
}

func (h *timings) Enabled(context.Context, slog.Level) bool { return true }
func (h *timings) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *timings) WithGroup(string) slog.Handler            { return h }
func (h *timings) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "sync timings" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "chunks" {
			if d, ok := a.Value.Any().(time.Duration); ok {
				h.mu.Lock()
				h.chunks = append(h.chunks, d)
				h.mu.Unlock()
			}
		}
		return true
	})
	return nil
}

func (h *timings) last() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.chunks) == 0 {
		return 0
	}
	return h.chunks[len(h.chunks)-1]
}

// vmHWM is the process's peak RSS (VmHWM), in MiB.
func vmHWM() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			var kb float64
			for _, w := range strings.Fields(v) {
				if n, err := strconv.ParseFloat(w, 64); err == nil {
					kb = n
					break
				}
			}
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkIncrementalSyncChunkSet: the fixed cost of an incremental sync
// of a small change against a region holding many chunks, with the
// region's chunk set kept in the Manager between syncs (kept) and loaded
// from the index cache each time (loaded, as before), interleaved sync by
// sync in one process (a loaded sync's set is not kept: the next kept
// sync adds two syncs' packs to the set kept before). The disk has 4 KiB blocks so that a 512 MiB disk
// gives the region 131072 chunks, as many as 2 GiB of the default 16 KiB
// blocks (SNAPFS_BENCH_MIB sets the size). Each sync follows a rewrite of
// 64 random blocks. Reported: wall time of a sync and of its chunk-set
// step, per mode, and the process's peak RSS.
//
// Measured (load 14-15 on 2 cores, 8 syncs each, 131072 chunks): sync
// 67 ms kept vs 317 ms loaded, its chunk-set step 17 vs 85 ms; a region
// disk open 231 vs 327 ms; the kept set 20.5 MiB.
func BenchmarkIncrementalSyncChunkSet(b *testing.B) {
	const blk = 4096
	size := int64(envInt("SNAPFS_BENCH_MIB", 512)) << 20
	ctx := context.Background()
	th := &timings{}
	a := newHost(b, replicate.Options{Logger: slog.New(th), PackSize: 8 << 20})
	if _, err := a.rs.CreateDisk("vol1", size, blk); err != nil {
		b.Fatal(err)
	}
	d, err := a.rs.OpenDisk("vol1")
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{7})
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		rng.Read(buf)
		if _, err := d.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Sync(); err != nil {
		b.Fatal(err)
	}
	snapshot(b, a, "s0", "vol1")
	_, urls := storeDirs(b, testK+testM)
	addRegion(b, a, urls, keyFile(b, 1))
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		b.Fatal(err)
	}
	pick := rand.New(rand.NewPCG(3, 4))
	var wall, chunks [2]time.Duration
	var n [2]int
	blockBuf := make([]byte, blk)
	for i := 0; i < b.N*2; i++ {
		mode := i % 2 // 0 kept, 1 loaded
		restore := func() {}
		if mode == 1 {
			restore = a.mgr.StashChunkSets()
		}
		for range 64 {
			rng.Read(blockBuf)
			if _, err := d.WriteAt(blockBuf, pick.Int64N(size/blk)*blk); err != nil {
				b.Fatal(err)
			}
		}
		if err := d.Sync(); err != nil {
			b.Fatal(err)
		}
		snapshot(b, a, "s"+strconv.Itoa(i+1), "vol1")
		t0 := time.Now()
		st, err := a.mgr.Sync(ctx, "r1", nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		if st.Snapshots != 1 {
			b.Fatalf("sync copied %d snapshots", st.Snapshots)
		}
		wall[mode] += time.Since(t0)
		restore()
		chunks[mode] += th.last()
		n[mode]++
	}
	d.Close()
	// Opening a region disk (lazy restore) loads the same set.
	var open [2]time.Duration
	for i := range 2 * b.N {
		mode := i % 2
		restore := func() {}
		if mode == 1 {
			restore = a.mgr.StashChunkSets()
		}
		t0 := time.Now()
		rd, err := a.mgr.OpenRemoteDisk(ctx, "r1", "s1", "vol1")
		if err != nil {
			b.Fatal(err)
		}
		open[mode] += time.Since(t0)
		rd.Close()
		restore()
	}
	// What the kept set costs in memory: the heap in use with it and
	// without it.
	runtime.GC()
	var with, without runtime.MemStats
	runtime.ReadMemStats(&with)
	_ = a.mgr.StashChunkSets() // dropped
	runtime.GC()
	runtime.ReadMemStats(&without)
	b.ReportMetric(float64(int64(with.HeapInuse)-int64(without.HeapInuse))/(1<<20), "kept-set-MiB")
	for mode, name := range []string{"kept", "loaded"} {
		b.ReportMetric(open[mode].Seconds()/float64(b.N)*1000, name+"-open-ms")
		b.ReportMetric(wall[mode].Seconds()/float64(n[mode])*1000, name+"-sync-ms")
		b.ReportMetric(chunks[mode].Seconds()/float64(n[mode])*1000, name+"-chunks-ms")
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(vmHWM(), "peak-RSS-MiB")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MiB")
}
