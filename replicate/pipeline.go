package replicate

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"github.com/snapfs/snapfs/replicate/erasure"
	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/rowstore"
)

// The sync pipeline. Sync streams a snapshot's changed blocks out of the
// local store (rowstore.StreamDiff: each block with its data, read where
// the diff found it, in batches) through these stages, each running while
// the others do:
//
//  1. the stream (the caller's goroutine): diff, dedup against the
//     region's chunks (StreamOptions.Visit), batched reads of the log;
//  2. workers (one per CPU, at least 2): check every block against its
//     digest, compress each unless a sample
//     of its bytes says it is incompressible, and add it to the pack
//     being filled: its record is reserved under the pack lock and
//     sealed (AES-GCM) straight from the block into the pack outside it;
//  3. the uploader: waits for the full pack's last records to be
//     sealed, seals its table and erasure codes it into a reused set of
//     shard buffers;
//  4. putters (putters of them): each puts a pack's shards to every
//     store in parallel, gives the shard buffers back, and hands the pack
//     to an indexer, which puts its index on its m+1 homes; meanwhile the
//     other putters put the next packs and the uploader encodes the one
//     after. A store's latency per object (fsyncs, a round trip: it
//     dominates on a busy disk, whatever the object's size) is paid for
//     several packs at once, and the shard buffers are not held while an
//     index is put.
//
// Memory is bounded by construction, and reused rather than reallocated
// (no garbage per pack for the collector to chase): at most
// streamBuffers read batches are out (3 × 2 MiB); two pack
// buffers (the pack being filled, and the one the uploader seals and
// encodes: a worker that fills a pack holds the pack lock until the
// uploader takes it, so the others wait too, and the uploader gives the
// buffer back once the shards are made); putters+1 sets of shard buffers
// (one per putter, one encoded ahead), given back once the shards are put:
// about 6 MiB + 2 × PackSize + 4 × (k+m)/k × PackSize at the peak (70 MiB
// for 4+2 at the default 8 MiB packs).
type pipeline struct {
	m    *Manager
	r    *region
	st   *Stats
	prog Progress
	snap string

	ctx    context.Context
	cancel context.CancelCauseFunc

	work   chan batch
	wg     sync.WaitGroup // the workers
	closed bool           // work is closed (finish)

	mu       sync.Mutex // the pack being filled
	pack     *filling
	bufsMade int // pack buffers made; under mu

	up     chan *filling // full packs; unbuffered
	upDone chan struct{}
	bufs   chan []byte // pack buffers the uploader is done with

	marker func() error // waits for the copying marker's put (once): no pack before it ends

	sets     chan [][]byte // shard buffer sets the putters are done with
	setsMade int           // shard buffer sets made; the uploader's

	emu     sync.Mutex
	err     error // the first failure
	written []writtenPack

	deltas, deltaBytes atomic.Int64 // blocks stored as deltas, and their blocks' bytes
}

// batch is a read batch of one disk's blocks, with where their old
// versions come from (nil: no deltas for this disk).
type batch struct {
	b  *rowstore.BlockBatch
	ds *deltaSource
}

// The stream's read batches: a few, small enough to keep sync's memory
// low, large enough for sequential reads of the log (a batch's adjacent
// records are read with one call).
const (
	streamBatch   = 2 << 20
	streamBuffers = 3
)

type writtenPack struct {
	x      *format.Index
	sealed []byte // the sealed index
}

// Every block is checked against the digest the index holds before it is
// shipped: the chunk id is derived from that digest, and a region that
// deduplicates by id must never hold a chunk whose content is not its id's
// (a sample of 1 in 64 saved a third of sync's CPU, but let a systematic
// fault, an index that does not describe its records, fill a region first).

func (m *Manager) startPipeline(ctx context.Context, r *region, st *Stats, prog Progress, snap string, ready <-chan error) *pipeline {
	workers := max(2, runtime.GOMAXPROCS(0))
	p := &pipeline{m: m, r: r, st: st, prog: prog, snap: snap,
		work: make(chan batch, 1), up: make(chan *filling),
		upDone: make(chan struct{}), bufs: make(chan []byte, 2), sets: make(chan [][]byte, putters+1)}
	p.marker = sync.OnceValue(func() error {
		if ready == nil {
			return nil
		}
		return <-ready
	})
	p.ctx, p.cancel = context.WithCancelCause(ctx)
	var err error
	if p.pack, err = p.newPack(); err != nil { // the first two never wait
		p.fail(err)
	}
	for range workers {
		p.wg.Add(1)
		go p.worker()
	}
	go p.uploader()
	return p
}

