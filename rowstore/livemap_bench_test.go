package rowstore

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// BenchmarkLiveMapBytes builds a live map of 2^20 versions the way a scan
// does (beginBuild, add, finishBuild) and reports the heap it holds per
// version, all in (table, usage table), measured with runtime.MemStats
// after a collection.
func BenchmarkLiveMapBytes(b *testing.B) {
	const n = 1 << 20
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		lm := &liveMap{}
		lm.beginBuild()
		bld := benchLiveBuild(lm)
		for j := uint64(0); j < n; j++ {
			v := index.Version{Segment: ids.Segment(1 + j/16384), Offset: int64(j%16384) * (16<<10 + 48), Length: 16<<10 + 48, Seq: ids.Seq(j + 1)}
			v.Digest[0] = byte(j)
			bld.add(vkey{ids.Layer(1 + j%3), ids.Block(j), 7}, v)
		}
		if !lm.finishBuild(bld, 1) {
			b.Fatal("map not installed")
		}
		bld = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/version")
		runtime.KeepAlive(lm)
	}
}

// BenchmarkCleanMoveMap: the cleaner's cost per record it moves with the
// live map installed: a 64 MiB disk of 4 KiB (bench-space.sh's) or 16 KiB
// blocks written, a GC (builds the map), every other block overwritten,
// then one cleaning pass over the half-live segments (moves, the
// finisher's syncs, repoints and removals; on /dev/shm, so no device);
// reports the wall µs per moved record and the process's CPU µs per moved
// record over the pass (Badger's goroutines included).
func BenchmarkCleanMoveMap(b *testing.B) {
	for _, bs := range []int{4 << 10, 16 << 10} {
		b.Run(fmt.Sprintf("bs=%dK", bs>>10), func(b *testing.B) { benchCleanMoveMap(b, bs) })
	}
}

func benchCleanMoveMap(b *testing.B, bs int) {
	const size = 64 << 20
	var moved int64
	var took time.Duration
	var cpu float64
	for i := 0; i < b.N; i++ {
		tmp, err := os.MkdirTemp("/dev/shm", "snapfs-bench-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		dir := filepath.Join(tmp, "store")
		opts := Options{SyncInterval: -1, GCInterval: -1, SegmentSize: 4 << 20}
		if err := Create(dir, opts); err != nil {
			b.Fatal(err)
		}
		s, err := Open(dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		if _, err = s.CreateDisk("d", size, bs); err != nil {
			b.Fatal(err)
		}
		h, err := s.OpenDisk("d")
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		rand.Read(buf)
		for off := int64(0); off < size; off += int64(len(buf)) {
			if _, err := h.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := h.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := s.syncCatalog(); err != nil {
			b.Fatal(err)
		}
		if _, err := s.GC(); err != nil {
			b.Fatal(err)
		}
		blk := make([]byte, bs)
		for off := int64(0); off < size; off += 2 * int64(bs) {
			rand.Read(blk[:64])
			if _, err := h.WriteAt(blk, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := h.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := s.syncCatalog(); err != nil {
			b.Fatal(err)
		}
		if err := s.Sync(); err != nil {
			b.Fatal(err)
		}
		ok, live, _ := s.cleaner.lm.installed()
		if !ok {
			b.Fatal("no live map")
		}
		var st GCStats
		s.gcMu.Lock()
		active := min(s.seg.Active(), s.cpSegment.Load())
		t0, c0 := time.Now(), cpuSeconds()
		err = s.cleanWith(active, s.cleaner.lm.usage(), live, nil, &cleanPlan{targetRatio: 1, maxLive: 0.9}, &st)
		took, cpu = took+time.Since(t0), cpu+cpuSeconds()-c0
		s.gcMu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		moved += st.BytesRelocated / int64(bs+48)
		h.Close()
		s.Close()
	}
	if moved > 0 {
		b.ReportMetric(float64(took.Microseconds())/float64(moved), "µs/moved")
		b.ReportMetric(cpu*1e6/float64(moved), "cpu-µs/moved")
	}
}

// BenchmarkRepointMap: repointMap alone, with the live map installed, over
// batches of 1024 records of a store of 16384 16 KiB blocks (index writes
// of the new positions, and with the compact map the reads of the values):
// reports µs per repointed record. The new positions are made up (the
// records are not copied): the store is thrown away.
func BenchmarkRepointMap(b *testing.B) {
	const bs, size, batch = 16 << 10, 256 << 20, 1024
	tmp, err := os.MkdirTemp("/dev/shm", "snapfs-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "store")
	opts := Options{SyncInterval: -1, GCInterval: -1}
	if err := Create(dir, opts); err != nil {
		b.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err = s.CreateDisk("d", size, bs); err != nil {
		b.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := h.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := h.Sync(); err != nil {
		b.Fatal(err)
	}
	if _, err := s.GC(); err != nil {
		b.Fatal(err)
	}
	if !s.cleaner.lm.has() {
		b.Fatal("no live map")
	}
	// The moves: every record, from where the index says to a made-up
	// position, and back.
	var moves []relocation
	err = s.idx.View(func(t *index.Txn) error {
		return t.EachVersion(func(l ids.Layer, blk ids.Block, e ids.Epoch, v index.Version) error {
			old := segment.Pos{Segment: v.Segment, Offset: v.Offset, Length: v.Length}
			moves = append(moves, relocation{old: old, new: segment.Pos{Segment: v.Segment + 1000, Offset: v.Offset, Length: v.Length},
				r: segment.Record{Kind: segment.KindData, Layer: l, Block: blk, Epoch: e, Seq: v.Seq}})
			return nil
		})
	})
	if err != nil || len(moves) < batch {
		b.Fatal(err, len(moves))
	}
	n := 0
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		lo := (i % (len(moves) / batch)) * batch
		ms := moves[lo : lo+batch]
		if err := s.repointMap(ms); err != nil {
			b.Fatal(err)
		}
		for j := range ms {
			ms[j].old, ms[j].new = ms[j].new, ms[j].old
		}
		n += batch
	}
	b.ReportMetric(float64(time.Since(t0).Nanoseconds())/1000/float64(n), "µs/record")
}
