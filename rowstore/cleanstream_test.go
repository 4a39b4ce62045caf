package rowstore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// TestCleanerStreamCrash crashes the store around the cleaner's own
// append stream: a block's old record (A) is moved while a newer,
// uncommitted overwrite of it (B) sits in the foreground's active segment,
// so the copy lands in a cleaner-stream segment numbered AFTER the
// foreground segment holding the newer record; replay (and an index
// rebuild) then meets the copy after the newer record and must keep the
// newer one (higher sequence number), never resurrect A. The crash comes
// at every stage of the move: copies appended but not synced (both tails
// may be torn: unsynced foreground writes too, and with slow segment
// syncs a sealed segment's background sync is often under way), between
// the cleaner stream's sync and the repoint, after the repoint before the
// index sync, after the index sync before the old segment's removal, and
// after the removal (without a directory sync, as the background cleaner
// does), with B acknowledged (synced after the move) or not. After every
// reopen the store must hold every acknowledged write, check clean with
// --read-data semantics, GC, and check clean again.
func TestCleanerStreamCrash(t *testing.T) {
	const bs = 4096
	stages := []string{"moved", "log synced", "repointed", "index synced", "removed", "acked"}
	ran, copyAfter := 0, 0
	for si, stage := range stages {
		for k := 0; k < 4; k++ {
			seed := int64(7000 + 10*si + k)
			rebuild := k%2 == 1
			t.Run(fmt.Sprintf("%s/rebuild=%v/%d", stage, rebuild, seed), func(t *testing.T) {
				f := newSparseCrash(t, seed, k >= 2)
				s, h, m, cfs, rng, a := f.s, f.h, f.m, f.cfs, f.rng, f.a
				// B: the newer record of block 0, in the foreground's
				// active segment, not committed; then unsynced writes.
				f.write(0)
				fgB := s.seg.Active()
				for i := 0; i < 3+rng.Intn(12); i++ {
					f.write(1 + rng.Intn(63))
				}
				// The move, crashing at the stage (the hook runs in this
				// goroutine here: cleanSegments finishes in place).
				var crashed *vfs.CrashFS
				s.cleaner.stageHook = func(st string) {
					if crashed == nil && st == stage {
						crashed = cfs.Crash(seed)
					}
				}
				s.cleaner.running.Store(true) // removals without a directory sync
				_, cerr := s.cleanSegments([]ids.Segment{f.segA}, nil, nil)
				s.cleaner.running.Store(false)
				clSeg := s.seg.CleanerActive() // one record moved: one segment
				if clSeg <= fgB {
					t.Fatalf("the copy went to segment %d, not after the foreground's %d", clSeg, fgB)
				}
				copyAfter++
				if crashed == nil {
					if cerr != nil {
						t.Fatal(cerr)
					}
					if stage == "acked" {
						f.ack() // B acknowledged after its old record was moved
						for i := 0; i < 3; i++ {
							f.write(1 + rng.Intn(63))
						}
					}
					crashed = cfs.Crash(seed)
				}
				h.Close()
				what := fmt.Sprintf("seed %d, crash at %q, rebuild %v", seed, stage, rebuild)
				s2 := reopenAfterCrash(t, s, f.dir, f.opts, crashed, rebuild)
				if stage == "acked" {
					if got := m.block("a", 0); !bytes.Equal(got, m.data["a"][:bs]) || bytes.Equal(got, a) {
						t.Fatal("model: block 0 is not B")
					}
				}
				checkCleanAcrossGC(t, s2, m, what)
				ran++
			})
		}
	}
	if ran != len(stages)*4 || copyAfter != ran {
		t.Fatalf("%d runs of %d, %d with the copy after the overwrite", ran, len(stages)*4, copyAfter)
	}
}

