package rowstore

import (
	"errors"
	"math"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
)

// blockMap caches, per block of a disk, the version its head sees: the
// result of a lookup through the disk's chain (pending versions and the
// index), so that reads, read-modify-writes and writes of blocks met before
// need no index transaction. It lives in diskState and is used under its
// mutex.
//
// Correctness:
//
//   - Every write of the head goes through the disk (WriteAt, flushes,
//     PunchHole, under the disk's lock), which sets the entry of each block it
//     stores. A lookup made without the lock is entered only if no change
//     happened since it began (gen), so a lookup that raced with a write
//     never hides it.
//
//   - The map holds for one head layer: a rollback gives the disk a new head
//     layer, and the map is emptied when it sees another one. A snapshot only
//     bumps the head's epoch: what the head sees does not change.
//
//   - Records never change in place and segment numbers are never reused, so
//     an entry is either exact or stale in its place only: the cleaner
//     relocated the record (the copy it read is the same record, same
//     sequence number, same bytes) and may have removed the segment, or a
//     repair rewrote a bad record elsewhere. A read through an entry that
//     finds its segment gone or its record not the one expected (ErrNotExist,
//     ErrCorrupt) is done again through the index under readMu, as without
//     the map; only that answer counts (so a corrupt block still reads as
//     ErrCorrupt, never as old data). Other I/O errors are returned as they
//     are.
//
//   - A new disk's map starts known-empty (empty): its head layer has no
//     parent and held no version when the disk was loaded, so a block of a
//     chunk not in the map has no version, and a new chunk starts with every
//     entry "none". The first write of each block then needs no index
//     lookup either. Every version of the head is written through the disk,
//     which enters it, so this stays true until a chunk is dropped (its
//     blocks are unknown again) or the head layer changes (rollback): both
//     clear empty for good.
//
// Memory: entries are kept in chunks of bmChunk consecutive blocks, 24
// bytes an entry, made when a block of theirs is first entered; at most
// bmMaxChunks chunks a disk (16 MiB: about 700 Ki blocks, 11 GiB of 16 KiB
// blocks), a random chunk dropped when a new one would exceed that.
type blockMap struct {
	layer  ids.Layer               // head layer the entries are for
	gen    uint64                  // bumped by every change of the head's content
	chunks map[ids.Block]*bmChunkT // by block >> bmChunkShift
	// empty: a block whose chunk is not in the map has no version (see
	// above). INVARIANT: set only by bmMarkEmptyLocked for a head with no
	// parent and no version; cleared when a chunk is dropped or the head
	// layer changes, and never set again.
	empty bool
}

// bmEntry is a cached lookup: unknown (state 0), no version (1), a hole (2)
// or data (3) at (seg, off, length) with sequence number seq.
type bmEntry struct {
	seq    ids.Seq
	seg    uint32
	off    uint32
	length uint32
	state  uint8
}

const (
	bmUnknown uint8 = iota
	bmNone
	bmHole
	bmData
)

const (
	bmChunkShift = 10
	bmChunk      = 1 << bmChunkShift
	bmMaxChunks  = (16 << 20) / (bmChunk * 24)
)

type bmChunkT [bmChunk]bmEntry

// bmFrom encodes a lookup's answer; ok is false if its place does not fit
// the compact entry (never with the engine's segment sizes: offsets and
// segment numbers under 2^32).
func bmFrom(v index.Version, found bool) (bmEntry, bool) {
	switch {
	case !found:
		return bmEntry{state: bmNone}, true
	case v.Zero():
		return bmEntry{seq: v.Seq, state: bmHole}, true
	case v.Segment > math.MaxUint32 || v.Offset < 0 || v.Offset > math.MaxUint32:
		return bmEntry{}, false
	}
	return bmEntry{seg: uint32(v.Segment), off: uint32(v.Offset), seq: v.Seq, length: v.Length, state: bmData}, true
}

func (e bmEntry) version() (index.Version, bool) {
	switch e.state {
	case bmNone:
		return index.Version{}, false
	case bmHole:
		return index.Version{Seq: e.seq, Flags: index.FlagZero}, true
	}
	return index.Version{Segment: ids.Segment(e.seg), Offset: int64(e.off), Length: e.length, Seq: e.seq}, true
}

// bmCheckLocked empties the map if the disk's head layer changed.
func (d *diskState) bmCheckLocked() {
	if head := d.chain[0].layer; d.bmap.chunks == nil || d.bmap.layer != head {
		d.bmap.chunks = map[ids.Block]*bmChunkT{}
		d.bmap.layer = head
		d.bmap.gen++
		d.bmap.empty = false
	}
}

// bmMarkEmptyLocked makes the map known-empty: the caller found the head
// layer parentless and without any version (Store.layerEmpty) before any
// write of the disk could happen.
func (d *diskState) bmMarkEmptyLocked() {
	d.bmCheckLocked()
	d.bmap.empty = true
}

// bmChunkLocked returns the chunk of block b, made if missing (a new one is
// all "none" while the map is known-empty). Making one in a full map drops
// a random chunk, which ends known-emptiness.
func (d *diskState) bmChunkLocked(b ids.Block) *bmChunkT {
	c := d.bmap.chunks[b>>bmChunkShift]
	if c != nil {
		return c
	}
	if len(d.bmap.chunks) >= bmMaxChunks {
		for k := range d.bmap.chunks { // map order is random
			delete(d.bmap.chunks, k)
			break
		}
		d.bmap.empty = false // the dropped chunk's blocks are unknown again
	}
	c = new(bmChunkT)
	if d.bmap.empty {
		for i := range c {
			c[i].state = bmNone
		}
	}
	d.bmap.chunks[b>>bmChunkShift] = c
	return c
}