func (p *pipeline) fail(err error) {
	p.emu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.emu.Unlock()
	p.cancel(err)
}

func (p *pipeline) failed() error {
	p.emu.Lock()
	defer p.emu.Unlock()
	return p.err
}

// compress hands a batch to the workers (it is theirs to release); ds,
// if not nil, is where the old versions of its blocks are read from for
// deltas.
func (p *pipeline) compress(b *rowstore.BlockBatch, ds *deltaSource) error {
	select {
	case p.work <- batch{b, ds}:
		return nil
	case <-p.ctx.Done():
		b.Release()
		if err := p.failed(); err != nil {
			return err
		}
		return context.Cause(p.ctx)
	}
}

// filling is a pack being filled: its id and builder (a sealing one:
// each worker seals its records straight into the pack, outside the pack
// lock), and the records reserved but not yet sealed.
type filling struct {
	id       packID
	pk       *format.PackBuilder
	unsealed sync.WaitGroup
	bad      atomic.Bool // a record failed to seal: the pack is never put
}

// newPack starts a pack in a buffer the uploader is done with; only two
// are ever made (one filling, one the uploader seals and encodes), so a
// pack's tens of MiB are neither allocated nor cleared again.
func (p *pipeline) newPack() (*filling, error) {
	var buf []byte
	if p.bufsMade < 2 {
		p.bufsMade++
	} else {
		select {
		case buf = <-p.bufs:
		case <-p.ctx.Done():
			return nil, context.Cause(p.ctx)
		}
	}
	id, err := newPackID(p.m.opts.Now())
	if err == nil {
		var pk *format.PackBuilder
		if pk, err = format.NewSealingPackBuilder(p.r.keys, id.String(), p.m.opts.PackSize, buf); err == nil {
			return &filling{id: id, pk: pk}, nil
		}
	}
	p.bufs <- buf // room for both: never blocks
	return nil, err
}

// stored is one block made ready for a pack.
type stored struct {
	id     format.ChunkID
	data   []byte // the bytes to store (compressed, or the block itself, or its delta payload)
	rawLen int
	comp   uint8
	base   *format.ChunkID // a delta over this full chunk; nil: the block whole
}

func (p *pipeline) worker() {
	defer p.wg.Done()
	enc, err := chunkEncoder()
	if err != nil {
		p.fail(err) // the loop below only releases batches
	}
	var scratch []byte
	var items []stored
	var dw deltaWork
	for w := range p.work {
		b := w.b
		if p.ctx.Err() != nil {
			b.Release()
			continue
		}
		scratch, items, err = p.prepare(enc, b, w.ds, &dw, scratch[:0], items[:0])
		if err == nil {
			err = p.add(items)
		}
		b.Release()
		if err != nil {
			p.fail(err)
		}
	}
}

// prepare checks and compresses the blocks of a batch (compressed bytes go
// to scratch; raw ones stay in the batch).
//
// With ds, a block whose old version (ds's parent point) is a full chunk
// of the region and differs from it in at most half of its 4 KiB pieces
// is stored as a delta over it (deltaSource.delta); its payload goes to
// dw's buffer and is compressed as a block would be.
func (p *pipeline) prepare(enc *zstd.Encoder, b *rowstore.BlockBatch, ds *deltaSource, dw *deltaWork, scratch []byte, items []stored) ([]byte, []stored, error) {
	// Compressed data is appended to scratch, which may move: positions
	// first, slices once it is done growing.
	type at struct{ off, n int }
	pos := make([]at, len(b.Data))
	dw.payloads = dw.payloads[:0] // the last batch's records are sealed
	for i, data := range b.Data {
		if sha256.Sum256(data) != b.Digests[i] {
			return scratch, items, fmt.Errorf("%w: block %d of snapshot %q does not match its digest", rowstore.ErrCorrupt, b.Blocks[i], p.snap)
		}
		it := stored{id: p.r.keys.ChunkID(b.Digests[i]), data: data, rawLen: len(data), comp: format.CompNone}
		if ds != nil {
			if base, payload, ok := ds.delta(b.Blocks[i], data, dw); ok {
				it.data, it.base = payload, &base
				data = payload
				p.deltas.Add(1)
				p.deltaBytes.Add(int64(it.rawLen))
			}
		}
		pos[i] = at{-1, 0}
		if !incompressible(data) {
			off := len(scratch)
			scratch = enc.EncodeAll(data, scratch)
			if n := len(scratch) - off; n < len(data) {
				pos[i] = at{off, n}
				it.comp = format.CompZstd
			} else {
				scratch = scratch[:off]
			}
		}
		items = append(items, it)
	}
	for i := range items {
		if pos[i].off >= 0 {
			items[i].data = scratch[pos[i].off : pos[i].off+pos[i].n]
		}
	}
	return scratch, items, nil
}

