package rowstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"sync/atomic"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// lookup finds the version of block b visible through chain: the newest at
// or below each link's epoch, first link first (pending versions included).
func (s *Store) lookup(chain []link, b ids.Block) (index.Version, bool, error) {
	vs, found, err := s.lookupMany(chain, []ids.Block{b})
	if err != nil {
		return index.Version{}, false, err
	}
	return vs[0], found[0], nil
}

// testHookIndexLookup, when set (tests only, before the store opens), is
// told of every lookup through the index and how many blocks it asks for.
var testHookIndexLookup func(blocks int)

// lookupMany is lookup for several blocks with one index transaction.
func (s *Store) lookupMany(chain []link, blocks []ids.Block) ([]index.Version, []bool, error) {
	vs := make([]index.Version, len(blocks))
	found := make([]bool, len(blocks))
	rest := 0
	for i, b := range blocks {
		for _, l := range chain {
			if v, ok := s.pendingVersion(vkey{l.layer, b, l.epoch}); ok {
				vs[i], found[i] = v, true
				break
			}
		}
		if !found[i] {
			rest++
		}
	}
	if rest == 0 {
		return vs, found, nil
	}
	if h := testHookIndexLookup; h != nil {
		h(rest)
	}
	err := s.idx.View(func(t *index.Txn) error {
		f := t.NewFinder()
		defer f.Close()
		for i, b := range blocks {
			if found[i] {
				continue
			}
			for _, l := range chain {
				v, _, ok, err := f.Find(l.layer, b, l.epoch)
				if err != nil {
					return err
				}
				if ok {
					vs[i], found[i] = v, true
					break
				}
			}
		}
		return nil
	})
	return vs, found, err
}

// readBlock reads block b as seen through chain into dst (len = block size).
// It returns whether the block had stored data.
func (s *Store) readBlock(chain []link, bs int, b ids.Block, dst []byte, what string) (bool, error) {
	return s.readBlocks(chain, []ids.Block{b}, [][]byte{dst}, what)
}

// readBlocks reads blocks as seen through chain into dsts (each of the
// block size), with one index transaction. It reports whether any had data.
// Blocks a lazy layer lacks come from its source (lazy.go).
func (s *Store) readBlocks(chain []link, blocks []ids.Block, dsts [][]byte, what string) (bool, error) {
	return s.readBlocksWith(chain, blocks, dsts, what, nil)
}

func (s *Store) readBlocksWith(chain []link, blocks []ids.Block, dsts [][]byte, what string, bad func(ids.Block)) (bool, error) {
	any, found, err := s.readIndexed(chain, blocks, dsts, what)
	if err != nil {
		return any, err
	}
	return s.lazyFill(chain, found, blocks, dsts, what, any, bad)
}

// readBlocksIndexed is readBlocks of what the index holds only.
func (s *Store) readBlocksIndexed(chain []link, blocks []ids.Block, dsts [][]byte, what string) (bool, error) {
	any, _, err := s.readIndexed(chain, blocks, dsts, what)
	return any, err
}

func (s *Store) readIndexed(chain []link, blocks []ids.Block, dsts [][]byte, what string) (bool, []bool, error) {
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	vs, found, err := s.lookupMany(chain, blocks)
	if err != nil {
		return false, nil, fmt.Errorf("%s: blocks %d-%d: %w", what, blocks[0], blocks[len(blocks)-1], err)
	}
	any, err := s.readVersionsLocked(vs, found, blocks, dsts, what)
	return any, found, err
}

