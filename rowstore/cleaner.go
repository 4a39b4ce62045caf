package rowstore

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// The background cleaner keeps the segment log within a bounded factor of
// what is live (see "Bounded space" in the package doc). With the live map
// installed (segusage.go) it knows live exactly and runs incremental rounds
// near the bound, without scans; else it runs full rounds (a GC scan, then
// cleaning), triggered by the estimated dead fraction of the log and paced
// by a token bucket filled in proportion to the foreground's appends.

const (
	cleanerTick = 20 * time.Millisecond
	// cleanerStart and cleanerTarget: a round starts when the log reaches
	// cleanerStart × live and cleans down to cleanerTarget × live. Close to
	// the 1.5 bound on purpose: the fuller the log may be, the emptier the
	// segments the cleaner picks, and the less it moves per byte freed
	// (greedy cleaning under uniform overwrite moves about (1+ρ)/(2ρ) - 1
	// bytes per byte written, ρ the spare fraction: 0.6 at ρ = 0.45, 2.2 at
	// ρ = 0.2).
	cleanerStart  = 1.40
	cleanerTarget = 1.28
	// cleanerHard is the ratio at which pacing stops: the bound is kept
	// first, throughput second.
	cleanerHard = 1.43
	// cleanerMaxLive: segments fuller than this are not worth moving.
	cleanerMaxLive = 0.85
	// cleanerIdleRate is the relocation rate allowed when no foreground
	// write came for a tick (bytes per second).
	cleanerIdleRate = 1 << 30
	// cleanerMinLog is the log size below which the cleaner never runs.
	cleanerMinLog = 8 << 20
)

// errCleanerStopped ends a paced round when the store closes.
var errCleanerStopped = errors.New("cleaner stopped")

// CleanerStats reports the background cleaner's work since Open.
type CleanerStats struct {
	Rounds         int   `json:"rounds"`
	BytesRelocated int64 `json:"bytes_relocated"`
	BytesFreed     int64 `json:"bytes_freed"`
	// LastLive is the live bytes the last round found.
	LastLive int64 `json:"last_live"`
	// Paused is how long rounds slept for pacing; Throttled how long new
	// writes waited for the cleaner (summed over writers).
	Paused    time.Duration `json:"paused_ns"`
	Throttled time.Duration `json:"throttled_ns"`
}

type cleaner struct {
	// lm is the live map and segment usage table (segusage.go); catGen
	// counts catalog changes.
	lm     *liveMap
	catGen atomic.Uint64
	// builtAt (unix ns) and scanNs: when the live map was last built, and
	// how long that scan took (see mapUsable).
	builtAt atomic.Int64
	scanNs  atomic.Int64
	fg      atomic.Int64 // bytes appended by foreground writes since Open
	// limitAt is the segment bytes at which new writes wait for a running
	// round (cleanerLimit × live; 0: never), counting inflight, the bytes
	// the batch in flight may still append; running is set while a round
	// runs.
	limitAt  atomic.Int64
	inflight atomic.Int64
	// minBatch is the room a batch needs (a 32nd of live in full rounds,
	// incBatch in incremental ones): writers keep it under limitAt.
	minBatch atomic.Int64
	running  atomic.Bool
	// incr: the live map is current (incremental rounds), so limitAt
	// follows live at every tick and writers may wait between rounds too.
	incr atomic.Bool
	kick chan struct{} // a writer waits, or the log passed startAt: run now
	// startAt is, while incremental rounds are on (incr), the log bytes at
	// which a round is due: the append that reaches it kicks the cleaner
	// (kickAtStart), so a round starts at once, not up to a tick later
	// with writers already waiting at the limit.
	startAt atomic.Int64
	// progress is closed (and replaced) whenever a round removed segments or
	// ended, waking writers held by throttle.
	progMu   sync.Mutex
	progress chan struct{}
	// stageHook, if set (tests only, before the cleaner runs), is called at
	// each stage of a batch: "moved" (a gathering of moves appended),
	// "log synced", "repointed", "index synced".
	stageHook func(stage string)
	// grouped counts the finishes that took more than one batch (tests).
	grouped atomic.Int64
	// lists: the live positions of sealed segments (cleanread.go; gcMu).
	lists liveLists

	mu        sync.Mutex
	st        CleanerStats
	lastAfter int64 // segment bytes when the last round ended
	known     bool  // a round has measured live
	// The token bucket (bytes the cleaner may move), its last refill, and
	// the bytes recent rounds moved per byte they freed.
	tokens    float64
	lastFG    int64
	lastFill  time.Time
	moveRatio float64
}

