package rowstore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"time"

	"sync"
	"sync/atomic"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// diskState is the in-memory state of a disk: its head, its write-back cache
// of partial blocks, and its open handles. One per disk, shared by handles.
type diskState struct {
	s  *Store
	mu sync.Mutex

	id   uint64
	name string
	// size is the disk's size in bytes: set under mu, read without it by
	// Disk.Size (every FUSE write asks).
	size  atomic.Int64
	bs    int
	chain []link // chain[0] is the head layer at its current epoch

	cache      map[ids.Block]*cblock // dirty blocks not yet in the log
	cacheBytes int64
	// The write-back of the cache (writeback.go): the cached blocks in the
	// order they came (wbq from wbHead; entries no longer cached are
	// skipped), the counter that orders them, the batched write-backs in
	// flight (wbActive, at most wbParallel; wbCond on mu), and whether the
	// background one was asked for.
	wbq      []wbQueued
	wbHead   int
	wbTick   uint64
	wbActive int
	wbFlying []uint64 // the oldest tick of each batch in flight
	wbCond   *sync.Cond
	wbWanted bool
	// A snapshot being taken (snapshot.go): the cache as it was when the
	// snapshot began, being written back at the snapshot's epoch, and
	// snapBusy while it is (nothing else is appended for the head then;
	// wbCond is broadcast when it ends).
	frozen      map[ids.Block]*cblock
	frozenBytes int64
	snapBusy    bool

	bmap blockMap // what the head sees, per block (blockmap.go)

	wc writeCombiner // queued whole-block writes (writecombine.go)

	opens    int
	deleted  bool
	modified time.Time
	created  time.Time
	origin   string
}

// cblock is a dirty block in the write-back cache. data holds the new bytes
// in the ranges of dirty; when full, data is the whole block.
type cblock struct {
	data  []byte
	dirty [][2]int // sorted, disjoint [start, end) ranges written
	full  bool
	born  uint64 // diskState.wbTick when it entered the cache
	// writes counts the writes made into data since the entry was made, so
	// that a write-back that copied data and hashed the copy without the
	// disk's lock knows whether the copy is still the entry's content.
	writes uint64
}

func (c *cblock) add(start, end int) {
	r := append(c.dirty, [2]int{start, end})
	sort.Slice(r, func(i, j int) bool { return r[i][0] < r[j][0] })
	out := r[:0]
	for _, x := range r {
		if n := len(out); n > 0 && x[0] <= out[n-1][1] {
			if x[1] > out[n-1][1] {
				out[n-1][1] = x[1]
			}
			continue
		}
		out = append(out, x)
	}
	c.dirty = out
	if len(out) == 1 && out[0][0] == 0 && out[0][1] == len(c.data) {
		c.full = true
	}
}

// diskByName loads (or returns the loaded) state of a disk.
func (s *Store) diskByName(name string) (*diskState, error) {
	// Loaded states are found by name without touching the index: every
	// FUSE getattr and open comes through here.
	s.disksMu.Lock()
	if d, ok := s.disks[s.diskNames[name]]; ok {
		s.disksMu.Unlock()
		return d, nil
	}
	s.disksMu.Unlock()
	var rec index.Disk
	var chain []link
	err := s.idx.View(func(t *index.Txn) error {
		if err := t.Get(index.KindDisk, name, &rec); err != nil {
			if errors.Is(err, index.ErrNotFound) {
				return fmt.Errorf("%w: disk %q", ErrNotFound, name)
			}
			return err
		}
		l, err := t.Layer(rec.Layer)
		if err != nil {
			return fmt.Errorf("layer %d of disk %q: %w", rec.Layer, name, err)
		}
		chain, err = chainOf(t, l.ID, l.Epoch)
		return err
	})
	if err != nil {
		return nil, err
	}
	// Before the state exists nothing writes the head, so what is empty
	// now is still empty when the state is made below.
	empty := len(chain) == 1 && s.layerEmpty(chain[0].layer)
	if h := testHookDiskLoading; h != nil {
		h(name)
	}
	s.disksMu.Lock()
	defer s.disksMu.Unlock()
	if s.deletedDisks[rec.ID] { // deleted since the record was read
		return nil, fmt.Errorf("%w: disk %q", ErrNotFound, name)
	}
	if d, ok := s.disks[rec.ID]; ok {
		return d, nil
	}
	d := &diskState{s: s, id: rec.ID, name: rec.Name, bs: rec.BlockSize, chain: chain,
		cache: map[ids.Block]*cblock{}, modified: rec.Created, created: rec.Created, origin: rec.Origin}
	d.wbCond = sync.NewCond(&d.mu)
	d.size.Store(rec.Size)
	if empty {
		d.bmMarkEmptyLocked() // (not shared yet: no lock needed)
	}
	s.disks[rec.ID] = d
	s.diskNames[rec.Name] = rec.ID
	return d, nil
}