// readResolved reads blocks whose versions were looked up before (by a
// disk's block map, or without readMu): a record may have been relocated
// and its segment removed since, or rewritten elsewhere by a repair. So a
// block whose read finds its segment gone or its record not the one
// expected is read again through a fresh lookup under readMu, whose answer
// is final; the others keep what they read. Other errors (I/O) are
// returned as they are. moved, if set, is told of each block read again:
// the version it was looked up as, and the fresh answer (a lazy block
// hydrated meanwhile comes with found false), so that the caller can make
// what it cached follow the record (diskState.bmMovedLocked).
//
// Only those blocks are looked up again, not the whole batch: with the
// cleaner relocating records under a random-write load, nearly every batch
// of a write-back had one moved block, and looking up and reading all 64
// again (then missing them all in the block map) was a fifth of the
// daemon's CPU time (rowstore/doc.go, "Data path: where the time goes").
func (s *Store) readResolved(chain []link, vs []index.Version, found []bool, blocks []ids.Block, dsts [][]byte, what string, moved func(b ids.Block, old, v index.Version, found bool)) (bool, error) {
	s.readMu.RLock()
	any, stale, err := s.readVersions(vs, found, blocks, dsts, what, true)
	s.readMu.RUnlock()
	if err != nil {
		return any, err
	}
	bad := func(b ids.Block) { // a lazy block hydrated since it was looked up
		if moved != nil {
			moved(b, index.Version{}, index.Version{}, false)
		}
	}
	if len(stale) == 0 {
		return s.lazyFill(chain, found, blocks, dsts, what, any, bad) // lazy.go
	}
	again := make([]ids.Block, len(stale))
	againDsts := make([][]byte, len(stale))
	for j, i := range stale {
		again[j], againDsts[j] = blocks[i], dsts[i]
	}
	s.readMu.RLock()
	nv, nf, err := s.lookupMany(chain, again)
	if err != nil {
		s.readMu.RUnlock()
		return any, fmt.Errorf("%s: blocks %d-%d: %w", what, again[0], again[len(again)-1], err)
	}
	had, err := s.readVersionsLocked(nv, nf, again, againDsts, what)
	s.readMu.RUnlock()
	if err != nil {
		return any, err
	}
	if moved != nil {
		for j, i := range stale {
			moved(again[j], vs[i], nv[j], nf[j])
		}
	}
	// Lazy sources: the blocks read as they were looked up, then the
	// blocks looked up again, each with its own answer.
	keep := make([]bool, len(found))
	copy(keep, found)
	for _, i := range stale {
		keep[i] = true // not the first answer's to fill
	}
	if any, err = s.lazyFill(chain, keep, blocks, dsts, what, any || had, bad); err != nil {
		return any, err
	}
	return s.lazyFill(chain, nf, again, againDsts, what, any, bad)
}

// readVersionsLocked reads the records of versions vs of blocks into dsts
// (readMu held): zeros where there is none or a hole.
func (s *Store) readVersionsLocked(vs []index.Version, found []bool, blocks []ids.Block, dsts [][]byte, what string) (bool, error) {
	any, _, err := s.readVersions(vs, found, blocks, dsts, what, false)
	return any, err
}

// isStaleRead reports whether a read through a version looked up before
// found its segment gone or its record not the one expected.
func isStaleRead(err error) bool { return errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrCorrupt) }

// readVersions is readVersionsLocked; with tolerate, it goes on past
// records found gone or not the ones expected (isStaleRead) and returns the
// indexes of those blocks instead (a coalesced run that fails is read again
// block by block, so that only the stale ones are listed). readMu held.
func (s *Store) readVersions(vs []index.Version, found []bool, blocks []ids.Block, dsts [][]byte, what string, tolerate bool) (bool, []int, error) {
	any := false
	var stale []int
	one := func(i int) error {
		err := s.readVersion(vs[i], blocks[i], dsts[i], what)
		if err != nil && tolerate && isStaleRead(err) {
			stale = append(stale, i)
			return nil
		}
		return err
	}
	// Records of adjacent blocks written together sit next to each other in
	// the log: read each run of them with one call, and check each record.
	for i := 0; i < len(blocks); {
		if !found[i] || vs[i].Zero() {
			clear(dsts[i])
			i++
			continue
		}
		any = true
		j := i + 1
		span := int64(vs[i].Length)
		for j < len(blocks) && found[j] && !vs[j].Zero() && vs[j].Segment == vs[i].Segment &&
			vs[j].Offset == vs[i].Offset+span && span < maxReadSpan {
			span += int64(vs[j].Length)
			j++
		}
		if j == i+1 {
			if err := one(i); err != nil {
				return any, nil, err
			}
			i++
			continue
		}
		buf := getBuf(int(span))
		err := s.seg.ReadRaw(vs[i].Segment, buf, vs[i].Offset)
		if err != nil && errors.Is(err, segment.ErrCorrupt) {
			err = &CorruptError{What: fmt.Sprintf("%s: blocks %d-%d (segment %d offset %d)", what, blocks[i], blocks[j-1], vs[i].Segment, vs[i].Offset), Err: err}
		}
		if err == nil {
			err = s.checkRecords(buf, vs[i:j], blocks[i:j], dsts[i:j], what) // crypt.go: sealed ones on every core
		}
		putBuf(buf)
		if err != nil && tolerate && isStaleRead(err) {
			err = nil
			for k := i; k < j && err == nil; k++ { // which of the run moved
				err = one(k)
			}
		}
		if err != nil {
			return any, nil, err
		}
		i = j
	}
	return any, stale, nil
}

