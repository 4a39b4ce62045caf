package replicate

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/rowstore"
)

// Delta chunks (issue 8): an incremental sync stores a changed block whose
// old version (the block in the parent point, read from the local parent
// snapshot) is a full chunk of the region, and differs from it in at most
// half of its 4 KiB pieces, as a delta: the changed pieces and a mask
// (format.MakeDelta), in a version 3 pack whose entry names the base
// chunk. The chunk id stays the full block's, so manifests, dedup and
// "already copied" are as before. See the package doc ("Delta chunks").

// deltaSource is where a disk's old blocks come from while it streams: the
// parent point, read through rowstore's Reader (so an encrypted disk's
// plaintext, or nothing when its key is locked: then every block is
// shipped whole).
type deltaSource struct {
	rd   *rowstore.Reader
	cs   *chunkSet // read only while the stream runs
	keys *format.Keys
	size int64

	mu    sync.Mutex
	packs map[packID]bool // the packs of the bases used
}

// deltaWork is a worker's buffers for deltas: the old block, and the
// payloads of the batch being prepared (valid until its records are
// sealed).
type deltaWork struct {
	old      []byte
	payloads []byte
}

// delta returns the delta of block (data: its new content) over its old
// version when that is a full chunk in a readable pack of the region and
// the delta pays; the payload is in dw. Any failure to read or find the
// old version ships the block whole (ok false): a delta is an
// optimisation, never needed.
func (ds *deltaSource) delta(block uint64, data []byte, dw *deltaWork) (base format.ChunkID, payload []byte, ok bool) {
	bs := len(data)
	off := int64(block) * int64(bs)
	if bs < 2*format.DeltaPiece || bs%format.DeltaPiece != 0 || off+int64(bs) > ds.size {
		return base, nil, false // a disk's partial last block is stored whole
	}
	if cap(dw.old) < bs {
		dw.old = make([]byte, bs)
	}
	old := dw.old[:bs]
	if n, err := ds.rd.ReadAt(old, off); err != nil || n != bs {
		return base, nil, false
	}
	base = ds.keys.ChunkID(sha256.Sum256(old))
	loc, found := ds.cs.fullChunk(base)
	if !found {
		return base, nil, false
	}
	start := len(dw.payloads)
	out, made := format.MakeDelta(dw.payloads, old, data)
	if !made {
		return base, nil, false
	}
	dw.payloads = out
	ds.mu.Lock()
	ds.packs[loc.pack()] = true
	ds.mu.Unlock()
	return base, out[start:], true
}

// fullChunk finds chunk id as a full chunk (not a delta) in a readable
// pack: a base a delta may name.
func (cs *chunkSet) fullChunk(id format.ChunkID) (chunkLoc, bool) {
	loc, ok := cs.lookup(id)
	if !ok || loc.entry().IsDelta() || !cs.readable(loc.pack()) {
		return chunkLoc{}, false
	}
	return loc, true
}

// baseOf is where the base of the delta at loc is: a full chunk of cs.
// A base that is missing, or a delta itself, is an error wrapping
// ErrCorrupt (never written so: see the invariant of format.Entry.Base).
func (cs *chunkSet) baseOf(loc chunkLoc) (chunkLoc, error) {
	e := loc.entry()
	b, ok := cs.lookup(*e.Base)
	if !ok {
		return chunkLoc{}, fmt.Errorf("%w: pack %s: delta chunk %v: its base chunk %v is in no pack", ErrCorrupt, loc.pack(), e.ID, *e.Base)
	}
	if b.entry().IsDelta() {
		return chunkLoc{}, fmt.Errorf("%w: pack %s: delta chunk %v: its base chunk %v is a delta too", ErrCorrupt, loc.pack(), e.ID, *e.Base)
	}
	return b, nil
}

// usable reports whether the chunk at loc can be read from readable packs
// (for a delta: its base too), and adds those packs to used (if not nil).
// Sync deduplicates only against such chunks.
func (cs *chunkSet) usable(loc chunkLoc, used map[packID]bool) bool {
	if !cs.readable(loc.pack()) {
		return false
	}
	if loc.entry().IsDelta() {
		b, err := cs.baseOf(loc)
		if err != nil || !cs.readable(b.pack()) {
			return false
		}
		if used != nil {
			used[b.pack()] = true
		}
	}
	if used != nil {
		used[loc.pack()] = true
	}
	return true
}