func newCleaner() *cleaner { return &cleaner{lm: &liveMap{}, kick: make(chan struct{}, 1)} }

// refillLocked adds the tokens earned since the last refill (c.mu held):
// per byte the foreground appended, what freeing a byte has recently cost
// in moves, with a quarter more (so the cleaner keeps pace with the
// foreground and no faster), at least rate; at cleanerIdleRate while the
// foreground is idle. The bucket holds at most a 16th of live (4 MiB at
// least).
func (c *cleaner) refillLocked(rate float64) {
	now := time.Now()
	fg := c.fg.Load()
	if c.lastFill.IsZero() {
		c.lastFG, c.lastFill = fg, now
		return
	}
	if fg == c.lastFG {
		if dt := now.Sub(c.lastFill); dt >= cleanerTick {
			c.tokens += cleanerIdleRate * dt.Seconds()
			c.lastFill = now
		}
	} else {
		ratio := c.moveRatio
		if ratio == 0 {
			ratio = 1
		}
		c.tokens += max(rate, 1.25*ratio) * float64(fg-c.lastFG)
		c.lastFG, c.lastFill = fg, now
	}
	c.tokens = min(c.tokens, float64(max(c.st.LastLive/16, 4<<20)))
}

// segmentBytes is the size of the segment log.
func (s *Store) segmentBytes() int64 { return s.seg.Bytes() }

// atRisk reports whether the log, with what the cleaner's batch in flight
// may still append (at least the room the next batch needs), reaches
// cleanerLimit × live.
func (s *Store) atRisk() bool {
	c := s.cleaner
	limit := c.limitAt.Load()
	if limit <= 0 {
		return false
	}
	// Never below where the cleaner starts (cleanerMinLog) plus room for
	// its batch: writers must not wait for a cleaner that is not due.
	batch := c.minBatch.Load()
	limit = max(limit, cleanerMinLog+2*batch)
	return s.seg.Bytes()+max(c.inflight.Load(), batch) >= limit
}