// maxReadSpan bounds one coalesced read of adjacent records.
const maxReadSpan = 1 << 20

// checkRecord decodes an encoded record, checks it is the indexed version of
// block b, and copies its payload to dst.
func (s *Store) checkRecord(raw []byte, v index.Version, b ids.Block, dst []byte, what string) error {
	r, _, err := segment.Decode(raw)
	if err != nil {
		return &CorruptError{What: fmt.Sprintf("%s: block %d (segment %d offset %d)", what, b, v.Segment, v.Offset), Err: err}
	}
	return s.checkVersion(&r, v, b, dst, what)
}

// checkVersion checks a decoded record is the indexed version of block b
// and copies its payload to dst.
func (s *Store) checkVersion(r *segment.Record, v index.Version, b ids.Block, dst []byte, what string) error {
	if sealed, err := s.openRecord(r, v, b, dst, what); sealed { // encrypted layers (crypt.go)
		return err
	}
	if r.Kind != segment.KindData || r.Block != b || r.Seq != v.Seq || len(r.Payload) != len(dst) {
		return &CorruptError{What: fmt.Sprintf("%s: block %d (segment %d offset %d)", what, b, v.Segment, v.Offset),
			Err: fmt.Errorf("record (kind %d block %d seq %d, %d bytes) is not the indexed version (block %d seq %d, %d bytes)",
				r.Kind, r.Block, r.Seq, len(r.Payload), b, v.Seq, len(dst))}
	}
	copy(dst, r.Payload)
	return nil
}

// readVersion reads the record of a data version and checks it.
func (s *Store) readVersion(v index.Version, b ids.Block, dst []byte, what string) error {
	buf := getBuf(int(v.Length))
	defer putBuf(buf)
	r, err := s.seg.Read(segment.Pos{Segment: v.Segment, Offset: v.Offset, Length: v.Length}, buf)
	place := func(e error) error {
		return &CorruptError{What: fmt.Sprintf("%s: block %d (segment %d offset %d)", what, b, v.Segment, v.Offset), Err: e}
	}
	if err != nil {
		if errors.Is(err, segment.ErrCorrupt) {
			return place(err)
		}
		return fmt.Errorf("%s: read block %d: %w", what, b, err)
	}
	return s.checkVersion(&r, v, b, dst, what)
}

