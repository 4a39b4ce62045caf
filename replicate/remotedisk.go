package replicate

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapfs/snapfs/replicate/erasure"
	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
)

// RemoteDisk reads one disk of a remote snapshot block by block, on
// demand, without restoring it: the block -> chunk map comes from the
// snapshot's manifest (its delta chain resolved), the chunk's place from
// the region's pack indexes, and every block read is verified against
// its chunk id before it is returned. It holds a shared lock on the
// region from OpenRemoteDisk to Close (no prune or repair removes a pack
// it may read), re-taking it if the lease ran out. Safe for concurrent
// use.
//
// Errors of ReadBlock always wrap ErrUnavailable (and the cause: a
// store error, ErrTooFewShards, ErrCorrupt...): a block that cannot be
// fetched or verified is never returned as zeros or stale data, and a
// caller maps the error to EIO. A later read retries the stores.
type RemoteDisk struct {
	m        *Manager
	r        *region
	snapshot string
	disk     string
	nid      string           // the manifest's name id (Hold, hold.go)
	mf       *format.Manifest // the manifest (Hold)
	md       *format.ManifestDisk
	bm       blockMap
	// csp is the region's chunk set (chunkSet()). partial: it was loaded
	// while the homes of some index were all unusable (indexesMayHide), and
	// a chunk of the disk is in none of its indexes: reviveStores loads it
	// again once enough stores are back.
	csp     atomic.Pointer[chunkSet]
	partial atomic.Bool

	lockMu sync.Mutex
	lctx   context.Context // the lock's context; cancelled when its lease ran out
	unlock func()
	closed bool

	cache  *packCache
	blocks *BlockCache // nil: none

	// storesMu: reads that use the region's stores hold it shared;
	// reviveStores holds it to put a store that could be opened again in
	// the place of one that could not (r.stores[i], r.bad[i]: a slot goes
	// from bad to usable once, never back).
	storesMu  sync.RWMutex
	reviving  atomic.Bool
	nextRetry atomic.Int64 // unix ns: when to try the bad stores again

	// downUntil[i]: store i failed a read (not a missing object) and is
	// passed over until then (unix ns) while k others are not: a store
	// that hangs or refuses costs one retried read, not one per block.
	downUntil []atomic.Int64

	stats struct {
		fetched, blocks, bytes, packs, ranges, degraded, errors, cached atomic.Int64
	}
}

// RemoteStats count what a RemoteDisk did.
type RemoteStats struct {
	BytesFetched int64 `json:"bytes_fetched"` // bytes read from the stores (shard headers included)
	BlocksRead   int64 `json:"blocks_read"`   // ReadBlock calls that returned data (holes included)
	BytesRead    int64 `json:"bytes_read"`    // bytes returned by ReadBlock
	PacksFetched int64 `json:"packs_fetched"` // whole packs fetched (old format, or reconstruction)
	RangesRead   int64 `json:"ranges_read"`   // range reads of a chunk in a data shard
	Degraded     int64 `json:"degraded"`      // reads that needed parity or skipped a bad shard
	Errors       int64 `json:"errors"`        // ReadBlock calls that failed
	CacheHits    int64 `json:"cache_hits"`    // blocks read from the BlockCache
}

// OpenRemoteDisk opens disk of the remote snapshot called snapshot in
// region (this host's snapshot of that name, else the only one; see
// OpenRemoteDiskOf to choose a host). It fetches the manifests and the
// pack indexes (cached locally), no pack.
func (m *Manager) OpenRemoteDisk(ctx context.Context, region, snapshot, disk string) (*RemoteDisk, error) {
	return m.OpenRemoteDiskOf(ctx, region, "", snapshot, disk)
}

// OpenRemoteDiskOf is OpenRemoteDisk of the snapshot of host (a host id,
// host name or "unknown"; "" as in OpenRemoteDisk).
func (m *Manager) OpenRemoteDiskOf(ctx context.Context, region, host, snapshot, disk string) (*RemoteDisk, error) {
	return m.openRemoteDisk(ctx, region, host, snapshot, disk, nil)
}

