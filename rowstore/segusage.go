package rowstore

import (
	"sync"
	"sync/atomic"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// The live map and the segment usage table (see "Bounded space" in the
// package doc).
//
// The live map holds, in memory, every data version a full scan of the
// index found live, and follows every later write of a version entry:
// commit (a new version at a key replaces the old one, whose record is dead
// at once), GC's deletions, and the cleaner's and repair's repoints. From
// it the usage table (live record bytes per segment) and the live total
// are exact at all times, so the cleaner needs neither a full index scan
// per round nor an index read per record it moves: a record is live iff
// the map's entry for its key names its position and sequence number, and
// the map holds the whole index value to write with the new position.
//
// Invariant (the cleaner's safety rests on it): while the map is installed
// it equals the set of data versions in the index whose layer a full scan
// found live, plus every data version written since; every writer of
// version entries holds idxMu and tells the map what it wrote after the
// write succeeded (or drops the map when a write failed midway, since the
// index may then hold part of it). The map is never persisted: after a
// crash, or when dropped, the next cleaner round rebuilds it with a full
// scan (derived lazily). Liveness it cannot see (a snapshot deleted, a read
// handle closed) only makes it keep more than the readers need, never less;
// the cleaner rescans after catalog changes to notice it.
//
// The map costs 100-210 bytes per live version (208 measured at 2^20);
// above liveMapMax versions it is not built and the cleaner falls back to
// a scan per round.

// liveMapMax bounds the versions the live map holds (about 210 MiB: 16 GiB of
// 16 KiB blocks, 4 GiB of 4 KiB ones).
var liveMapMax = 1 << 20

// liveJournalMax bounds the changes kept while a scan builds the map.
const liveJournalMax = 1 << 20

type liveChange struct {
	k   vkey
	v   index.Version
	del bool
}

type liveMap struct {
	mu sync.Mutex // taken inside idxMu by writers; alone by readers
	// m is nil while the map is not installed.
	m       map[vkey]index.Version
	segLive map[uint64]int64 // record bytes of live data versions per segment
	live    int64            // payload bytes of the live data versions
	// building is set while a scan builds the map: writers record their
	// changes in journal, applied on top of the scan's view when it is
	// installed.
	building bool
	journal  []liveChange
	// catGen is the catalog generation the map was built at.
	catGen uint64
	// tooBig: the last scan found more than liveMapMax live versions.
	tooBig atomic.Bool
}

// payloadBytes is what a data version counts as live data.
func payloadBytes(v index.Version) int64 { return int64(v.Length) - segment.HeaderSize }

// setLocked records v as the version of k (deleting it when del or when v
// is a hole), keeping the usage table in step.
func (lm *liveMap) setLocked(k vkey, v index.Version, del bool) {
	if old, ok := lm.m[k]; ok {
		lm.segLive[old.Segment] -= int64(old.Length)
		if lm.segLive[old.Segment] <= 0 {
			delete(lm.segLive, old.Segment)
		}
		lm.live -= payloadBytes(old)
		delete(lm.m, k)
	}
	if del || v.Zero() {
		return
	}
	lm.m[k] = v
	lm.segLive[v.Segment] += int64(v.Length)
	lm.live += payloadBytes(v)
}

// record tells the map about a write of version entries that succeeded
// (idxMu held).
func (lm *liveMap) record(ch []liveChange) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	switch {
	case lm.m != nil:
		for _, c := range ch {
			lm.setLocked(c.k, c.v, c.del)
		}
	case lm.building:
		if len(lm.journal)+len(ch) > liveJournalMax {
			lm.building, lm.journal = false, nil
			return
		}
		lm.journal = append(lm.journal, ch...)
	}
}

// committed is record for a commit's batch (idxMu held).
func (lm *liveMap) committed(batch map[vkey]index.Version) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	switch {
	case lm.m != nil:
		for k, v := range batch {
			lm.setLocked(k, v, false)
		}
	case lm.building:
		if len(lm.journal)+len(batch) > liveJournalMax {
			lm.building, lm.journal = false, nil
			return
		}
		for k, v := range batch {
			lm.journal = append(lm.journal, liveChange{k: k, v: v})
		}
	}
}

// drop uninstalls the map (and stops a build): a write of version entries
// failed midway, so the index may hold part of it.
func (lm *liveMap) drop() {
	lm.mu.Lock()
	lm.m, lm.segLive, lm.live = nil, nil, 0
	lm.building, lm.journal = false, nil
	lm.mu.Unlock()
}