// bmGetLocked returns the cached version of block b, if cached.
func (d *diskState) bmGetLocked(b ids.Block) (v index.Version, found, ok bool) {
	d.bmCheckLocked()
	c := d.bmap.chunks[b>>bmChunkShift]
	if c == nil {
		if d.bmap.empty {
			return index.Version{}, false, true // never written
		}
		return index.Version{}, false, false
	}
	e := c[b&(bmChunk-1)]
	if e.state == bmUnknown {
		return index.Version{}, false, false
	}
	v, found = e.version()
	return v, found, true
}

// bmPutLocked records what the head sees of block b (a lookup's answer).
func (d *diskState) bmPutLocked(b ids.Block, v index.Version, found bool) {
	d.bmCheckLocked()
	if !found && len(d.chain) > 1 && d.s.lazyBottom(d.chain) { // (a lazy layer is never a head)
		// A lazy disk's "no version" stops being true when the block is
		// made local, below the head, unseen by this map: not kept
		// (lazy.go lazyBottom).
		d.bmDropLocked(b)
		return
	}
	e, ok := bmFrom(v, found)
	if !ok {
		e = bmEntry{} // unknown: the place does not fit the entry
		if d.bmap.chunks[b>>bmChunkShift] == nil && !d.bmap.empty {
			return // unknown already
		}
	}
	d.bmChunkLocked(b)[b&(bmChunk-1)] = e
}

// bmSetLocked records a new version of block b written to the head.
func (d *diskState) bmSetLocked(b ids.Block, v index.Version) {
	d.bmap.gen++
	d.bmPutLocked(b, v, true)
}

// bmDropLocked forgets block b (a read through its entry failed, or it
// changed in a way not worth entering).
func (d *diskState) bmDropLocked(b ids.Block) {
	d.bmCheckLocked()
	if d.bmap.chunks[b>>bmChunkShift] != nil || d.bmap.empty {
		d.bmChunkLocked(b)[b&(bmChunk-1)] = bmEntry{}
	}
}

// bmMovedLocked is told by readResolved that block b's record was not
// where its version (old, looked up before) said, and what a fresh lookup
// found (v, found). If the entry still holds old and the fresh version is
// the same record (same sequence number: the cleaner relocated it, the
// copy is the same bytes), the entry follows the record to its new place;
// else it is dropped (a repair, a lazy block hydrated, or a change since
// the lookup: the next lookup asks the index). Keeping the entry matters
// under a random-write load: the cleaner relocates records all the time,
// and a dropped entry cost the next write of the block an index lookup.
func (d *diskState) bmMovedLocked(b ids.Block, old, v index.Version, found bool) {
	cur, f, ok := d.bmGetLocked(b)
	if ok && f && found && !cur.Zero() && !old.Zero() && !v.Zero() && old.Seq != 0 &&
		cur.Seq == old.Seq && cur.Segment == old.Segment && cur.Offset == old.Offset && v.Seq == old.Seq {
		d.bmPutLocked(b, v, true)
		return
	}
	d.bmDropLocked(b)
}

// lookupLocked is lookupMany through the disk's chain, answered from the
// block map where it can (disk's lock held).
func (d *diskState) lookupLocked(blocks []ids.Block) ([]index.Version, []bool, error) {
	vs := make([]index.Version, len(blocks))
	found := make([]bool, len(blocks))
	var miss []ids.Block
	var missAt []int
	for i, b := range blocks {
		v, f, ok := d.bmGetLocked(b)
		if ok {
			vs[i], found[i] = v, f
			continue
		}
		miss = append(miss, b)
		missAt = append(missAt, i)
	}
	if len(miss) == 0 {
		return vs, found, nil
	}
	mv, mf, err := d.s.lookupMany(d.chain, miss)
	if err != nil {
		return nil, nil, err
	}
	for j, i := range missAt {
		vs[i], found[i] = mv[j], mf[j]
		d.bmPutLocked(miss[j], mv[j], mf[j])
	}
	return vs, found, nil
}

// errStopScan ends a scan early.
var errStopScan = errors.New("stop scan")

// layerEmpty reports whether layer holds no version at all: none pending,
// none being applied, none in the index (its epoch keys, no values read).
// Pending versions are looked at first: a version leaves the flushing map
// only once the index has it, so none slips between the two looks. Any
// error counts as "not empty" (the block map then asks the index, as for
// any disk).
func (s *Store) layerEmpty(layer ids.Layer) bool {
	s.pendMu.RLock()
	for _, pm := range []map[vkey]index.Version{s.pending, s.flushing} {
		for k := range pm {
			if k.layer == layer {
				s.pendMu.RUnlock()
				return false
			}
		}
	}
	s.pendMu.RUnlock()
	empty := true
	err := s.idx.View(func(t *index.Txn) error {
		return t.ScanEpochs(layer, 0, ids.MaxEpoch, func(ids.Epoch, ids.Block) error {
			empty = false
			return errStopScan
		})
	})
	return empty && err == nil
}
