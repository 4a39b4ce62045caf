package replicate

import (
	"encoding/binary"
	"sync"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/zeebo/xxh3"
)

// Covers: which packs hold the chunks of a remote manifest's disk.
//
// An incremental sync may write a delta over a parent only if every chunk
// of the parent's chain is in a readable pack (see copyOne). Checked
// chunk by chunk, that is one map lookup per block of the parent's full
// map (65536 for a 1 GiB disk of 16 KiB blocks, cache misses all: about
// 50-120 ms on this project's 2-core machine, as much as the rest of a
// 1 % incremental's fixed costs). A cover is the set of packs that held
// every chunk of a manifest disk when it was checked or written; packs
// are immutable, so while each pack of the cover is still readable (in
// the chunk set, with k shards listed) every chunk the disk names is
// too, and the check costs one lookup per pack instead of one per block.
// A cover that names a pack gone since (pruned, repaired away) proves
// nothing: the disk is checked chunk by chunk again (and its cover made
// anew). A cover may name more packs than needed (sync records the packs
// of the whole snapshot for each of its disks); it only ever errs
// towards the slow check.
//
// Covers are keyed by the region and a hash (XXH3-128) of the manifest
// disk's content (parent, depth, block size, every entry), not by its
// name: a manifest written again under the same name with other entries
// (copied again after a prune, rewritten as a full map) has another key.
// They live in the Manager's memory only (the daemon's, across syncs),
// at most maxCovers of them (a few KiB each: 16 bytes per pack).
type coverKey struct {
	region [16]byte
	disk   xxh3.Uint128
}

const maxCovers = 256

type covers struct {
	mu sync.Mutex
	m  map[coverKey][]packID
}

func (c *covers) get(k coverKey) ([]packID, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[k]
	return p, ok
}

func (c *covers) put(k coverKey, packs []packID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCovers {
		c.m = map[coverKey][]packID{} // simplest bound: start over
	}
	c.m[k] = packs
}

// diskKey hashes a manifest disk's content.
func diskKey(r *region, d *format.ManifestDisk) coverKey {
	h := xxh3.New()
	var b [8 + 4 + 2 + 4]byte
	binary.BigEndian.PutUint64(b[0:], uint64(d.Size))
	binary.BigEndian.PutUint32(b[8:], uint32(d.BlockSize))
	binary.BigEndian.PutUint16(b[12:], uint16(d.Depth))
	binary.BigEndian.PutUint32(b[14:], uint32(len(d.Entries)))
	_, _ = h.Write(b[:])
	_, _ = h.WriteString(d.Name)
	_, _ = h.Write([]byte{0})
	_, _ = h.WriteString(d.Parent)
	_, _ = h.Write([]byte{0})
	// Entries in chunks of a few KiB: one Write per entry costs more than
	// the hashing.
	buf := make([]byte, 0, 64*41)
	for _, e := range d.Entries {
		buf = binary.BigEndian.AppendUint64(buf, e.Block)
		if e.Zero {
			buf = append(buf, 1)
		} else {
			buf = append(buf, 0)
			buf = append(buf, e.ID[:]...)
		}
		if len(buf) >= cap(buf)-41 {
			_, _ = h.Write(buf)
			buf = buf[:0]
		}
	}
	_, _ = h.Write(buf)
	return coverKey{region: r.id, disk: h.Sum128()}
}

// readable reports whether pack p is in the chunk set and readable.
func (cs *chunkSet) readable(p packID) bool {
	return cs.index(p) != nil && !cs.isUnreadable(p)
}

// chainReadable reports whether every chunk of a manifest disk chain is
// in a readable pack of cs, and adds the packs that hold them to used.
// Each disk of the chain is checked through its cover when the Manager
// has one whose packs are all readable, else chunk by chunk (and its
// cover recorded).
func (m *Manager) chainReadable(r *region, cs *chunkSet, chain []*format.ManifestDisk, used map[packID]bool) bool {
next:
	for _, cd := range chain {
		key := diskKey(r, cd)
		if packs, ok := m.covers.get(key); ok {
			good := true
			for _, p := range packs {
				if !cs.readable(p) {
					good = false
					break
				}
			}
			if good {
				for _, p := range packs {
					used[p] = true
				}
				continue next
			}
		}
		set := map[packID]bool{}
		var last format.ChunkID
		var lastPack packID
		first := true
		for _, e := range cd.Entries {
			if e.Zero || (!first && e.ID == last) {
				continue
			}
			last = e.ID
			loc, found := cs.lookup(e.ID)
			if !found || !cs.usable(loc, set) { // a delta's base too
				return false
			}
			if first || loc.pack() != lastPack { // blocks synced together share packs
				set[loc.pack()] = true
				lastPack = loc.pack()
			}
			first = false
		}
		packs := make([]packID, 0, len(set))
		for p := range set {
			used[p] = true
			packs = append(packs, p)
		}
		m.covers.put(key, packs)
	}
	return true
}

// rememberCovers records, for each disk of a manifest just written, the
// packs that hold its chunks: used, every pack the snapshot deduplicated
// against or wrote.
func (m *Manager) rememberCovers(r *region, mf *format.Manifest, used map[packID]bool) {
	packs := make([]packID, 0, len(used))
	for p := range used {
		packs = append(packs, p)
	}
	for i := range mf.Disks {
		m.covers.put(diskKey(r, &mf.Disks[i]), packs)
	}
}
