package rowstore

import (
	"bytes"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/index"
)

// exclReference is the reference count of the exclusive figures and live
// bytes: GC's full scan (gc.go), without the open read handles it also
// counts as readers. The caller has no read handle open.
func exclReference(t testing.TB, s *Store) (map[string]int64, int64) {
	t.Helper()
	s.pinMu.Lock()
	pins := len(s.pins)
	s.pinMu.Unlock()
	if pins != 0 {
		t.Fatalf("exclReference with %d read handles open", pins)
	}
	res, err := s.scan()
	if err != nil {
		t.Fatal(err)
	}
	// What a child layer alone reads belongs to the one reader through it
	// (foldLayerReaders; trial 8).
	if err := s.idx.View(func(tx *index.Txn) error {
		_, readers, _, _, err := liveReaders(tx, nil)
		if err == nil {
			foldLayerReaders(res.exclusive, readers)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return res.exclusive, res.live
}

// mustExclusive fails the test if kept exclusive figures that claim to be
// current differ from a count (the staleness hooks missed a change), then
// refreshes them and compares them, and what Usage reports, with the
// reference scan.
func mustExclusive(t testing.TB, s *Store, what string) {
	t.Helper()
	if err := s.verifyExclusive(); err != nil {
		t.Fatalf("%s: kept figures claimed current: %v", what, err)
	}
	u, err := s.FreshUsage()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	f, ok := s.excl.current()
	if !ok {
		return // a background change came meanwhile; compared next time
	}
	by, live := exclReference(t, s)
	if !s.excl.quietSince(f.gen) {
		return // a background change was in flight or came during the scan
	}
	if err := diffExclusive(f.by, f.live, by, live); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if u.Store.ExclusiveStale {
		t.Fatalf("%s: FreshUsage reported stale figures with no change since", what)
	}
	if u.Store.LiveBytes != live {
		t.Fatalf("%s: usage live %d, reference %d", what, u.Store.LiveBytes, live)
	}
	for _, g := range []struct {
		kind  string
		items []ItemUsage
	}{{"disk", u.Disks}, {"snapshot", u.Snapshots}, {"image", u.Images}} {
		for _, it := range g.items {
			if want := by[g.kind+":"+it.Name]; it.Exclusive != want {
				t.Fatalf("%s: usage says %s %s holds %d bytes exclusively, reference %d", what, g.kind, it.Name, it.Exclusive, want)
			}
		}
	}
}

// TestExclusiveFigures: after every random operation (writes, punched
// holes, snapshots, clones, images, disks from images, rollbacks, deletes,
// resizes, GC, cleaner rounds), kept figures that still claim to be current
// equal a count, and fresh ones equal GC's scan; so after a clean reopen,
// and after a crash (with and without an index rebuild). Usage serves kept
// figures without counting.
func TestExclusiveFigures(t *testing.T) {
	for _, seed := range []int64{11, 12, 13} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s, dir, opts, cfs := newCrashStore(t)
			r := &acctRun{t: t, rng: rand.New(rand.NewSource(seed)), s: s}
			_, err := s.CreateDisk("d0", 64*4096, 4096)
			r.must(err, "create")
			r.disks = []string{"d0"}
			stayed, moved := 0, 0
			for i := 0; i < 200; i++ {
				mustExclusive(t, s, fmt.Sprintf("seed %d before op %d", seed, i))
				if r.rng.Intn(8) == 0 {
					r.must(s.cleanRound(), "clean round")
				} else {
					r.step()
				}
				if _, ok := s.excl.current(); ok {
					stayed++
				} else {
					moved++
				}
				if i == 100 {
					r.must(s.Close(), "close")
					s, err = Open(dir, opts)
					r.must(err, "reopen")
					r.s = s
				}
			}
			mustExclusive(t, s, "end")
			t.Logf("seed %d: figures still current after %d operations, stale after %d", seed, stayed, moved)
			if stayed == 0 || moved == 0 {
				t.Fatalf("the test is vacuous: %d current, %d stale", stayed, moved)
			}
			// Usage serves the kept figures, stale, without counting.
			runs := s.excl.runs.Load()
			h, err := s.OpenDisk(r.disks[0])
			r.must(err, "open")
			_, err = h.WriteAt([]byte{1}, 0)
			r.must(err, "write")
			r.must(h.Close(), "close disk")
			u, err := s.Usage()
			r.must(err, "usage")
			if !u.Store.ExclusiveStale || u.Store.ExclusiveAsOf.IsZero() || s.excl.runs.Load() != runs {
				t.Fatalf("usage after a write: stale %v as of %v, %d counts (want stale, a time, none)", u.Store.ExclusiveStale, u.Store.ExclusiveAsOf, s.excl.runs.Load()-runs)
			}
			// A crash, then the figures after the reopen.
			s2 := reopenAfterCrash(t, s, dir, opts, cfs.Crash(seed), seed%2 == 0)
			mustExclusive(t, s2, fmt.Sprintf("after crash (rebuild %v)", seed%2 == 0))
		})
	}
}

