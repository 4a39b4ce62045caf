package rowstore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

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
				rng := rand.New(rand.NewSource(seed))
				cfs := vfs.NewCrashFS()
				dir := filepath.Join(t.TempDir(), "store")
				opts := testOptions()
				opts.SegmentSize = 32 << 10
				opts.FS = cfs
				if k >= 2 {
					opts.FS = slowSealFS{cfs}
				}
				if err := Create(dir, opts); err != nil {
					t.Fatal(err)
				}
				s, err := Open(dir, opts)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.CreateDisk("a", 64*bs, bs); err != nil {
					t.Fatal(err)
				}
				m := newCrashModel(bs)
				m.data["a"], m.allowed["a"] = make([]byte, 64*bs), map[int][][]byte{}
				h, err := s.OpenDisk("a")
				if err != nil {
					t.Fatal(err)
				}
				write := func(b int) []byte {
					p := make([]byte, bs)
					rng.Read(p)
					if _, ok := m.allowed["a"][b]; !ok {
						m.allowed["a"][b] = [][]byte{m.block("a", b)}
					}
					m.allowed["a"][b] = append(m.allowed["a"][b], bytes.Clone(p))
					if _, err := h.WriteAt(p, int64(b*bs)); err != nil {
						t.Fatal(err)
					}
					copy(m.data["a"][b*bs:], p)
					return p
				}
				ack := func() {
					if err := h.Sync(); err != nil {
						t.Fatal(err)
					}
					m.ack("a")
				}
				// Every block, then every block but 0 again: the first
				// pass's segments are sparse, block 0's record A live.
				for b := 0; b < 64; b++ {
					write(b)
				}
				ack()
				for b := 1; b < 64; b++ {
					write(b)
				}
				ack()
				// The disk's catalog record synced in the index: the
				// checkpoint is no longer held back before it.
				if err := s.advanceCheckpoint(); err != nil {
					t.Fatal(err)
				}
				a := m.block("a", 0)
				var segA uint64
				if _, err := s.seg.Scan(segment.Pos{}, func(r *segment.Record, pos segment.Pos) error {
					if r.Kind == segment.KindData && bytes.Equal(r.Payload, a) {
						segA = pos.Segment
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if segA == 0 || segA >= s.cpSegment.Load() {
					t.Fatalf("block 0's record in segment %d, checkpoint in %d", segA, s.cpSegment.Load())
				}
				// B: the newer record of block 0, in the foreground's
				// active segment, not committed; then unsynced writes.
				write(0)
				fgB := s.seg.Active()
				for i := 0; i < 3+rng.Intn(12); i++ {
					write(1 + rng.Intn(63))
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
				_, cerr := s.cleanSegments([]uint64{segA}, nil, nil)
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
						ack() // B acknowledged after its old record was moved
						for i := 0; i < 3; i++ {
							write(1 + rng.Intn(63))
						}
					}
					crashed = cfs.Crash(seed)
				}
				h.Close()
				what := fmt.Sprintf("seed %d, crash at %q, rebuild %v", seed, stage, rebuild)
				s2 := reopenAfterCrash(t, s, dir, opts, crashed, rebuild)
				if stage == "acked" {
					if got := m.block("a", 0); !bytes.Equal(got, m.data["a"][:bs]) || bytes.Equal(got, a) {
						t.Fatal("model: block 0 is not B")
					}
				}
				checkCrashState(t, s2, m, what)
				mustCheckClean(t, s2, what)
				if _, err := s2.GC(); err != nil {
					t.Fatalf("%s: gc: %v", what, err)
				}
				checkCrashState(t, s2, m, what+", after gc")
				mustCheckClean(t, s2, what+", after gc")
				ran++
			})
		}
	}
	if ran != len(stages)*4 || copyAfter != ran {
		t.Fatalf("%d runs of %d, %d with the copy after the overwrite", ran, len(stages)*4, copyAfter)
	}
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
