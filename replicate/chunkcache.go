package replicate

import (
	"maps"
	"sync"

	"github.com/snapfs/snapfs/replicate/format"
)

// maxCachedChunks bounds what a Manager keeps of a region's chunk set
// between operations: a region with more chunks (about 8 GiB of 16 KiB
// blocks; the set and its decoded indexes take some 155 bytes a chunk,
// 20 MiB for 131072 chunks, BenchmarkIncrementalSyncChunkSet) is loaded
// anew each time, so what the daemon keeps stays under about 80 MiB per
// region whatever the region's size.
var maxCachedChunks = 1 << 19

// chunkCache keeps, per region, the pack indexes decoded and the chunk set
// last built from them, so that a sync, a restore or a region disk open
// does not read, open and decode every index and rebuild the map each
// time (100-440 ms per incremental sync of a few GiB region, measured in
// the daemon). What it keeps is only ever used after the region was
// listed again (index/ and packs/): a set is reused only when the listing
// gives exactly the same indexes with the same readability (at least k
// shards); when indexes were only added, the kept set is copied, the
// new ones added and the copy settled (chunkSet.settle: as a full build
// ends); anything else (an index removed by another host's prune
// or repair, a pack that lost shards) rebuilds the set from the decoded
// indexes still listed. An index object never changes once written (its
// name is its pack's random id), so a decoded index is reused by name.
type chunkCache struct {
	mu      sync.Mutex
	regions map[chunkCacheKey]*regionChunks
}

type chunkCacheKey struct {
	name string
	id   [16]byte
}

// regionChunks is what is kept of one region; never changed once
// published (a new one replaces it).
type regionChunks struct {
	listed  map[string]pendingPack   // the indexes in set, as last listed, by pack id
	learned map[string]*format.Index // indexes of packs a sync wrote, not yet listed
	set     *chunkSet                // read only; nil: not kept (too large)
}

func (c *chunkCache) get(r *region) *regionChunks {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regions[chunkCacheKey{r.cfg.Name, r.id}]
}

func (c *chunkCache) put(r *region, rc *regionChunks) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(r, rc)
}

func (c *chunkCache) putLocked(r *region, rc *regionChunks) {
	if c.regions == nil {
		c.regions = map[chunkCacheKey]*regionChunks{}
	}
	for k := range c.regions {
		if k.name == r.cfg.Name {
			delete(c.regions, k) // a region re-added under its name
		}
	}
	c.regions[chunkCacheKey{r.cfg.Name, r.id}] = rc
}

// drop forgets a region (removed).
func (c *chunkCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.regions {
		if k.name == name {
			delete(c.regions, k)
		}
	}
}

// clone copies a chunk set for a caller that changes it (sync adds the
// packs it writes, prune drops orphaned indexes); the indexes are shared
// (never changed).
func (cs *chunkSet) clone() *chunkSet {
	out := &chunkSet{chunks: maps.Clone(cs.chunks), packs: maps.Clone(cs.packs), cache: cs.cache}
	if cs.unreadable != nil {
		out.unreadable = maps.Clone(cs.unreadable)
	}
	return out
}

// pendingPack is an index loadChunks puts in the set, and whether its
// pack is readable (at least k shards listed).
type pendingPack struct {
	x        *format.Index
	readable bool
}

// buildSet makes the chunk set of adds, reusing kept (the set kept for
// the region, may be nil) when its indexes are a subset of adds with the
// same readability.
func buildSet(kept *regionChunks, adds map[string]pendingPack, est int, cache string) (cs *chunkSet, reused bool) {
	if kept != nil && kept.set != nil && len(kept.listed) <= len(adds) {
		subset := true
		for name, kp := range kept.listed {
			if got, ok := adds[name]; !ok || got.readable != kp.readable {
				subset = false
				break
			}
		}
		if subset {
			if len(kept.listed) == len(adds) {
				return kept.set, true
			}
			cs = kept.set.clone()
			cs.cache = cache
			for name, p := range adds {
				if _, ok := kept.listed[name]; !ok {
					cs.addPack(p.x, p.readable)
				}
			}
			// As after a full build: a delta added before its base (a
			// chunk shipped again over a base that is new too) is where
			// its chunk must be located when the old copy is dead.
			cs.settle()
			return cs, true
		}
	}
	cs = &chunkSet{chunks: make(map[format.ChunkID]chunkLoc, min(est, 1<<20)), packs: map[packID]*format.Index{}, cache: cache}
	// Readable packs first: a chunk in several packs is located in a
	// readable one whatever the order (addPack), this only saves moves.
	for _, p := range adds {
		if p.readable {
			cs.addPack(p.x, true)
		}
	}
	for _, p := range adds {
		if !p.readable {
			cs.addPack(p.x, false)
		}
	}
	cs.settle()
	return cs, false
}

// index is the decoded index of pack id name kept for the region, or nil.
func (rc *regionChunks) index(name string) *format.Index {
	if rc == nil {
		return nil
	}
	if p, ok := rc.listed[name]; ok {
		return p.x
	}
	return rc.learned[name]
}

// learn keeps the decoded indexes of packs a sync wrote (on their homes),
// so that the next load of the region finds them decoded; they count only
// once a listing names them.
func (c *chunkCache) learn(r *region, written []writtenPack) {
	if len(written) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	key := chunkCacheKey{r.cfg.Name, r.id}
	old := c.regions[key]
	if old == nil {
		old = &regionChunks{}
	}
	learned := make(map[string]*format.Index, len(old.learned)+len(written))
	maps.Copy(learned, old.learned)
	n := 0
	for _, p := range old.listed {
		n += len(p.x.Entries)
	}
	for _, x := range learned {
		n += len(x.Entries)
	}
	for _, w := range written {
		if n += len(w.x.Entries); n > maxCachedChunks {
			return // too large to keep
		}
		learned[packID(w.x.Pack).String()] = w.x
	}
	c.putLocked(r, &regionChunks{listed: old.listed, learned: learned, set: old.set})
}
