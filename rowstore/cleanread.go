package rowstore

import (
	"slices"
	"sync"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// The cleaner's reads (see "The cleaner's reads" in the package doc): with
// the live map installed, the cleaner reads only the records the map names
// in a segment, not the whole segment, when the segment holds nothing but
// data records (segment.Log.DataOnly: created since Open, no hole or
// catalog record appended to it, which the map does not track).
//
// The positions come from livePositions, lists of the live records of
// every sealed, committed segment, built by one pass over the live table
// and kept across rounds (a segment's list is dropped once it is moved):
// such a segment only loses live records (a commit, a repoint or a repair
// writes its new version to an active segment; GC deletes), so a list
// built earlier names every record live now, and some that died since
// (read, found dead by the map, skipped). A segment it does not cover
// (sealed or committed since) rebuilds the lists; a new generation of the
// map (installed or dropped) invalidates them.
//
// The records named are read in runs (adjacent ones, and across gaps of
// at most cleanReadGap dead bytes, in one read of at most cleanReadMax),
// and every record read is decoded and its checksum checked, as the scan
// does, so a corrupt record is never copied. Any surprise (a record that
// does not decode, a listed position that is not a record boundary, or
// live bytes left in the segment that the reads did not gather) falls back
// to the whole-segment scan for what was not gathered yet: the scan
// reports corruption and the finisher's usage check stays the backstop.

const (
	// cleanReadGap: dead bytes between two live records read through
	// rather than ending the run (one pread costs about as much as
	// copying a few KiB).
	cleanReadGap = 12 << 10
	// cleanReadMax bounds one read of a run.
	cleanReadMax = 1 << 20
)

// livePos is the offset and length of a live record in a segment.
type livePos struct{ off, len uint32 }

// liveLists is the cleaner's cache of livePositions (gcMu held to use it).
type liveLists struct {
	gen     uint64 // the live map's generation it was built at
	segs    map[ids.Segment][]livePos
	builds  int64 // rebuilds since Open (tests, debug log)
	scanned int64 // segments that fell back to a scan after a listed read
}

// livePositions returns the positions of the live data versions in every
// segment for which covered is true, sorted by offset, and the map's
// generation; ok is false when no map is installed (or it changed during
// the pass). Two passes over the table, a shard at a time with the map's
// lock held (a commit waits for one shard, a 64th of the table, not for
// the whole pass: about 1 ms per 2^20 versions): the first counts per
// segment, so the lists take exactly 8 bytes a listed version (8 MiB at
// liveMapMax), the second fills them. Between the passes and shards a
// covered segment can only lose live versions (the lists stay a superset
// of what is live) and a version never moves between shards (its key's
// hash names the shard).
func (lm *liveMap) livePositions(covered map[ids.Segment]bool) (map[ids.Segment][]livePos, uint64, bool) {
	lm.mu.Lock()
	t, gen := lm.m, lm.gen
	lm.mu.Unlock()
	if t == nil {
		return nil, 0, false
	}
	// each runs fn over shard i's entries of covered segments, with the
	// lock held; false if the map changed.
	each := func(i int, fn func(n ids.Segment, e *liveEntry)) bool {
		lm.mu.Lock()
		defer lm.mu.Unlock()
		if lm.m != t || lm.gen != gen {
			return false
		}
		sl := t.shards[i].slots
		for j := range sl {
			e := &sl[j]
			if e.len == 0 {
				continue
			}
			if n := ids.Segment(e.segment); covered[n] {
				fn(n, e)
			}
		}
		return true
	}
	count := make(map[ids.Segment]int, len(covered))
	for i := range t.shards {
		if !each(i, func(n ids.Segment, _ *liveEntry) { count[n]++ }) {
			return nil, 0, false
		}
	}
	out := make(map[ids.Segment][]livePos, len(covered))
	for n := range covered {
		out[n] = make([]livePos, 0, count[n])
	}
	for i := range t.shards {
		if !each(i, func(n ids.Segment, e *liveEntry) {
			if l := out[n]; len(l) < cap(l) { // a segment only loses versions: never more than counted
				out[n] = append(l, livePos{e.offset, e.len})
			}
		}) {
			return nil, 0, false
		}
	}
	for _, l := range out {
		slices.SortFunc(l, func(a, b livePos) int { return int(int64(a.off) - int64(b.off)) })
	}
	return out, gen, true
}

// mapGen returns the map's generation and whether it is installed.
func (lm *liveMap) mapGen() (uint64, bool) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	return lm.gen, lm.m != nil
}

