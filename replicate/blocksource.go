package replicate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/rowstore"
)

// BlockSource gives blocks by content (local repair from a region): see
// rowstore.BlockSource.
type BlockSource = rowstore.BlockSource

var _ rowstore.SnapshotSource = (*regionBlocks)(nil)

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
	maps     map[snapDisk]*snapMap // block maps of snapshot copies asked for (SnapshotBlock)
	lastPack packID
	lastPT   []byte // plaintext of lastPack; nil: none
	fetches  int    // packs fetched (for tests)
}

// BlockSource opens region as a source of blocks for local repair. It
// holds a shared lock on the region (no prune or repair removes a pack
// while it is used) until close is called. Blocks are verified against
// their digest; a corrupt or missing pack is an error, a digest the region
// has no chunk of is (false, nil), unless the homes of some index are all
// unusable (then it may be in that index: an error wrapping
// ErrUnavailable, as is a delta whose base may be there), or an index is
// lost or a pack unindexed (then it may be in that pack: locate's error,
// naming them and region repair; TestLostIndexBlockSourceSaysSo).
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

// FetchBlock implements BlockSource: the chunk is read as every reader
// reads it (readChunk: a delta rebuilt over its base, the result checked
// against its id, dst cleared on any failure).
func (b *regionBlocks) FetchBlock(ctx context.Context, digest [32]byte, dst []byte) (bool, error) {
	loc, found, err := b.r.locate(b.cs, b.r.keys.ChunkID(digest))
	if !found && !errors.Is(err, ErrUnavailable) && b.cs.lostNote(b.r) == "" {
		return false, nil // the region has no such block
	}
	if err != nil {
		clear(dst)
		return false, fmt.Errorf("region %q: %w", b.r.cfg.Name, err)
	}
	if raw := int(loc.entry().RawLen); raw != len(dst) {
		clear(dst)
		return false, fmt.Errorf("%w: region %q: chunk %v holds %d bytes, the block is %d", ErrInvalid, b.r.cfg.Name, loc.entry().ID, raw, len(dst))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := readChunk(ctx, b.r.keys, b.cs, loc, dst, b.chunk, nil); err != nil {
		return false, fmt.Errorf("region %q: %w", b.r.cfg.Name, err)
	}
	return true, nil
}

// snapDisk names a disk of a local snapshot (its identity, not its name
// alone).
type snapDisk struct {
	id      uint64
	created int64 // unix nanoseconds
	name    string
	disk    string
}

// snapMap is the block map of a disk of a region's copy of a local
// snapshot (nil bm: the region holds no copy of it).
type snapMap struct {
	bm blockMap
	md *format.ManifestDisk
}

// SnapshotBlock implements rowstore.SnapshotSource: the copy of snap is
// the manifest this host wrote of it (under this host's id, an id the
// store had before it was copied (Host.Previous), or no host for a
// manifest from before hosts) whose snapshot id and creation time are
// snap's: a manifest of that name with another identity is another
// snapshot and is never used. Block b of disk is then read as restore reads
// it (readChunk: verified against its chunk id, the HMAC of its SHA-256).
// No such manifest is (false, nil); a copy without the disk, or holding
// the block as zeros, is an error.
func (b *regionBlocks) SnapshotBlock(ctx context.Context, snap rowstore.SnapshotInfo, disk string, blk int64, dst []byte) (bool, error) {
	sm, err := b.snapshotMap(ctx, snap, disk)
	if err != nil {
		clear(dst)
		return false, fmt.Errorf("region %q: %w", b.r.cfg.Name, err)
	}
	if sm.bm == nil {
		clear(dst)
		return false, nil
	}
	what := fmt.Sprintf("region %q: its copy of snapshot %q (id %d, %s)", b.r.cfg.Name, snap.Name, snap.ID, snap.Created.Format(time.RFC3339Nano))
	if sm.md.BlockSize != len(dst) {
		clear(dst)
		return false, fmt.Errorf("%w: %s: disk %q has blocks of %d bytes, the store's %d", ErrInvalid, what, disk, sm.md.BlockSize, len(dst))
	}
	id, ok := sm.bm[uint64(blk)]
	if !ok {
		clear(dst)
		return false, fmt.Errorf("%w: %s: disk %q holds block %d as zeros, the store a data block", ErrCorrupt, what, disk, blk)
	}
	loc, _, err := b.r.locate(b.cs, id)
	if err != nil {
		clear(dst)
		return false, fmt.Errorf("%s: disk %q block %d: %w", what, disk, blk, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := readChunk(ctx, b.r.keys, b.cs, loc, dst, b.chunk, nil); err != nil {
		return false, fmt.Errorf("%s: disk %q block %d: %w", what, disk, blk, err)
	}
	return true, nil
}

// snapshotMap finds the region's copy of snap (see SnapshotBlock) and
// resolves the block map of its disk, once per snapshot and disk.
func (b *regionBlocks) snapshotMap(ctx context.Context, snap rowstore.SnapshotInfo, disk string) (*snapMap, error) {
	k := snapDisk{snap.ID, snap.Created.UnixNano(), snap.Name, disk}
	b.mu.Lock()
	sm := b.maps[k]
	b.mu.Unlock()
	if sm != nil {
		return sm, nil
	}
	sm = &snapMap{}
	hosts := append([]format.HostID{b.m.host.ID}, b.m.host.Previous...)
	hosts = append(hosts, format.HostID{}) // a manifest from before hosts
	for _, h := range hosts {
		mf, err := b.r.readManifest(ctx, b.r.snapNID(h, snap.Name))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot %q: %w", snap.Name, err)
		}
		if mf.Name != snap.Name || mf.Host != h || mf.SnapshotID != snap.ID || !mf.Created.Equal(snap.Created) {
			continue // another snapshot of that name
		}
		if mf.Disk(disk) == nil {
			return nil, fmt.Errorf("%w: its copy of snapshot %q (id %d) has no disk %q", ErrCorrupt, snap.Name, snap.ID, disk)
		}
		bm, md, err := b.r.resolveDisk(ctx, mf, disk, map[string]*format.Manifest{})
		if err != nil {
			return nil, fmt.Errorf("snapshot %q disk %q: %w", snap.Name, disk, err)
		}
		sm = &snapMap{bm: bm, md: md}
		break
	}
	b.mu.Lock()
	if b.maps == nil {
		b.maps = map[snapDisk]*snapMap{}
	}
	b.maps[k] = sm
	b.mu.Unlock()
	return sm, nil
}

// chunk returns the stored bytes of the chunk at loc, decompressed (a
// delta's payload for a delta), from its pack (the last pack fetched is
// kept). The caller holds b.mu.
func (b *regionBlocks) chunk(ctx context.Context, loc chunkLoc, buf []byte) ([]byte, error) {
	if b.lastPT == nil || b.lastPack != loc.pack() {
		x := b.cs.packs[loc.pack()]
		sealed, _, _, err := b.m.fetchPack(ctx, b.r, loc.pack(), x.SealedSize)
		if err != nil {
			return nil, err
		}
		pt, err := format.OpenPack(b.r.keys, loc.pack().String(), sealed)
		if err != nil {
			return nil, fmt.Errorf("pack %s: %w", loc.pack(), err)
		}
		b.lastPack, b.lastPT = loc.pack(), pt
		b.fetches++
	}
	raw, err := b.m.chunkData(b.lastPT, loc.entry(), buf[:0])
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", loc.pack(), err)
	}
	return raw, nil
}