// TestExclusiveBackground: with background work on, figures made stale by
// writes and snapshots become current again without anyone asking, and
// equal the reference.
func TestExclusiveBackground(t *testing.T) {
	opts := testOptions()
	opts.SyncInterval = 50 * time.Millisecond
	s, _ := newTestStore(t, opts)
	if _, err := s.CreateDisk("d", 256*4096, 4096); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, 4096)
	for round := 0; round < 3; round++ {
		for i := 0; i < 64; i++ {
			buf[0] = byte(round + 1)
			if _, err := h.WriteAt(buf, int64(i)*4096); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.CreateSnapshot(fmt.Sprintf("s%d", round), []string{"d"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		u, err := s.Usage()
		if err != nil {
			t.Fatal(err)
		}
		if !u.Store.ExclusiveStale {
			// s0 and s1 each hold 64 blocks overwritten after them; s2
			// shares everything with the head.
			want := map[string]int64{"s0": 64 * 4096, "s1": 64 * 4096, "s2": 0}
			for _, sn := range u.Snapshots {
				if sn.Exclusive != want[sn.Name] {
					t.Fatalf("snapshot %s: exclusive %d, want %d", sn.Name, sn.Exclusive, want[sn.Name])
				}
			}
			by, live := exclReference(t, s)
			f, _ := s.excl.current()
			if err := diffExclusive(f.by, f.live, by, live); err != nil {
				t.Fatal(err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("figures still stale after 20 s (as of %v)", u.Store.ExclusiveAsOf)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCheckReportsAccounting: Check compares the kept space figures with a
// full count and reports a difference (a disk head's allocated count, and
// exclusive figures that claim to be current), and nothing on a sound store.
func TestCheckReportsAccounting(t *testing.T) {
	s, _ := newTestStore(t, testOptions())
	if _, err := s.CreateDisk("d", 64*4096, 4096); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	buf[0] = 1
	for i := 0; i < 8; i++ {
		if _, err := h.WriteAt(buf, int64(i)*4096); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FreshUsage(); err != nil {
		t.Fatal(err)
	}
	check := func() []CheckProblem {
		t.Helper()
		rep, err := s.Check(t.Context(), CheckOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return rep.Problems
	}
	if p := check(); len(p) != 0 {
		t.Fatalf("sound store: %+v", p)
	}
	// The kept exclusive figures go wrong while claiming to be current.
	s.excl.mu.Lock()
	s.excl.fig.by["disk:d"] += 4096
	s.excl.mu.Unlock()
	p := check()
	if len(p) != 1 || p[0].Kind != "accounting" || !strings.Contains(p[0].Message, "disk:d") {
		t.Fatalf("wrong exclusive figure: %+v", p)
	}
	// Once stale they claim nothing.
	s.excl.changed()
	if p := check(); len(p) != 0 {
		t.Fatalf("stale figures: %+v", p)
	}
	// A disk head's allocated count goes wrong.
	id := s.diskNames["d"]
	n, _ := s.acct.get(id)
	s.acct.set(id, s.acct.disks[id].layer, n+1)
	p = check()
	if len(p) != 1 || p[0].Kind != "accounting" || !strings.Contains(p[0].Message, `disk "d"`) {
		t.Fatalf("wrong allocated count: %+v", p)
	}
}

// TestExclusiveCommitInFlight: a commit (here a disk's Sync) whose versions
// are in the index but not yet recorded as a change, the window TestModel's
// background sync hit (its checkpoint write comes between the two): figures
// counted before it still claim to be current and lack its block, a count
// has it. Check (verifyExclusive) must not report that as a difference, and
// Usage meanwhile waits for the commit and counts the block.
func TestExclusiveCommitInFlight(t *testing.T) {
	s, _ := newTestStore(t, testOptions())
	const bs = 4096
	if _, err := s.CreateDisk("d", 16*bs, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	write := func(b int) {
		t.Helper()
		if _, err := h.WriteAt(bytes.Repeat([]byte{byte('a' + b)}, bs), int64(b*bs)); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	u, err := s.FreshUsage()
	if err != nil {
		t.Fatal(err)
	}
	if u.Store.LiveBytes != bs || u.Store.ExclusiveStale {
		t.Fatalf("usage before: live %d stale %v, want %d, current", u.Store.LiveBytes, u.Store.ExclusiveStale, bs)
	}

	write(1)
	flushed, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	testHookCommitFlushed = func() { once.Do(func() { close(flushed); <-release }) }
	var syncErr error
	synced := make(chan struct{})
	defer func() { // on failure too: the commit holds syncMu until released
		released.Do(func() { close(release) })
		<-synced
		testHookCommitFlushed = nil
	}()
	go func() { syncErr = h.Sync(); close(synced) }()
	<-flushed

	// The window: block 1 is in the index, the change not yet recorded.
	if _, ok := s.excl.current(); !ok {
		t.Fatal("figures stale before the commit recorded its change: the window is not provoked")
	}
	if err := s.verifyExclusive(); err != nil {
		t.Fatalf("a commit in flight reported as a difference: %v", err)
	}
	type res struct {
		u   Usage
		err error
	}
	usage := make(chan res, 1)
	go func() { u, err := s.FreshUsage(); usage <- res{u, err} }()
	released.Do(func() { close(release) })
	if <-synced; syncErr != nil {
		t.Fatal(syncErr)
	}
	r := <-usage
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.u.Store.LiveBytes != 2*bs || r.u.Store.ExclusiveStale {
		t.Fatalf("usage during the commit: live %d stale %v, want %d, current", r.u.Store.LiveBytes, r.u.Store.ExclusiveStale, 2*bs)
	}
	if !s.excl.quietSince(s.excl.gen.Load()) {
		t.Fatal("a change still in flight after the commit returned")
	}
	mustExclusive(t, s, "after the commit")
}