// ErrReplaced: the snapshot a name finds is not the one asked for by its
// identity (that one was pruned and its name used again). It is final: a
// snapshot's identity never comes back.
var ErrReplaced = fmt.Errorf("%w: the snapshot of that name is another one", ErrNotFound)

// OpenRemoteDiskAs is OpenRemoteDiskOf of the snapshot with identity want
// only (found by want.HostID when set, else by host): another snapshot of
// that name is refused with ErrReplaced once its manifest is read, before
// the disk's map and the region's indexes are.
func (m *Manager) OpenRemoteDiskAs(ctx context.Context, region, host, snapshot, disk string, want RemoteIdentity) (*RemoteDisk, error) {
	if want.HostID != "" {
		host = want.HostID
	}
	return m.openRemoteDisk(ctx, region, host, snapshot, disk, &want)
}

// remoteDiskOp is the operation a RemoteDisk's lock records: it names
// the snapshot and disk, so a prune it blocks can say what reads them
// (unlockHint).
func remoteDiskOp(snapshot, disk string) string {
	return remoteDiskOpPrefix + snapshot + "/" + disk
}

const remoteDiskOpPrefix = "remote-disk "

func (m *Manager) openRemoteDisk(ctx context.Context, region, host, snapshot, disk string, want *RemoteIdentity) (*RemoteDisk, error) {
	t0 := time.Now()
	r, err := m.openRegion(ctx, region, false)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	lctx, unlock, err := m.lock(context.WithoutCancel(ctx), r, false, remoteDiskOp(snapshot, disk))
	if err != nil {
		r.close()
		return nil, err
	}
	fail := func(err error) (*RemoteDisk, error) {
		unlock()
		r.close()
		return nil, err
	}
	t2 := time.Now()
	nid, mf, err := m.findSnapshot(ctx, r, host, snapshot)
	if err != nil {
		return fail(fmt.Errorf("remote disk: %w", err))
	}
	if got := identityOf(mf); want != nil && (got.SnapshotID != want.SnapshotID || !got.Created.Equal(want.Created) || got.HostID != want.HostID) {
		return fail(fmt.Errorf("remote disk: %w: snapshot %q in region %q is not the one asked for (that one: id %d, created %s; in the region now: id %d, created %s): it was pruned and its name reused",
			ErrReplaced, snapshot, region, want.SnapshotID, want.Created.Format(time.RFC3339Nano), got.SnapshotID, got.Created.Format(time.RFC3339Nano)))
	}
	bm, md, err := r.resolveDisk(ctx, mf, disk, map[string]*format.Manifest{})
	if err != nil {
		return fail(fmt.Errorf("remote disk: %w%s", err, m.otherHostsHint(ctx, r, host, mf, disk)))
	}
	if md.BlockSize <= 0 || md.BlockSize > format.MaxChunk {
		return fail(fmt.Errorf("%w: remote disk %q of %q: block size %d", ErrCorrupt, disk, snapshot, md.BlockSize))
	}
	t3 := time.Now()
	cs, err := m.loadChunks(ctx, r, chunksRead)
	if err != nil {
		return fail(err)
	}
	m.log.Debug("remote disk opened", "region", region, "snapshot", snapshot, "disk", disk,
		"open_region", t1.Sub(t0), "lock", t2.Sub(t1), "manifest", t3.Sub(t2), "chunks", time.Since(t3))
	partial := false
	for b, id := range bm {
		_, found, err := r.locate(cs, id)
		if errors.Is(err, ErrUnavailable) {
			// Its index (or its base's) may be on unusable stores only
			// (its homes): opened, and that block is unavailable until
			// they are back (reviveStores loads the indexes again).
			m.log.Warn("remote disk: a block's chunk is in no index the usable stores list; its blocks are unavailable until more stores are back", "region", region, "snapshot", snapshot, "disk", disk, "block", b, "err", err)
			partial = true
			break
		}
		if !found {
			return fail(fmt.Errorf("remote disk: block %d of %q: %w", b, disk, err))
		}
	}
	d := &RemoteDisk{m: m, r: r, snapshot: snapshot, disk: disk, md: md, bm: bm, lctx: lctx, unlock: unlock, cache: newPackCache(remotePackCache),
		downUntil: make([]atomic.Int64, r.n()), nid: nid, mf: mf}
	d.csp.Store(cs)
	d.partial.Store(partial)
	d.nextRetry.Store(time.Now().Add(storeRetryEvery).UnixNano())
	return d, nil
}

