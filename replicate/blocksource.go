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
	if b.lastPT == nil || b.lastPack != loc.pack() {
		x := b.cs.packs[loc.pack()]
		sealed, _, _, err := b.m.fetchPack(ctx, b.r, loc.pack(), x.SealedSize)
		if err != nil {
			return false, fmt.Errorf("region %q: %w", b.r.cfg.Name, err)
		}
		pt, err := format.OpenPack(b.r.keys, loc.pack().String(), sealed)
		if err != nil {
			return false, fmt.Errorf("region %q: pack %s: %w", b.r.cfg.Name, loc.pack(), err)
		}
		b.lastPack, b.lastPT = loc.pack(), pt
		b.fetches++
	}
	raw, err := b.m.chunkData(b.lastPT, loc.entry(), make([]byte, 0, len(dst)))
	if err != nil {
		return false, fmt.Errorf("region %q: pack %s: %w", b.r.cfg.Name, loc.pack(), err)
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
