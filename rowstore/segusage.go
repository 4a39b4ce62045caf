package rowstore

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
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
// The map is a hash table (liveTable, below) of 72-byte entries in 64
// slices without pointers, so the garbage collector never scans it and a
// version costs no allocation; a growth copies one slice (1/64 of it). An
// entry holds the whole index value (key, the record's position and
// length, sequence number, flags and digest), so repointMap writes a moved
// record's new value without reading the index. Cost, measured
// (BenchmarkLiveMapBytes, 2^20 versions, heap after a collection): 40-byte
// entries without the digest took 57.5 bytes per live version, where the Go
// map of whole index values it replaced took 208; with the digest, 90 to
// 135 with the table's load (0.53 to 0.8). The digest is kept: without
// it, repointMap read every moved record's value from the index, and on a
// quiet machine (bench-space.sh 256 MiB, 10 passes, 7 Dec 2026) the daemon
// spent 34.3 against 28.5 CPU-s with the cleaner, and fio wrote 91.5
// against 103.8 MB/s. A version the table cannot hold (a layer, epoch or
// segment number beyond 32 bits, an offset beyond 4 GiB) abandons the build
// or drops the map: the cleaner then scans, as above liveMapMax versions.

// liveMapMax bounds the versions the live map holds: 2^20, 90 to 135 MiB
// (16 GiB of 16 KiB blocks, 4 GiB of 4 KiB ones). The daemon's soft memory
// limit (cmd/snapfs cmd_mount.go daemonMemoryLimit) is set above it and the
// rest of the daemon's heap.
var liveMapMax = 1 << 20

// liveJournalMax bounds the changes kept while a scan builds the map.
const liveJournalMax = 1 << 20

type liveChange struct {
	k   vkey
	v   index.Version
	del bool
}

// liveEntry is one version in the table: length 0 marks an empty slot
// (a data record is at least a header long).
type liveEntry struct {
	block                ids.Block
	seq                  ids.Seq
	layer, epoch         uint32
	segment, offset, len uint32
	flags                uint32
	digest               [32]byte
}

// liveEntryOf packs a data version; ok is false if it does not fit.
func liveEntryOf(k vkey, v index.Version) (e liveEntry, ok bool) {
	if k.layer > math.MaxUint32 || k.epoch > math.MaxUint32 || v.Segment > math.MaxUint32 ||
		v.Offset < 0 || v.Offset > math.MaxUint32 || v.Length == 0 {
		return liveEntry{}, false
	}
	return liveEntry{block: k.block, seq: v.Seq, layer: uint32(k.layer), epoch: uint32(k.epoch),
		segment: uint32(v.Segment), offset: uint32(v.Offset), len: v.Length, flags: uint32(v.Flags), digest: v.Digest}, true
}

func (e *liveEntry) key() vkey { return vkey{ids.Layer(e.layer), e.block, ids.Epoch(e.epoch)} }

// version is the index value.
func (e *liveEntry) version() index.Version {
	return index.Version{Segment: ids.Segment(e.segment), Offset: int64(e.offset), Length: e.len, Seq: e.seq, Flags: uint8(e.flags), Digest: e.digest}
}

// at reports whether e names the record at pos with sequence number seq.
func (e *liveEntry) at(pos segment.Pos, seq ids.Seq) bool {
	return ids.Segment(e.segment) == pos.Segment && int64(e.offset) == pos.Offset && e.seq == seq
}

// liveTable is a hash table of liveEntry in liveShards shards, each one
// slice with open addressing, linear probing and backward-shift deletion
// (no tombstones). A shard grows by half when it passes 4/5 full, so a
// growth copies 1/liveShards of the table (the heap never holds two whole
// tables); the home slot of a key is its hash scaled to the shard's size,
// which need not be a power of two.
type liveTable struct {
	shards [liveShards]liveShard
	n      int
}

type liveShard struct {
	slots []liveEntry
	n     int
}

const (
	liveShards       = 64
	liveShardMin     = 16
	liveTableLoadNum = 4 // a shard is at most 4/5 full
	liveTableLoadDen = 5
)