// installed reports whether the map is installed, with its live total and
// catalog generation.
func (lm *liveMap) installed() (ok bool, live int64, catGen uint64) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	return lm.m != nil, lm.live, lm.catGen
}

// has reports whether the map is installed.
func (lm *liveMap) has() bool {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	return lm.m != nil
}

// usage returns a copy of the usage table.
func (lm *liveMap) usage() map[uint64]int64 {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	u := make(map[uint64]int64, len(lm.segLive))
	for k, v := range lm.segLive {
		u[k] = v
	}
	return u
}

// liveIn returns the live record bytes the usage table counts in a segment
// (0 without a map).
func (lm *liveMap) liveIn(num uint64) int64 {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	return lm.segLive[num]
}

// liveAt reports whether the installed map says the data record r at pos is
// the current version of its key. ok is false when no map is installed.
func (lm *liveMap) liveAt(r *segment.Record, pos segment.Pos) (live, ok bool) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if lm.m == nil {
		return false, false
	}
	v, found := lm.m[vkey{r.Layer, r.Block, r.Epoch}]
	return found && v.Segment == pos.Segment && v.Offset == pos.Offset && v.Seq == r.Seq, true
}

// liveBuild collects the map while a scan runs.
type liveBuild struct {
	m       map[vkey]index.Version
	segLive map[uint64]int64
	live    int64
	over    bool // more than liveMapMax versions: abandoned
}

func (b *liveBuild) add(k vkey, v index.Version) {
	if b.over {
		return
	}
	if len(b.m) >= liveMapMax {
		b.over, b.m, b.segLive = true, nil, nil
		return
	}
	b.m[k] = v
	b.segLive[v.Segment] += int64(v.Length)
	b.live += payloadBytes(v)
}

// beginBuild starts journaling (idxMu held, in the scan's view).
func (lm *liveMap) beginBuild() {
	lm.mu.Lock()
	lm.m, lm.segLive, lm.live = nil, nil, 0
	lm.building, lm.journal = true, nil
	lm.mu.Unlock()
}

// finishBuild installs what the scan built with the journal applied on
// top (idxMu held). It reports whether the map was installed.
func (lm *liveMap) finishBuild(b *liveBuild, catGen uint64) bool {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	ok := lm.building && b != nil && !b.over
	journal := lm.journal
	lm.building, lm.journal = false, nil
	if !ok {
		return false
	}
	lm.m, lm.segLive, lm.live, lm.catGen = b.m, b.segLive, b.live, catGen
	for _, c := range journal {
		lm.setLocked(c.k, c.v, c.del)
	}
	if len(lm.m) > liveMapMax {
		lm.m, lm.segLive, lm.live = nil, nil, 0
		return false
	}
	return true
}

// repointMap moves index entries from old to new record positions, where
// the live map says the entry still names the old record: one write of
// the version key per record, no read (the map holds the value). Holes and
// entries replaced meanwhile are skipped. With no map installed it is
// repoint.
func (s *Store) repointMap(moves []relocation) error {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	lm := s.cleaner.lm
	lm.mu.Lock()
	if lm.m == nil {
		lm.mu.Unlock()
		return s.repointLocked(moves)
	}
	var ch []liveChange
	for i := range moves {
		m := &moves[i]
		if m.r.Kind != segment.KindData {
			continue
		}
		k := vkey{m.r.Layer, m.r.Block, m.r.Epoch}
		v, ok := lm.m[k]
		if !ok || v.Segment != m.old.Segment || v.Offset != m.old.Offset || v.Seq != m.r.Seq {
			continue // replaced or deleted meanwhile
		}
		v.Segment, v.Offset, v.Length = m.new.Segment, m.new.Offset, m.new.Length
		ch = append(ch, liveChange{k: k, v: v})
	}
	lm.mu.Unlock()
	if len(ch) == 0 {
		return nil
	}
	b := s.idx.NewBatch()
	for _, c := range ch {
		if err := b.SetVersionValue(c.k.layer, c.k.block, c.k.epoch, c.v); err != nil {
			b.Cancel()
			return err
		}
	}
	if err := b.Flush(); err != nil {
		lm.drop()
		return err
	}
	lm.record(ch)
	return nil
}

// catalogChanged is called for every catalog change: the cleaner's next
// round rescans (a snapshot, disk or image deleted frees versions only a
// scan finds).
func (c *cleaner) catalogChanged() { c.catGen.Add(1) }
