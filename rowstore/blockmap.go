package rowstore

import "github.com/snapfs/snapfs/index"

// blockMap caches, per block of a disk, the version its head sees: the
// result of a lookup through the disk's chain (pending versions and the
// index), so that reads, read-modify-writes and writes of blocks met before
// need no index transaction. It lives in diskState and is used under its
// mutex.
//
// Correctness:
//   - Every write of the head goes through the disk (WriteAt, flushes,
//     PunchHole, under the disk's lock), which sets the entry of each block it
//     stores. A lookup made without the lock is entered only if no change
//     happened since it began (gen), so a lookup that raced with a write
//     never hides it.
//   - The map holds for one head layer: a rollback gives the disk a new head
//     layer, and the map is emptied when it sees another one. A snapshot only
//     bumps the head's epoch: what the head sees does not change.
//   - Records never change in place and segment numbers are never reused, so
//     an entry is either exact or stale in its place only: the cleaner
//     relocated the record (the copy it read is the same record, same
//     sequence number, same bytes) and may have removed the segment, or a
//     repair rewrote a bad record elsewhere. A read through an entry that
//     fails in any way (segment gone, corrupt record) is done again through
//     the index under readMu, as without the map; only that answer counts
//     (so a corrupt block still reads as ErrCorrupt, never as old data).
//
// Memory: at most blockMapMax entries per disk (a random eighth is dropped
// when full), about 60 bytes each.
type blockMap struct {
	layer uint64 // head layer the entries are for
	gen   uint64 // bumped by every change of the head's content
	m     map[uint64]bmEntry
}

// bmEntry is a cached lookup: no version (state 0), a hole (1) or data (2)
// at (seg, off, length) with sequence number seq.
type bmEntry struct {
	seg    uint64
	off    int64
	seq    uint64
	length uint32
	state  uint8
}

const (
	bmNone uint8 = iota
	bmHole
	bmData
)

// blockMapMax bounds the entries cached per disk: 256 Ki blocks (4 GiB of
// 16 KiB blocks), about 16 MiB.
const blockMapMax = 1 << 18

func bmFrom(v index.Version, found bool) bmEntry {
	switch {
	case !found:
		return bmEntry{}
	case v.Zero():
		return bmEntry{seq: v.Seq, state: bmHole}
	}
	return bmEntry{seg: v.Segment, off: v.Offset, seq: v.Seq, length: v.Length, state: bmData}
}

func (e bmEntry) version() (index.Version, bool) {
	switch e.state {
	case bmNone:
		return index.Version{}, false
	case bmHole:
		return index.Version{Seq: e.seq, Flags: index.FlagZero}, true
	}
	return index.Version{Segment: e.seg, Offset: e.off, Length: e.length, Seq: e.seq}, true
}

// bmCheckLocked empties the map if the disk's head layer changed.
func (d *diskState) bmCheckLocked() {
	if head := d.chain[0].layer; d.bmap.m == nil || d.bmap.layer != head {
		d.bmap.m = map[uint64]bmEntry{}
		d.bmap.layer = head
		d.bmap.gen++
	}
}

// bmGetLocked returns the cached version of block b, if cached.
func (d *diskState) bmGetLocked(b uint64) (v index.Version, found, ok bool) {
	d.bmCheckLocked()
	e, ok := d.bmap.m[b]
	if !ok {
		return index.Version{}, false, false
	}
	v, found = e.version()
	return v, found, true
}

// bmPutLocked records what the head sees of block b (a lookup's answer).
func (d *diskState) bmPutLocked(b uint64, v index.Version, found bool) {
	d.bmCheckLocked()
	if len(d.bmap.m) >= blockMapMax {
		n := 0
		for k := range d.bmap.m { // map order is random: a random eighth
			delete(d.bmap.m, k)
			if n++; n >= blockMapMax/8 {
				break
			}
		}
	}
	d.bmap.m[b] = bmFrom(v, found)
}

// bmSetLocked records a new version of block b written to the head.
func (d *diskState) bmSetLocked(b uint64, v index.Version) {
	d.bmap.gen++
	d.bmPutLocked(b, v, true)
}

// bmDropLocked forgets block b (a read through its entry failed).
func (d *diskState) bmDropLocked(b uint64) {
	d.bmCheckLocked()
	delete(d.bmap.m, b)
}

// lookupLocked is lookupMany through the disk's chain, answered from the
// block map where it can (disk's lock held).
func (d *diskState) lookupLocked(blocks []uint64) ([]index.Version, []bool, error) {
	vs := make([]index.Version, len(blocks))
	found := make([]bool, len(blocks))
	var miss []uint64
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