// newLiveTable returns a table sized for hint entries.
func newLiveTable(hint int) *liveTable {
	t := &liveTable{}
	per := max(liveShardMin, (hint/liveShards)*liveTableLoadDen/liveTableLoadNum+1)
	for i := range t.shards {
		t.shards[i].slots = make([]liveEntry, per)
	}
	return t
}

func liveHash(layer, epoch uint32, block ids.Block) uint64 {
	h := uint64(block)*0x9e3779b97f4a7c15 ^ (uint64(layer)<<32|uint64(epoch))*0xc2b2ae3d27d4eb4f
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return h
}

// shard returns the shard of a hash; home the hash's home slot in it.
func (t *liveTable) shard(h uint64) *liveShard { return &t.shards[h>>(64-6)] }

func (s *liveShard) home(h uint64) int {
	hi, _ := bits.Mul64(h<<6, uint64(len(s.slots)))
	return int(hi)
}

func (e *liveEntry) hash() uint64 { return liveHash(e.layer, e.epoch, e.block) }

// find returns the shard of k and k's slot in it, or -1.
func (t *liveTable) find(k vkey) (*liveShard, int) {
	if k.layer > math.MaxUint32 || k.epoch > math.MaxUint32 {
		return nil, -1
	}
	l, e := uint32(k.layer), uint32(k.epoch)
	h := liveHash(l, e, k.block)
	s := t.shard(h)
	for i := s.home(h); ; {
		x := &s.slots[i]
		if x.len == 0 {
			return s, -1
		}
		if x.block == k.block && x.layer == l && x.epoch == e {
			return s, i
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

func (t *liveTable) get(k vkey) (liveEntry, bool) {
	if s, i := t.find(k); i >= 0 {
		return s.slots[i], true
	}
	return liveEntry{}, false
}

// put inserts or replaces e, returning the entry it replaced.
func (t *liveTable) put(e liveEntry) (old liveEntry, replaced bool) {
	h := e.hash()
	s := t.shard(h)
	old, replaced = s.put(h, e)
	if !replaced {
		t.n++
	}
	return old, replaced
}

func (s *liveShard) put(h uint64, e liveEntry) (old liveEntry, replaced bool) {
	if (s.n+1)*liveTableLoadDen > len(s.slots)*liveTableLoadNum {
		s.grow()
	}
	for i := s.home(h); ; {
		x := &s.slots[i]
		if x.len == 0 {
			*x = e
			s.n++
			return liveEntry{}, false
		}
		if x.block == e.block && x.layer == e.layer && x.epoch == e.epoch {
			old, *x = *x, e
			return old, true
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

// del removes k, returning its entry.
func (t *liveTable) del(k vkey) (liveEntry, bool) {
	s, i := t.find(k)
	if i < 0 {
		return liveEntry{}, false
	}
	old := s.slots[i]
	n := len(s.slots)
	// Backward shift: move up every later entry of the run whose home is
	// not between the hole and it.
	for j := i; ; {
		if j++; j == n {
			j = 0
		}
		x := &s.slots[j]
		if x.len == 0 {
			break
		}
		h := s.home(x.hash())
		if (j-h+n)%n >= (j-i+n)%n {
			s.slots[i] = *x
			i = j
		}
	}
	s.slots[i] = liveEntry{}
	s.n--
	t.n--
	return old, true
}

func (s *liveShard) grow() {
	old := s.slots
	s.slots = make([]liveEntry, max(liveShardMin, len(old)+len(old)/2))
	s.n = 0
	for i := range old {
		if old[i].len != 0 {
			s.put(old[i].hash(), old[i])
		}
	}
}

func (t *liveTable) len() int {
	if t == nil {
		return 0
	}
	return t.n
}

type liveMap struct {
	mu sync.Mutex // taken inside idxMu by writers; alone by readers
	// m is nil while the map is not installed.
	m       *liveTable
	segLive map[ids.Segment]int64 // record bytes of live data versions per segment
	live    int64                 // payload bytes of the live data versions
	// building is set while a scan builds the map: writers record their
	// changes in journal, applied on top of the scan's view when it is
	// installed.
	building bool
	journal  []liveJournal
	// catGen is the catalog generation the map was built at.
	catGen uint64
	// tooBig: the last scan found more than liveMapMax live versions.
	tooBig atomic.Bool
	// lastLen is the versions the last installed map was built with: the
	// next build's table is sized for it.
	lastLen atomic.Int64
	// gen counts installs and uninstalls (under mu): the cleaner's lists
	// of live positions (cleanread.go) are valid for one generation.
	gen uint64
}

// liveJournal is a change recorded while a scan builds the map.
type liveJournal struct {
	e   liveEntry
	del bool
}

// payloadBytes is what a data version counts as live data.
func payloadBytes(v index.Version) int64 { return int64(v.Length) - segment.HeaderSize }

func (e *liveEntry) payload() int64 { return int64(e.len) - segment.HeaderSize }

// journalOf packs a change for the table; ok is false if it cannot hold
// the version.
func journalOf(k vkey, v index.Version, del bool) (liveJournal, bool) {
	if del || v.Zero() {
		if k.layer > math.MaxUint32 || k.epoch > math.MaxUint32 {
			return liveJournal{}, false
		}
		return liveJournal{e: liveEntry{block: k.block, layer: uint32(k.layer), epoch: uint32(k.epoch)}, del: true}, true
	}
	e, ok := liveEntryOf(k, v)
	return liveJournal{e: e}, ok
}

// setLocked applies one change to the installed map, keeping the usage
// table in step.
func (lm *liveMap) setLocked(c liveJournal) {
	var old liveEntry
	var had bool
	if c.del {
		old, had = lm.m.del(c.e.key())
	} else {
		old, had = lm.m.put(c.e)
		lm.segLive[ids.Segment(c.e.segment)] += int64(c.e.len)
		lm.live += c.e.payload()
	}
	if had {
		seg := ids.Segment(old.segment)
		lm.segLive[seg] -= int64(old.len)
		if lm.segLive[seg] <= 0 {
			delete(lm.segLive, seg)
		}
		lm.live -= old.payload()
	}
}

// journalLocked adds changes to the journal of a build, or abandons the
// build when the journal is full or a change does not fit the table.
func (lm *liveMap) journalLocked(n int, each func(func(vkey, index.Version, bool) bool)) {
	if len(lm.journal)+n > liveJournalMax {
		lm.building, lm.journal = false, nil
		return
	}
	each(func(k vkey, v index.Version, del bool) bool {
		j, ok := journalOf(k, v, del)
		if !ok {
			lm.building, lm.journal = false, nil
			return false
		}
		lm.journal = append(lm.journal, j)
		return true
	})
}

// applyLocked applies changes to the installed map, or drops it when one
// does not fit the table (the index holds a version the map cannot).
func (lm *liveMap) applyLocked(each func(func(vkey, index.Version, bool) bool)) {
	each(func(k vkey, v index.Version, del bool) bool {
		j, ok := journalOf(k, v, del)
		if !ok {
			lm.uninstallLocked()
			return false
		}
		lm.setLocked(j)
		return true
	})
	// Writes grow the installed map too: past liveMapMax it is dropped
	// (and not rebuilt until a scan finds the store small enough), so it
	// never holds more than the bound the daemon's memory limit assumes.
	if lm.m.len() > liveMapMax {
		lm.uninstallLocked()
		lm.tooBig.Store(true)
	}
}

// record tells the map about a write of version entries that succeeded
// (idxMu held).
func (lm *liveMap) record(ch []liveChange) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	each := func(yield func(vkey, index.Version, bool) bool) {
		for i := range ch {
			if !yield(ch[i].k, ch[i].v, ch[i].del) {
				return
			}
		}
	}
	switch {
	case lm.m != nil:
		lm.applyLocked(each)
	case lm.building:
		lm.journalLocked(len(ch), each)
	}
}

// committed is record for a commit's batch (idxMu held).
func (lm *liveMap) committed(batch map[vkey]index.Version) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	each := func(yield func(vkey, index.Version, bool) bool) {
		for k, v := range batch {
			if !yield(k, v, false) {
				return
			}
		}
	}
	switch {
	case lm.m != nil:
		lm.applyLocked(each)
	case lm.building:
		lm.journalLocked(len(batch), each)
	}
}

// uninstallLocked forgets the installed map and its usage table (lm.mu held).
func (lm *liveMap) uninstallLocked() { lm.m, lm.segLive, lm.live = nil, nil, 0; lm.gen++ }

// drop uninstalls the map (and stops a build): a write of version entries
// failed midway, so the index may hold part of it.
func (lm *liveMap) drop() {
	lm.mu.Lock()
	lm.uninstallLocked()
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
func (lm *liveMap) usage() map[ids.Segment]int64 {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	u := make(map[ids.Segment]int64, len(lm.segLive))
	for k, v := range lm.segLive {
		u[k] = v
	}
	return u
}

// knownKeys reports, for each key, whether the installed map holds a data
// version at it (nil without a map): the index then holds that version's
// key and its epoch key (every writer writes or deletes both, and the map
// never holds a version the index does not: it is built from the index and
// told every write and deletion after it succeeded, or dropped; a batch
// torn by a crash between its Badger transactions is made whole again by
// the replay, replay.go applyVersion), so a new version at the key needs
// its version key written only (applyCommit).
// Called with idxMu held, so no deletion comes between this and the write.
func (lm *liveMap) knownKeys(keys []vkey) []bool {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if lm.m == nil {
		return nil
	}
	known := make([]bool, len(keys))
	for i, k := range keys {
		_, i2 := lm.m.find(k)
		known[i] = i2 >= 0
	}
	return known
}

// liveIn returns the live record bytes the usage table counts in a segment
// (0 without a map).
func (lm *liveMap) liveIn(num ids.Segment) int64 {
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
	e, found := lm.m.get(vkey{r.Layer, r.Block, r.Epoch})
	return found && e.at(pos, r.Seq), true
}

// liveBuild collects the map while a scan runs.
type liveBuild struct {
	m       *liveTable
	segLive map[ids.Segment]int64
	live    int64
	over    bool // more than liveMapMax versions, or one the table cannot hold: abandoned
}

// newLiveBuild starts a build sized for what the last installed map held.
func (lm *liveMap) newLiveBuild() *liveBuild {
	hint := min(int(lm.lastLen.Load()), liveMapMax)
	return &liveBuild{m: newLiveTable(hint + hint/16), segLive: map[ids.Segment]int64{}}
}

func (b *liveBuild) add(k vkey, v index.Version) {
	if b.over {
		return
	}
	e, ok := liveEntryOf(k, v)
	if !ok || b.m.len() >= liveMapMax {
		b.over, b.m, b.segLive = true, nil, nil
		return
	}
	b.m.put(e)
	b.segLive[v.Segment] += int64(v.Length)
	b.live += payloadBytes(v)
}

// beginBuild starts journaling (idxMu held, in the scan's view).
func (lm *liveMap) beginBuild() {
	lm.mu.Lock()
	lm.uninstallLocked()
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
	lm.gen++
	for _, c := range journal {
		lm.setLocked(c)
	}
	if lm.m.len() > liveMapMax {
		lm.uninstallLocked()
		return false
	}
	lm.lastLen.Store(int64(lm.m.len()))
	return true
}

// repointMap moves index entries from old to new record positions, where
// the live map says the entry still names the old record: one write of
// the version key per record, no read (the map holds the whole value).
// Holes and entries replaced meanwhile are skipped. With no map installed
// it is repoint.
func (s *Store) repointMap(moves []relocation) error {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	lm := s.cleaner.lm
	lm.mu.Lock()
	if lm.m == nil {
		lm.mu.Unlock()
		_, err := s.repointLocked(moves)
		return err
	}
	var ch []liveChange
	for i := range moves {
		m := &moves[i]
		if m.r.Kind != segment.KindData {
			continue
		}
		k := vkey{m.r.Layer, m.r.Block, m.r.Epoch}
		e, ok := lm.m.get(k)
		if !ok || !e.at(m.old, m.r.Seq) {
			continue // replaced or deleted meanwhile
		}
		v := e.version()
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