// visible calls fn, in block order, for every block in [from, to) that has a
// version visible through chain (holes included, as zero versions).
func (s *Store) visible(chain []link, from, to ids.Block, fn func(b ids.Block, v index.Version) error) error {
	found := map[ids.Block]index.Version{}
	// Pending versions are copied before the index view is taken (as in
	// lookupMany): a version a commit moves meanwhile is then in one or the
	// other, never in neither.
	pend := make([]map[ids.Block]index.Version, len(chain))
	s.pendMu.RLock()
	for i, l := range chain {
		pend[i] = map[ids.Block]index.Version{}
		for _, m := range []map[vkey]index.Version{s.pending, s.flushing} {
			for k, v := range m {
				if k.layer != l.layer || k.epoch != l.epoch || k.block < from || k.block >= to {
					continue
				}
				if old, ok := pend[i][k.block]; !ok || old.Seq < v.Seq {
					pend[i][k.block] = v
				}
			}
		}
	}
	s.pendMu.RUnlock()
	err := s.idx.View(func(t *index.Txn) error {
		for i, l := range chain {
			// Pending versions of this link come first: they are newer than
			// anything of the same link in the index.
			here := map[ids.Block]index.Version{}
			for b, v := range pend[i] {
				if _, done := found[b]; !done {
					here[b] = v
				}
			}
			err := t.ScanVersions(l.layer, from, to, func(b ids.Block, epoch ids.Epoch, v index.Version) error {
				if _, done := found[b]; done {
					return index.SkipBlock
				}
				if _, ok := here[b]; ok {
					return index.SkipBlock
				}
				if epoch > l.epoch {
					return nil // newer than this link sees; look at older ones
				}
				here[b] = v
				return index.SkipBlock
			})
			if err != nil {
				return err
			}
			for b, v := range here {
				found[b] = v
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	blocks := make([]ids.Block, 0, len(found))
	for b := range found {
		blocks = append(blocks, b)
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i] < blocks[j] })
	for _, b := range blocks {
		if err := fn(b, found[b]); err != nil {
			return err
		}
	}
	return nil
}

// Reader reads an immutable disk image: a disk of a snapshot, or an image.
type Reader struct {
	s      *Store
	chain  []link
	size   int64
	bs     int
	what   string
	closed atomic.Bool
}

// newReader pins l, then checks (with stillThere) that what it reads was not
// deleted before the pin, so GC never collects an open reader's view.
func (s *Store) newReader(l link, size int64, bs int, what string, stillThere func(t *index.Txn) error) (*Reader, error) {
	s.pinMu.Lock()
	s.pins[l]++
	s.pinMu.Unlock()
	var chain []link
	err := s.idx.View(func(t *index.Txn) error {
		if err := stillThere(t); err != nil {
			return err
		}
		var err error
		chain, err = chainOf(t, l.layer, l.epoch)
		return err
	})
	if err != nil {
		s.unpin(l)
		return nil, err
	}
	return &Reader{s: s, chain: chain, size: size, bs: bs, what: what}, nil
}

func (s *Store) unpin(l link) {
	s.pinMu.Lock()
	if s.pins[l]--; s.pins[l] <= 0 {
		delete(s.pins, l)
	}
	s.pinMu.Unlock()
}

// Size is the image's logical size.
func (r *Reader) Size() int64 { return r.size }

// BlockSize is the image's block size.
func (r *Reader) BlockSize() int { return r.bs }

// Close releases the reader.
func (r *Reader) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	r.s.unpin(r.chain[0])
	return nil
}

// ReadAt reads len(p) bytes at off; past the end it returns io.EOF.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if r.closed.Load() {
		return 0, ErrClosed
	}
	if err := r.s.checkOpen(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset", ErrInvalid)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > r.size-off {
		p = p[:r.size-off]
	}
	if err := r.s.readRange(r.chain, r.bs, p, off, r.what); err != nil {
		return 0, err
	}
	if len(p) < want {
		return len(p), io.EOF
	}
	return len(p), nil
}

// Allocated is the bytes of stored blocks visible in the image (counted
// once per store and point, then cached: the image never changes), the
// blocks of a lazily restored layer not fetched yet included (storedShown:
// the image shows them). A point that reads through a layer still
// hydrating is counted again at each call until it is whole (the source's
// answer may come later). Safe for concurrent use.
func (r *Reader) Allocated() (int64, error) {
	r.s.allocMu.Lock()
	n, ok := r.s.allocCache[r.chain[0]]
	r.s.allocMu.Unlock()
	if ok {
		return n, nil
	}
	ll, err := r.s.lazyOf(r.chain)
	if err != nil {
		return 0, err
	}
	var blocks int64
	err = r.s.storedShown(r.chain, 0, blockCount(r.size, r.bs), func(ids.Block, bool) error {
		blocks++
		return nil
	})
	if err != nil {
		return 0, err
	}
	n = blocks * int64(r.bs)
	if ll == nil || ll.isDone() {
		r.s.allocMu.Lock()
		r.s.allocCache[r.chain[0]] = n
		r.s.allocMu.Unlock()
	}
	return n, nil
}

// readRange reads p at off through chain: whole blocks straight into p with
// one index transaction, partial blocks at the ends through a buffer.
func (s *Store) readRange(chain []link, bs int, p []byte, off int64, what string) error {
	var blocks []ids.Block
	var dsts [][]byte
	var partial []func() error
	for n := 0; n < len(p); {
		pos := off + int64(n)
		b := ids.BlockAt(pos, bs)
		in := int(pos % int64(bs))
		m := min(len(p)-n, bs-in)
		if m == bs {
			blocks = append(blocks, b)
			dsts = append(dsts, p[n:n+m])
		} else {
			dst := p[n : n+m]
			partial = append(partial, func() error {
				buf := getBuf(bs)
				defer putBuf(buf)
				if _, err := s.readBlock(chain, bs, b, buf, what); err != nil {
					return err
				}
				copy(dst, buf[in:])
				return nil
			})
		}
		n += m
	}
	if len(blocks) > 0 {
		if _, err := s.readBlocks(chain, blocks, dsts, what); err != nil {
			return err
		}
	}
	for _, f := range partial {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}
