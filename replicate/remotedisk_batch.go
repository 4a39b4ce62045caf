package replicate

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/snapfs/snapfs/replicate/erasure"
)

// Batched reads (ReadBlocks): the records of several chunks that lie
// close together in one version 2 pack are fetched with one range read
// per data shard instead of one per chunk. Each record is then opened
// and checked on its own, as ReadBlock does; a block whose batch could
// not be read whole, or whose record does not open, is read again alone
// by ReadBlock (with its rebuilding from parity). So a batch never
// returns what ReadBlock would not.
const (
	// batchGap: records at most this far apart share a range read (the
	// bytes between are fetched and dropped).
	batchGap = 64 << 10
	// batchMax bounds one range read of a batch.
	batchMax = 8 << 20
)

// ReadBlocks reads blocks[i] into dsts[i] (each BlockSize bytes) and
// returns one error per block (nil: read and verified), each as
// ReadBlock's. Blocks whose records lie close together in one pack share
// range reads.
func (d *RemoteDisk) ReadBlocks(ctx context.Context, blocks []int64, dsts [][]byte) []error {
	errs := make([]error, len(blocks))
	if len(dsts) != len(blocks) {
		for i := range errs {
			errs[i] = fmt.Errorf("%w: %d blocks, %d buffers", ErrInvalid, len(blocks), len(dsts))
		}
		return errs
	}
	type want struct {
		i   int
		loc chunkLoc
	}
	byPack := map[packID][]want{}
	var alone []int
	cs := d.chunkSet()
	for i, b := range blocks {
		dst := dsts[i][:len(dsts[i]):len(dsts[i])]
		dsts[i] = dst
		id, ok := d.bm[uint64(b)]
		if !ok || b < 0 || b >= d.Blocks() || len(dst) != d.md.BlockSize {
			alone = append(alone, i) // holes, and errors, as ReadBlock says
			continue
		}
		if d.blocks != nil && d.blocks.has(d.r.cfg.Name, id) {
			alone = append(alone, i) // cached: ReadBlock takes it from there
			continue
		}
		loc, found := cs.chunks[id]
		if !found || !loc.entry().Sealed || loc.entry().IsDelta() { // a delta is read alone (ReadBlock: with its base)
			alone = append(alone, i)
			continue
		}
		byPack[loc.pack()] = append(byPack[loc.pack()], want{i, loc})
	}
	for p, ws := range byPack {
		slices.SortFunc(ws, func(a, b want) int { return int(a.loc.entry().Offset) - int(b.loc.entry().Offset) })
		for len(ws) > 0 {
			n := 1
			start, end := int64(ws[0].loc.entry().Offset), int64(ws[0].loc.entry().Offset)+int64(ws[0].loc.entry().Length)
			for n < len(ws) {
				o := int64(ws[n].loc.entry().Offset)
				e := o + int64(ws[n].loc.entry().Length)
				if o < end || o-end > batchGap || max(end, e)-start > batchMax {
					break // (o < end: the same chunk twice; read alone)
				}
				end = max(end, e)
				n++
			}
			run := ws[:n]
			ws = ws[n:]
			if n == 1 {
				alone = append(alone, run[0].i)
				continue
			}
			buf, err := d.readSpan(ctx, p, start, end)
			for _, w := range run {
				if err == nil && d.openInto(w.loc, buf[int64(w.loc.entry().Offset)-start:][:w.loc.entry().Length], blocks[w.i], dsts[w.i]) == nil {
					d.stats.blocks.Add(1)
					d.stats.bytes.Add(int64(len(dsts[w.i])))
					continue
				}
				alone = append(alone, w.i)
			}
		}
	}
	slices.Sort(alone)
	for _, i := range alone {
		errs[i] = d.ReadBlock(ctx, blocks[i], dsts[i])
	}
	return errs
}

// readSpan reads bytes [start, end) of pack p's object from its data
// shards, one range read per shard, under the region's lock; any piece
// that fails fails it (the caller reads the blocks alone).
func (d *RemoteDisk) readSpan(ctx context.Context, p packID, start, end int64) ([]byte, error) {
	d.reviveStores(ctx)
	d.storesMu.RLock()
	defer d.storesMu.RUnlock()
	jc, err := d.lockCtx(ctx)
	if err != nil {
		return nil, err
	}
	defer jc.(*joinedCtx).done()
	x := d.chunkSet().packs[p]
	l, err := erasure.NewLayout(d.r.k, d.r.m, int64(x.SealedSize))
	if err != nil {
		return nil, err
	}
	if end > l.DataLen {
		return nil, fmt.Errorf("%w: records beyond pack %s", ErrCorrupt, p)
	}
	pieces := splitRange(l, start, end)
	buf := make([]byte, end-start)
	name := packDir + p.String()
	errs := forEach(len(pieces), func(i int) error {
		pc := pieces[i]
		if d.passOver(pc.shard) {
			return fmt.Errorf("%w: store %d failed a read lately", ErrUnavailable, pc.shard)
		}
		b, err := d.getRange(jc, pc.shard, name, pc.off, pc.n)
		if err != nil {
			return err
		}
		if int64(len(b)) != pc.n {
			return fmt.Errorf("%w: store %d sent %d bytes for %d", ErrCorrupt, pc.shard, len(b), pc.n)
		}
		copy(buf[pc.at:pc.at+pc.n], b)
		return nil
	})
	d.stats.ranges.Add(1)
	if err := firstErr(errs); err != nil {
		return nil, err
	}
	return buf, nil
}

// openInto opens the record of the chunk at loc (rec: its bytes, changed
// in place), checks it against block b's chunk id and writes the block
// into dst (and the cache).
func (d *RemoteDisk) openInto(loc chunkLoc, rec []byte, b int64, dst []byte) error {
	op, err := d.r.keys.NewChunkOpener(loc.pack().String())
	if err != nil {
		return err
	}
	stored, err := op.Open(loc.entry(), rec)
	if err != nil {
		return err
	}
	raw, err := d.decompress(stored, loc.entry(), dst)
	if err != nil {
		return err
	}
	id := d.bm[uint64(b)]
	if len(raw) != len(dst) || d.r.keys.ChunkID(sha256.Sum256(raw)) != id {
		return fmt.Errorf("%w: pack %s: chunk %v does not match its id", ErrCorrupt, loc.pack(), id)
	}
	if &raw[0] != &dst[0] {
		copy(dst, raw)
	}
	if d.blocks != nil {
		d.blocks.put(d.r.cfg.Name, id, dst)
	}
	return nil
}