// testHookDiskLoading, when set (tests only), runs in diskByName between
// the known-empty check and the registration of the new state.
var testHookDiskLoading func(name string)

// chainOf builds the layer chain of (layer, epoch).
func chainOf(t *index.Txn, layer ids.Layer, epoch ids.Epoch) ([]link, error) {
	chain := []link{{layer, epoch}}
	for {
		l, err := t.Layer(layer)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", layer, err)
		}
		if l.Parent == 0 {
			return chain, nil
		}
		if len(chain) > 1000 {
			return nil, &CorruptError{What: fmt.Sprintf("layer chain of %d", chain[0].layer), Err: errors.New("cycle or too long")}
		}
		chain = append(chain, link{l.Parent, l.ParentEpoch})
		layer = l.Parent
	}
}

// Disk is an open read-write disk. Close it when done; while any handle is
// open, rollback and delete of the disk are refused unless forced.
type Disk struct {
	d      *diskState
	closed bool
}

// OpenDisk opens a disk for reading and writing.
func (s *Store) OpenDisk(name string) (*Disk, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	d, err := s.diskByName(name)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.deleted {
		return nil, fmt.Errorf("%w: disk %q", ErrNotFound, name)
	}
	if err := s.requireUnlocked(d.chain[0].layer, fmt.Sprintf("disk %q", name)); err != nil { // crypt.go
		return nil, err
	}
	d.opens++
	return &Disk{d: d}, nil
}

// Name is the disk's name.
func (h *Disk) Name() string { return h.d.name }

// Size is the disk's logical size. It does not take the disk's lock: the
// FUSE layer asks before every write, and waiting there behind another
// writer's appends kept the writes' hashing (done before the lock) from
// running in parallel.
func (h *Disk) Size() int64 { return h.d.size.Load() }

// BlockSize is the disk's block size.
func (h *Disk) BlockSize() int { return h.d.bs }

// Close releases the handle (it does not sync).
func (h *Disk) Close() error {
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	if !h.closed {
		h.closed = true
		h.d.opens--
	}
	return nil
}

func (h *Disk) check() error {
	if h.closed {
		return fmt.Errorf("disk %q: handle closed: %w", h.d.name, ErrClosed)
	}
	if h.d.deleted {
		return fmt.Errorf("%w: disk %q was deleted", ErrNotFound, h.d.name)
	}
	return h.d.s.checkOpen()
}