// sparseCrash is where the cleaner crash tests start: a store on a CrashFS
// (slowSeal: segment syncs slowed, so a sealed segment's background sync
// is often under way) with disk "a" of 64 blocks of 4 KiB written, then
// every block but 0 again, both passes acknowledged and checkpointed: block
// 0's first record (a, its bytes) is live in segment segA, below the
// checkpoint, among records the second pass made dead.
type sparseCrash struct {
	t    *testing.T
	s    *Store
	h    *Disk
	m    *crashModel
	cfs  *vfs.CrashFS
	dir  string
	opts Options
	rng  *rand.Rand
	a    []byte
	segA ids.Segment
}

func newSparseCrash(t *testing.T, seed int64, slowSeal bool) *sparseCrash {
	t.Helper()
	const bs = 4096
	f := &sparseCrash{t: t, rng: rand.New(rand.NewSource(seed)), cfs: vfs.NewCrashFS(), dir: filepath.Join(t.TempDir(), "store"), m: newCrashModel(bs)}
	f.opts = testOptions()
	f.opts.SegmentSize = 32 << 10
	f.opts.FS = f.cfs
	if slowSeal {
		f.opts.FS = slowSealFS{f.cfs}
	}
	if err := Create(f.dir, f.opts); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.s, err = Open(f.dir, f.opts); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.CreateDisk("a", 64*bs, bs); err != nil {
		t.Fatal(err)
	}
	f.m.data["a"], f.m.allowed["a"] = make([]byte, 64*bs), map[int][][]byte{}
	if f.h, err = f.s.OpenDisk("a"); err != nil {
		t.Fatal(err)
	}
	for b := 0; b < 64; b++ {
		f.write(b)
	}
	f.ack()
	for b := 1; b < 64; b++ {
		f.write(b)
	}
	f.ack()
	// The disk's catalog record synced in the index (the checkpoint is no
	// longer held back before it), and every index apply done.
	if err := f.s.advanceCheckpoint(); err != nil {
		t.Fatal(err)
	}
	f.a = f.m.block("a", 0)
	if _, err := f.s.seg.Scan(segment.Pos{}, func(r *segment.Record, pos segment.Pos) error {
		if r.Kind == segment.KindData && bytes.Equal(r.Payload, f.a) {
			f.segA = pos.Segment
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if f.segA == 0 || f.segA >= f.s.cpSegment.Load() {
		t.Fatalf("block 0's record in segment %d, checkpoint in %d", f.segA, f.s.cpSegment.Load())
	}
	return f
}

// write writes random bytes to block b (the model allows its old and new
// contents until the next ack) and returns them.
func (f *sparseCrash) write(b int) []byte {
	const bs = 4096
	p := make([]byte, bs)
	f.rng.Read(p)
	if _, ok := f.m.allowed["a"][b]; !ok {
		f.m.allowed["a"][b] = [][]byte{f.m.block("a", b)}
	}
	f.m.allowed["a"][b] = append(f.m.allowed["a"][b], bytes.Clone(p))
	if _, err := f.h.WriteAt(p, int64(b*bs)); err != nil {
		f.t.Fatal(err)
	}
	copy(f.m.data["a"][b*bs:], p)
	return p
}

// ack syncs the disk: every write so far is acknowledged.
func (f *sparseCrash) ack() {
	if err := f.h.Sync(); err != nil {
		f.t.Fatal(err)
	}
	f.m.ack("a")
}

// checkCleanAcrossGC checks a store reopened after a crash: every
// acknowledged write (checkCrashState), Check with ReadData clean, then
// both again after a GC.
func checkCleanAcrossGC(t *testing.T, s *Store, m *crashModel, what string) {
	t.Helper()
	checkCrashState(t, s, m, what)
	mustCheckClean(t, s, what)
	if _, err := s.GC(); err != nil {
		t.Fatalf("%s: gc: %v", what, err)
	}
	checkCrashState(t, s, m, what+", after gc")
	mustCheckClean(t, s, what+", after gc")
}

// mustCheckClean runs Check with ReadData (snapfs check --read-data) and
// fails on any problem.
func mustCheckClean(t *testing.T, s *Store, what string) {
	t.Helper()
	rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
	if err != nil {
		t.Fatalf("%s: check: %v", what, err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("%s: check found %d problems, the first: %+v", what, len(rep.Problems), rep.Problems[0])
	}
}