// add appends prepared blocks to the pack being filled: under the pack
// lock the records of as many blocks as the pack takes are reserved (a
// full pack first goes to the uploader, with the lock held until it takes
// it, so at most one full pack waits), and outside it they are sealed
// straight from the blocks into the pack. A worker never waits for the
// uploader while it holds unsealed records: the uploader waits for a
// pack's records to be sealed before it seals the table.
func (p *pipeline) add(items []stored) error {
	type reserved struct {
		e         format.Entry
		rec, data []byte
	}
	var rs []reserved
	for len(items) > 0 {
		p.mu.Lock()
		f := p.pack
		if f == nil { // no buffer came back: the pipeline has stopped
			p.mu.Unlock()
			return context.Cause(p.ctx)
		}
		rs = rs[:0]
		for len(items) > 0 && f.pk.Size() < p.m.opts.PackSize {
			it := items[0]
			e, rec, ok := f.pk.ReserveDelta(it.id, it.base, len(it.data), it.rawLen, it.comp)
			if !ok {
				break
			}
			rs = append(rs, reserved{e, rec, it.data})
			items = items[1:]
		}
		if len(rs) == 0 {
			// Full: to the uploader, and a new pack.
			p.pack = nil
			err := p.send(f)
			if err == nil {
				p.pack, err = p.newPack()
			}
			p.mu.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		f.unsealed.Add(1)
		p.mu.Unlock()
		var err error
		for _, r := range rs {
			if err = f.pk.SealRecord(r.e, r.rec, r.data); err != nil {
				f.bad.Store(true) // before Done: the uploader sees it
				break
			}
		}
		f.unsealed.Done()
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *pipeline) send(f *filling) error {
	select {
	case p.up <- f:
		return nil
	case <-p.ctx.Done():
		f.unsealed.Wait()
		p.bufs <- f.pk.Buffer() // not sent: its buffer goes back
		return context.Cause(p.ctx)
	}
}

// encoded is a pack sealed and erasure coded, for a putter.
type encoded struct {
	id         packID
	entries    []format.Entry
	shards     []erasure.Shard
	set        [][]byte // the shard buffers, back to p.sets once the shards are put
	written    []int64  // bytes put per store
	sealedSize int
	ph         *phases
}

// putters is how many packs' shards are put at once, indexers how many
// packs' indexes (see the pipeline comment).
const (
	putters  = 3
	indexers = 4
)

// uploader seals and erasure codes full packs and hands them to the
// putters, so the next pack is encoded while the last ones are put.
func (p *pipeline) uploader() {
	puts := make(chan *encoded) // unbuffered: one pack encoded ahead at most
	idxs := make(chan *encoded, indexers)
	var pwg, iwg sync.WaitGroup
	for range putters {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for e := range puts {
				err := p.ctx.Err()
				if err == nil {
					err = p.putShards(e)
				}
				p.sets <- e.set // room for every set made: never blocks
				if err != nil {
					p.fail(err)
					continue
				}
				select {
				case idxs <- e:
				case <-p.ctx.Done():
				}
			}
		}()
	}
	for range indexers {
		iwg.Add(1)
		go func() {
			defer iwg.Done()
			for e := range idxs {
				if p.ctx.Err() != nil {
					continue
				}
				if err := p.putIndex(e); err != nil {
					p.fail(err)
				}
			}
		}()
	}
	for f := range p.up {
		// Its last records may still be sealing. A pack with a record
		// that failed is dropped (that worker fails the pipeline).
		f.unsealed.Wait()
		if f.bad.Load() || p.ctx.Err() != nil {
			p.bufs <- f.pk.Buffer()
			continue
		}
		set, err := p.shardSet()
		if err != nil {
			p.bufs <- f.pk.Buffer()
			continue
		}
		e, err := p.encode(f, set)
		if err != nil {
			p.sets <- set
			p.fail(err)
			continue
		}
		select {
		case puts <- e:
		case <-p.ctx.Done():
			p.sets <- set
		}
	}
	close(puts)
	pwg.Wait()
	close(idxs)
	iwg.Wait()
	close(p.upDone)
}

// shardSet returns a set of shard buffers to encode a pack into: a new
// one while fewer than putters+1 were made, else one a putter gave back.
func (p *pipeline) shardSet() ([][]byte, error) {
	select {
	case set := <-p.sets:
		return set, nil
	default:
	}
	if p.setsMade < putters+1 {
		p.setsMade++
		return make([][]byte, p.r.n()), nil // EncodeInto allocates each buffer once
	}
	select {
	case set := <-p.sets:
		return set, nil
	case <-p.ctx.Done():
		return nil, context.Cause(p.ctx)
	}
}

// markerDone waits for the copying marker's put and returns its error.
func (p *pipeline) markerDone() error { return p.marker() }

// maxPackFill bounds the age of a pack's id when it is put. The id is
// made when the pack is started (its records are sealed under it as they
// come) and carries the time Prune's grace period for unindexed packs
// counts from (OrphanAge): a pack started long before its put (a sparse
// change found over a long diff) is renamed, not put looking that old.
const maxPackFill = OrphanAge / 4

// encode seals a full pack's table (its records are sealed) and erasure
// codes it; the pack buffer goes back for the next pack.
func (p *pipeline) encode(f *filling, set [][]byte) (*encoded, error) {
	r := p.r
	ph := newPhases()
	id, pk := f.id, f.pk
	var err error
	if now := p.m.opts.Now(); now.Sub(id.time()) > maxPackFill {
		if id, err = newPackID(now); err == nil {
			err = pk.Rename(r.keys, id.String())
		}
		if err != nil {
			p.bufs <- pk.Buffer() // room for both: never blocks
			return nil, fmt.Errorf("pack %s filled since %v: %w", f.id, f.id.time(), err)
		}
	}
	entries := slices.Clone(pk.Entries())
	sealed, err := pk.Seal(r.keys, id.String())
	var shards []erasure.Shard
	if err == nil {
		if shards, err = erasure.EncodeInto(sealed, r.k, r.m, set); err != nil {
			err = fmt.Errorf("pack %s: %w", id, err)
		}
	}
	sealedSize := len(sealed)
	p.bufs <- pk.Buffer() // room for both: never blocks
	ph.done("encode")
	for i, sh := range shards {
		set[i] = sh // keep what EncodeInto allocated for the next pack
	}
	return &encoded{id: id, entries: entries, shards: shards, set: set, sealedSize: sealedSize, ph: ph}, err
}

// putShards writes one encoded pack's shards, one to every store, in
// parallel. Its index goes on its homes once they are all durable
// (putIndex).
func (p *pipeline) putShards(e *encoded) error {
	r, id, ph := p.r, e.id, e.ph
	ph.done("queued")
	if err := p.markerDone(); err != nil {
		return err
	}
	ph.done("marker")
	errs := forEach(r.n(), func(i int) error {
		if err := r.stores[i].Put(p.ctx, packDir+id.String(), e.shards[i]); err != nil {
			return fmt.Errorf("%w: store %d (%s): put pack %s: %w", ErrUnavailable, i, r.stores[i].Location(), id, err)
		}
		return nil
	})
	if err := firstErr(errs); err != nil {
		return err
	}
	ph.done("shards")
	e.written = make([]int64, r.n())
	for i := range e.shards {
		e.written[i] += int64(len(e.shards[i]))
	}
	e.shards = nil // the buffers go back for the next pack
	return nil
}

// putIndex writes the index of a pack whose shards are durable on every
// store, on the pack's index homes (indexHomes).
func (p *pipeline) putIndex(e *encoded) error {
	r, id, ph := p.r, e.id, e.ph
	defer func() { p.m.log.Debug("pack timings", append([]any{"pack", id.String()}, ph.d...)...) }()
	ph.done("index-queued")
	x := &format.Index{Pack: id, SealedSize: uint64(e.sealedSize), Entries: e.entries}
	idx, err := r.keys.Seal(format.TypeIndex, id.String(), x.Encode())
	if err != nil {
		return err
	}
	if err := r.putOn(p.ctx, r.indexHomes(id.String()), indexDir+id.String(), idx, e.written); err != nil {
		return err
	}
	ph.done("index")
	// The putters share the stats (the stream's goroutine owns the other
	// fields: not p.st.TotalWritten(), which copies them).
	var total int64
	p.emu.Lock()
	p.written = append(p.written, writtenPack{x, idx})
	p.st.PacksWritten++
	for i, n := range e.written {
		p.st.BytesWritten[i] += n
		total += p.st.BytesWritten[i]
	}
	p.emu.Unlock()
	p.prog.Event(Event{Type: EventPack, Op: "sync", Region: r.cfg.Name, Snapshot: p.snap, Pack: id.String(), Bytes: total})
	return nil
}

// finish waits for the workers, uploads the last pack and waits for the
// uploader. It returns the packs written, also after a failure (those
// are complete: the next sync reuses them), and adds them to the chunk
// set.
func (p *pipeline) finish(cs *chunkSet) ([]writtenPack, error) {
	return p.stop(cs, false)
}

// abort stops the pipeline without uploading the pack being filled.
func (p *pipeline) abort(cs *chunkSet) {
	_, _ = p.stop(cs, true)
}

func (p *pipeline) stop(cs *chunkSet, abort bool) ([]writtenPack, error) {
	if abort {
		p.cancel(errors.New("sync stopped"))
	}
	if !p.closed {
		p.closed = true
		close(p.work)
	}
	p.wg.Wait()
	if p.ctx.Err() == nil && p.pack != nil && p.pack.pk.Len() > 0 {
		if err := p.send(p.pack); err != nil {
			p.fail(err)
		}
	}
	p.pack = nil
	close(p.up)
	<-p.upDone
	if err := p.markerDone(); err != nil {
		p.fail(err)
	}
	err := p.failed()
	if err == nil && abort {
		err = context.Cause(p.ctx)
	}
	p.cancel(nil)
	p.emu.Lock()
	written := p.written
	p.emu.Unlock()
	for _, w := range written {
		cs.remember(w.x, w.sealed)
	}
	return written, err
}

// chunkEncoder is the zstd encoder of chunks: fastest level (disk blocks
// of ordinary data still shrink well at it), one encoder state per CPU,
// no frame checksum (every chunk is checked against its SHA-256 on
// restore).
var chunkEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(max(2, runtime.GOMAXPROCS(0))),
		zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return enc, nil
})