// WriteAt writes p at off. Whole blocks go to the log at once; partial
// blocks go through the write-back cache. Nothing is durable before Sync.
func (h *Disk) WriteAt(p []byte, off int64) (int, error) {
	d := h.d
	zeros := allZero(p)
	if !zeros {
		d.s.throttle() // before the disk's lock, which the cleaner's commit takes
	}
	// The digests of the whole blocks are computed before the lock (the
	// block size never changes), so concurrent writers hash in parallel.
	var pre []index.Version
	var preZero []bool
	if bs := d.bs; !zeros && off >= 0 && len(p) >= bs {
		first := int((int64(bs) - off%int64(bs)) % int64(bs)) // where the first whole block starts in p
		for i := first; i+bs <= len(p); i += bs {
			chunk := p[i : i+bs]
			preZero = append(preZero, isZero(chunk))
		}
		datas := make([][]byte, len(preZero))
		for j := range datas {
			datas[j] = p[first+j*bs : first+(j+1)*bs]
		}
		pre = digestBlocks(datas, preZero)
	}
	if len(pre) > 0 && off%int64(d.bs) == 0 && len(p)%d.bs == 0 {
		return h.writeCombined(p, off, pre, preZero) // writecombine.go
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return h.writeLocked(p, off, zeros, pre, preZero)
}

// writeLocked is WriteAt's work under the disk's lock (the digests of the
// whole blocks computed before it).
func (h *Disk) writeLocked(p []byte, off int64, zeros bool, pre []index.Version, preZero []bool) (int, error) {
	d := h.d
	// A write of whole blocks waits for a snapshot under way once the cache
	// is over its bound, then appends them at once: caching them (and
	// writing them back later, hashed under the lock) costs more than the
	// wait. A partial write goes on into the cache (snapRoom, below): its
	// read-modify-write is due either way.
	for len(pre) > 0 && d.snapBusy && d.cacheBytes > d.s.opts.CacheBytes && !d.deleted {
		d.wbCond.Wait()
	}
	if err := h.check(); err != nil {
		return 0, err
	}
	if off < 0 || off > d.size.Load()-int64(len(p)) {
		return 0, fmt.Errorf("%w: write of %d bytes at %d is beyond the end of disk %q (%d bytes)", ErrInvalid, len(p), off, d.name, d.size.Load())
	}
	// A new write must leave the free-space floor with the reserve armed,
	// counting the cached blocks it may force out (reserve.go): refused
	// here, it never reaches the reserve.
	// Zeros are exempt: whole zero blocks free space (holes), and the
	// partial ends of a discard must not fail on a full filesystem.
	if !zeros {
		if err := d.s.admit(int64(len(p)) + d.cacheBytes + d.frozenBytes); err != nil {
			return 0, err
		}
	}
	bs := int64(d.bs)
	n := 0
	var whole []ids.Block // whole blocks, stored together below
	var wholeData [][]byte
	for n < len(p) {
		pos := off + int64(n)
		b := ids.BlockAt(pos, d.bs)
		in := int(pos % bs)
		m := min(len(p)-n, d.bs-in)
		if m == d.bs && !d.snapBusy {
			if c, ok := d.cache[b]; ok {
				d.dropCachedLocked(b, c)
			}
			whole = append(whole, b)
			wholeData = append(wholeData, p[n:n+m])
		} else {
			// (While a snapshot is taken, whole blocks too: nothing is
			// appended for the head then; snapshot.go.)
			c, ok := d.cache[b]
			if !ok {
				if f := d.frozen[b]; f != nil && m < d.bs {
					c = f.clone() // the snapshot's entry stays as it is
				} else {
					c = &cblock{data: getBuf(d.bs)} // pooled: given back when dropped
				}
				d.cacheAddLocked(b, c)
			}
			copy(c.data[in:], p[n:n+m])
			c.writes++
			if !c.full {
				c.add(in, in+m)
			}
		}
		n += m
	}
	var err error
	if pre != nil && len(pre) == len(whole) {
		err = d.storeDigestedLocked(whole, wholeData, preZero, pre)
	} else {
		err = d.storeBlocksLocked(whole, wholeData)
	}
	if err != nil {
		return 0, err
	}
	d.modified = time.Now()
	// While a snapshot is taken the cache cannot be written back: it may
	// grow by snapRoom, then a writer waits for the snapshot's end. (A
	// writer over CacheBytes but within snapRoom returns at once: going
	// into writeBackLocked would wait for the snapshot's end as well.)
	for d.snapBusy && d.cacheBytes > d.s.opts.CacheBytes+snapRoom && !d.deleted {
		d.wbCond.Wait()
	}
	// Over the bound, the writer makes room itself (lock released while the
	// blocks are read); above the background's mark, it is asked to.
	// (While a snapshot is taken, the snapshot's end asks for it:
	// thawLocked.)
	if d.snapBusy {
		return n, nil
	}
	if d.cacheBytes > d.s.opts.CacheBytes {
		if err := d.writeBackLocked(d.s.opts.CacheBytes-d.s.opts.CacheBytes/8, 0); err != nil {
			return n, err
		}
	} else if d.cacheBytes > d.s.wbLow() {
		d.wantWriteBackLocked()
	}
	return n, nil
}

func (d *diskState) dropCachedLocked(b ids.Block, c *cblock) {
	delete(d.cache, b)
	d.cacheBytes -= int64(len(c.data))
	putBuf(c.data)
	c.data = nil
}

// flushLocked writes every cached block to the log (not synced), in block
// order, once no snapshot is being taken of the disk.
func (d *diskState) flushLocked() error {
	d.waitSnapshotLocked()
	if len(d.cache) == 0 {
		return nil
	}
	blocks := make([]ids.Block, 0, len(d.cache))
	for b := range d.cache {
		blocks = append(blocks, b)
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i] < blocks[j] })
	// Complete the partial blocks first, with one index transaction.
	var partial []ids.Block
	var bases [][]byte
	for _, b := range blocks {
		if !d.cache[b].full {
			partial = append(partial, b)
			bases = append(bases, getBuf(d.bs))
		}
	}
	if len(partial) > 0 {
		err := d.readBlocksLocked(partial, bases)
		for i, b := range partial {
			if err == nil {
				d.cache[b].overlay(bases[i])
			}
			putBuf(bases[i])
		}
		if err != nil {
			return err
		}
	}
	datas := make([][]byte, len(blocks))
	for i, b := range blocks {
		datas[i] = d.cache[b].data
	}
	if err := d.storeBlocksLocked(blocks, datas); err != nil {
		return err
	}
	for _, b := range blocks {
		d.dropCachedLocked(b, d.cache[b])
	}
	if d.wbActive == 0 { // every queued entry is stale now
		clear(d.wbq)
		d.wbq, d.wbHead = d.wbq[:0], 0
	}
	return nil
}

