package rowstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// Lazy layers: the bottom layer of a lazily restored disk (see the package
// doc, "Lazy layers"). This file owns the catalog record's use, the read
// path's hook (lazyFill), hydration and its status.

// LayerSource gives the blocks a lazy layer does not hold yet.
// Implementations are safe for concurrent use.
type LayerSource interface {
	// ReadBlock reads block b, verified against its digest, into dst (one
	// block). A block the source cannot give now is an error (wrapping
	// the cause); never zeros or other data.
	ReadBlock(ctx context.Context, b int64, dst []byte) error
	// Stored reports whether block b has data in the source; a block that
	// has none reads as zeros.
	Stored(b int64) bool
}

// StoredLister is a LayerSource that can list the blocks it stores
// (order unspecified, each once). Attaching such a source costs
// O(stored blocks) instead of a Stored call per block of the origin (a
// sparse 32 GiB disk of 16 KiB blocks has 2 Mi blocks).
type StoredLister interface {
	EachStored(fn func(b int64))
}

// BatchSource is a LayerSource that reads several blocks at once (a
// region's disk reads neighbouring blocks with one range read per pack and
// shard). errs[i] is ReadBlock's error for blocks[i].
type BatchSource interface {
	ReadBlocks(ctx context.Context, blocks []int64, dsts [][]byte) (errs []error)
}

// ErrUnavailable: a block the disk does not hold yet could not be had from
// its source (not attached, unreachable, or failed verification). It
// wraps syscall.EIO, and comes first in the errors wrapping it, so the
// errno a reader gets is EIO whatever the cause carries (a refused
// connection's ECONNREFUSED, a missing directory's ENOENT).
var ErrUnavailable error = unavailableError{}

type unavailableError struct{}

func (unavailableError) Error() string { return "block not local and its source is unavailable" }
func (unavailableError) Unwrap() error { return syscall.EIO }

// LazyOrigin is where a lazy layer's missing blocks come from.
type LazyOrigin = index.LazyOrigin

// LazyStatus is the hydration state of a lazily restored disk.
type LazyStatus struct {
	Disk     string     `json:"disk"`
	Layer    uint64     `json:"layer"`
	Origin   LazyOrigin `json:"origin"`
	Attached bool       `json:"attached"` // a source is attached and what is missing is known
	Running  bool       `json:"running"`  // background hydration is running
	Done     bool       `json:"done"`     // every block is local; the lazy mark is cleared
	// Blocks the source stores, and how many of them are local.
	Total int64 `json:"blocks_total"`
	Local int64 `json:"blocks_local"`
	// BytesFetched counts block bytes fetched from the source since the
	// source was attached (reads and hydration). Rate is how fast blocks
	// became local over the last rateWindow (bytes/s, hydration and reads
	// together), ETA the time the missing blocks take at that rate. Both
	// are 0 (not known) until blocks became local during at least
	// rateMinSpan, and while none did for rateWindow: an average since the
	// attach read a token bucket's first burst as the rate (2.5 times
	// --rate after 0.1 s) and counted the time before hydration started.
	BytesFetched int64         `json:"bytes_fetched"`
	Rate         float64       `json:"rate"`
	ETA          time.Duration `json:"eta_ns"`
	RateLimit    int64         `json:"rate_limit,omitempty"` // bytes/s; 0: unbounded
	// LastError is why the last fetch from the source failed, while that
	// is still so: cleared once the block it failed for is fetched (a read
	// that failed reading directly, and that a hydration batch then
	// served, records none: the error never reached the reader).
	LastError string `json:"last_error,omitempty"`
}

// rateWindow is how far back Rate looks; rateMinSpan is the least time it
// needs to say anything; rateSample is the spacing of its samples.
const (
	rateWindow  = 10 * time.Second
	rateMinSpan = time.Second
	rateSample  = 250 * time.Millisecond
)

// rateSampleT is the bytes made local since the attach, at a time.
type rateSampleT struct {
	t     time.Time
	bytes int64
}

// HydrateOptions tune background hydration.
type HydrateOptions struct {
	// Rate bounds hydration's fetches, in bytes per second; 0 keeps the
	// rate recorded in the layer's origin (0 there: unbounded). Reads that
	// need a block fetch it at once, whatever the bound; their fetches
	// count toward it (hydration waits the longer).
	Rate int64
	// Workers is the number of blocks fetched at once (default 4).
	Workers int
	// NoHydrate attaches the source for reads only.
	NoHydrate bool
	// Backoff bounds the wait between retries after a failed fetch
	// (default 100 ms doubling up to 30 s).
	MinBackoff, MaxBackoff time.Duration
}

// lazySet holds the store's lazy layers (loaded from the catalog on first
// use, kept up to date by CreateLazyDisk and clearLazy).
type lazySet struct {
	mu     sync.RWMutex
	loaded bool
	layers map[ids.Layer]*lazyLayer
}

// lazyLayer is one lazy layer in memory.
type lazyLayer struct {
	s      *Store
	id     ids.Layer
	epoch  ids.Epoch // the epoch hydrated versions are written at (the one its children see)
	origin LazyOrigin
	n      ids.Block // blocks of the origin (one past its last)
	bs     int

	mu       sync.Mutex
	src      LayerSource
	need     []uint64 // bitmap: stored in the source, not local yet (set at attach)
	missing  int64    // bits set in need
	total    int64    // blocks the source stores
	inflight map[ids.Block]*lazyCall
	hints    []ids.Block // blocks reads needed, newest last (hydration starts there)
	cursor   ids.Block   // sequential hydration position
	lastErr  string
	// lastErrB is the block lastErr is about (lastErrOK: it is about one;
	// an attach's error is about none, and stays until the next attach).
	lastErrB  ids.Block
	lastErrOK bool
	done      bool // lazy mark cleared
	running   bool
	cancel    context.CancelFunc
	ready     chan struct{} // closed once need is known (or the attach failed: src nil)
	finished  chan struct{} // closed when the hydrator stops
	attached  time.Time
	fetched   int64 // bytes fetched since attach (reads and hydration)
	hydrated  int64 // bytes fetched by hydration since attach
	local     int64 // bytes made local since attach (hydration and reads)
	samples   []rateSampleT
	// whole (made at attach) is closed once no block is missing: the
	// workers' waits (the rate, a retry's backoff) end at once and the
	// lazy mark is cleared (a disk shown 100 % local waited up to a
	// backoff, 6.4 s and more, to be declared whole).
	whole  chan struct{}
	bucket *tokenBucket
	rate   int64
	// kick (buffered 1): the store's disks changed; hydration's watcher
	// looks for users at once instead of at its next tick.
	kick chan struct{}
}

type lazyCall struct {
	done  chan struct{}
	data  []byte
	err   error
	batch bool // claimed by a hydration batch of several blocks (set at the claim)
}

// batchReadWait is how long a read waits for a block a hydration batch is
// fetching before it reads the block from the source itself (not kept:
// the batch keeps it), so a read never waits for a whole batch long.
const batchReadWait = 10 * time.Millisecond

// lazyReadTimeout bounds a read's wait for one block from its source.
const lazyReadTimeout = 60 * time.Second

const maxHints = 64

// errHydrated: the block became local after the caller's lookup;
// errLazyDone: the whole layer did (blocks the source did not store have
// no version: zeros).
var (
	errHydrated = errors.New("block hydrated meanwhile")
	errLazyDone = errors.New("layer hydrated meanwhile")
)

