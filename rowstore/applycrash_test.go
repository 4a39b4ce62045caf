package rowstore

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// TestSyncApplyCrash crashes the store in the window commitLog opens: a
// Disk.Sync has returned (its records are in the synced log) and its
// versions are not in the index yet, while the cleaner moves the record the
// synced write replaced (A, still named by the index) and repoints it. The
// crash comes before the cleaner runs, once it repointed, once it removed
// A's segment, after it finished, and after the apply; the index is
// reopened as it was or rebuilt. During the window, reads must return the
// acknowledged bytes (B, from the flushing versions). After every reopen
// the store holds every acknowledged write (B, never A), checks clean with
// --read-data semantics, GCs, and checks clean again. (After the crash
// point the old view of the files fails every call; the store goes on until
// it is abandoned.)
func TestSyncApplyCrash(t *testing.T) {
	const bs = 4096
	stages := []string{"window", "repointed", "removed", "cleaned", "applied"}
	ran := 0
	for si, stage := range stages {
		for k := 0; k < 4; k++ {
			seed := int64(9100 + 10*si + k)
			rebuild := k%2 == 1
			t.Run(fmt.Sprintf("%s/rebuild=%v/%d", stage, rebuild, seed), func(t *testing.T) {
				f := newSparseCrash(t, seed, k >= 2)
				s, h, m, cfs, rng := f.s, f.h, f.m, f.cfs, f.rng
				// B replaces A and is acknowledged; its apply waits.
				b0 := f.write(0)
				for i := 0; i < 3+rng.Intn(12); i++ {
					f.write(1 + rng.Intn(63))
				}
				inWindow, release := make(chan struct{}), make(chan struct{})
				testHookBeforeApply = func() { close(inWindow); <-release }
				released := false
				defer func() {
					if !released {
						close(release)
					}
					testHookBeforeApply = nil
				}()
				f.ack() // returns with the log synced, the index not written
				<-inWindow
				testHookBeforeApply = nil
				var crashed *vfs.CrashFS
				readB := func(when string) {
					if crashed != nil {
						return // the crashed view is read after the reopen
					}
					got := make([]byte, bs)
					if _, err := h.ReadAt(got, 0); err != nil {
						t.Fatalf("read in the window (%s): %v", when, err)
					}
					if !bytes.Equal(got, b0) {
						t.Fatalf("read in the window (%s): block 0 is not the acknowledged write", when)
					}
				}
				readB("before the cleaner")
				if stage == "window" {
					crashed = cfs.Crash(seed)
				}
				s.cleaner.stageHook = func(st string) {
					if crashed == nil && st == stage {
						crashed = cfs.Crash(seed)
					}
				}
				s.cleaner.running.Store(true) // removals without a directory sync
				_, cerr := s.cleanSegments([]ids.Segment{f.segA}, nil, nil)
				s.cleaner.running.Store(false)
				s.cleaner.stageHook = nil
				if cerr != nil && crashed == nil {
					t.Fatal(cerr)
				}
				readB("after the cleaner")
				if stage == "cleaned" {
					crashed = cfs.Crash(seed)
				}
				close(release)
				released = true
				if err := s.commit(); err != nil && crashed == nil { // waits for the apply
					t.Fatal(err)
				}
				readB("after the apply")
				if stage == "applied" {
					crashed = cfs.Crash(seed)
				}
				if crashed == nil {
					t.Fatalf("stage %q never reached", stage)
				}
				h.Close()
				what := fmt.Sprintf("seed %d, crash at %q, rebuild %v", seed, stage, rebuild)
				s2 := reopenAfterCrash(t, s, f.dir, f.opts, crashed, rebuild)
				if got := m.block("a", 0); !bytes.Equal(got, b0) || len(m.allowed["a"]) != 0 {
					t.Fatal("model: block 0 is not B, or writes unacknowledged")
				}
				checkCleanAcrossGC(t, s2, m, what)
				ran++
			})
		}
	}
	if ran != len(stages)*4 {
		t.Fatalf("%d runs of %d", ran, len(stages)*4)
	}
}