// fillLocked completes a partial cached block with the block's current content.
func (d *diskState) fillLocked(b ids.Block, c *cblock) error {
	if c.full {
		return nil
	}
	base := getBuf(d.bs)
	defer putBuf(base)
	if err := d.readBlocksLocked([]ids.Block{b}, [][]byte{base}); err != nil {
		return err
	}
	c.overlay(base)
	return nil
}

// readBlocksLocked reads blocks as the head sees them (disk's lock held),
// looked up through the block map.
func (d *diskState) readBlocksLocked(blocks []ids.Block, dsts [][]byte) error {
	vs, found, err := d.lookupLocked(blocks)
	if err != nil {
		return fmt.Errorf("%s: blocks %d-%d: %w", d.name, blocks[0], blocks[len(blocks)-1], err)
	}
	_, err = d.s.readResolved(d.chain, vs, found, blocks, dsts, d.name, d.bmMovedLocked)
	return err
}

// overlay completes a partial block: base (the block's current content)
// fills what the written ranges do not cover. base is not kept.
func (c *cblock) overlay(base []byte) {
	prev := 0
	for _, r := range c.dirty {
		copy(c.data[prev:r[0]], base[prev:r[0]])
		prev = r[1]
	}
	copy(c.data[prev:], base[prev:])
	c.dirty = [][2]int{{0, len(c.data)}}
	c.full = true
}

