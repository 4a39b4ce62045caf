package rowstore

import (
	"bytes"
	"fmt"
	"math/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// checkLiveMap compares the cleaner's live map and usage table with a full
// count over the index: after a GC every data version in the index is one
// a reader sees, and the map must hold exactly those (none more: the
// cleaner would move dead data; none fewer: it would drop live data).
func checkLiveMap(t *testing.T, s *Store, what string) {
	t.Helper()
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	lm := s.cleaner.lm
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if lm.m == nil {
		t.Fatalf("%s: no live map installed", what)
	}
	want := map[vkey]index.Version{}
	segLive := map[ids.Segment]int64{}
	var live int64
	err := s.idx.View(func(t *index.Txn) error {
		return t.EachVersion(func(l ids.Layer, b ids.Block, e ids.Epoch, v index.Version) error {
			if !v.Zero() {
				want[vkey{l, b, e}] = v
				segLive[v.Segment] += int64(v.Length)
				live += payloadBytes(v)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != lm.m.len() {
		t.Errorf("%s: live map holds %d versions, the index %d", what, lm.m.len(), len(want))
	}
	for k, v := range want {
		if got, ok := lm.m.get(k); !ok || got.version() != v || got.key() != k {
			t.Fatalf("%s: version %+v: map %+v (%v), index %+v", what, k, got, ok, v)
		}
	}
	if live != lm.live {
		t.Errorf("%s: live %d, full count %d", what, lm.live, live)
	}
	if fmt.Sprint(segLive) != fmt.Sprint(lm.segLive) {
		t.Errorf("%s: usage table %v, full count %v", what, lm.segLive, segLive)
	}
}

// TestLiveMapExact: the live map and usage table equal a full count over
// the index after random writes, punched holes, snapshots, clones, deletes,
// GC, incremental cleaner rounds, and a crash and reopen (after which the
// first round rebuilds them); the disks and snapshots read as the model
// says throughout.
func TestLiveMapExact(t *testing.T) {
	const bs = 4096
	seeds, steps := 4, 8
	if testing.Short() || raceEnabled {
		seeds, steps = 1, 4
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			cfs := vfs.NewCrashFS()
			dir := filepath.Join(t.TempDir(), "store")
			opts := testOptions()
			opts.FS = cfs
			opts.SegmentSize = 64 << 10
			if err := Create(dir, opts); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			m := newCrashModel(bs)
			cleaned := 0
			defer func() { t.Logf("incremental cleaning removed %d segments", cleaned) }()
			if _, err := s.CreateDisk("a", 64*bs, bs); err != nil {
				t.Fatal(err)
			}
			m.data["a"], m.allowed["a"] = make([]byte, 64*bs), map[int][][]byte{}
			ackAll := func() {
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
				for name := range m.data {
					m.ack(name)
				}
			}
			for step := 0; step < steps; step++ {
				what := fmt.Sprintf("seed %d step %d", seed, step)
				if err := crashWorkload(s, m, rng, 30+rng.Intn(70)); err != nil {
					t.Fatalf("%s: workload: %v", what, err)
				}
				if len(m.snapList) > 2 && rng.Intn(2) == 0 {
					i := rng.Intn(len(m.snapList))
					sn := m.snapList[i]
					if err := s.DeleteSnapshot(sn); err != nil {
						t.Fatalf("%s: delete snapshot %s: %v", what, sn, err)
					}
					// Taken again under the same name (the workload numbers
					// snapshots by count), of the disk "a" as it is now.
					if _, err := s.CreateSnapshot(sn, []string{"a"}, ""); err != nil {
						t.Fatalf("%s: snapshot %s again: %v", what, sn, err)
					}
					m.snaps[sn] = map[string][]byte{"a": append([]byte(nil), m.data["a"]...)}
					m.ack("a")
				}
				ackAll()
				// A GC (rebuilds the map), then writes the map follows, then
				// incremental rounds (no scan) and writes again.
				if _, err := s.GC(); err != nil {
					t.Fatalf("%s: gc: %v", what, err)
				}
				checkLiveMap(t, s, what+" after gc")
				if err := crashWorkload(s, m, rng, 30+rng.Intn(70)); err != nil {
					t.Fatalf("%s: workload: %v", what, err)
				}
				ackAll()
				if ok, _, _ := s.cleaner.lm.installed(); ok {
					checkLiveMap(t, s, what+" after writes")
				}
				for i := 0; i < 3; i++ {
					st := GCStats{}
					ok, live, _ := s.cleaner.lm.installed()
					if !ok {
						break
					}
					s.gcMu.Lock()
					active := min(s.seg.Active(), s.cpSegment.Load())
					err := s.cleanWith(active, s.cleaner.lm.usage(), live, nil, &cleanPlan{targetRatio: 1, maxLive: 0.9}, &st)
					s.gcMu.Unlock()
					if err != nil {
						t.Fatalf("%s: incremental clean: %v", what, err)
					}
					cleaned += st.SegmentsCleaned
					checkLiveMap(t, s, fmt.Sprintf("%s after incremental clean %d (%d segments)", what, i, st.SegmentsCleaned))
				}
				checkCrashState(t, s, m, what)
				if step%4 == 3 {
					// Crash (everything acknowledged) and reopen: the map is
					// rebuilt by the first round.
					ackAll()
					crashed := cfs.Crash(seed + int64(step))
					s.crashForTest()
					opts.FS = crashed
					cfs = crashed
					if s, err = Open(dir, opts); err != nil {
						t.Fatalf("%s: reopen: %v", what, err)
					}
					if s.cleaner.lm.has() {
						t.Fatalf("%s: a live map before any scan", what)
					}
					checkCrashState(t, s, m, what+" after reopen")
					if err := s.cleanRound(); err != nil {
						t.Fatalf("%s: cleaner round: %v", what, err)
					}
					checkLiveMap(t, s, what+" after reopen and a round")
				}
			}
		})
	}
}

// TestCleanerConcurrent: the background cleaner (incremental rounds, and
// full ones after each catalog change) runs while one goroutine rewrites a
// disk at random and another takes and deletes snapshots and reads them
// back; every snapshot reads as when it was taken, the disk as the model
// says, and after a GC the live map equals a full count.
func TestCleanerConcurrent(t *testing.T) {
	const bs = 4096
	size, writes := int64(6<<20), 30000
	if testing.Short() || raceEnabled {
		writes = 8000
	}
	opts := overwriteOptions(true)
	opts.CacheBytes = 64 << 10
	s, _ := newTestStore(t, opts)
	if _, err := s.CreateDisk("d", size, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rng := rand.New(rand.NewSource(7))
	model := make([]byte, size)
	rng.Read(model)
	if _, err := h.WriteAt(model, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // model and snapshot taking
	done := make(chan struct{})
	snapErr := make(chan error, 1)
	go func() {
		defer close(snapErr)
		srng := rand.New(rand.NewSource(8))
		saved := map[string][]byte{}
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(time.Duration(20+srng.Intn(60)) * time.Millisecond):
			}
			name := fmt.Sprintf("s%d", i)
			mu.Lock()
			_, err := s.CreateSnapshot(name, []string{"d"}, "")
			saved[name] = append([]byte(nil), model...)
			mu.Unlock()
			if err != nil {
				snapErr <- err
				return
			}
			for n, want := range saved {
				if srng.Intn(3) > 0 {
					continue
				}
				r, err := s.OpenSnapshotDisk(n, "d")
				if err != nil {
					snapErr <- err
					return
				}
				got := make([]byte, size)
				_, err = r.ReadAt(got, 0)
				r.Close()
				if err != nil || !bytes.Equal(got, want) {
					snapErr <- fmt.Errorf("snapshot %s differs from when it was taken (err %v)", n, err)
					return
				}
				if len(saved) > 3 {
					if err := s.DeleteSnapshot(n); err != nil {
						snapErr <- err
						return
					}
					delete(saved, n)
				}
			}
		}
	}()
	buf := make([]byte, bs)
	for i := 0; i < writes; i++ {
		b := rng.Int63n(size / bs)
		rng.Read(buf)
		mu.Lock()
		copy(model[b*bs:], buf)
		_, err := h.WriteAt(buf, b*bs)
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if i%256 == 255 {
			if err := h.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	if err := <-snapErr; err != nil {
		t.Fatal(err)
	}
	st := s.CleanerStats()
	t.Logf("cleaner %+v", st)
	if st.BytesFreed == 0 {
		t.Fatalf("the cleaner freed nothing: %+v", st)
	}
	got := make([]byte, size)
	if _, err := h.ReadAt(got, 0); err != nil || !bytes.Equal(got, model) {
		t.Fatalf("disk differs from the model (err %v)", err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(); err != nil {
		t.Fatal(err)
	}
	checkLiveMap(t, s, "after the run and a gc")
}

// TestLiveMapFallback: a store with more live versions than the map may
// hold gets no map (and is not tried again until a scan finds it small
// enough); GC and cleaner rounds then work as before (a scan per round),
// and nothing is lost.
func TestLiveMapFallback(t *testing.T) {
	const bs = 4096
	old := liveMapMax
	liveMapMax = 100
	defer func() { liveMapMax = old }()
	opts := testOptions()
	opts.SegmentSize = 64 << 10
	s, _ := newTestStore(t, opts)
	if _, err := s.CreateDisk("d", 256*bs, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rng := rand.New(rand.NewSource(3))
	model := make([]byte, 256*bs)
	write := func(n int) {
		buf := make([]byte, bs)
		for i := 0; i < n; i++ {
			b := rng.Int63n(256)
			rng.Read(buf)
			copy(model[b*bs:], buf)
			if _, err := h.WriteAt(buf, b*bs); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
		s.waitApplied() // the live map learns of a commit when it is applied
	}
	check := func(what string) {
		got := make([]byte, len(model))
		if _, err := h.ReadAt(got, 0); err != nil || !bytes.Equal(got, model) {
			t.Fatalf("%s: disk differs from the model (err %v)", what, err)
		}
	}
	write(2000)
	st, err := s.GC()
	if err != nil {
		t.Fatal(err)
	}
	if s.cleaner.lm.has() || !s.cleaner.lm.tooBig.Load() {
		t.Fatalf("a map of more than %d versions was installed", liveMapMax)
	}
	if st.SegmentsCleaned == 0 {
		t.Fatalf("gc cleaned nothing: %+v", st)
	}
	check("after gc without a map")
	write(1000)
	if err := s.cleanRound(); err != nil {
		t.Fatal(err)
	}
	check("after a round without a map")
	// Small enough again: the next scan finds it so, the one after builds.
	liveMapMax = 1000
	for i := 0; i < 2; i++ {
		if _, err := s.GC(); err != nil {
			t.Fatal(err)
		}
	}
	checkLiveMap(t, s, "after the store became small enough")
	// Writes that grow the installed map past the bound drop it (each
	// write after a snapshot is a new version key).
	s.cleaner.lm.mu.Lock()
	liveMapMax = s.cleaner.lm.m.len() + 10
	s.cleaner.lm.mu.Unlock()
	if _, err := s.CreateSnapshot("s1", []string{"d"}, ""); err != nil {
		t.Fatal(err)
	}
	write(100)
	if s.cleaner.lm.has() || !s.cleaner.lm.tooBig.Load() {
		t.Fatalf("writes grew the map past %d versions and it was kept", liveMapMax)
	}
	if err := s.cleanRound(); err != nil {
		t.Fatal(err)
	}
	check("at the end")
}