func (s *Store) lazyLayers() (map[ids.Layer]*lazyLayer, error) {
	s.lazy.mu.RLock()
	if s.lazy.loaded {
		m := s.lazy.layers
		s.lazy.mu.RUnlock()
		return m, nil
	}
	s.lazy.mu.RUnlock()
	s.lazy.mu.Lock()
	defer s.lazy.mu.Unlock()
	if s.lazy.loaded {
		return s.lazy.layers, nil
	}
	m := map[ids.Layer]*lazyLayer{}
	err := s.idx.View(func(t *index.Txn) error {
		return t.Layers(func(l index.Layer) error {
			if l.Lazy != nil {
				m[l.ID] = newLazyLayer(s, l)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("lazy layers: %w", err)
	}
	s.lazy.layers, s.lazy.loaded = m, true
	return m, nil
}

func newLazyLayer(s *Store, l index.Layer) *lazyLayer {
	o := *l.Lazy
	return &lazyLayer{s: s, id: l.ID, epoch: l.Epoch - 1, origin: o, bs: o.BlockSize,
		n: blockCount(o.Size, o.BlockSize), inflight: map[ids.Block]*lazyCall{}, rate: o.Rate,
		kick: make(chan struct{}, 1)}
}

// lazyDisksChanged tells every lazy layer's hydration that a disk was
// deleted: one no disk reads through any more stops at once (not up to
// lazyPoll later, fetching for nobody meanwhile).
func (s *Store) lazyDisksChanged() {
	s.lazy.mu.RLock()
	defer s.lazy.mu.RUnlock()
	for _, ll := range s.lazy.layers {
		select {
		case ll.kick <- struct{}{}:
		default:
		}
	}
}

// lazyOf returns the lazy layer at the bottom of chain, or nil.
func (s *Store) lazyOf(chain []link) (*lazyLayer, error) {
	m, err := s.lazyLayers()
	if err != nil || len(m) == 0 {
		return nil, err
	}
	s.lazy.mu.RLock()
	defer s.lazy.mu.RUnlock()
	return s.lazy.layers[chain[len(chain)-1].layer], nil
}

// lazyFill is the read path's hook: blocks no link of chain holds are, when
// the chain ends in a lazy layer, fetched from its source (and kept).
// bad, if set, is told of blocks that became local since they were looked
// up (a disk's block map then forgets them).
func (s *Store) lazyFill(chain []link, found []bool, blocks []ids.Block, dsts [][]byte, what string, any bool, bad func(ids.Block)) (bool, error) {
	all := true
	for _, f := range found {
		all = all && f
	}
	if all {
		return any, nil
	}
	ll, err := s.lazyOf(chain)
	if ll == nil || err != nil {
		return any, err
	}
	for i, b := range blocks {
		if found[i] {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), lazyReadTimeout)
		had, err := ll.fill(ctx, b, dsts[i], true)
		cancel()
		if hyd := errors.Is(err, errHydrated); hyd || errors.Is(err, errLazyDone) {
			if bad != nil {
				bad(b)
			}
			had, err = s.readBlocksIndexed(chain, []ids.Block{b}, [][]byte{dsts[i]}, what)
			if err == nil && !had && hyd {
				if _, f, e := s.lookupMany(chain, []ids.Block{b}); e == nil && !f[0] {
					err = &CorruptError{What: fmt.Sprintf("%s: block %d", what, b), Err: errors.New("hydrated block missing from the index")}
				}
			}
		}
		if err != nil {
			return any, fmt.Errorf("%s: block %d: %w", what, b, err)
		}
		any = any || had
	}
	return any, nil
}

// lazyBottom reports whether chain ends in a lazy layer, hydrated or not
// (until the store is reopened a hydrated one stays in the set, marked
// done). A disk's block map keeps no "no version" answer for such a chain:
// hydration, or a read, makes the block local in the lazy layer without
// telling the map, and a zero written over the block was then taken for a
// write over zeros and dropped once the layer was done (lazyShown no longer
// asked): the origin's data came back (TestRev14lazyZeroWriteAfterHydrated).
func (s *Store) lazyBottom(chain []link) bool {
	ll, err := s.lazyOf(chain)
	return err != nil || ll != nil // not known: nothing kept
}

// lazyShown returns, when chain ends in a lazy layer not hydrated yet,
// whether a block no layer of chain's index holds shows stored data
// through it: its source stores it, local yet or not (shown and known).
// While no source is attached what it stores is not known: every block
// below the origin's end may be shown (shown, not known). A zero written
// over such a block is stored (a record more; never the origin's data read
// back); the space accounting counts a block freed, or newly written, only
// by what is known (an unknown one is taken as not stored: the count may
// be high, never below what the disk shows) until the next attach's
// recount makes it right (recountLazyDisks). nil when chain ends in no
// such layer. A write of zeros over a block not local yet was dropped (it
// "read as zeros already") and the origin's data came back; a write of
// data over one counted it a second time (TestRev14lazyZeroWriteOverNotLocal).
func (s *Store) lazyShown(chain []link) func(ids.Block) (shown, known bool) {
	ll, err := s.lazyOf(chain)
	if err != nil || ll == nil {
		return nil // an error: the lookups after it fail the same way
	}
	ll.mu.Lock()
	done, src := ll.done, ll.src
	ll.mu.Unlock()
	if done {
		return nil
	}
	return func(b ids.Block) (bool, bool) {
		if b >= ll.n {
			return false, true
		}
		if src == nil {
			return true, false
		}
		st := src.Stored(int64(b))
		return st, true
	}
}

// storedShown calls fn, in block order, for every block in [from, to)
// that shows stored data through chain: a non-zero version visible
// (known), or no version and chain's lazy bottom layer shows it
// (lazyShown: local yet or not; known is false while no source says so).
// A copy that walked only the index's versions left a lazy disk's blocks
// not local yet out: zeros (TestRev14lazyEncryptedCopyOfLazySnapshot).
func (s *Store) storedShown(chain []link, from, to ids.Block, fn func(b ids.Block, known bool) error) error {
	shown, next := s.lazyShown(chain), from
	gap := func(to ids.Block) error {
		for ; shown != nil && next < to; next++ {
			if sh, known := shown(next); sh {
				if err := fn(next, known); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := s.visible(chain, from, to, func(b ids.Block, v index.Version) error {
		if err := gap(b); err != nil {
			return err
		}
		next = b + 1
		if v.Zero() {
			return nil
		}
		return fn(b, true)
	})
	if err != nil {
		return err
	}
	return gap(to)
}

// refuseLazy refuses a diff of a point that reads through a lazy layer
// not hydrated yet: the index does not hold its missing blocks, so a diff
// (a sync to a region) would take them for zeros.
func (s *Store) refuseLazy(chain []link, what string) error {
	ll, err := s.lazyOf(chain)
	if err != nil || ll == nil || ll.isDone() {
		return err
	}
	return fmt.Errorf("%w: %s reads through a disk still hydrating from region %q (snapshot %q, disk %q); "+
		"diff or sync it once hydrated (disk info shows the progress)", ErrBusy, what, ll.origin.Region, ll.origin.Snapshot, ll.origin.Disk)
}

func (ll *lazyLayer) needLocked(b ids.Block) bool {
	return ll.need != nil && ll.need[b/64]&(1<<(b%64)) != 0
}

func (ll *lazyLayer) clearNeedLocked(b ids.Block) {
	if ll.needLocked(b) {
		ll.need[b/64] &^= 1 << (b % 64)
		ll.missing--
		ll.local += int64(ll.bs)
		ll.sampleLocked(time.Now())
		ll.servedLocked(b)
		if ll.missing == 0 {
			ll.closeWholeLocked()
		}
	}
}

// closeWholeLocked closes whole (once): no block is missing.
func (ll *lazyLayer) closeWholeLocked() {
	if ll.whole == nil {
		return
	}
	select {
	case <-ll.whole:
	default:
		close(ll.whole)
	}
}

// failedLocked records err, a failed fetch of block b, as the last error.
func (ll *lazyLayer) failedLocked(b ids.Block, err error) {
	ll.lastErr, ll.lastErrB, ll.lastErrOK = err.Error(), b, true
}

// servedLocked clears the last error when it was about block b, fetched
// now.
func (ll *lazyLayer) servedLocked(b ids.Block) {
	if ll.lastErrOK && ll.lastErrB == b {
		ll.lastErr, ll.lastErrOK = "", false
	}
}

// sampleLocked notes the bytes made local at now (at most every
// rateSample; those older than rateWindow are dropped).
func (ll *lazyLayer) sampleLocked(now time.Time) {
	if n := len(ll.samples); n > 0 && now.Sub(ll.samples[n-1].t) < rateSample {
		return
	}
	i := 0
	for i < len(ll.samples) && now.Sub(ll.samples[i].t) > rateWindow {
		i++
	}
	ll.samples = append(ll.samples[:0], ll.samples[i:]...)
	ll.samples = append(ll.samples, rateSampleT{t: now, bytes: ll.local})
}

// rateLocked is the bytes a second made local over the last rateWindow;
// 0 when not known (less than rateMinSpan measured, or nothing became
// local within rateWindow).
func (ll *lazyLayer) rateLocked(now time.Time) float64 {
	for _, x := range ll.samples {
		if now.Sub(x.t) > rateWindow {
			continue
		}
		span := now.Sub(x.t)
		if span < rateMinSpan {
			return 0
		}
		return float64(ll.local-x.bytes) / span.Seconds()
	}
	return 0
}

// fill reads block b of the layer into dst: zeros past the origin's end and
// where the source stores nothing, errHydrated if it is local (read it
// through the index), else fetched (once, whoever asks) and kept.
func (ll *lazyLayer) fill(ctx context.Context, b ids.Block, dst []byte, read bool) (bool, error) {
	if b >= ll.n {
		clear(dst)
		return false, nil
	}
	ll.mu.Lock()
	if ll.done {
		ll.mu.Unlock()
		return false, errLazyDone
	}
	if ready := ll.ready; ll.src != nil && ready != nil {
		select {
		case <-ready:
		default: // the attach is still working out what is missing
			ll.mu.Unlock()
			select {
			case <-ready:
			case <-ctx.Done():
				return false, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
			}
			ll.mu.Lock()
		}
	}
	src := ll.src
	if src == nil {
		ll.mu.Unlock()
		return false, fmt.Errorf("%w: lazy layer %d (region %q, snapshot %q, disk %q) has no source attached",
			ErrUnavailable, ll.id, ll.origin.Region, ll.origin.Snapshot, ll.origin.Disk)
	}
	if !src.Stored(int64(b)) {
		ll.mu.Unlock()
		clear(dst)
		return false, nil
	}
	if !ll.needLocked(b) {
		ll.mu.Unlock()
		return false, errHydrated
	}
	if read {
		ll.hintLocked(b)
	}
	c, waiting := ll.inflight[b]
	if !waiting {
		c = &lazyCall{done: make(chan struct{})}
		ll.inflight[b] = c
	}
	inBatch := waiting && c.batch
	ll.mu.Unlock()
	if waiting {
		var slow <-chan time.Time
		if inBatch {
			t := time.NewTimer(batchReadWait)
			defer t.Stop()
			slow = t.C
		}
		select {
		case <-c.done:
		case <-slow:
			had, err := ll.readDirect(ctx, src, b, dst)
			if err == nil {
				return had, nil
			}
			// The batch may have fetched the block, ended hydration and
			// had src closed meanwhile (a small disk hydrates in moments):
			// its result is the block then, not this read's EIO
			// (TestLazyReadDirectAfterSourceClosed), and the direct read's
			// error is no last error (TestLazy14DirectReadErrorNotShown).
			select {
			case <-c.done:
			case <-ctx.Done():
				ll.mu.Lock()
				ll.failedLocked(b, err)
				ll.mu.Unlock()
				return false, err
			}
		case <-ctx.Done():
			return false, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
		if c.err != nil {
			return false, c.err
		}
		copy(dst, c.data)
		return true, nil
	}
	err := ll.fetch(ctx, src, b, dst, !read)
	if err == nil {
		c.data = append([]byte(nil), dst...)
	}
	c.err = err
	ll.mu.Lock()
	delete(ll.inflight, b)
	ll.mu.Unlock()
	close(c.done)
	return err == nil, err
}

// readDirect reads block b from src into dst without keeping it (a read
// that would otherwise wait for a hydration batch fetching it). Its error
// is not recorded: the caller records it if the reader gets it.
func (ll *lazyLayer) readDirect(ctx context.Context, src LayerSource, b ids.Block, dst []byte) (bool, error) {
	if err := src.ReadBlock(ctx, int64(b), dst); err != nil {
		return false, fmt.Errorf("%w: lazy layer %d: %w", ErrUnavailable, ll.id, err)
	}
	ll.mu.Lock()
	ll.servedLocked(b)
	ll.fetched += int64(len(dst))
	bucket := ll.bucket
	ll.mu.Unlock()
	bucket.take(len(dst)) // counts toward the rate, never waits for it
	return true, nil
}

// fetch reads block b from src into dst and writes it into the layer.
func (ll *lazyLayer) fetch(ctx context.Context, src LayerSource, b ids.Block, dst []byte, hydrate bool) error {
	if err := src.ReadBlock(ctx, int64(b), dst); err != nil {
		err = fmt.Errorf("%w: lazy layer %d: %w", ErrUnavailable, ll.id, err)
		ll.mu.Lock()
		ll.failedLocked(b, err)
		ll.mu.Unlock()
		return err
	}
	ll.mu.Lock()
	ll.servedLocked(b)
	ll.fetched += int64(len(dst))
	bucket := ll.bucket
	if hydrate {
		ll.hydrated += int64(len(dst))
	}
	ll.mu.Unlock()
	if !hydrate {
		// A read's fetch counts toward the rate (hydration waits the
		// longer for it) but never waits for it.
		bucket.take(len(dst))
	}
	// Keep it: a read that cannot keep the block (a full filesystem) still
	// has its data; hydration fetches it again later.
	if err := ll.s.storeLazy(ll, b, dst); err != nil {
		ll.s.log.Warn("lazy layer: keeping a fetched block failed", "layer", ll.id, "block", b, "err", err)
		if hydrate {
			return err
		}
	}
	return nil
}

// storeLazy appends block b of lazy layer ll (a zero record for zeros) at
// the epoch its children see, and marks it local.
func (s *Store) storeLazy(ll *lazyLayer, b ids.Block, data []byte) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	var err error
	if isZero(data) {
		var cnt [8]byte
		putLeUint64(cnt[:], 1)
		r := &segment.Record{Kind: segment.KindZero, Layer: ll.id, Block: b, Epoch: ll.epoch, Payload: cnt[:]}
		_, err = s.appendVersion(r, index.Version{Flags: index.FlagZero}, 1)
	} else {
		v := digestBlocks([][]byte{data}, []bool{false})[0]
		r := &segment.Record{Kind: segment.KindData, Layer: ll.id, Block: b, Epoch: ll.epoch, Payload: data}
		_, err = s.appendVersion(r, v, 1)
	}
	if err != nil {
		return fmt.Errorf("lazy layer %d: keep block %d: %w", ll.id, b, err)
	}
	ll.mu.Lock()
	ll.clearNeedLocked(b)
	ll.mu.Unlock()
	return nil
}

// storeLazyBatch is storeLazy of several blocks: digested together, appended
// under one hold of the log's append lock, marked local under one hold of
// the layer's. On an error the blocks before the failed one are kept.
func (s *Store) storeLazyBatch(ll *lazyLayer, blocks []ids.Block, datas [][]byte) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	zero := make([]bool, len(datas))
	for i, d := range datas {
		zero[i] = isZero(d)
	}
	vers := digestBlocks(datas, zero)
	var cnt [8]byte
	putLeUint64(cnt[:], 1)
	kept := 0
	var err error
	s.appendMu.Lock()
	for i, b := range blocks {
		if zero[i] {
			r := &segment.Record{Kind: segment.KindZero, Layer: ll.id, Block: b, Epoch: ll.epoch, Payload: cnt[:]}
			_, err = s.appendVersionLocked(r, index.Version{Flags: index.FlagZero}, 1)
		} else {
			r := &segment.Record{Kind: segment.KindData, Layer: ll.id, Block: b, Epoch: ll.epoch, Payload: datas[i]}
			_, err = s.appendVersionLocked(r, vers[i], 1)
		}
		if err != nil {
			err = fmt.Errorf("lazy layer %d: keep block %d: %w", ll.id, b, err)
			break
		}
		kept++
	}
	s.appendMu.Unlock()
	ll.mu.Lock()
	for _, b := range blocks[:kept] {
		ll.clearNeedLocked(b)
	}
	ll.mu.Unlock()
	return err
}

func (ll *lazyLayer) hintLocked(b ids.Block) {
	if n := len(ll.hints); n > 0 && ll.hints[n-1] == b {
		return
	}
	if len(ll.hints) == maxHints {
		copy(ll.hints, ll.hints[1:])
		ll.hints = ll.hints[:maxHints-1]
	}
	ll.hints = append(ll.hints, b)
}

// hintWindow is how far past a recent read hydration looks first.
const hintWindow = 256

// pickLocked claims the next block to hydrate: near the newest read first,
// then in order from the cursor. ok is false when none is left to claim.
func (ll *lazyLayer) pickLocked() (ids.Block, *lazyCall, bool) {
	claim := func(b ids.Block) (ids.Block, *lazyCall, bool) {
		c := &lazyCall{done: make(chan struct{})}
		ll.inflight[b] = c
		return b, c, true
	}
	for len(ll.hints) > 0 {
		h := ll.hints[len(ll.hints)-1]
		for b := h; b < min(h+hintWindow, ll.n); b++ {
			if ll.needLocked(b) && ll.inflight[b] == nil {
				ll.hints[len(ll.hints)-1] = b + 1
				return claim(b)
			}
		}
		ll.hints = ll.hints[:len(ll.hints)-1]
	}
	for pass := 0; pass < 2; pass++ {
		for b := ll.cursor; b < ll.n; {
			w := ll.need[b/64] >> (b % 64)
			if w == 0 {
				b = (b/64 + 1) * 64
				continue
			}
			b = b.Add(uint64(bits.TrailingZeros64(w)))
			if b >= ll.n {
				break
			}
			if ll.inflight[b] == nil {
				ll.cursor = b + 1
				return claim(b)
			}
			b++
		}
		ll.cursor = 0
	}
	return 0, nil, false
}

// hydrateBatch bounds the bytes of one batch of hydration (blocks fetched
// together through a BatchSource, appended together).
const hydrateBatch = 256 << 10

// batchBlocks is how many blocks a hydration batch takes: hydrateBatch's
// worth, at most one token bucket's burst (a low --rate still hydrates
// near recent reads soon), at least one.
func (ll *lazyLayer) batchBlocks() int {
	n := hydrateBatch / ll.bs
	if ll.bucket != nil {
		n = min(n, int(ll.bucket.burst)/ll.bs)
	}
	return max(n, 1)
}

// pickBatchLocked claims up to limit blocks to hydrate together: the next
// block pickLocked gives, and the missing blocks that follow it within
// 2*limit blocks (neighbours lie close together in the region's packs).
func (ll *lazyLayer) pickBatchLocked(limit int) ([]ids.Block, []*lazyCall) {
	b, c, ok := ll.pickLocked()
	if !ok {
		return nil, nil
	}
	blocks, calls := []ids.Block{b}, []*lazyCall{c}
	end := min(b.Add(uint64(2*limit)), ll.n)
	for nb := b + 1; nb < end && len(blocks) < limit; nb++ {
		if ll.needLocked(nb) && ll.inflight[nb] == nil {
			c := &lazyCall{done: make(chan struct{})}
			ll.inflight[nb] = c
			blocks, calls = append(blocks, nb), append(calls, c)
		}
	}
	if len(calls) > 1 {
		for _, c := range calls {
			c.batch = true
		}
	}
	if last := blocks[len(blocks)-1]; last != b {
		if n := len(ll.hints); n > 0 && ll.hints[n-1] == b+1 {
			ll.hints[n-1] = last + 1
		}
		if ll.cursor == b+1 {
			ll.cursor = last + 1
		}
	}
	return blocks, calls
}

// CreateLazyDisk creates a disk whose content is origin's: a lazy bottom
// layer that holds nothing yet, and a head layer above it that takes the
// writes. stored is the number of blocks the origin stores (the disk's
// allocation). Constant time. Until a source is attached (AttachLazy),
// reads of blocks not local fail with ErrUnavailable.
func (s *Store) CreateLazyDisk(name string, origin LazyOrigin, stored int64) (DiskInfo, error) {
	origin.Format = index.LazyFormat
	if err := firstErr(ValidateName("disk", name), ValidateDiskSize(origin.Size), ValidateBlockSize(origin.BlockSize)); err != nil {
		return DiskInfo{}, err
	}
	if origin.Region == "" || origin.Snapshot == "" || origin.Disk == "" || origin.Rate < 0 {
		return DiskInfo{}, fmt.Errorf("%w: a lazy disk needs a region, snapshot and disk, and a rate >= 0", ErrInvalid)
	}
	if _, err := s.lazyLayers(); err != nil {
		return DiskInfo{}, err
	}
	var bottom index.Layer
	di, err := s.newDisk(name, func(t *index.Txn) (index.Layer, index.Disk, int64, error) {
		id, err := t.NextLayer()
		if err != nil {
			return index.Layer{}, index.Disk{}, 0, err
		}
		o := origin
		// Epoch 1 holds the hydrated blocks and is sealed (children see it).
		bottom = index.Layer{ID: id, Epoch: 2, BlockSize: origin.BlockSize, Created: time.Now().UTC(), Lazy: &o}
		if err := t.PutLayer(bottom); err != nil {
			return index.Layer{}, index.Disk{}, 0, err
		}
		return index.Layer{Parent: id, ParentEpoch: 1, Epoch: 1, BlockSize: origin.BlockSize},
			index.Disk{Size: origin.Size, BlockSize: origin.BlockSize,
				Origin: fmt.Sprintf("region %s snapshot %s/%s (lazy)", origin.Region, origin.Snapshot, origin.Disk)}, stored, nil
	})
	if err != nil {
		return DiskInfo{}, err
	}
	s.lazy.mu.Lock()
	s.lazy.layers[bottom.ID] = newLazyLayer(s, bottom)
	s.lazy.mu.Unlock()
	return di, nil
}

// LazyLayer is a lazy layer and its origin, for re-attaching sources.
type LazyLayer struct {
	Layer  uint64     `json:"layer"`
	Origin LazyOrigin `json:"origin"`
	// Disks are the disks whose chain ends in it (none: only snapshots,
	// images or clones of deleted disks still read through it).
	Disks []string `json:"disks,omitempty"`
	// Readers counts the snapshot members and images whose chain ends in
	// it: they read its missing blocks through it too (a hold of the
	// layer's region snapshot must stay while any does).
	Readers int `json:"readers,omitempty"`
}

// ListLazy lists the lazy layers not fully hydrated yet.
func (s *Store) ListLazy() ([]LazyLayer, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	m, err := s.lazyLayers()
	if err != nil {
		return nil, err
	}
	s.lazy.mu.RLock()
	none := len(m) == 0
	s.lazy.mu.RUnlock()
	if none {
		return nil, nil // (no walk of every disk, snapshot and image)
	}
	// The layers first, then one read of the catalog (the disks and the
	// snapshot members and images reading each, and whether GC removed
	// it): the catalog read starts after a layer was listed, so it sees
	// the layer's creation (CreateLazyDisk commits it before it lists the
	// layer), and a layer being created is never taken for one GC removed.
	var out []LazyLayer
	s.lazy.mu.RLock()
	for id, ll := range m {
		if !ll.isDone() {
			out = append(out, LazyLayer{Layer: uint64(id), Origin: ll.origin})
		}
	}
	s.lazy.mu.RUnlock()
	var gone []ids.Layer
	err = s.idx.View(func(t *index.Txn) error {
		gone = nil
		users, err := lazyUsersIn(t)
		if err != nil {
			return err
		}
		readers, err := lazyReadersIn(t)
		if err != nil {
			return err
		}
		for i := range out {
			x := &out[i]
			x.Disks, x.Readers = users[ids.Layer(x.Layer)], readers[ids.Layer(x.Layer)]
			if len(x.Disks) > 0 {
				continue
			}
			if _, err := t.Layer(ids.Layer(x.Layer)); errors.Is(err, index.ErrNotFound) {
				gone = append(gone, ids.Layer(x.Layer))
			} else if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || len(gone) == 0 {
		return out, err
	}
	s.forgetRemovedLazy(gone)
	return slices.DeleteFunc(out, func(x LazyLayer) bool { return slices.Contains(gone, ids.Layer(x.Layer)) }), nil
}

// forgetRemovedLazy forgets the lazy layers GC removed from the catalog
// (nothing read them) that no source is attached to (an attached one's
// hydrator forgets it itself when it sees it gone: AttachLazy). Without
// it, a lazy layer of a disk deleted before any source was attached (a
// killed restore's temporary disk, deleted at the daemon's start) stayed
// listed after GC until the store was reopened.
func (s *Store) forgetRemovedLazy(gone []ids.Layer) {
	s.lazy.mu.Lock()
	defer s.lazy.mu.Unlock()
	for _, id := range gone {
		if ll := s.lazy.layers[id]; ll != nil {
			ll.mu.Lock()
			attached := ll.src != nil
			ll.mu.Unlock()
			if !attached {
				delete(s.lazy.layers, id)
			}
		}
	}
}

// lazyUsers maps each layer at the bottom of a disk's chain to the disks.
func (s *Store) lazyUsers() (users map[ids.Layer][]string, err error) {
	err = s.idx.View(func(t *index.Txn) error {
		users, err = lazyUsersIn(t)
		return err
	})
	return users, err
}

// lazyUsersIn is lazyUsers in t.
func lazyUsersIn(t *index.Txn) (map[ids.Layer][]string, error) {
	users := map[ids.Layer][]string{}
	err := index.Each(t, index.KindDisk, func(d index.Disk) error {
		l, err := t.Layer(d.Layer)
		if err != nil {
			return err
		}
		chain, err := chainOf(t, l.ID, l.Epoch)
		if err != nil {
			return err
		}
		bottom := chain[len(chain)-1].layer
		users[bottom] = append(users[bottom], d.Name)
		return nil
	})
	return users, err
}

// lazyReadersIn counts, for each layer at the bottom of a snapshot
// member's or an image's chain, those members and images.
func lazyReadersIn(t *index.Txn) (map[ids.Layer]int, error) {
	readers := map[ids.Layer]int{}
	bottom := func(layer ids.Layer, epoch ids.Epoch) error {
		chain, err := chainOf(t, layer, epoch)
		if err != nil {
			return err
		}
		readers[chain[len(chain)-1].layer]++
		return nil
	}
	if err := index.Each(t, index.KindSnapshot, func(r index.Snapshot) error {
		for _, mb := range r.Members {
			if err := bottom(mb.Layer, mb.Epoch); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	err := index.Each(t, index.KindImage, func(r index.Image) error { return bottom(r.Layer, r.Epoch) })
	return readers, err
}

// LayerIdler is implemented by a LayerSource that can let go of what it
// holds (a region disk and its shared region lock) while no disk reads
// through its layer: hydration calls Idle when it stops because no disk
// uses the layer any more (its workers gone); a later read (a snapshot
// still reading through the layer) uses the source again.
type LayerIdler interface{ Idle() }

// AttachLazy attaches src to lazy layer layer: reads of blocks it does not
// hold fetch them from src, and (unless opts.NoHydrate) a background job
// fetches the rest, near recent reads first, within opts.Rate. Which blocks
// are missing is derived from the index (the layer's versions) and
// src.Stored, so a restart resumes where the last run's committed work
// ended. When every block is local the lazy mark is cleared. If src is an
// io.Closer it is closed when hydration ends or the store closes. A
// layer that already has a source is ErrBusy.
func (s *Store) AttachLazy(layer uint64, src LayerSource, opts HydrateOptions) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	m, err := s.lazyLayers()
	if err != nil {
		return err
	}
	s.lazy.mu.RLock()
	ll := m[ids.Layer(layer)]
	s.lazy.mu.RUnlock()
	if ll == nil {
		return fmt.Errorf("%w: lazy layer %d", ErrNotFound, layer)
	}
	ll.mu.Lock()
	if ll.src != nil || ll.done {
		ll.mu.Unlock()
		return fmt.Errorf("%w: lazy layer %d already has a source", ErrBusy, layer)
	}
	ll.mu.Unlock()
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	ll.mu.Lock()
	if ll.src != nil || ll.done {
		ll.mu.Unlock()
		return fmt.Errorf("%w: lazy layer %d already has a source", ErrBusy, layer)
	}
	ll.src, ll.need, ll.total, ll.missing = src, nil, 0, 0
	ll.ready = make(chan struct{})
	ll.attached, ll.fetched, ll.hydrated, ll.lastErr, ll.lastErrOK = time.Now(), 0, 0, "", false
	ll.local, ll.samples, ll.whole = 0, nil, make(chan struct{})
	if opts.Rate > 0 {
		ll.rate = opts.Rate
	}
	ll.bucket = newTokenBucket(ll.rate, ll.bs)
	ctx, cancel := context.WithCancel(context.Background())
	ll.cancel = cancel
	ll.finished = make(chan struct{})
	ll.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(ll.finished)
		go func() {
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		need, total, missing, err := s.scanLocal(ll, src)
		ll.mu.Lock()
		if err != nil {
			ll.src, ll.lastErr, ll.lastErrOK = nil, err.Error(), false
		} else {
			ll.need, ll.total, ll.missing = need, total, missing
			if missing == 0 {
				ll.closeWholeLocked()
			}
		}
		close(ll.ready)
		ll.mu.Unlock()
		if err != nil {
			s.log.Warn("lazy layer: attaching failed", "layer", layer, "err", err)
			cancel()
			if c, ok := src.(io.Closer); ok {
				c.Close()
			}
			return
		}
		s.log.Info("lazy layer attached", "layer", layer, "region", ll.origin.Region, "snapshot", ll.origin.Snapshot,
			"disk", ll.origin.Disk, "blocks", total, "missing", missing, "rate", ll.rate)
		s.recountLazyDisks(ll, src, total)
		hydrate := !opts.NoHydrate
		for {
			if hydrate {
				ll.setRunning(true)
				ll.hydrate(ctx, opts)
				ll.setRunning(false)
			}
			if ll.isDone() || ctx.Err() != nil {
				break
			}
			// No disk reads through the layer: the source stays for the
			// snapshots, images and clones that still do, until GC removes
			// the layer (then it is closed: it holds a region lock); a disk
			// made from one of them later starts hydration again.
			if !hydrate {
				// Attached for reads only (NoHydrate: no disk used the
				// layer): told idle as a hydration stopped for lack of
				// disks tells it, or a region disk kept its shared lock,
				// and every host's prune failed ErrLocked, for as long as
				// the store stayed open (TestRev12lazyNoHydrateAttachIdles).
				if i, ok := src.(LayerIdler); ok {
					i.Idle()
				}
			}
			gone, users := ll.waitUsers(ctx)
			if gone {
				s.log.Info("lazy layer removed; its source is closed", "layer", layer)
				s.lazy.mu.Lock()
				delete(s.lazy.layers, ll.id)
				s.lazy.mu.Unlock()
				break
			}
			hydrate = users
		}
		cancel()
		if c, ok := src.(io.Closer); ok {
			c.Close()
		}
	}()
	return nil
}

// scanLocal derives what is missing: the blocks src stores, minus the
// versions the layer holds at its epoch (index and pending versions).
// O(blocks the source stores) with a StoredLister, else O(blocks of the
// origin); done in the attach's goroutine, reads wait.
func (s *Store) scanLocal(ll *lazyLayer, src LayerSource) (need []uint64, total, missing int64, err error) {
	layer := ll.id
	need = make([]uint64, (ll.n+63)/64)
	if sl, ok := src.(StoredLister); ok {
		sl.EachStored(func(b int64) {
			if b >= 0 && ids.Block(b) < ll.n && need[b/64]&(1<<(b%64)) == 0 {
				need[b/64] |= 1 << (b % 64)
				total++
			}
		})
	} else {
		for b := ids.Block(0); b < ll.n; b++ {
			if src.Stored(int64(b)) {
				need[b/64] |= 1 << (b % 64)
				total++
			}
		}
	}
	missing = total
	local := func(b ids.Block) {
		if b < ll.n && need[b/64]&(1<<(b%64)) != 0 {
			need[b/64] &^= 1 << (b % 64)
			missing--
		}
	}
	s.pendMu.RLock()
	for _, pm := range []map[vkey]index.Version{s.pending, s.flushing} {
		for k := range pm {
			if k.layer == layer && k.epoch == ll.epoch {
				local(k.block)
			}
		}
	}
	s.pendMu.RUnlock()
	err = s.idx.View(func(t *index.Txn) error {
		return t.ScanVersions(layer, 0, ll.n, func(b ids.Block, epoch ids.Epoch, v index.Version) error {
			if epoch == ll.epoch {
				local(b)
			}
			return index.SkipBlock
		})
	})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("lazy layer %d: %w", layer, err)
	}
	return need, total, missing, nil
}

// recountLazyDisks gives every disk reading through ll the allocation it
// shows: the stored blocks its layers above ll show, plus the blocks the
// source stores (total of them) that no layer above covers, local yet or
// not. Hydration and reads only write into ll, never above it, so the
// count stays true while the disk hydrates. Open's count after a crash or
// an index rebuild sees only the blocks local then (and the disk stayed at
// that figure for good: hydration writes below the head), and a write
// over a block not local yet counted it a second time; both are made
// right here, at every attach (TestLazy14AllocatedAfterRebuild).
// Counted without the disk's lock; kept only if no write began to the
// disk meanwhile (else it is left as it was, and logged).
func (s *Store) recountLazyDisks(ll *lazyLayer, src LayerSource, total int64) {
	users, err := s.lazyUsers()
	if err != nil {
		s.log.Warn("lazy layer: recount of its disks' allocation failed", "layer", ll.id, "err", err)
		return
	}
	for _, name := range users[ll.id] {
		d, err := s.diskByName(name)
		if err != nil {
			continue // deleted meanwhile
		}
		if err := s.recountLazyDisk(d, ll, src, total); err != nil {
			s.log.Warn("lazy layer: recount of a disk's allocation failed (it keeps its count)", "layer", ll.id, "disk", name, "err", err)
		}
	}
}

func (s *Store) recountLazyDisk(d *diskState, ll *lazyLayer, src LayerSource, total int64) error {
	_, err := s.stableCount(d, func(chain []link, size int64, bs int) (int64, bool, error) {
		if len(chain) < 2 || chain[len(chain)-1].layer != ll.id {
			return 0, true, nil
		}
		n := blockCount(size, bs)
		count := total
		for from := ids.Block(0); from < n; from += countBlocksChunk {
			err := s.visible(chain[:len(chain)-1], from, min(from+countBlocksChunk, n), func(b ids.Block, v index.Version) error {
				if b < ll.n && src.Stored(int64(b)) {
					count-- // covered above: counted (or not) as the upper version says
				}
				if !v.Zero() {
					count++
				}
				return nil
			})
			if err != nil {
				return 0, false, err
			}
		}
		return count, false, nil
	}, func(count int64, chain []link, mark acctMark) bool {
		return s.acct.setIfUnchanged(d.id, mark, chain[0].layer, count)
	})
	return err
}

// setIfUnchanged sets disk's count when no append began to it since mark
// and none is in flight (the caller holds the disk's mutex, under which
// appends begin and end).
func (a *accounting) setIfUnchanged(disk uint64, mark acctMark, layer ids.Layer, blocks int64) bool {
	a.mu.Lock()
	e := a.disks[disk]
	ok := e == mark.e && (e == nil || (e.appends == mark.appends && e.inflight == 0))
	a.mu.Unlock()
	if ok {
		a.set(disk, layer, blocks)
	}
	return ok
}

func (ll *lazyLayer) setRunning(on bool) {
	ll.mu.Lock()
	ll.running = on
	ll.mu.Unlock()
}

// lazyPoll is how often a stopped hydration looks for users again.
var lazyPoll = time.Second

// waitUsers waits until a disk reads through the layer again (users) or
// the layer is gone from the catalog (gone), or ctx ends (neither).
func (ll *lazyLayer) waitUsers(ctx context.Context) (gone, users bool) {
	t := time.NewTicker(lazyPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, false
		case <-t.C:
		}
		err := ll.s.idx.View(func(t *index.Txn) error {
			_, err := t.Layer(ll.id)
			return err
		})
		if errors.Is(err, index.ErrNotFound) {
			return true, false
		}
		if u, err := ll.s.lazyUsers(); err == nil && len(u[ll.id]) > 0 {
			return false, true
		}
	}
}

func (ll *lazyLayer) isDone() bool {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	return ll.done
}

// hydrate fetches every missing block with opts.Workers workers, then
// clears the lazy mark. It stops when ctx ends or no disk uses the layer.
func (ll *lazyLayer) hydrate(ctx context.Context, opts HydrateOptions) {
	s := ll.s
	log := s.log.With(slog.Uint64("layer", uint64(ll.id)))
	var stopOnce sync.Once
	var noUsers atomic.Bool
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	// No disk left that reads through the layer: hydration stops (what
	// snapshots still read comes on demand).
	go func() {
		t := time.NewTicker(lazyPoll)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			case <-ll.kick:
			}
			users, err := s.lazyUsers()
			if err == nil && len(users[ll.id]) == 0 {
				log.Info("lazy layer: no disk uses it any more; hydration stops")
				noUsers.Store(true)
				stopOnce.Do(stop)
				return
			}
		}
	}()
	// Stopped for lack of users: the workers are gone, so the source may
	// let go of what it holds (a region's lock) until a read needs it.
	defer func() {
		if noUsers.Load() {
			ll.mu.Lock()
			src := ll.src
			ll.mu.Unlock()
			if i, ok := src.(LayerIdler); ok {
				i.Idle()
			}
		}
	}()
	for {
		// The workers stop as soon as no block is missing (reads fetched
		// the last ones while they waited for the rate or a backoff). The
		// channel is read each time round: an attach makes a new one.
		ll.mu.Lock()
		whole := ll.whole
		ll.mu.Unlock()
		rctx, rstop := context.WithCancel(wctx)
		go func() {
			select {
			case <-whole:
				rstop()
			case <-rctx.Done():
			}
		}()
		ll.runWorkers(rctx, opts, log)
		rstop()
		if wctx.Err() != nil {
			return
		}
		ll.mu.Lock()
		missing, busy := ll.missing, len(ll.inflight)
		ll.mu.Unlock()
		if missing == 0 {
			break
		}
		if busy == 0 {
			continue // a read's fetch failed or could not be kept: go round again
		}
		select { // reads are still fetching some
		case <-wctx.Done():
			return
		case <-whole:
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := s.clearLazy(ll); err != nil {
		log.Warn("lazy layer: hydrated, but clearing the lazy mark failed (done again at the next attach)", "err", err)
		return
	}
	log.Info("lazy layer hydrated", "blocks", ll.total)
}

// runWorkers fetches missing blocks with opts.Workers workers until none
// is left to claim or ctx ends. Each worker takes a batch of neighbouring
// blocks (pickBatchLocked): one ReadBlocks of the source when it is a
// BatchSource, one append of them all.
func (ll *lazyLayer) runWorkers(wctx context.Context, opts HydrateOptions, log *slog.Logger) {
	var wg sync.WaitGroup
	per := ll.batchBlocks()
	for w := 0; w < opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bufs := make([][]byte, per)
			for i := range bufs {
				bufs[i] = make([]byte, ll.bs)
			}
			backoff := opts.MinBackoff
			for wctx.Err() == nil {
				// The rate is waited for BEFORE blocks are claimed: a
				// claimed block is always being fetched, so a read that
				// needs it waits for one fetch, never for the limiter.
				ll.mu.Lock()
				left := ll.missing > int64(len(ll.inflight))
				ll.mu.Unlock()
				if !left {
					return // nothing left to claim (reads may still be fetching some)
				}
				if err := ll.bucket.wait(wctx, per*ll.bs); err != nil {
					return // ctx ended; nothing claimed
				}
				ll.mu.Lock()
				blocks, calls := ll.pickBatchLocked(per)
				ll.mu.Unlock()
				ll.bucket.refund((per - len(blocks)) * ll.bs) // reads took some meanwhile
				if len(blocks) == 0 {
					return // nothing left to claim (reads may still be fetching some)
				}
				errs := ll.fetchBatch(wctx, ll.src, blocks, bufs[:len(blocks)])
				var failed error
				ll.mu.Lock()
				for i, b := range blocks {
					c := calls[i]
					if errs[i] == nil {
						c.data = append([]byte(nil), bufs[i]...)
					} else if failed == nil {
						failed = fmt.Errorf("block %d: %w", b, errs[i])
					}
					c.err = errs[i]
					delete(ll.inflight, b)
				}
				for i := len(blocks) - 1; i >= 0; i-- {
					if errs[i] != nil {
						ll.hintLocked(blocks[i]) // retried first
					}
				}
				ll.mu.Unlock()
				for _, c := range calls {
					close(c.done)
				}
				if failed == nil {
					backoff = opts.MinBackoff
					continue
				}
				if wctx.Err() != nil {
					return
				}
				log.Warn("lazy layer: hydration fetch failed; retrying", "blocks", len(blocks), "in", backoff, "err", failed)
				select {
				case <-wctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, opts.MaxBackoff)
			}
		}()
	}
	wg.Wait()
}

// fetchBatch reads blocks from src into dsts (together if src is a
// BatchSource) and keeps those read; errs[i] is blocks[i]'s error.
func (ll *lazyLayer) fetchBatch(ctx context.Context, src LayerSource, blocks []ids.Block, dsts [][]byte) []error {
	if len(blocks) == 1 {
		return []error{ll.fetch(ctx, src, blocks[0], dsts[0], true)}
	}
	var errs []error
	if bs, ok := src.(BatchSource); ok {
		ib := make([]int64, len(blocks))
		for i, b := range blocks {
			ib[i] = int64(b)
		}
		errs = bs.ReadBlocks(ctx, ib, dsts)
		if n := len(errs); n != len(blocks) {
			errs = make([]error, len(blocks))
			for i := range errs {
				errs[i] = fmt.Errorf("source returned %d results for %d blocks", n, len(blocks))
			}
		}
	} else {
		errs = make([]error, len(blocks))
		for i, b := range blocks {
			errs[i] = src.ReadBlock(ctx, int64(b), dsts[i])
		}
	}
	var okB []ids.Block
	var okD [][]byte
	var okI []int
	last := -1
	for i, err := range errs {
		if err != nil {
			errs[i] = fmt.Errorf("%w: lazy layer %d: %w", ErrUnavailable, ll.id, err)
			last = i
			continue
		}
		okB, okD, okI = append(okB, blocks[i]), append(okD, dsts[i]), append(okI, i)
	}
	n := int64(len(okB) * ll.bs)
	ll.mu.Lock()
	for _, b := range okB {
		ll.servedLocked(b)
	}
	if last >= 0 {
		ll.failedLocked(blocks[last], errs[last])
	}
	ll.fetched += n
	ll.hydrated += n
	ll.mu.Unlock()
	if len(okB) == 0 {
		return errs
	}
	if err := ll.s.storeLazyBatch(ll, okB, okD); err != nil {
		ll.s.log.Warn("lazy layer: keeping fetched blocks failed", "layer", ll.id, "blocks", len(okB), "err", err)
		ll.mu.Lock()
		for _, i := range okI {
			if ll.needLocked(blocks[i]) { // not kept: fetched again
				errs[i] = err
			}
		}
		ll.mu.Unlock()
	}
	return errs
}

// clearLazy makes the hydrated versions durable, then clears the layer's
// lazy mark (a catalog change).
func (s *Store) clearLazy(ll *lazyLayer) error {
	if err := s.commit(); err != nil {
		return err
	}
	s.catMu.Lock()
	defer s.catMu.Unlock()
	err := s.catalogUpdateSync(func(t *index.Txn) error {
		l, err := t.Layer(ll.id)
		if err != nil {
			return err
		}
		l.Lazy = nil
		return t.PutLayer(l)
	})
	if err != nil {
		return fmt.Errorf("clear lazy mark of layer %d: %w", ll.id, err)
	}
	// It stays in the set, marked done: a reader that looked a block up
	// before (a disk's block map keeps "not found") reads it again through
	// the index (errHydrated), never as zeros.
	ll.mu.Lock()
	ll.done = true
	ll.mu.Unlock()
	return nil
}

// LazyStatusOf returns the hydration state of a disk; ok is false when the
// disk does not read through a lazy layer (any more).
func (s *Store) LazyStatusOf(disk string) (st LazyStatus, ok bool, err error) {
	if err := firstErr(s.checkOpen(), ValidateName("disk", disk)); err != nil {
		return LazyStatus{}, false, err
	}
	d, err := s.diskByName(disk)
	if err != nil {
		return LazyStatus{}, false, err
	}
	d.mu.Lock()
	chain := d.chain
	d.mu.Unlock()
	ll, err := s.lazyOf(chain)
	if ll == nil || err != nil || ll.isDone() {
		return LazyStatus{}, false, err
	}
	st = ll.status()
	st.Disk = disk
	return st, true, nil
}

// hydrationOf is the hydration state of a disk reading through chain, or
// nil.
func (s *Store) hydrationOf(disk string, chain []link) *LazyStatus {
	if _, err := s.lazyLayers(); err != nil {
		return nil
	}
	s.lazy.mu.RLock()
	ll := s.lazy.layers[chain[len(chain)-1].layer]
	s.lazy.mu.RUnlock()
	if ll == nil || ll.isDone() {
		return nil
	}
	st := ll.status()
	st.Disk = disk
	return &st
}

// StopLazy stops every hydration and closes their sources (a service
// closing its region manager first; Close does it too). Reads of blocks
// not local fail with ErrUnavailable afterwards.
func (s *Store) StopLazy() {
	s.lazy.mu.RLock()
	var lls []*lazyLayer
	for _, ll := range s.lazy.layers {
		lls = append(lls, ll)
	}
	s.lazy.mu.RUnlock()
	for _, ll := range lls {
		ll.mu.Lock()
		cancel, finished := ll.cancel, ll.finished
		ll.mu.Unlock()
		if cancel != nil {
			cancel()
			<-finished
		}
		ll.mu.Lock()
		if !ll.done {
			ll.src, ll.cancel, ll.need = nil, nil, nil
		}
		ll.mu.Unlock()
	}
}

func (ll *lazyLayer) status() LazyStatus {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	ready := false
	if ll.ready != nil {
		select {
		case <-ll.ready:
			ready = true
		default:
		}
	}
	st := LazyStatus{Layer: uint64(ll.id), Origin: ll.origin, Attached: ll.src != nil && ready, Running: ll.running, Done: ll.done,
		Total: ll.total, Local: ll.total - ll.missing, BytesFetched: ll.fetched, RateLimit: ll.rate, LastError: ll.lastErr}
	if ll.src != nil {
		st.Rate = ll.rateLocked(time.Now())
		if st.Rate > 0 {
			st.ETA = time.Duration(float64(ll.missing*int64(ll.bs)) / st.Rate * float64(time.Second))
		}
	}
	return st
}

// WaitHydrated waits until the disk's lazy layer is hydrated (or the disk
// reads through none), calling progress, if set, about every interval.
func (s *Store) WaitHydrated(ctx context.Context, disk string, interval time.Duration, progress func(LazyStatus)) error {
	for {
		st, ok, err := s.LazyStatusOf(disk)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if progress != nil {
			progress(st)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// tokenBucket bounds hydration's bytes per second (a burst of a quarter of
// a second, at least one block). Hydration waits for it before claiming
// blocks; reads take from it without waiting (it may go below zero). Nil
// or rate 0: unbounded. Small enough not to take a dependency for it.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate int64, bs int) *tokenBucket {
	if rate <= 0 {
		return nil
	}
	burst := max(float64(rate)/4, float64(bs))
	return &tokenBucket{rate: float64(rate), burst: burst, tokens: burst, last: time.Now()}
}

// refillLocked adds the tokens earned since the last call (up to burst).
func (tb *tokenBucket) refillLocked() {
	now := time.Now()
	tb.tokens = min(tb.burst, tb.tokens+now.Sub(tb.last).Seconds()*tb.rate)
	tb.last = now
}

// take spends n bytes' tokens at once, without waiting (a read's fetch):
// the bucket may go below zero, and hydration's next wait is the longer.
func (tb *tokenBucket) take(n int) {
	if tb == nil || n <= 0 {
		return
	}
	tb.mu.Lock()
	tb.refillLocked()
	tb.tokens -= float64(n)
	tb.mu.Unlock()
}

// refund gives back n bytes' tokens a wait reserved but did not use.
func (tb *tokenBucket) refund(n int) {
	if tb == nil || n <= 0 {
		return
	}
	tb.mu.Lock()
	tb.refillLocked()
	tb.tokens = min(tb.burst, tb.tokens+float64(n))
	tb.mu.Unlock()
}

// available is the tokens the bucket holds now (negative: in debt).
func (tb *tokenBucket) available() float64 {
	if tb == nil {
		return 0
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.refillLocked()
	return tb.tokens
}

// wait reserves n bytes' tokens and waits until they are earned (at once
// if the bucket holds them). On ctx's end the reservation stays spent.
func (tb *tokenBucket) wait(ctx context.Context, n int) error {
	if tb == nil {
		return ctx.Err()
	}
	tb.mu.Lock()
	tb.refillLocked()
	tb.tokens -= float64(n)
	var d time.Duration
	if tb.tokens < 0 {
		d = time.Duration(-tb.tokens / tb.rate * float64(time.Second))
	}
	tb.mu.Unlock()
	if d == 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