// listedLive returns the live positions of segment num for a listed read,
// rebuilding the lists if they do not cover it (gcMu held); ok is false
// when the segment must be scanned: no map, or not a data-only segment,
// or not sealed and committed. cleanFloor is the round's (cleanWith): the
// cleaner segments below it had their copies repointed before the round
// began; 0 covers none of them.
func (s *Store) listedLive(num ids.Segment, cleanFloor ids.Segment) ([]livePos, bool) {
	if !s.seg.DataOnly(num) {
		return nil, false
	}
	c := s.cleaner
	gen, ok := c.lm.mapGen()
	if !ok {
		return nil, false
	}
	if c.lists.gen == gen && c.lists.segs != nil {
		if l, ok := c.lists.segs[num]; ok {
			return l, true
		}
	}
	// Rebuild: every segment sealed and committed now (the checkpoint's
	// segment is read before the pass, so every record below it is in
	// the map), and the cleaner's below the round's floor.
	cp := s.cpSegment.Load()
	covered := map[ids.Segment]bool{}
	for _, si := range s.seg.Segments() {
		if si.Cleaner && si.Number < cleanFloor || !si.Cleaner && si.Number < cp {
			covered[si.Number] = true
		}
	}
	if !covered[num] {
		return nil, false
	}
	segs, gen, ok := c.lm.livePositions(covered)
	if !ok {
		return nil, false
	}
	c.lists.gen, c.lists.segs = gen, segs
	c.lists.builds++
	return segs[num], true
}

// dropListed forgets the list of a segment that was moved.
func (c *cleaner) dropListed(num ids.Segment) { delete(c.lists.segs, num) }

// moveListed gathers the live records of segment num named by list into
// mv, reading only them (see above). It returns the offsets it gathered
// and false if the segment must be scanned for the rest (the caller then
// skips those offsets).
func (s *Store) moveListed(num ids.Segment, list []livePos, mv *mover, buf *[]byte) (gathered []int64, complete bool, err error) {
	defer func() {
		// What was gathered from the read buffer is appended before the
		// buffer is reused (or the scan takes over).
		if ferr := mv.flush(); ferr != nil && err == nil {
			err = ferr
		}
	}()
	var bytes int64
	for i := 0; i < len(list); {
		// A run: list[i:j], read at once.
		start := int64(list[i].off)
		end := start + int64(list[i].len)
		j := i + 1
		for j < len(list) && int64(list[j].off)-end <= cleanReadGap && int64(list[j].off)+int64(list[j].len)-start <= cleanReadMax {
			end = int64(list[j].off) + int64(list[j].len)
			j++
		}
		if cap(*buf) < int(end-start) {
			*buf = make([]byte, end-start) // one record larger than cleanReadMax
		}
		b := (*buf)[:end-start]
		if err := s.seg.ReadRaw(num, b, start); err != nil {
			return gathered, false, nil // the scan reads it again and reports what it finds
		}
		// Walk the run record by record (a gap holds whole records).
		off := start
		for off < end {
			r, n, derr := segment.Decode(b[off-start:])
			if derr != nil {
				return gathered, false, nil
			}
			pos := segment.Pos{Segment: num, Offset: off, Length: uint32(n)}
			raw := b[off-start : off-start+int64(n)]
			listed := i < j && int64(list[i].off) == off
			if i < j && int64(list[i].off) < off {
				return gathered, false, nil // a listed offset inside a record: not a boundary
			}
			off += int64(n)
			if !listed {
				continue // in a gap: dead when the lists were built, dead now
			}
			i++
			if r.Kind != segment.KindData || int64(n) != int64(list[i-1].len) {
				return gathered, false, nil
			}
			live, known := s.cleaner.lm.liveAt(&r, pos)
			if !known {
				return gathered, false, nil // the map went away: scan
			}
			if !live || (testSkipMove != nil && testSkipMove(pos)) {
				continue
			}
			if err := mv.addRef(&r, raw, pos); err != nil {
				return gathered, false, err
			}
			gathered = append(gathered, pos.Offset)
			bytes += int64(n)
		}
		// Appended from the read buffer before it is read into again.
		if err := mv.flush(); err != nil {
			return gathered, false, err
		}
		if off != end || i != j {
			return gathered, false, nil
		}
	}
	// Every record live now in the segment was listed: the usage table
	// counts no more than what was gathered (a record gathered may have
	// died since, never the reverse).
	if left := s.cleaner.lm.liveIn(num); left > bytes {
		s.log.Warn("cleaner: a listed read left live records in a segment; scanning it",
			"segment", num, "live_bytes", left, "gathered_bytes", bytes)
		return gathered, false, nil
	}
	return gathered, true, nil
}

// listedBufs keeps the read buffers of listed reads (up to cleanReadMax)
// between batches.
var listedBufs = sync.Pool{New: func() any { b := make([]byte, cleanReadMax); return &b }}
