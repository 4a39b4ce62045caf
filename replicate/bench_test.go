package replicate_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
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

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkRegionPhases measures the region pipeline against a sequential
// read of the same snapshot through rowstore (1 MiB reads, the in-process
// equivalent of reading the disk), interleaved in one run so that the
// machine's load hits both alike:
//
//	seqread   read the snapshot sequentially (baseline; measured before
//	          each phase, the phase's ratio uses the mean of the reads
//	          around it)
//	full      full sync of the snapshot into a 4+2 file:// region
//	restore   restore of it into a new disk
//	incr      incremental sync after 1 % of the disk was rewritten by
//	          4 KiB random writes (the time; its bytes are deliverable 3's)
//
// The disk (default block size, 16 KiB) holds random data, so compression
// finds nothing: the worst case for "compression that skips
// incompressible data". Knobs (environment): SNAPFS_BENCH_MIB (disk size,
// default 256), SNAPFS_BENCH_SNAPS (extra snapshots of small changes
// taken first, as in a store that has run for a while; default 0),
// SNAPFS_BENCH_DIR (where the store and the region's stores live; default
// /dev/shm),
// SNAPFS_BENCH_PROFILE (a directory: a CPU profile per phase, and
// allocation and block profiles after each), SNAPFS_BENCH_DROP (drop the
// page cache before each phase, as scripts/bench.sh does; root),
// SNAPFS_BENCH_LOG (debug log, with sync's step timings, to stderr).
func BenchmarkRegionPhases(b *testing.B) {
	size := int64(envInt("SNAPFS_BENCH_MIB", 256)) << 20
	extra := envInt("SNAPFS_BENCH_SNAPS", 0)
	if os.Getenv("SNAPFS_BENCH_SNAPS") == "0" {
		extra = 0
	}
	profDir := os.Getenv("SNAPFS_BENCH_PROFILE")
	ctx := context.Background()
	root := os.Getenv("SNAPFS_BENCH_DIR")
	if root == "" {
		root = tmpDir(b)
	} else {
		d, err := os.MkdirTemp(root, "region-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		root = d
	}
	dir := filepath.Join(root, "store")
	if err := rowstore.Create(dir, rowstore.Options{}); err != nil {
		b.Fatal(err)
	}
	rs, err := rowstore.Open(dir, rowstore.Options{SyncInterval: -1, GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	var ropts replicate.Options
	if os.Getenv("SNAPFS_BENCH_LOG") != "" {
		ropts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	mgr, err := replicate.New(dir, rs, ropts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mgr.Close(); rs.Close() })
	a := &host{dir: dir, rs: rs, mgr: mgr}
	drop := os.Getenv("SNAPFS_BENCH_DROP") != ""
	const bsz = rowstore.DefaultBlockSize
	if _, err := rs.CreateDisk("vol1", size, bsz); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(d *rowstore.Disk, off int64, p []byte) {
		for i := 0; i+8 <= len(p); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				p[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := d.WriteAt(p, off); err != nil {
			b.Fatal(err)
		}
	}
	d, err := rs.OpenDisk("vol1")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		fill(d, off, buf)
	}
	small := make([]byte, 4096)
	for i := range extra {
		fill(d, rng.Int64N(size/4096)*4096, small)
		if err := d.Sync(); err != nil {
			b.Fatal(err)
		}
		if _, err := rs.CreateSnapshot(fmt.Sprintf("old%03d", i), []string{"vol1"}, "manual"); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Sync(); err != nil {
		b.Fatal(err)
	}
	snapshot(b, a, "s1", "vol1")

	cpu := map[string]time.Duration{} // process CPU time (user + system) per phase
	phase := func(name string, fn func()) time.Duration {
		var f *os.File
		if profDir != "" {
			var err error
			if f, err = os.Create(filepath.Join(profDir, name+".cpu")); err != nil {
				b.Fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				b.Fatal(err)
			}
			runtime.SetBlockProfileRate(10000) // a sample per 10 µs blocked
		}
		runtime.GC()
		if drop { // a cold page cache, as scripts/bench.sh measures (root only)
			syscall.Sync()
			_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
		}
		c0 := cpuTime()
		t0 := time.Now()
		fn()
		el := time.Since(t0)
		cpu[name] += cpuTime() - c0
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
			for _, p := range []string{"allocs", "block"} {
				h, err := os.Create(filepath.Join(profDir, name+"."+p))
				if err == nil {
					_ = pprof.Lookup(p).WriteTo(h, 0)
					h.Close()
				}
			}
			runtime.SetBlockProfileRate(0)
		}
		return el
	}
	seqread := func(snap string) time.Duration {
		return phase("seqread", func() {
			r, err := rs.OpenSnapshotDisk(snap, "vol1")
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			if _, err := io.Copy(io.Discard, io.NewSectionReader(r, 0, r.Size())); err != nil {
				b.Fatal(err)
			}
		})
	}
	mibs := func(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() / (1 << 20) }
	b.SetBytes(size)
	b.ResetTimer()
	var sumRead, sumFull, sumRestore, sumIncr, readFull, readRestore, readIncr, sumRestoreIncr time.Duration
	var ratioIncr float64          // bytes an incremental sync wrote / bytes rewritten
	incrBy := map[string]float64{} // the same per kind of object
	for i := range b.N {
		// The region's stores live beside the local store (SNAPFS_BENCH_DIR).
		var urls []string
		for j := range testK + testM {
			d := filepath.Join(root, fmt.Sprintf("region%d-%d", i, j))
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
			urls = append(urls, "file://"+d)
		}
		os.RemoveAll(filepath.Join(a.dir, "regions"))
		addRegion(b, a, urls, keyFile(b, 1))
		r0 := seqread("s1")
		full := phase("full", func() {
			if _, err := mgr.CopySnapshot(ctx, "r1", "s1", nil); err != nil {
				b.Fatal(err)
			}
		})
		r1 := seqread("s1")
		to := fmt.Sprintf("restored%d", i)
		restore := phase("restore", func() {
			if _, err := mgr.Restore(ctx, "r1", "s1", "vol1", to, nil); err != nil {
				b.Fatal(err)
			}
		})
		r2 := seqread("s1")
		if err := rs.DeleteDisk(to, true); err != nil {
			b.Fatal(err)
		}
		// 1 % of the disk rewritten by 4 KiB random writes, then a snapshot.
		for range size / 100 / 4096 {
			fill(d, rng.Int64N(size/4096)*4096, small)
		}
		if err := d.Sync(); err != nil {
			b.Fatal(err)
		}
		next := fmt.Sprintf("s1-%d", i)
		snapshot(b, a, next, "vol1")
		var st replicate.Stats
		sizes0 := regionBytes(b, urls)
		incr := phase("incr", func() {
			var err error
			if st, err = mgr.CopySnapshot(ctx, "r1", next, nil); err != nil {
				b.Fatal(err)
			}
		})
		changed := size / 100 / 4096 * 4096
		ratioIncr += float64(st.TotalWritten()) / float64(changed)
		// Where the incremental sync's bytes went: the growth of each
		// kind of object over the region's stores (packs: shards, with
		// the pack's own table; index: the pack indexes; snapshots: the
		// manifest), per byte changed.
		sizes1 := regionBytes(b, urls)
		for _, dir := range []string{"packs", "index", "snapshots"} {
			r := float64(sizes1[dir]-sizes0[dir]) / float64(changed)
			incrBy[dir] += r
			b.Logf("run %d: incr sync wrote %s %.4fx the changed bytes", i, dir, r)
		}
		to2 := fmt.Sprintf("restored-incr%d", i)
		restoreIncr := phase("restore-incr", func() {
			if _, err := mgr.Restore(ctx, "r1", next, "vol1", to2, nil); err != nil {
				b.Fatal(err)
			}
		})
		if err := rs.DeleteDisk(to2, true); err != nil {
			b.Fatal(err)
		}
		sumRestoreIncr += restoreIncr
		r3 := seqread("s1")
		sumRead += r0 + r1 + r2 + r3
		sumFull += full
		sumRestore += restore
		sumIncr += incr
		readFull += (r0 + r1) / 2
		readRestore += (r1 + r2) / 2
		readIncr += (r2 + r3) / 2
		b.Logf("run %d: seqread %.0f MiB/s; full sync %.0f MiB/s (%.2fx); restore %.0f MiB/s (%.2fx); incr sync %v (%d blocks read, %d bytes written for %d changed: %.2fx); restore of the incremental snapshot %.0f MiB/s",
			i, mibs(size, (r0+r1+r2+r3)/4), mibs(size, full), (r0+r1).Seconds()/2/full.Seconds(),
			mibs(size, restore), (r1+r2).Seconds()/2/restore.Seconds(), incr, st.BlocksRead, st.TotalWritten(), changed,
			float64(st.TotalWritten())/float64(changed), mibs(size, restoreIncr))
	}
	b.StopTimer()
	d.Close()
	n := int64(b.N)
	b.ReportMetric(mibs(4*n*size, sumRead), "seqread-MiB/s")
	b.ReportMetric(mibs(n*size, sumFull), "full-MiB/s")
	b.ReportMetric(mibs(n*size, sumRestore), "restore-MiB/s")
	b.ReportMetric(readFull.Seconds()/sumFull.Seconds(), "full/seqread")
	b.ReportMetric(readRestore.Seconds()/sumRestore.Seconds(), "restore/seqread")
	b.ReportMetric(sumIncr.Seconds()/float64(n), "incr-s")
	b.ReportMetric(ratioIncr/float64(n), "incr-written/changed")
	for dir, r := range incrBy {
		b.ReportMetric(r/float64(n), "incr-"+dir+"/changed")
	}
	b.ReportMetric(mibs(n*size, sumRestoreIncr), "restore-incr-MiB/s")
	b.ReportMetric(sumIncr.Seconds()/readIncr.Seconds(), "incr/seqread-time")
	gib := float64(n*size) / (1 << 30)
	b.ReportMetric(cpu["seqread"].Seconds()/gib/4, "seqread-cpu-s/GiB")
	b.ReportMetric(cpu["full"].Seconds()/gib, "full-cpu-s/GiB")
	b.ReportMetric(cpu["restore"].Seconds()/gib, "restore-cpu-s/GiB")
	b.ReportMetric(cpu["incr"].Seconds()/float64(n), "incr-cpu-s")
}

// regionBytes sums the sizes of the objects of the file:// stores urls
// by their top directory (packs, index, snapshots, ...).
func regionBytes(b *testing.B, urls []string) map[string]int64 {
	b.Helper()
	out := map[string]int64{}
	for _, u := range urls {
		root := strings.TrimPrefix(u, "file://")
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			dir, _, _ := strings.Cut(rel, string(filepath.Separator))
			out[dir] += info.Size()
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// cpuTime is the CPU time the process has used (all threads).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