// throttle holds a new disk write while the bound is at risk (atRisk) and
// a round runs or incremental rounds are on (the limit then follows live
// at every tick), waking the cleaner, until a round frees space or ends,
// or the cleaner's next tick (at most a second): the bound is kept first,
// throughput second. Writers are not held otherwise.
func (s *Store) throttle() {
	c := s.cleaner
	if !(c.running.Load() || c.incr.Load()) || !s.atRisk() {
		return
	}
	select { // wake the cleaner now, not at its next tick
	case c.kick <- struct{}{}:
	default:
	}
	t0 := time.Now()
	defer func() {
		c.mu.Lock()
		c.st.Throttled += time.Since(t0)
		c.mu.Unlock()
	}()
	deadline := time.Now().Add(time.Second)
	for (c.running.Load() || c.incr.Load()) && s.atRisk() && time.Now().Before(deadline) {
		c.progMu.Lock()
		if c.progress == nil {
			c.progress = make(chan struct{})
		}
		ch := c.progress
		c.progMu.Unlock()
		select {
		case <-ch:
		case <-s.stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stage reports a stage of a batch to the test hook.
func (c *cleaner) stage(name string) {
	if c.stageHook != nil {
		c.stageHook(name)
	}
}

// kickAtStart wakes the cleaner when incremental rounds are on and the log
// reached the bytes at which a round is due (every foreground append: two
// atomic loads).
func (s *Store) kickAtStart() {
	c := s.cleaner
	if !c.incr.Load() || s.seg.Bytes() < c.startAt.Load() {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// progressed wakes the writers throttle holds.
func (c *cleaner) progressed() {
	c.progMu.Lock()
	if c.progress != nil {
		close(c.progress)
		c.progress = nil
	}
	c.progMu.Unlock()
}

// CleanerStats returns what the background cleaner has done.
func (s *Store) CleanerStats() CleanerStats {
	s.cleaner.mu.Lock()
	defer s.cleaner.mu.Unlock()
	return s.cleaner.st
}

// A catalog change makes the live map stale: a snapshot, disk or image
// deleted frees versions only a full scan finds. It never makes the map
// keep too little (a catalog change only lowers liveness; what it makes
// live, a clone's or rollback's, was live already), so a stale map is
// still safe to clean with: it moves some dead records and counts them
// live. A full round after every change cost a third of the daemon's CPU
// with a snapshot a second, so incremental rounds go on with a stale map
// for staleMin, or staleFactor × the last full scan if longer (full scans
// at most a 20th of the time), before a full round rescans. Not longer:
// while snapshots are taken and deleted, a stale map counts every version
// a deleted snapshot held as live, so it frees less and less.
const (
	staleMin    = time.Second
	staleFactor = 20
)

// mapUsable reports whether rounds may use the live map (installed, and
// not stale for longer than allowed), with its live total.
func (c *cleaner) mapUsable() (bool, int64) {
	ok, live, gen := c.lm.installed()
	if !ok {
		return false, 0
	}
	if gen == c.catGen.Load() {
		return true, live
	}
	since := time.Duration(time.Now().UnixNano() - c.builtAt.Load())
	return since < max(staleMin, staleFactor*time.Duration(c.scanNs.Load())), live
}

// cleanerDue reports whether the log has grown enough, past what the last
// round measured as live, to be worth a round.
func (s *Store) cleanerDue(segs int64) bool {
	c := s.cleaner
	c.mu.Lock()
	defer c.mu.Unlock()
	if segs < cleanerMinLog {
		return false
	}
	if ok, live := c.mapUsable(); ok {
		// Live is known exactly (the live map): clean near the bound.
		start, _ := incRatios(live)
		return float64(segs) >= start*float64(live)
	}
	if !c.known {
		return true
	}
	live := c.st.LastLive
	if float64(segs) >= cleanerStart*float64(live) {
		return true
	}
	// Live may have grown (new data) since it was measured: measure again
	// once the log grew by the dead fraction that starts a round.
	return float64(segs) >= float64(c.lastAfter)/(1-s.opts.CleanerDeadFraction)
}

// cleanerSegmentSize is the rotation size while the cleaner runs: a 16th
// of what is live, at least 1 MiB, at most Options.SegmentSize. Small
// segments let the cleaner pick the emptiest and free space in small steps;
// only sealed segments can be cleaned.
func (s *Store) cleanerSegmentSize(live int64) int64 {
	if s.cleaner.lm.has() {
		return min(max(live/incSegDiv, 512<<10), s.opts.SegmentSize)
	}
	return min(max(live/16, 1<<20), s.opts.SegmentSize)
}

// runCleaner is the cleaner's goroutine.
func (s *Store) runCleaner() {
	// Rotations come often while the cleaner runs (small segments, moved
	// records): the next segment is created ahead, off the append path.
	s.seg.SetPrecreate(true)
	t := time.NewTicker(cleanerTick)
	defer t.Stop()
	again := false
	var backoff time.Duration // after failed rounds
	var failed int            // rounds failed in a row
	var logged time.Time      // when the last failure was logged
	for {
		if again {
			// The last round freed space and the log is still due (the
			// foreground wrote on while it ran): go on at once, not at the
			// next tick, or a fast writer outruns a round per tick.
			select {
			case <-s.stop:
				return
			default:
			}
		} else {
			select {
			case <-s.stop:
				return
			case <-t.C:
			case <-s.cleaner.kick: // a writer waits, or the log passed startAt
			}
		}
		again = false
		c := s.cleaner
		if ok, l := c.mapUsable(); ok {
			// Live is known now: the writers' limit follows it.
			c.limitAt.Store(int64(cleanerLimit * float64(l)))
			c.minBatch.Store(incBatch(l))
			start, _ := incRatios(l)
			c.startAt.Store(max(cleanerMinLog, int64(start*float64(l))))
			c.incr.Store(true)
			c.progressed()
		} else {
			c.incr.Store(false)
		}
		c.mu.Lock()
		live, known := c.st.LastLive, c.known
		c.mu.Unlock()
		if known {
			s.seg.SetSegmentSize(s.cleanerSegmentSize(live))
		}
		if !s.cleanerDue(s.segmentBytes()) {
			continue
		}
		freed := c.freedTotal()
		if err := s.cleanRound(); err != nil {
			if !errors.Is(err, errCleanerStopped) && !errors.Is(err, ErrClosed) {
				failed++
				if time.Since(logged) >= time.Minute {
					s.log.Error("background cleaner failed", "err", err, "failed_rounds", failed)
					logged = time.Now()
				}
			}
			// A failure that lasts (no descriptors, an I/O error) is not
			// retried every tick: back off, 1 s doubling to 30 s.
			backoff = min(max(2*backoff, time.Second), 30*time.Second)
			if !s.cleanerPause(backoff) {
				return
			}
			continue
		}
		if failed > 0 {
			s.log.Info("background cleaner works again", "failed_rounds", failed)
			failed, logged = 0, time.Time{}
		}
		backoff = 0
		again = c.incr.Load() && c.freedTotal() > freed
	}
}

// cleanerPause waits after a failed round: a second, then until backoff
// has passed or the cleaner is kicked (a writer waits, or an append passed
// startAt: kickAtStart). It returns false when the store stops.
func (s *Store) cleanerPause(backoff time.Duration) bool {
	select {
	case <-s.stop:
		return false
	case <-time.After(time.Second):
	}
	if backoff <= time.Second {
		return true
	}
	t := time.NewTimer(backoff - time.Second)
	defer t.Stop()
	select {
	case <-s.stop:
		return false
	case <-t.C:
	case <-s.cleaner.kick:
	}
	return true
}

// freedTotal is the bytes the cleaner has freed since Open.
func (c *cleaner) freedTotal() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.BytesFreed
}

// cleanRound is one paced GC and cleaning pass.
func (s *Store) cleanRound() error {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	c := s.cleaner
	c.mu.Lock()
	live := c.st.LastLive
	c.mu.Unlock()
	incremental := false
	if ok, l := c.mapUsable(); ok && s.verified.Load() {
		incremental, live = true, l
		c.mu.Lock()
		c.st.LastLive = l
		c.mu.Unlock()
		c.limitAt.Store(int64(cleanerLimit * float64(l)))
		c.minBatch.Store(incBatch(l))
	}
	s.seg.SetSegmentSize(s.cleanerSegmentSize(live))
	rate := s.opts.CleanerRate
	pace := func(n int64) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.tokens -= float64(n)
		for c.tokens < 0 {
			select {
			case <-s.stop:
				return errCleanerStopped
			default:
			}
			if rate < 0 || float64(s.segmentBytes()) >= cleanerHard*float64(c.st.LastLive) {
				return nil // no pacing, or the bound first
			}
			c.refillLocked(rate)
			if c.tokens < 0 {
				c.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
				c.mu.Lock()
				c.st.Paused += 2 * time.Millisecond
			}
		}
		return nil
	}
	plan := &cleanPlan{targetRatio: cleanerTarget, maxLive: cleanerMaxLive, pace: pace, removed: c.progressed,
		limitRatio: cleanerLimit, inflight: &c.inflight}
	before := s.segmentBytes()
	c.running.Store(true)
	var st GCStats
	var err error
	if incremental {
		st, err = s.cleanIncremental(plan, live)
	} else {
		st, err = s.gcLocked(plan)
	}
	c.running.Store(false)
	c.progressed()
	s.log.Debug("cleaner round", "segment_bytes_before", before, "segment_bytes_after", s.segmentBytes(),
		"live", st.LiveBytes, "relocated", st.BytesRelocated, "freed", st.BytesFreed,
		"segments", st.SegmentsCleaned, "duration", st.Duration, "err", err)
	c.mu.Lock()
	if st.LiveBytes > 0 || err == nil {
		c.st.LastLive = st.LiveBytes
		c.known = true
		c.limitAt.Store(int64(cleanerLimit * float64(st.LiveBytes)))
		c.minBatch.Store(st.LiveBytes / 32)
		if ok, _, _ := c.lm.installed(); ok {
			c.minBatch.Store(incBatch(st.LiveBytes))
		}
	}
	c.st.Rounds++
	c.st.BytesRelocated += st.BytesRelocated
	c.st.BytesFreed += st.BytesFreed
	if st.BytesFreed > 0 {
		c.moveRatio = (c.moveRatio + float64(st.BytesRelocated)/float64(st.BytesFreed)) / 2
	}
	c.lastAfter = s.segmentBytes()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = s.rearm()
	return err
}

// Incremental rounds (the live map installed and no catalog change since it
// was built): no scan; the usage table picks the segments and the map says
// which records are live. They start at incStart × live and clean to
// incTarget × live, in batches of about live/incBatchDiv, in segments of
// live/incSegDiv: the log stays near the bound, where the segments cleaned
// are emptiest. (Variables for the benchmark's experiments.)
var (
	// cleanerLimit is where new writes wait: the log plus what the batch in
	// flight may still append must stay under it (1.5 less a margin for
	// the writes already past the check). The start is 0.04 × live below
	// it, room for a round's copies and what the foreground writes while
	// the round moves and finishes, and the target 0.01 × live below the
	// start, more than a segment's dead bytes, so a round cleans two
	// segments or more in pipelined batches (at 1.48, 1.455 and 1.45 every
	// round was one batch of one segment, moved then finished, and writers
	// waited at the limit: "Fifth pass" in the package doc).
	cleanerLimit       = 1.49
	incStart           = 1.45
	incTarget          = 1.44
	incBatchDiv  int64 = 128
	incSegDiv    int64 = 64
)

// repointChunk is the most moves one repoint write batch carries; idxMu is
// released between batches. A foreground commit waits for idxMu, then in
// Badger's single write goroutine, behind the repoint batch ahead of it:
// a group of four batches' repoints (about 1,900 records at 256 MiB live)
// in one batch held idxMu for its whole write (1.3 s of the commits' wait
// in a 10-pass run through the mount).
const repointChunk = 256

// incBatch is the bytes an incremental batch moves at most.
func incBatch(live int64) int64 { return min(32<<20, max(live/incBatchDiv, 256<<10)) }

// incRatios are the start and target ratios of incremental rounds: lower
// than incStart and incTarget when live is small, so that a round starts
// two batches before writers wait (cleanerLimit, less a batch).
func incRatios(live int64) (start, target float64) {
	if live <= 0 {
		return incStart, incTarget
	}
	start = max(min(incStart, cleanerLimit-2*float64(incBatch(live))/float64(live)), 1.2)
	return start, start - (incStart - incTarget)
}

// cleanIncremental is one round without a scan (gcMu held).
func (s *Store) cleanIncremental(plan *cleanPlan, live int64) (GCStats, error) {
	start := time.Now()
	st := GCStats{LiveBytes: live}
	_, plan.targetRatio = incRatios(live)
	plan.batch = incBatch(live)
	// Only segments whose every record was committed (below the last
	// checkpoint's segment) are judged by the map. When those cannot free
	// enough (the foreground has not synced for a while), a commit first
	// makes the sealed segments eligible.
	//
	// The eligible bound is read before the usage table, always: a commit
	// tells the map of its versions before it moves cpSegment, so a table
	// read after the bound counts every record below it. Read the other
	// way round (or taken before the commit below), a table lacks the
	// versions of the segments the commit made eligible, calls them empty
	// while every record in them is live, and the round moves them whole
	// (a 256 MiB fill through the mount: 21 MB moved for 640 bytes freed).
	active := min(s.seg.Active(), s.cpSegment.Load())
	usage := s.cleaner.lm.usage()
	need := s.seg.Bytes() - int64(plan.targetRatio*float64(live))
	if active < s.seg.Active() && eligibleDead(s.seg.Segments(), usage, active) < need {
		if err := s.advanceCheckpoint(); err != nil {
			return st, fmt.Errorf("cleaner: commit: %w", err)
		}
		active = min(s.seg.Active(), s.cpSegment.Load())
		usage = s.cleaner.lm.usage()
		ok, l, _ := s.cleaner.lm.installed()
		if !ok {
			return st, nil // dropped meanwhile: the next round rescans
		}
		live, st.LiveBytes = l, l
		_, plan.targetRatio = incRatios(live)
		plan.batch = incBatch(live)
	}
	plan.refresh = func() (map[ids.Segment]int64, ids.Segment) {
		a := min(s.seg.Active(), s.cpSegment.Load()) // before the table: see above
		return s.cleaner.lm.usage(), a
	}
	err := s.cleanWith(active, usage, live, nil, plan, &st)
	if _, l, _ := s.cleaner.lm.installed(); l > 0 {
		st.LiveBytes = l
	}
	st.Duration = time.Since(start)
	if err != nil {
		return st, fmt.Errorf("cleaner: %w", err)
	}
	return st, nil
}

// eligibleDead is the dead bytes of the segments below active.
func eligibleDead(segs []segment.SegmentInfo, usage map[ids.Segment]int64, active ids.Segment) int64 {
	var n int64
	for _, si := range segs {
		if si.Number < active {
			n += si.Size - usage[si.Number]
		}
	}
	return n
}