// Size is the disk's size in bytes.
func (d *RemoteDisk) Size() int64 { return d.md.Size }

// BlockSize is the disk's block size in bytes.
func (d *RemoteDisk) BlockSize() int { return d.md.BlockSize }

// Blocks is the number of blocks (the last may be partly beyond Size).
func (d *RemoteDisk) Blocks() int64 { return int64(d.md.Blocks()) }

// Encrypted reports whether the disk was encrypted at rest on its host.
func (d *RemoteDisk) Encrypted() bool { return d.md.Encrypted }

// StoredBlocks is the number of blocks that hold data (not holes).
func (d *RemoteDisk) StoredBlocks() int64 { return int64(len(d.bm)) }

// Stored reports whether the snapshot has data (not a hole) at block b.
func (d *RemoteDisk) Stored(b int64) bool {
	if b < 0 {
		return false
	}
	_, ok := d.bm[uint64(b)]
	return ok
}

// EachStored calls fn with every block that has data (in no order): a
// lazy layer's attach lists them without a call per block of the disk.
func (d *RemoteDisk) EachStored(fn func(b int64)) {
	for b := range d.bm {
		fn(int64(b))
	}
}

// Stats returns what the disk fetched and read so far.
func (d *RemoteDisk) Stats() RemoteStats {
	s := &d.stats
	return RemoteStats{
		BytesFetched: s.fetched.Load(), BlocksRead: s.blocks.Load(), BytesRead: s.bytes.Load(),
		PacksFetched: s.packs.Load(), RangesRead: s.ranges.Load(), Degraded: s.degraded.Load(), Errors: s.errors.Load(),
		CacheHits: s.cached.Load(),
	}
}

// SetCache makes the disk keep the blocks it fetches in c and look there
// first (every block taken from c is verified against its chunk id). Call
// it before the first read.
func (d *RemoteDisk) SetCache(c *BlockCache) { d.blocks = c }

// RemoteIdentity says which snapshot a RemoteDisk reads: its host's id
// and the snapshot's id and creation time (a name can be reused: a
// snapshot pruned and another of the same name shipped later).
type RemoteIdentity struct {
	HostID     string
	SnapshotID uint64
	Created    time.Time
}

// Identity is the identity of the snapshot d reads.
func (d *RemoteDisk) Identity() RemoteIdentity { return identityOf(d.mf) }

func identityOf(mf *format.Manifest) RemoteIdentity {
	return RemoteIdentity{HostID: mf.Host.String(), SnapshotID: mf.SnapshotID, Created: mf.Created}
}

// Region, Snapshot and Disk name what the disk reads.
func (d *RemoteDisk) Region() string   { return d.r.cfg.Name }
func (d *RemoteDisk) Snapshot() string { return d.snapshot }
func (d *RemoteDisk) Disk() string     { return d.disk }

