package replicate

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/rowstore"
)

// BlockSource gives blocks by content (local repair from a region): see
// rowstore.BlockSource.
type BlockSource = rowstore.BlockSource

// regionBlocks is a BlockSource over a region: the chunk id of a digest
// is the HMAC the region's chunk ids are made with, so a lookup in the
// region's pack indexes finds the pack; any k shards of it are fetched,
// the block is verified against digest, and the last pack is cached (a
// repair asks for neighbouring blocks, which are mostly in one pack).
type regionBlocks struct {
	m  *Manager
	r  *region
	cs *chunkSet

	mu       sync.Mutex
	lastPack packID
	lastPT   []byte // plaintext of lastPack; nil: none
	fetches  int    // packs fetched (for tests)
}

// BlockSource opens region as a source of blocks for local repair. It
// holds a shared lock on the region (no prune or repair removes a pack
// while it is used) until close is called. Blocks are verified against
// their digest; a corrupt or missing pack is an error, a digest the region
// has no chunk of is (false, nil).
func (m *Manager) BlockSource(ctx context.Context, regionName string) (BlockSource, func(), error) {
	r, err := m.openRegion(ctx, regionName, false)
	if err != nil {
		return nil, nil, err
	}
	_, unlock, err := m.lock(ctx, r, false, "repair-source")
	if err != nil {
		r.close()
		return nil, nil, err
	}
	cs, err := m.loadChunks(ctx, r, chunksRead)
	if err != nil {
		unlock()
		r.close()
		return nil, nil, err
	}
	bs := &regionBlocks{m: m, r: r, cs: cs}
	var once sync.Once
	return bs, func() {
		once.Do(func() {
			unlock()
			r.close()
		})
	}, nil
}

// FetchBlock implements BlockSource.
func (b *regionBlocks) FetchBlock(ctx context.Context, digest [32]byte, dst []byte) (bool, error) {
	loc, ok := b.cs.chunks[b.r.keys.ChunkID(digest)]
	if !ok {
		return false, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if loc.entry().IsDelta() {
		// Its base first, into dst (checked against its id), then the
		// delta's pieces over it.
		bl, err := b.cs.baseOf(loc)
		if err != nil {
			return false, fmt.Errorf("region %q: %w", b.r.cfg.Name, err)
		}
		base, err := b.chunk(ctx, bl, len(dst))
		if err != nil {
			return false, err
		}
		if len(base) != len(dst) || b.r.keys.ChunkID(sha256.Sum256(base)) != bl.entry().ID {
			return false, fmt.Errorf("%w: region %q: pack %s: base chunk %v does not match its id", ErrCorrupt, b.r.cfg.Name, bl.pack(), bl.entry().ID)
		}
		copy(dst, base)
		payload, err := b.chunk(ctx, loc, len(dst))
		if err != nil {
			return false, err
		}
		if err := format.ApplyDelta(dst, dst, payload); err != nil {
			return false, fmt.Errorf("region %q: pack %s: chunk %v: %w", b.r.cfg.Name, loc.pack(), loc.entry().ID, err)
		}
		if sha256.Sum256(dst) != digest {
			clear(dst)
			return false, fmt.Errorf("%w: region %q: pack %s: delta chunk %v does not rebuild to its digest", ErrCorrupt, b.r.cfg.Name, loc.pack(), loc.entry().ID)
		}
		return true, nil
	}
	raw, err := b.chunk(ctx, loc, len(dst))
	if err != nil {
		return false, err
	}
	if sha256.Sum256(raw) != digest {
		return false, fmt.Errorf("%w: region %q: pack %s: chunk %v does not match its digest", ErrCorrupt, b.r.cfg.Name, loc.pack(), loc.entry().ID)
	}
	if len(raw) != len(dst) {
		return false, fmt.Errorf("%w: region %q: chunk %v holds %d bytes, the block is %d", ErrInvalid, b.r.cfg.Name, loc.entry().ID, len(raw), len(dst))
	}
	copy(dst, raw)
	return true, nil
}

// chunk returns the stored bytes of the chunk at loc, decompressed (a
// delta's payload for a delta), from its pack (the last pack fetched is
// kept). The caller holds b.mu.
func (b *regionBlocks) chunk(ctx context.Context, loc chunkLoc, bs int) ([]byte, error) {
	if b.lastPT == nil || b.lastPack != loc.pack() {
		x := b.cs.packs[loc.pack()]
		sealed, _, _, err := b.m.fetchPack(ctx, b.r, loc.pack(), x.SealedSize)
		if err != nil {
			return nil, fmt.Errorf("region %q: %w", b.r.cfg.Name, err)
		}
		pt, err := format.OpenPack(b.r.keys, loc.pack().String(), sealed)
		if err != nil {
			return nil, fmt.Errorf("region %q: pack %s: %w", b.r.cfg.Name, loc.pack(), err)
		}
		b.lastPack, b.lastPT = loc.pack(), pt
		b.fetches++
	}
	raw, err := b.m.chunkData(b.lastPT, loc.entry(), make([]byte, 0, bs))
	if err != nil {
		return nil, fmt.Errorf("region %q: pack %s: %w", b.r.cfg.Name, loc.pack(), err)
	}
	return raw, nil
}
