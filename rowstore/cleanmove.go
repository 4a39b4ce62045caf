package rowstore

import (
	"sync"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// The cleaner's moves (see "Bounded space" in the package doc). The live
// records of a segment are gathered as its scan finds them (the scan reads
// the segment a MiB at a time and checks every record's CRC: a corrupt
// record is never copied, it is reported and its segment kept), or as a
// listed read reads them (cleanread.go: only the records the live map
// names, each checked the same way, appended from the read buffer), and
// appended a batch at a time: one hand-off of the append locks per batch,
// not per record, so the foreground's appends queue behind the cleaner's
// at most once a batch. A moved record keeps its layer, block, epoch, sequence
// number, flags and payload (an encrypted block stays sealed: its
// associated data binds those four numbers, not the position).

const (
	// moveBatchRecords and moveBatchBytes bound a batch of moves: the time
	// the append lock is held for them (a memory copy of at most
	// moveBatchBytes, or a rotation).
	moveBatchRecords = 64
	moveBatchBytes   = 256 << 10
)

// moveArenas keeps the movers' batch buffers between batches.
var moveArenas = sync.Pool{New: func() any { b := make([]byte, 0, moveBatchBytes); return &b }}

// release gives the batch buffer back (nothing gathered refers to it).
func (m *mover) release() {
	if m.arena != nil && len(m.recs) == 0 {
		b := m.arena[:0]
		m.arena = nil
		moveArenas.Put(&b)
	}
}

// mover gathers the live records the cleaner relocates and appends them in
// batches. A record is copied as the scan read and checked it (header and
// payload, segment.AppendRawBatch): its bytes do not depend on its
// position, so it is neither decoded into a new buffer nor encoded and
// checksummed again.
type mover struct {
	s     *Store
	num   ids.Segment // the segment being cleaned
	moved map[ids.Segment]int64
	pace  func(int64) error
	moves []relocation

	recs  []segment.Record // without payloads: repoint needs the key and sequence number only
	raws  [][]byte         // the records' bytes, in arena
	old   []segment.Pos
	arena []byte // the records' bytes (the scan's are valid during its call only)
	pos   []segment.Pos
}

// add gathers a live record found at pos (raw: its bytes as the scan read
// and checked them), appending the batch when full.
func (m *mover) add(r *segment.Record, raw []byte, pos segment.Pos) error {
	if len(m.recs) > 0 && (len(m.recs) >= moveBatchRecords || len(m.arena)+len(raw) > cap(m.arena)) {
		if err := m.flush(); err != nil {
			return err
		}
	}
	if m.arena == nil {
		m.arena = (*moveArenas.Get().(*[]byte))[:0]
	}
	cp := *r
	cp.Payload = nil
	var b []byte
	if len(raw) > cap(m.arena)-len(m.arena) {
		b = append([]byte(nil), raw...) // larger than a batch: its own copy
	} else {
		n := len(m.arena)
		m.arena = append(m.arena, raw...)
		b = m.arena[n:len(m.arena):len(m.arena)]
	}
	m.recs = append(m.recs, cp)
	m.raws = append(m.raws, b)
	m.old = append(m.old, pos)
	return nil
}

// addRef is add without the copy: raw stays the caller's, who flushes
// before reusing its bytes (the cleaner's listed reads: one read of a run
// of records, appended from the read buffer).
func (m *mover) addRef(r *segment.Record, raw []byte, pos segment.Pos) error {
	if len(m.recs) >= moveBatchRecords {
		if err := m.flush(); err != nil {
			return err
		}
	}
	cp := *r
	cp.Payload = nil
	m.recs = append(m.recs, cp)
	m.raws = append(m.raws, raw)
	m.old = append(m.old, pos)
	return nil
}

// flush appends the gathered records (keeping their sequence numbers) and
// notes their relocations; then paces the cleaner by the bytes moved.
func (m *mover) flush() error {
	if len(m.recs) == 0 {
		return nil
	}
	pos, err := m.s.relocateBatch(m.raws, m.pos[:0])
	m.pos = pos
	var n int64
	for i, p := range pos {
		m.moves = append(m.moves, relocation{old: m.old[i], new: p, r: m.recs[i]})
		m.moved[m.num] += int64(p.Length)
		n += int64(p.Length)
	}
	m.s.cleaner.stage("moved")
	clear(m.raws)
	m.recs, m.raws, m.old, m.arena = m.recs[:0], m.raws[:0], m.old[:0], m.arena[:0]
	if err != nil {
		return err
	}
	if m.pace != nil && n > 0 {
		return m.pace(n)
	}
	return nil
}

// relocateBatch appends copies of encoded records (raws) to the cleaner's
// own append stream (segment.AppendCleanerRawBatch: not under appendMu, so
// the foreground's appends never wait behind the cleaner's, and a
// foreground commit's log sync never carries the copies; the finisher
// syncs them with SyncCleaner before the index names them). On an error
// the positions of the records appended before it are returned with it. A
// batch that fails for lack of space gives the reserve back and is tried
// once more from the record that failed.
func (s *Store) relocateBatch(raws [][]byte, pos []segment.Pos) ([]segment.Pos, error) {
	start := len(pos)
	pos, err := s.seg.AppendCleanerRawBatch(raws, pos)
	if err != nil && isNoSpace(err) && s.releaseReserve("gc must move records") {
		pos, err = s.seg.AppendCleanerRawBatch(raws[len(pos)-start:], pos)
	}
	return pos, err
}

// relocate appends a copy of a record to the foreground stream, keeping its
// sequence number (repair: its callers sync with segment.Log.Sync).
func (s *Store) relocate(r *segment.Record) (segment.Pos, error) {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	pos, err := s.seg.Append(r)
	if err == nil {
		s.dirty = true
	}
	return pos, err
}
