package store

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPutShards puts shards the way sync does (2 MiB + 64 bytes
// each, 18 at once: three packs of six shards), buffered and direct,
// interleaved in one run; it reports both rates and the process's CPU
// time per GB put. SNAPFS_BENCH_DIR names a directory on a real disk
// (default /var/tmp).
func BenchmarkPutShards(b *testing.B) {
	root := os.Getenv("SNAPFS_BENCH_DIR")
	if root == "" {
		root = "/var/tmp"
	}
	ctx := context.Background()
	const files, size, par = 96, 2<<20 + 64, 18
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	put := func(direct bool) (time.Duration, time.Duration) {
		dir, err := os.MkdirTemp(root, "snapfs-put-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
		l, err := OpenLocal(dir)
		if err != nil {
			b.Fatal(err)
		}
		l.noDirect.Store(!direct)
		syscall.Sync()
		next := make(chan int, files)
		for i := range files {
			next <- i
		}
		close(next)
		c0 := cpuTime()
		t0 := time.Now()
		var wg sync.WaitGroup
		for range par {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if err := l.Put(ctx, fmt.Sprintf("packs/%03d", i), data); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(t0), cpuTime() - c0
	}
	var tb, td, cb, cd time.Duration
	for range b.N {
		t, c := put(false)
		tb, cb = tb+t, cb+c
		t, c = put(true)
		td, cd = td+t, cd+c
	}
	gb := float64(files*size*b.N) / 1e9
	b.ReportMetric(gb*1e3/tb.Seconds(), "buffered-MB/s")
	b.ReportMetric(gb*1e3/td.Seconds(), "direct-MB/s")
	b.ReportMetric(cb.Seconds()/gb, "buffered-cpu-s/GB")
	b.ReportMetric(cd.Seconds()/gb, "direct-cpu-s/GB")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