// storeBlocksLocked appends whole blocks to the log at the head's current
// epoch: a zero record for a block of zeros that hides data, nothing for one
// that hides nothing, else a data record. Whether each block had data before
// (for zeros, and for the space accounting) is looked up with one index
// transaction.
func (d *diskState) storeBlocksLocked(blocks []ids.Block, datas [][]byte) error {
	if len(blocks) == 0 {
		return nil
	}
	zero := make([]bool, len(blocks))
	for i, data := range datas {
		zero[i] = isZero(data)
	}
	return d.storeDigestedLocked(blocks, datas, zero, digestBlocks(datas, zero))
}

// storeDigestedLocked is storeBlocksLocked with the blocks' zero flags and
// digests (digestBlocks) computed already.
func (d *diskState) storeDigestedLocked(blocks []ids.Block, datas [][]byte, zero []bool, vers []index.Version) error {
	if len(blocks) == 0 {
		return nil
	}
	head := d.chain[0]
	// What the head saw before (the space accounting needs it): the block
	// map answers for known blocks without an index transaction.
	vs, found, err := d.lookupLocked(blocks)
	if err != nil {
		return err
	}
	// was: counted stored; keep: a zero written over it must be stored (a
	// lazy disk's block not local yet, stored by its origin or maybe: see
	// lazyShown).
	was, keep := make([]bool, len(blocks)), make([]bool, len(blocks))
	shown := d.s.lazyShown(d.chain)
	for i, b := range blocks {
		was[i] = found[i] && !vs[i].Zero()
		keep[i] = was[i]
		if !found[i] && shown != nil {
			sh, known := shown(b)
			was[i], keep[i] = sh && known, sh
		}
	}
	acct := d.s.acct.begin(d.id)
	defer acct.end()
	// The blocks are appended under one hold of appendMu (as lazy
	// hydration does), not one per block: a 1 MiB write of 16 KiB blocks
	// took and handed off the log's lock 64 times, each time behind the
	// cleaner's batches and the commits (ext4 in a loop device: 5-15 ms of
	// the disk's lock per 1 MiB write, appends of 16 KiB waiting 6-9 ms).
	d.s.appendMu.Lock()
	defer d.s.appendMu.Unlock()
	for i, b := range blocks {
		if zero[i] {
			if !keep[i] {
				continue // reads as zeros already; nothing to store
			}
			var cnt [8]byte
			putLeUint64(cnt[:], 1)
			r := &segment.Record{Kind: segment.KindZero, Layer: head.layer, Block: b, Epoch: head.epoch, Payload: cnt[:]}
			v, err := d.s.appendVersionLocked(r, index.Version{Flags: index.FlagZero}, 1)
			if err != nil {
				return err
			}
			d.bmSetLocked(b, v)
			if was[i] {
				acct.add(-1)
			}
			continue
		}
		r := &segment.Record{Kind: segment.KindData, Layer: head.layer, Block: b, Epoch: head.epoch, Payload: datas[i]}
		v, err := d.s.appendVersionLocked(r, vers[i], 1)
		if err != nil {
			return err
		}
		d.bmSetLocked(b, v)
		if !was[i] {
			acct.add(1)
		}
	}
	return nil
}

