package replicate

import (
	"container/list"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
)

// BlockCache is a bounded on-disk LRU cache of the chunks RemoteDisks
// fetched, shared by every region of a store: one file per chunk,
// <storeDir>/regions/<region>.cache/blocks/<chunk id in hex> (the raw
// block, written to a temporary name and renamed). It is keyed by chunk
// id, so a block shared by many snapshots (or read through several
// remote disks) is fetched and kept once. Nothing in it is trusted: a
// RemoteDisk checks every block it takes from the cache against its
// chunk id, as it checks what the stores send, and drops a bad one. The
// cache can be deleted at any time. When it would grow past its bound,
// the least recently used blocks are removed; the order survives a
// restart approximately (files are ordered by modification time when
// the cache is opened).
type BlockCache struct {
	root string // <storeDir>/regions
	max  int64

	mu    sync.Mutex
	size  int64
	lru   *list.List // of *cacheItem, most recently used at the front
	items map[cacheKey]*list.Element

	hits, misses atomic.Int64
}

type cacheKey struct {
	region string
	id     format.ChunkID
}

type cacheItem struct {
	key  cacheKey
	size int64
}

// DefaultBlockCache is the default bound of the block cache (mount
// --region-cache).
const DefaultBlockCache = 1 << 30

// OpenBlockCache opens the store's block cache, bounded to max bytes
// (<= 0: DefaultBlockCache), and takes in the blocks already on disk,
// evicting the oldest beyond the bound.
func (m *Manager) OpenBlockCache(max int64) (*BlockCache, error) {
	if max <= 0 {
		max = DefaultBlockCache
	}
	c := &BlockCache{root: m.regionsDir(), max: max, lru: list.New(), items: map[cacheKey]*list.Element{}}
	type found struct {
		key   cacheKey
		size  int64
		mtime time.Time
	}
	var all []found
	ents, err := os.ReadDir(c.root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("block cache: %w", err)
	}
	for _, e := range ents {
		region, ok := strings.CutSuffix(e.Name(), ".cache")
		if !ok || !e.IsDir() {
			continue
		}
		dir := filepath.Join(c.root, e.Name(), "blocks")
		bs, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, b := range bs {
			id, ok := parseChunkHex(b.Name())
			fi, err := b.Info()
			if !ok || err != nil || !fi.Mode().IsRegular() {
				_ = os.Remove(filepath.Join(dir, b.Name())) // a temporary file of a crash
				continue
			}
			all = append(all, found{cacheKey{region, id}, fi.Size(), fi.ModTime()})
		}
	}
	slices.SortFunc(all, func(a, b found) int { return a.mtime.Compare(b.mtime) })
	for _, f := range all { // oldest first: the newest end up at the front
		c.items[f.key] = c.lru.PushFront(&cacheItem{key: f.key, size: f.size})
		c.size += f.size
	}
	c.evict()
	return c, nil
}

func parseChunkHex(s string) (format.ChunkID, bool) {
	var id format.ChunkID
	if len(s) != 2*len(id) {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, false
	}
	return id, true
}

func (c *BlockCache) path(k cacheKey) string {
	return filepath.Join(c.root, k.region+".cache", "blocks", hex.EncodeToString(k.id[:]))
}

// Max is the cache's bound in bytes.
func (c *BlockCache) Max() int64 { return c.max }

// Size is the bytes the cache holds.
func (c *BlockCache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// Hits and Misses count lookups.
func (c *BlockCache) Hits() int64   { return c.hits.Load() }
func (c *BlockCache) Misses() int64 { return c.misses.Load() }

// get reads the cached block of chunk id of region into dst (exactly
// len(dst) bytes); false when it is not cached (or unreadable).
func (c *BlockCache) get(region string, id format.ChunkID, dst []byte) bool {
	k := cacheKey{region, id}
	c.mu.Lock()
	el, ok := c.items[k]
	if ok {
		c.lru.MoveToFront(el)
	}
	c.mu.Unlock()
	if !ok {
		c.misses.Add(1)
		return false
	}
	f, err := os.Open(c.path(k))
	if err == nil {
		var n int
		n, err = f.ReadAt(dst, 0)
		_ = f.Close()
		if err == nil && n != len(dst) {
			err = errors.New("short")
		}
	}
	if err != nil {
		c.drop(region, id)
		c.misses.Add(1)
		return false
	}
	c.hits.Add(1)
	return true
}

// has reports whether the block of chunk id of region is cached (get may
// still find it unreadable).
func (c *BlockCache) has(region string, id format.ChunkID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[cacheKey{region, id}]
	return ok
}

// put stores a verified block; errors are ignored (it is a cache).
func (c *BlockCache) put(region string, id format.ChunkID, data []byte) {
	k := cacheKey{region, id}
	c.mu.Lock()
	if el, ok := c.items[k]; ok {
		c.lru.MoveToFront(el)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if int64(len(data)) > c.max {
		return
	}
	p := c.path(k)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	tmp := p + ".tmp" + randHex(4)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		_ = os.Remove(tmp)
		return
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok { // another reader put it meanwhile
		return
	}
	c.items[k] = c.lru.PushFront(&cacheItem{key: k, size: int64(len(data))})
	c.size += int64(len(data))
	c.evict()
}

// drop removes a block (unreadable, or found not to match its id).
func (c *BlockCache) drop(region string, id format.ChunkID) {
	k := cacheKey{region, id}
	c.mu.Lock()
	if el, ok := c.items[k]; ok {
		c.size -= el.Value.(*cacheItem).size
		c.lru.Remove(el)
		delete(c.items, k)
	}
	c.mu.Unlock()
	_ = os.Remove(c.path(k))
}

// evict removes the least recently used blocks beyond the bound; c.mu held.
func (c *BlockCache) evict() {
	for c.size > c.max {
		el := c.lru.Back()
		if el == nil {
			return
		}
		it := el.Value.(*cacheItem)
		c.lru.Remove(el)
		delete(c.items, it.key)
		c.size -= it.size
		_ = os.Remove(c.path(it.key))
	}
}