// ReadAt implements io.ReaderAt over the disk's bytes: holes read as
// zeros, past Size it returns what there is and io.EOF. Blocks are read
// with ReadBlock (verified; an error wraps ErrUnavailable), up to four at
// a time for a long read.
func (d *RemoteDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrInvalid, off)
	}
	if off >= d.Size() {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := len(p)
	var eof error
	if int64(n) > d.Size()-off {
		n, eof = int(d.Size()-off), io.EOF
	}
	if n == 0 {
		return 0, nil // nothing to read: no block is fetched
	}
	bs := int64(d.md.BlockSize)
	first, last := off/bs, (off+int64(n)-1)/bs
	errs := forEachLimit(int(last-first+1), 4, func(i int) error {
		b := first + int64(i)
		start := b * bs
		lo, hi := max(start, off), min(start+bs, off+int64(n))
		dst := p[lo-off : hi-off : hi-off]
		if lo == start && hi == start+bs {
			return d.ReadBlock(context.Background(), b, dst)
		}
		buf := make([]byte, bs)
		if err := d.ReadBlock(context.Background(), b, buf); err != nil {
			return err
		}
		copy(dst, buf[lo-start:hi-start])
		return nil
	})
	if err := firstErr(errs); err != nil {
		return 0, err
	}
	return n, eof
}

// Close releases the region's lock and stores. Reads after Close fail.
func (d *RemoteDisk) Close() error {
	d.lockMu.Lock()
	if d.closed {
		d.lockMu.Unlock()
		return nil
	}
	d.closed = true // lockCtx takes no lock from now on
	if d.unlock != nil {
		d.unlock()
	}
	d.lockMu.Unlock()
	// Not under lockMu: a read holds storesMu while it waits for lockMu.
	d.storesMu.Lock()
	d.r.close()
	d.storesMu.Unlock()
	d.cache.clear()
	return nil
}

// errRemoteClosed: a read after Close.
var errRemoteClosed = errors.New("remote disk closed")

// lockCtx returns a context under the region's shared lock, taking the
// lock again if its lease ran out (a long outage of the stores).
func (d *RemoteDisk) lockCtx(ctx context.Context) (context.Context, error) {
	d.lockMu.Lock()
	defer d.lockMu.Unlock()
	if d.closed {
		return nil, errRemoteClosed
	}
	if d.lctx.Err() != nil {
		d.unlock()
		lctx, unlock, err := d.m.lock(context.WithoutCancel(ctx), d.r, false, remoteDiskOp(d.snapshot, d.disk))
		if err != nil {
			d.unlock = func() {}
			d.lctx = canceledCtx
			return nil, err
		}
		d.lctx, d.unlock = lctx, unlock
	}
	lctx := d.lctx
	// Cancelled by the caller or by the lock, whichever first.
	c, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(lctx, func() { cancel(context.Cause(lctx)) })
	return &joinedCtx{Context: c, done: func() { stop(); cancel(nil) }}, nil
}

var canceledCtx = func() context.Context {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	return c
}()

type joinedCtx struct {
	context.Context
	done func()
}

// ReadBlock reads block b into dst (len(dst) must be BlockSize): the
// chunk's bytes, verified against its chunk id; zeros for a hole. Any
// failure is an error wrapping ErrUnavailable, and dst is cleared (not
// even a cached copy that failed its check is left in it).
func (d *RemoteDisk) ReadBlock(ctx context.Context, b int64, dst []byte) error {
	dst = dst[:len(dst):len(dst)] // nothing past it is ever written
	if err := d.readBlock(ctx, b, dst); err != nil {
		clear(dst)
		d.stats.errors.Add(1)
		if !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return fmt.Errorf("remote disk %q of %q in region %q: block %d: %w", d.disk, d.snapshot, d.r.cfg.Name, b, err)
	}
	d.stats.blocks.Add(1)
	d.stats.bytes.Add(int64(len(dst)))
	return nil
}