// ReadAt reads len(p) bytes at off; past the end it returns io.EOF.
// Blocks in the write-back cache are copied under the disk's lock; the
// others are looked up in the block map (the index for those it lacks) and
// read without the lock.
func (h *Disk) ReadAt(p []byte, off int64) (int, error) {
	d := h.d
	d.mu.Lock()
	if err := h.check(); err != nil {
		d.mu.Unlock()
		return 0, err
	}
	if off < 0 {
		d.mu.Unlock()
		return 0, fmt.Errorf("%w: negative offset", ErrInvalid)
	}
	if off >= d.size.Load() {
		d.mu.Unlock()
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > d.size.Load()-off {
		p = p[:d.size.Load()-off]
	}
	chain := d.chain
	bs := int64(d.bs)
	// Copy what the cache holds; read the rest without the lock.
	var blocks []ids.Block
	var dsts [][]byte
	var ins []int // offset in the block of each dst
	var vs []index.Version
	var found, known []bool
	unknown := 0
	for n := 0; n < len(p); {
		pos := off + int64(n)
		b := ids.BlockAt(pos, d.bs)
		in := int(pos % bs)
		m := min(len(p)-n, d.bs-in)
		c, ok := d.cache[b]
		if !ok {
			c, ok = d.frozen[b] // a snapshot's entry, not stored yet
		}
		if ok {
			if err := d.fillLocked(b, c); err != nil {
				d.mu.Unlock()
				return n, err
			}
			copy(p[n:n+m], c.data[in:in+m])
		} else {
			v, f, ok := d.bmGetLocked(b)
			blocks = append(blocks, b)
			dsts = append(dsts, p[n:n+m])
			ins = append(ins, in)
			vs, found, known = append(vs, v), append(found, f), append(known, ok)
			if !ok {
				unknown++
			}
		}
		n += m
	}
	gen := d.bmap.gen
	d.mu.Unlock()
	if len(blocks) == 0 {
		return h.readDone(len(p), want)
	}
	if unknown > 0 {
		miss := make([]ids.Block, 0, unknown)
		for i, b := range blocks {
			if !known[i] {
				miss = append(miss, b)
			}
		}
		mv, mf, err := d.s.lookupMany(chain, miss)
		if err != nil {
			return 0, fmt.Errorf("%s: blocks %d-%d: %w", d.name, miss[0], miss[len(miss)-1], err)
		}
		d.mu.Lock()
		keep := d.bmap.gen == gen && !d.deleted
		j := 0
		for i, b := range blocks {
			if known[i] {
				continue
			}
			vs[i], found[i] = mv[j], mf[j]
			if keep {
				d.bmPutLocked(b, mv[j], mf[j])
			}
			j++
		}
		d.mu.Unlock()
	}
	// Partial blocks (the ends of the range) are read whole into a buffer.
	full := dsts
	var bufs [][]byte
	for i, dst := range dsts {
		if len(dst) != d.bs {
			if bufs == nil {
				full = append([][]byte(nil), dsts...)
			}
			buf := getBuf(d.bs)
			bufs = append(bufs, buf)
			full[i] = buf
		}
	}
	_, err := d.s.readResolved(chain, vs, found, blocks, full, d.name, func(b ids.Block, old, v index.Version, found bool) {
		d.mu.Lock()
		d.bmMovedLocked(b, old, v, found)
		d.mu.Unlock()
	})
	for i, dst := range dsts {
		if len(dst) != d.bs {
			copy(dst, full[i][ins[i]:])
		}
	}
	for _, buf := range bufs {
		putBuf(buf)
	}
	if err != nil {
		return 0, err
	}
	return h.readDone(len(p), want)
}

func (h *Disk) readDone(n, want int) (int, error) {
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// Sync makes every write made to the disk before it durable.
func (h *Disk) Sync() error {
	d := h.d
	d.mu.Lock()
	if err := h.check(); err != nil {
		d.mu.Unlock()
		return err
	}
	err := d.syncFlushLocked()
	d.mu.Unlock()
	if err != nil {
		return err
	}
	return d.s.commitLog() // durable once the log is synced (store.go)
}

// PunchHole makes [off, off+length) read as zeros. Whole blocks in the range
// are freed (a zero record in the log, a hole in the index); the partial
// blocks at its ends are written with zeros.
func (h *Disk) PunchHole(off, length int64) error {
	d := h.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := h.check(); err != nil {
		return err
	}
	if off < 0 || length < 0 {
		return fmt.Errorf("%w: punch hole at %d length %d", ErrInvalid, off, length)
	}
	end := min(off+length, d.size.Load())
	if off >= end {
		return nil
	}
	bs := int64(d.bs)
	first := ids.BlockAt(off+bs-1, d.bs) // first whole block
	last := ids.BlockAt(end, d.bs)       // one past the last whole block
	writeZeros := func(from, to int64) error {
		d.mu.Unlock()
		defer d.mu.Lock()
		for from < to {
			n := min(to-from, int64(len(zeroBlock)))
			if _, err := h.WriteAt(zeroBlock[:n], from); err != nil {
				return err
			}
			from += n
		}
		return nil
	}
	if first >= last { // no whole block
		return writeZeros(off, end)
	}
	if first.Offset(d.bs) > off {
		if err := writeZeros(off, first.Offset(d.bs)); err != nil {
			return err
		}
	}
	if last.Offset(d.bs) < end {
		if err := writeZeros(last.Offset(d.bs), end); err != nil {
			return err
		}
	}
	// The tombstones are appended for the head: not while a snapshot is
	// being taken (snapshot.go).
	d.waitSnapshotLocked()
	if err := h.check(); err != nil {
		return err
	}
	for b := first; b < last; b++ {
		if c, ok := d.cache[b]; ok {
			d.dropCachedLocked(b, c)
		}
	}
	// Tombstone the runs of blocks that have something visible.
	head := d.chain[0]
	acct := d.s.acct.begin(d.id)
	defer acct.end()
	var runStart ids.Block
	var runLen uint64
	var runFreed int64 // blocks of the run counted stored (lazyShown)
	emit := func() error {
		if runLen == 0 {
			return nil
		}
		var cnt [8]byte
		putLeUint64(cnt[:], runLen)
		r := &segment.Record{Kind: segment.KindZero, Layer: head.layer, Block: runStart, Epoch: head.epoch, Payload: cnt[:]}
		err := d.s.appendRecord(r, index.Version{Flags: index.FlagZero}, runLen)
		if err == nil {
			acct.add(-runFreed)
		}
		runLen, runFreed = 0, 0
		return err
	}
	add := func(b ids.Block, known bool) error {
		d.bmDropLocked(b)
		if runLen == 0 || runStart.Add(runLen) != b {
			if err := emit(); err != nil {
				return err
			}
			runStart = b
		}
		runLen++
		if known {
			runFreed++
		}
		return nil
	}
	d.bmap.gen++ // a lookup running now must not enter what it saw
	// A lazy disk's blocks not local yet have no version: those its origin
	// stores are tombstoned too (storedShown, lazy.go).
	err := d.s.storedShown(d.chain, first, last, add)
	if err == nil {
		err = emit()
	}
	if err != nil {
		return err
	}
	d.modified = time.Now()
	return nil
}

// Allocated is the bytes of stored blocks visible in the disk now.
func (h *Disk) Allocated() int64 {
	n, err := h.d.allocated()
	if err != nil {
		h.d.s.log.Error("count allocated blocks", "disk", h.d.name, "err", err)
	}
	return n
}

// allocated is the bytes of the stored blocks the head shows (the space
// accounting's running count, accounting.go; blocks still in the write-back
// cache are not counted until stored).
func (d *diskState) allocated() (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.headBlocksLocked()
	return n * int64(d.bs), err
}

var zeroBlock = make([]byte, MaxBlockSize)

func isZero(b []byte) bool { return bytes.Equal(b, zeroBlock[:len(b)]) }

// digestBlocks computes the SHA-256 of the non-zero blocks, on every core
// when there is enough to share (the hash is most of a large write's CPU
// time: half of the engine's in BenchmarkSeqWrite1M, SHA-NI and all).
func digestBlocks(datas [][]byte, zero []bool) []index.Version {
	vers := make([]index.Version, len(datas))
	one := func(i int) {
		if !zero[i] {
			vers[i] = index.Version{Digest: sha256.Sum256(datas[i])}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(datas)/4)
	if workers < 2 {
		for i := range datas {
			one(i)
		}
		return vers
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(datas); i += workers {
				one(i)
			}
		}(w)
	}
	wg.Wait()
	return vers
}