// incompressible estimates from a sample whether compressing b would be
// wasted work: the Shannon entropy of the byte histogram of 32 pieces of
// 64 bytes spread over the block (all of it when smaller) above 7.5 bits
// per byte. Random, encrypted and already compressed data sit at about
// 7.9 for such a sample; text, code, file system metadata and most
// binaries well below 7. Like btrfs's compression heuristic it looks at a
// sample, so it costs an eighth of a pass over a 16 KiB block instead of
// a compression attempt (zstd's fastest level spends about as long on
// incompressible data as on any other).
func incompressible(b []byte) bool {
	const pieces, piece = 32, 64
	var hist [256]uint32
	n := 0
	if len(b) <= pieces*piece {
		for _, c := range b {
			hist[c]++
		}
		n = len(b)
	} else {
		step := len(b) / pieces
		for i := range pieces {
			for _, c := range b[i*step : i*step+piece] {
				hist[c]++
			}
		}
		n = pieces * piece
	}
	if n < 256 {
		return false // too little to judge; small enough to try
	}
	// H = log2(n) - sum(c log2 c)/n, with c log2 c from a table.
	var sum float64
	tab := cLog2c()
	for _, c := range hist {
		sum += tab[c]
	}
	return math.Log2(float64(n))-sum/float64(n) > 7.5
}

// cLog2c()[c] = c × log2(c) for the counts a sample can reach. Made on
// first use, not at init: every process of the binary (each CLI command)
// would pay for it.
var cLog2c = sync.OnceValue(func() *[32*64 + 1]float64 {
	var t [32*64 + 1]float64
	for c := 2; c < len(t); c++ {
		t[c] = float64(c) * math.Log2(float64(c))
	}
	return &t
})