// needBases adds to need the base of every delta entry of cs whose chunk
// is needed (bases are full chunks: one pass is enough, but a base that
// some index also holds as a delta is followed too, so nothing a kept
// entry may read is left out). Prune keeps every pack holding a needed
// chunk, so a base a kept delta needs is kept.
func (cs *chunkSet) needBases(need map[format.ChunkID]bool) {
	for {
		added := false
		for _, x := range cs.packs {
			for i, e := range x.Entries {
				if e.Base != nil && need[e.ID] && !need[*e.Base] {
					if _, ok := cs.lookup(*e.Base); !ok {
						// A dead copy (its base's pack was pruned when
						// nothing needed it) asks for nothing, unless it
						// is where the chunk is located (then the chunk is
						// needed and in no pack: prune keeps orphans).
						if loc := cs.chunks[e.ID]; loc.x != x || int(loc.i) != i {
							continue
						}
					}
					need[*e.Base] = true
					added = true
				}
			}
		}
		if !added {
			return
		}
	}
}

// chunkFetch returns the stored bytes of the chunk at loc, decompressed:
// the block of a full chunk, the payload of a delta (format.MakeDelta);
// maybe in buf (room for a block), maybe not (then valid until the next
// call of the same reader). Each reader has its own: RemoteDisk by ranges
// (fetchChunk), BlockSource from whole packs (regionBlocks.chunk).
type chunkFetch func(ctx context.Context, loc chunkLoc, buf []byte) ([]byte, error)

// deltaBufs holds the buffers a delta's payload is decompressed into
// (readChunk), so no read of a delta allocates one (*[]byte).
var deltaBufs sync.Pool

// readChunk is the one rebuild of a chunk every reader uses (eager
// restore's deltas, RemoteDisk and its block cache, check --read-data,
// BlockSource for local repair): it reads the chunk at loc into dst
// (len(dst) is the block size) through fetch; a delta is rebuilt over its
// base (cs.baseOf: a full chunk, read into dst first, from cached when
// that has it, and checked against its id), then its payload applied
// (format.ApplyDelta), and the result is checked against the chunk's id.
// Whatever fails (a base or payload that does not read, a payload that
// does not apply, a result that is not its id) is an error, and dst is
// cleared: never wrong bytes, not even the base's. cached may be nil.
func readChunk(ctx context.Context, keys *format.Keys, cs *chunkSet, loc chunkLoc, dst []byte, fetch chunkFetch, cached func(format.ChunkID, []byte) bool) (err error) {
	defer func() {
		if err != nil {
			clear(dst) // no part of a chunk that failed is left to be taken for data
		}
	}()
	e := loc.entry()
	if !e.IsDelta() {
		return readFull(ctx, keys, loc, dst, fetch, "chunk")
	}
	bl, err := cs.baseOf(loc)
	if err != nil {
		return err
	}
	if bid := bl.entry().ID; cached == nil || !cached(bid, dst) || keys.ChunkID(sha256.Sum256(dst)) != bid {
		if err := readFull(ctx, keys, bl, dst, fetch, "base chunk"); err != nil {
			return err
		}
	}
	bp, _ := deltaBufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer deltaBufs.Put(bp)
	if cap(*bp) < len(dst) {
		*bp = make([]byte, len(dst))
	}
	payload, err := fetch(ctx, loc, (*bp)[:len(dst)])
	if err != nil {
		return fmt.Errorf("delta chunk %v: %w", e.ID, err)
	}
	if err := format.ApplyDelta(dst, dst, payload); err != nil {
		return fmt.Errorf("pack %s: chunk %v: %w", loc.pack(), e.ID, err)
	}
	if keys.ChunkID(sha256.Sum256(dst)) != e.ID {
		return fmt.Errorf("%w: pack %s: delta chunk %v does not rebuild to its id", ErrCorrupt, loc.pack(), e.ID)
	}
	return nil
}

// readFull reads the full chunk at loc into dst and checks it against its
// id (what names it in errors: "chunk", "base chunk").
func readFull(ctx context.Context, keys *format.Keys, loc chunkLoc, dst []byte, fetch chunkFetch, what string) error {
	id := loc.entry().ID
	raw, err := fetch(ctx, loc, dst)
	if err != nil {
		return fmt.Errorf("%s %v: %w", what, id, err)
	}
	if len(raw) != len(dst) {
		return fmt.Errorf("%w: pack %s: %s %v holds %d bytes, the block is %d", ErrCorrupt, loc.pack(), what, id, len(raw), len(dst))
	}
	if &raw[0] != &dst[0] {
		copy(dst, raw)
	}
	if keys.ChunkID(sha256.Sum256(dst)) != id {
		return fmt.Errorf("%w: pack %s: %s %v does not match its id", ErrCorrupt, loc.pack(), what, id)
	}
	return nil
}

