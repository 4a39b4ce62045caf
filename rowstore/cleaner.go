package rowstore

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// The background cleaner keeps the segment log within a bounded factor of
// what is live (see "Bounded space" in the package doc). It is triggered by
// the estimated dead fraction of the log, not by a timer alone, and paced
// by a token bucket filled in proportion to the foreground's appends.

const (
	cleanerTick = 100 * time.Millisecond
	// cleanerTarget is what a round cleans down to, as a multiple of live.
	cleanerTarget = 1.2
	// cleanerHard is the ratio at which pacing stops: the bound is kept
	// first, throughput second.
	cleanerHard = 1.45
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
	// Paused is how long rounds slept for pacing.
	Paused time.Duration `json:"paused_ns"`
}

type cleaner struct {
	fg atomic.Int64 // bytes appended by foreground writes since Open

	mu        sync.Mutex
	st        CleanerStats
	lastAfter int64 // segment bytes when the last round ended
	known     bool  // a round has measured live
}

// segmentBytes is the size of the segment log.
func (s *Store) segmentBytes() int64 {
	var n int64
	for _, si := range s.seg.Segments() {
		n += si.Size
	}
	return n
}

// CleanerStats returns what the background cleaner has done.
func (s *Store) CleanerStats() CleanerStats {
	s.cleaner.mu.Lock()
	defer s.cleaner.mu.Unlock()
	return s.cleaner.st
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
	if !c.known {
		return true
	}
	live := c.st.LastLive
	grow := max(live/8, 4<<20)
	return float64(segs) >= float64(live)/(1-s.opts.CleanerDeadFraction) && segs >= c.lastAfter+grow
}

// runCleaner is the cleaner's goroutine.
func (s *Store) runCleaner() {
	t := time.NewTicker(cleanerTick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if !s.cleanerDue(s.segmentBytes()) {
			continue
		}
		if err := s.cleanRound(); err != nil && !errors.Is(err, errCleanerStopped) && !errors.Is(err, ErrClosed) {
			s.log.Error("background cleaner failed", "err", err)
		}
	}
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
	// Let the active segment's dead records be cleaned too: seal it once it
	// holds more than an eighth of what is live.
	if act := s.seg.Segments(); len(act) > 0 {
		if a := act[len(act)-1]; a.Size > max(live/8, 1<<20) {
			if err := s.seg.Rotate(); err != nil {
				return err
			}
		}
	}
	var (
		tokens   float64
		lastFG   = c.fg.Load()
		lastTime = time.Now()
		rate     = s.opts.CleanerRate
	)
	pace := func(n int64) error {
		tokens -= float64(n)
		for tokens < 0 {
			select {
			case <-s.stop:
				return errCleanerStopped
			default:
			}
			if rate < 0 {
				return nil // no pacing
			}
			c.mu.Lock()
			live := c.st.LastLive
			c.mu.Unlock()
			if float64(s.segmentBytes()) >= cleanerHard*float64(live) {
				return nil // the bound first
			}
			now := time.Now()
			fg := c.fg.Load()
			if fg == lastFG && now.Sub(lastTime) >= cleanerTick {
				tokens += cleanerIdleRate * now.Sub(lastTime).Seconds()
			} else {
				tokens += rate * float64(fg-lastFG)
			}
			if fg != lastFG || now.Sub(lastTime) >= cleanerTick {
				lastFG, lastTime = fg, now
			}
			if tokens < 0 {
				time.Sleep(5 * time.Millisecond)
				c.mu.Lock()
				c.st.Paused += 5 * time.Millisecond
				c.mu.Unlock()
			}
		}
		return nil
	}
	plan := &cleanPlan{targetRatio: cleanerTarget, maxLive: cleanerMaxLive, pace: pace}
	st, err := s.gcLocked(plan)
	c.mu.Lock()
	if st.LiveBytes > 0 || err == nil {
		c.st.LastLive = st.LiveBytes
		c.known = true
	}
	c.st.Rounds++
	c.st.BytesRelocated += st.BytesRelocated
	c.st.BytesFreed += st.BytesFreed
	c.lastAfter = s.segmentBytes()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = s.rearm()
	return err
}
