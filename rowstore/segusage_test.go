package rowstore

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/index"
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
	segLive := map[uint64]int64{}
	var live int64
	err := s.idx.View(func(t *index.Txn) error {
		return t.EachVersion(func(l, b, e uint64, v index.Version) error {
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
	if len(want) != len(lm.m) {
		t.Errorf("%s: live map holds %d versions, the index %d", what, len(lm.m), len(want))
	}
	for k, v := range want {
		if got, ok := lm.m[k]; !ok || got != v {
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