func (d *RemoteDisk) readBlock(ctx context.Context, b int64, dst []byte) error {
	if len(dst) != d.md.BlockSize {
		return fmt.Errorf("%w: buffer of %d bytes for block size %d", ErrInvalid, len(dst), d.md.BlockSize)
	}
	if b < 0 || b >= d.Blocks() {
		return fmt.Errorf("%w: block %d outside a disk of %d blocks", ErrInvalid, b, d.Blocks())
	}
	id, ok := d.bm[uint64(b)]
	if !ok {
		clear(dst)
		return nil
	}
	if d.blocks != nil && d.blocks.get(d.r.cfg.Name, id, dst) {
		if d.r.keys.ChunkID(sha256.Sum256(dst)) == id {
			d.stats.cached.Add(1)
			return nil
		}
		d.m.log.Warn("remote disk: a cached block does not match its chunk id; fetched again", "region", d.r.cfg.Name, "chunk", id.String())
		d.blocks.drop(d.r.cfg.Name, id)
	}
	d.reviveStores(ctx)
	d.storesMu.RLock()
	err := func() error {
		defer d.storesMu.RUnlock()
		jc, err := d.lockCtx(ctx)
		if err != nil {
			return err
		}
		defer jc.(*joinedCtx).done()
		return d.chunkRaw(jc, id, dst) // a delta rebuilt over its base; checked against id
	}()
	if err != nil {
		return err
	}
	if d.blocks != nil {
		d.blocks.put(d.r.cfg.Name, id, dst)
	}
	return nil
}

// fetchChunk returns the raw bytes of the chunk at loc (maybe in dst).
// A chunk of a version 2 pack is fetched alone: the byte range of its
// record in the data shard(s) holding it, opened and checked on its own
// (rangeChunk). A chunk of a version 1 pack, or one whose ranges cannot be
// read or rebuilt, comes from the whole pack (any k shards, verified),
// of which the last few are cached.
func (d *RemoteDisk) fetchChunk(ctx context.Context, loc chunkLoc, dst []byte) ([]byte, error) {
	if loc.entry().Sealed {
		stored, err := d.rangeChunk(ctx, loc)
		if err == nil {
			return d.decompress(stored, loc.entry(), dst)
		}
		if ctx.Err() != nil {
			return nil, err
		}
		d.m.log.Warn("remote disk: chunk not readable by ranges; reading its whole pack", "region", d.r.cfg.Name, "pack", loc.pack().String(), "chunk", loc.entry().ID.String(), "err", err)
	}
	pt, err := d.cache.get(ctx, loc.pack(), func() ([]byte, error) {
		x := d.chunkSet().packs[loc.pack()]
		var buf []byte
		pctx, cancel := context.WithTimeout(ctx, remotePackTimeout)
		defer cancel()
		pt, degraded, n, err := d.m.openPack(pctx, d.r, loc.pack(), x.SealedSize, &buf)
		d.stats.fetched.Add(n)
		if degraded {
			d.stats.degraded.Add(1)
		}
		if err != nil {
			return nil, err
		}
		d.stats.packs.Add(1)
		return pt, nil
	})
	if err != nil {
		return nil, err
	}
	stored, err := format.Chunk(pt, loc.entry())
	if err != nil {
		return nil, err
	}
	return d.decompress(stored, loc.entry(), dst)
}

func (d *RemoteDisk) decompress(stored []byte, e format.Entry, dst []byte) ([]byte, error) {
	switch e.Comp {
	case format.CompNone:
		return stored, nil
	case format.CompZstd:
		raw, err := d.m.dec.DecodeAll(stored, dst[:0:len(dst)]) // never past dst: the caller's next block may be there
		if err != nil {
			return nil, fmt.Errorf("%w: chunk %v: zstd: %w", ErrCorrupt, e.ID, err)
		}
		return raw, nil
	}
	return nil, fmt.Errorf("%w: chunk %v: compression %d", ErrCorrupt, e.ID, e.Comp)
}

// piece is the part of a record held by one data shard.
type piece struct {
	shard int   // data shard index
	off   int64 // in the shard's payload
	n     int64
	at    int64 // in the record
}