// chunkRaw reads chunk id into dst (len(dst) is the chunk's raw length)
// through d's range reads (readChunk over fetchChunk; a delta's base from
// the block cache when it has it).
func (d *RemoteDisk) chunkRaw(ctx context.Context, id format.ChunkID, dst []byte) error {
	cs := d.chunkSet()
	loc, ok := cs.chunks[id]
	if !ok {
		clear(dst)
		if d.partial.Load() {
			return fmt.Errorf("%w: chunk %v is in no index the usable stores list (its index's stores are down)", ErrUnavailable, id)
		}
		return fmt.Errorf("%w: chunk %v is in no pack", ErrCorrupt, id)
	}
	if loc.entry().IsDelta() && d.partial.Load() {
		if _, err := cs.baseOf(loc); err != nil {
			clear(dst)
			return fmt.Errorf("%w: the base of delta chunk %v is in no index the usable stores list (its index's stores are down)", ErrUnavailable, id)
		}
	}
	return d.chunkAt(ctx, cs, loc, dst)
}

// chunkAt is chunkRaw of the entry at loc (check verifies every delta
// entry of every index this way, whichever copy cs.chunks names).
func (d *RemoteDisk) chunkAt(ctx context.Context, cs *chunkSet, loc chunkLoc, dst []byte) error {
	var cached func(format.ChunkID, []byte) bool
	if d.blocks != nil {
		cached = func(id format.ChunkID, dst []byte) bool { return d.blocks.get(d.r.cfg.Name, id, dst) }
	}
	return readChunk(ctx, d.r.keys, cs, loc, dst, d.fetchChunk, cached)
}

// badChunk is a chunk copy (its pack and id) that does not read: a delta
// entry that does not rebuild to its id (check --read-data).
type badChunk struct {
	pack packID
	id   format.ChunkID
}

// checkDeltas is check --read-data's pass over deltas: every delta entry
// of every index whose pack and base pack are readable (state ok or
// degraded in ps) is rebuilt by ranges over its base (chunkAt) and checked
// against its chunk id. One that does not rebuild is reported (store -1,
// its pack's object) and returned in bad: a snapshot that reads that copy
// of the chunk cannot be restored (classifySnapshots calls it lost), and
// no shard repair can change that. The pack is not counted lost: its
// other chunks read (a delta whose base is gone, or one damaged record,
// says nothing about them), so a snapshot that needs only those is not
// lost (TestRtrial11CheckBaseGoneNamesOnlyItsSnapshots).
func (m *Manager) checkDeltas(ctx context.Context, r *region, ps packStates, add func(Problem)) (int, map[badChunk]bool, error) {
	bad := map[badChunk]bool{}
	cs, err := m.loadChunks(ctx, r, chunksRead)
	if err != nil {
		return 0, nil, err
	}
	var locs []chunkLoc
	for _, x := range cs.packs {
		for i, e := range x.Entries {
			if e.IsDelta() {
				locs = append(locs, chunkLoc{x: x, i: int32(i)})
			}
		}
	}
	if len(locs) == 0 {
		return 0, bad, nil
	}
	d := m.chunkReader(r, cs, nil)
	workers := restoreWorkers(m.opts.Workers)
	var mu sync.Mutex
	checked := 0
	errs := forEach(workers, func(w int) error {
		for i := w; i < len(locs); i += workers {
			if err := ctx.Err(); err != nil {
				return err
			}
			loc := locs[i]
			if ps[loc.pack()] >= packUnavailable {
				continue // reported with its pack
			}
			var err error
			if bl, berr := cs.baseOf(loc); berr != nil {
				// Its base is in no pack (prune deleted it: nothing
				// needed this delta then; its pack is kept for other
				// chunks) or is a delta: this copy cannot be read, and
				// is garbage unless a snapshot needs it through this
				// copy, which classifySnapshots calls lost (baseOf).
				continue
			} else if ps[bl.pack()] >= packUnavailable {
				continue // reported with the base's pack
			} else {
				err = d.chunkAt(ctx, cs, loc, make([]byte, loc.entry().RawLen))
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			mu.Lock()
			checked++
			if err != nil {
				add(Problem{Store: -1, Object: packDir + loc.pack().String(), Kind: ProblemCorrupt, Err: fmt.Sprintf("delta chunk %v does not rebuild: %v", loc.entry().ID, err)})
				bad[badChunk{loc.pack(), loc.entry().ID}] = true
			}
			mu.Unlock()
		}
		return nil
	})
	return checked, bad, firstErr(errs)
}