// rangeChunk reads the record of a chunk of a version 2 pack: the byte
// range [e.Offset, e.Offset+e.Length) of the pack object, which the
// erasure layout puts in one data shard (or two, or more for tiny
// shards), each piece with one ranged Get. If a piece cannot be read, it
// is rebuilt from the same range of k other shards; if the record does
// not authenticate (a corrupt shard), each piece in turn is rebuilt
// from the other shards until it does. It returns the chunk's stored
// bytes, authenticated.
func (d *RemoteDisk) rangeChunk(ctx context.Context, loc chunkLoc) ([]byte, error) {
	x := d.chunkSet().packs[loc.pack()]
	l, err := erasure.NewLayout(d.r.k, d.r.m, int64(x.SealedSize))
	if err != nil {
		return nil, err
	}
	e := loc.entry()
	end := int64(e.Offset) + int64(e.Length)
	if end > l.DataLen {
		return nil, fmt.Errorf("%w: chunk %v: record beyond pack %s", ErrCorrupt, e.ID, loc.pack())
	}
	pieces := splitRange(l, int64(e.Offset), end)
	op, err := d.r.keys.NewChunkOpener(loc.pack().String())
	if err != nil {
		return nil, err
	}
	name := packDir + loc.pack().String()
	rec := make([]byte, e.Length)
	perrs := forEach(len(pieces), func(i int) error {
		p := pieces[i]
		if d.passOver(p.shard) {
			return fmt.Errorf("%w: store %d failed a read less than %v ago", ErrUnavailable, p.shard, storeDownFor)
		}
		b, err := d.getRange(ctx, p.shard, name, p.off, p.n)
		if err != nil {
			return err
		}
		copy(rec[p.at:], b)
		return nil
	})
	d.stats.ranges.Add(1)
	var failed []int
	for i, err := range perrs {
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			failed = append(failed, i)
		}
	}
	// Rebuild what could not be read.
	for _, i := range failed {
		p := pieces[i]
		b, err := d.rebuild(ctx, name, p, -1)
		if err != nil {
			return nil, fmt.Errorf("pack %s: shard %d: %w (rebuild: %w)", loc.pack(), p.shard, perrs[i], err)
		}
		copy(rec[p.at:], b)
	}
	if len(failed) > 0 {
		d.stats.degraded.Add(1)
	}
	try := append([]byte(nil), rec...)
	stored, err := op.Open(e, try)
	if err == nil {
		return stored, nil
	}
	if len(failed) == len(pieces) {
		return nil, err
	}
	// A corrupt range: find the piece that is wrong by rebuilding each
	// (that was read) from the other shards.
	d.stats.degraded.Add(1)
	for i, p := range pieces {
		if slices.Contains(failed, i) {
			continue
		}
		b, rerr := d.rebuild(ctx, name, p, p.shard)
		if rerr != nil {
			continue
		}
		try := append([]byte(nil), rec...)
		copy(try[p.at:], b)
		if stored, oerr := op.Open(e, try); oerr == nil {
			d.m.log.Warn("remote disk: corrupt shard range rebuilt from the others", "region", d.r.cfg.Name, "pack", loc.pack().String(), "store", p.shard)
			return stored, nil
		}
	}
	return nil, err
}

// splitRange cuts bytes [start, end) of an erasure-coded object into the
// pieces its data shards hold (at: from start).
func splitRange(l erasure.Layout, start, end int64) []piece {
	var pieces []piece
	size := l.ShardSize()
	for pos := start; pos < end; {
		sh, off := l.Locate(pos)
		n := min(size-off, end-pos)
		pieces = append(pieces, piece{shard: sh, off: off, n: n, at: pos - start})
		pos += n
	}
	return pieces
}

// getRange reads bytes [off, off+n) of a shard's payload from its store.
func (d *RemoteDisk) getRange(ctx context.Context, shard int, name string, off, n int64) ([]byte, error) {
	if err := d.r.bad[shard]; err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, remoteRangeTimeout)
	b, err := d.r.stores[shard].Get(rctx, name, erasure.HeaderSize+off, n)
	cancel()
	d.stats.fetched.Add(int64(len(b)))
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrShortRead) {
			d.downUntil[shard].Store(time.Now().Add(storeDownFor).UnixNano())
		}
		return nil, fmt.Errorf("%w: store %d (%s): %w", ErrUnavailable, shard, d.r.stores[shard].Location(), err)
	}
	d.downUntil[shard].Store(0)
	return b, nil
}

// remoteRangeTimeout bounds one range read of a store, remotePackTimeout
// one whole-pack read: the stores' clients have no deadline of their own,
// and a store that accepts a request and never answers must cost a read
// one bounded wait (then the store is passed over), not hang it.
var (
	remoteRangeTimeout = 30 * time.Second
	remotePackTimeout  = 10 * time.Minute
)

// reviveStores opens again, at most every storeRetryEvery, the stores
// that could not be opened (or whose config could not be read) when the
// disk was: a file system mounted late, an endpoint that came back. A
// store is used again only once its config checks against the region
// (as when a region is opened). One caller does it at a time; the others
// go on with the stores they have.
func (d *RemoteDisk) reviveStores(ctx context.Context) {
	now := time.Now()
	if now.UnixNano() < d.nextRetry.Load() || !d.reviving.CompareAndSwap(false, true) {
		return
	}
	defer d.reviving.Store(false)
	d.nextRetry.Store(now.Add(storeRetryEvery).UnixNano())
	var want []int
	for i, e := range d.r.bad { // only this (single) reviver writes r.bad
		if e != nil && !errors.Is(e, ErrWrongKey) && !errors.Is(e, ErrMismatch) {
			want = append(want, i)
		}
	}
	if len(want) == 0 {
		d.reloadPartial(ctx) // a load that failed before is tried again
		return
	}
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), remoteRangeTimeout)
	defer cancel()
	stores, errs := d.m.openStores(octx, d.r.cfg)
	back := map[int]store.Store{}
	for i, s := range stores {
		if s == nil {
			continue
		}
		if errs[i] == nil && slices.Contains(want, i) {
			cfg, err := readStoreConfig(octx, s)
			if err == nil {
				err = d.r.checkConfig(cfg, i)
			}
			if err == nil {
				back[i] = s
				continue
			}
		}
		_ = s.Close()
	}
	if len(back) == 0 {
		return
	}
	func() {
		d.storesMu.Lock()
		defer d.storesMu.Unlock()
		d.lockMu.Lock()
		closed := d.closed
		d.lockMu.Unlock()
		for i, s := range back {
			if closed {
				_ = s.Close()
				continue
			}
			if old := d.r.stores[i]; old != nil {
				_ = old.Close()
			}
			d.r.stores[i], d.r.bad[i] = s, nil
			d.downUntil[i].Store(0)
			d.m.log.Info("remote disk: a region store that could not be opened is used again", "region", d.r.cfg.Name, "store", i)
		}
	}()
	d.reloadPartial(ctx)
}

// reloadPartial loads the region's indexes again for a partial disk
// (partial: a chunk it reads, or a delta's base, was in no listed index)
// once every index is listed by a usable home; the caller is the one
// reviver. A load that fails is tried again by the next reviveStores
// (every storeRetryEvery), not only by the one that found stores back.
func (d *RemoteDisk) reloadPartial(ctx context.Context) {
	d.lockMu.Lock()
	closed := d.closed
	d.lockMu.Unlock()
	if closed || !d.partial.Load() || d.r.indexesMayHide() {
		return
	}
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), remoteRangeTimeout)
	defer cancel()
	// Every index is listed by a usable home now: the chunks that were in
	// none are found (or known lost). Loaded holding storesMu shared, as a
	// read does (reads go on meanwhile with the set they have; Close
	// waits), under the disk's region lock: no prune runs meanwhile.
	d.storesMu.RLock()
	defer d.storesMu.RUnlock()
	cs, err := d.m.loadChunks(octx, d.r, chunksRead)
	if err != nil {
		d.m.log.Warn("remote disk: the region's indexes not loaded again", "region", d.r.cfg.Name, "err", err)
		return
	}
	d.csp.Store(cs)
	d.partial.Store(false)
	d.m.log.Info("remote disk: the region's indexes loaded again with more stores", "region", d.r.cfg.Name, "snapshot", d.snapshot, "disk", d.disk)
}

// chunkSet is the region's chunk set the disk reads by.
func (d *RemoteDisk) chunkSet() *chunkSet { return d.csp.Load() }

// storeRetryEvery is how often a RemoteDisk tries again to open a store
// that could not be opened (or whose config could not be read).
var storeRetryEvery = 30 * time.Second

// storeDownFor is how long a store that failed a read is passed over.
const storeDownFor = 30 * time.Second

func (d *RemoteDisk) isDown(i int) bool {
	u := d.downUntil[i].Load()
	return u != 0 && time.Now().UnixNano() < u
}

// passOver says whether to skip store i for a piece: it failed lately
// and k other stores have not.
func (d *RemoteDisk) passOver(i int) bool {
	if !d.isDown(i) {
		return false
	}
	up := 0
	for j := range d.r.n() {
		if j != i && d.r.bad[j] == nil && !d.isDown(j) {
			up++
		}
	}
	return up >= d.r.k
}

// rebuild reconstructs the range of piece p from the same range of k
// other shards (never p.shard nor skip), data shards first.
func (d *RemoteDisk) rebuild(ctx context.Context, name string, p piece, skip int) ([]byte, error) {
	parts := make([][]byte, d.r.n())
	var order, later []int // stores that failed lately are tried last
	for i := range d.r.n() {
		if i != p.shard && i != skip {
			if d.isDown(i) {
				later = append(later, i)
			} else {
				order = append(order, i)
			}
		}
	}
	order = append(order, later...)
	have := 0
	var errs []error
	for len(order) > 0 && have < d.r.k {
		batch := order[:min(len(order), d.r.k-have)]
		order = order[len(batch):]
		got := forEach(len(batch), func(j int) error {
			b, err := d.getRange(ctx, batch[j], name, p.off, p.n)
			if err == nil {
				parts[batch[j]] = b
			}
			return err
		})
		for _, err := range got {
			if err == nil {
				have++
			} else {
				errs = append(errs, err)
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if have < d.r.k {
		return nil, fmt.Errorf("%w: %d of %d shards readable: %w", ErrTooFewShards, have, d.r.k, joinErrs(errs...))
	}
	return erasure.ReconstructRange(d.r.k, d.r.m, parts, p.shard)
}

// remotePackCache bounds the whole-pack plaintexts a RemoteDisk keeps.
const remotePackCache = 2

// packCache keeps the plaintexts of the last few packs read and lets
// concurrent readers of one pack share one fetch.
type packCache struct {
	mu      sync.Mutex
	max     int
	entries []*packEntry // most recently used last
}

type packEntry struct {
	id   packID
	done chan struct{}
	pt   []byte
	err  error
}

func newPackCache(max int) *packCache { return &packCache{max: max} }

func (c *packCache) get(ctx context.Context, id packID, fetch func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	for i, e := range c.entries {
		if e.id == id {
			c.entries = append(append(c.entries[:i:i], c.entries[i+1:]...), e)
			c.mu.Unlock()
			select {
			case <-e.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if e.err != nil {
				return nil, e.err
			}
			return e.pt, nil
		}
	}
	e := &packEntry{id: id, done: make(chan struct{})}
	c.entries = append(c.entries, e)
	if len(c.entries) > c.max {
		c.entries = c.entries[len(c.entries)-c.max:]
	}
	c.mu.Unlock()
	e.pt, e.err = fetch()
	close(e.done)
	if e.err != nil { // failures are not cached: the next read retries
		c.mu.Lock()
		for i, x := range c.entries {
			if x == e {
				c.entries = append(c.entries[:i:i], c.entries[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
	}
	return e.pt, e.err
}

func (c *packCache) clear() {
	c.mu.Lock()
	c.entries = nil
	c.mu.Unlock()
}

// forEachLimit is forEach with at most limit calls at a time.
func forEachLimit(n, limit int, fn func(i int) error) []error {
	if n == 1 {
		return []error{fn(0)}
	}
	errs := make([]error, n)
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errs
}
