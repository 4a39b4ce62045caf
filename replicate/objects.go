package replicate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
)

// Object directories of a store; see the package doc.
const (
	configName = "config"
	packDir    = "packs/"
	indexDir   = "index/"
	snapDir    = "snapshots/"
	copyDir    = "copying/"
	prunedDir  = "pruned/"
)

// snapNID is the name id a host's snapshot is stored under: the HMAC of
// the host id and the name, so two hosts' snapshots of one name never
// share an object. The unknown host (manifests written before hosts
// existed) uses the HMAC of the name alone, as those were stored.
func (r *region) snapNID(host format.HostID, name string) string {
	if host.IsZero() {
		return r.keys.NameID(name)
	}
	return r.keys.NameID("host/" + hex.EncodeToString(host[:]) + "/" + name)
}

type packID [16]byte

func (p packID) String() string { return hex.EncodeToString(p[:]) }

// newPackID is 8 bytes of creation time (unix seconds, big-endian) and 8
// random bytes: prune tells an old orphan from a pack being written.
func newPackID(now time.Time) (packID, error) {
	var id packID
	binary.BigEndian.PutUint64(id[:8], uint64(now.Unix()))
	if _, err := rand.Read(id[8:]); err != nil {
		return id, fmt.Errorf("pack id: %w", err)
	}
	return id, nil
}

func parsePackID(s string) (packID, bool) {
	var id packID
	if len(s) != 32 {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, false
	}
	return id, true
}

func (p packID) time() time.Time { return time.Unix(int64(binary.BigEndian.Uint64(p[:8])), 0) }

// putAll writes one object to every store in parallel and adds the bytes
// written to written (indexed by store). Any failure is an error: metadata
// and markers must be on every store.
func (r *region) putAll(ctx context.Context, name string, data []byte, written []int64) error {
	return r.putOn(ctx, nil, name, data, written)
}

// putOn is putAll on the stores on (nil: every store).
func (r *region) putOn(ctx context.Context, on []int, name string, data []byte, written []int64) error {
	if on == nil {
		on = make([]int, r.n())
		for i := range on {
			on[i] = i
		}
	}
	errs := forEach(len(on), func(j int) error {
		i := on[j]
		if err := r.stores[i].Put(ctx, name, data); err != nil {
			return fmt.Errorf("%w: store %d (%s): put %s: %w", ErrUnavailable, i, r.stores[i].Location(), name, err)
		}
		return nil
	})
	if err := firstErr(errs); err != nil {
		return err
	}
	for _, i := range on {
		if written != nil {
			written[i] += int64(len(data))
		}
	}
	return nil
}

// Index copies (index version 4; see the package doc): a pack's index is
// on m+1 of the k+m stores, its homes, so any k stores hold a copy
// (k + m+1 > k+m) and a sync writes it m+1 times, not k+m.

// indexCopies is how many stores hold a pack's index.
func (r *region) indexCopies() int { return min(r.m+1, r.n()) }

// indexHomes are the stores that hold the index of pack name:
// indexCopies() stores in a row (mod k+m) from one chosen by the random
// half of the pack id, so indexes spread evenly over the stores. A name
// that is no pack id: every store.
func (r *region) indexHomes(name string) []int {
	first, c := r.homeSpan(name)
	out := make([]int, c)
	for j := range out {
		out[j] = (first + j) % r.n()
	}
	return out
}

// homeSpan is the first of pack name's index homes and their count
// (indexHomes).
func (r *region) homeSpan(name string) (first, c int) {
	n := r.n()
	id, ok := parsePackID(name)
	if !ok {
		return 0, n
	}
	return int(binary.BigEndian.Uint64(id[8:]) % uint64(n)), r.indexCopies()
}

// indexHome reports whether store i is a home of pack name's index.
func (r *region) indexHome(name string, i int) bool {
	first, c := r.homeSpan(name)
	return (i-first+r.n())%r.n() < c
}

// indexOnHomes reports whether a listed index (sizes from list) is on
// every usable home of its pack: its write is complete. (Copies on other
// stores, written before index version 4, are extra.)
func (r *region) indexOnHomes(name string, sizes []int64) bool {
	for _, i := range r.indexHomes(name) {
		if sizes[i] < 0 && r.bad[i] == nil {
			return false
		}
	}
	return true
}

// homesUsable reports whether every home of pack name's index is usable:
// then a listing that does not name the index proves it absent.
func (r *region) homesUsable(name string) bool {
	for _, i := range r.indexHomes(name) {
		if r.bad[i] != nil {
			return false
		}
	}
	return true
}

// unusable counts the stores that are not usable.
func (r *region) unusable() int {
	n := 0
	for _, e := range r.bad {
		if e != nil {
			n++
		}
	}
	return n
}

// indexesMayHide reports whether some pack's index may be on unusable
// stores only (its homes, indexCopies() stores in a row, all unusable):
// then a chunk in no listed index is not known to be lost. Never with k
// usable stores or more.
func (r *region) indexesMayHide() bool {
	n, c := r.n(), r.indexCopies()
	for first := range n {
		hidden := true
		for j := range c {
			if r.bad[(first+j)%n] == nil {
				hidden = false
				break
			}
		}
		if hidden {
			return true
		}
	}
	return false
}

// locate finds chunk id in cs and, for a delta, its base (cs.baseOf): the
// one rule every reader goes by when either is in no listed index. While
// the homes of some index are all unusable (indexesMayHide), or a lost
// index (no good copy on the usable stores) has a home that is not usable,
// it may be in that index: an error wrapping ErrUnavailable; else the
// chunk is in no pack, or the base's error (both ErrCorrupt). Either
// names the lost indexes and unindexed packs and says that repair
// rebuilds an index from its pack (lostNote). found reports whether cs
// names the chunk itself.
func (r *region) locate(cs *chunkSet, id format.ChunkID) (loc chunkLoc, found bool, err error) {
	loc, found = cs.chunks[id]
	if !found {
		if r.indexesMayHide() || cs.lostMayHide() {
			return loc, false, fmt.Errorf("%w: chunk %v is in no index the usable stores of region %q list: %s%s", ErrUnavailable, id, r.cfg.Name, r.whyHidden(cs), cs.lostNote(r))
		}
		return loc, false, fmt.Errorf("%w: chunk %v is in no pack of region %q%s", ErrCorrupt, id, r.cfg.Name, cs.lostNote(r))
	}
	if loc.entry().IsDelta() {
		if _, err := cs.baseOf(loc); err != nil {
			if r.indexesMayHide() || cs.lostMayHide() {
				return loc, true, fmt.Errorf("%w: the base of delta chunk %v is in no index the usable stores of region %q list: %s%s", ErrUnavailable, id, r.cfg.Name, r.whyHidden(cs), cs.lostNote(r))
			}
			if note := cs.lostNote(r); note != "" {
				return loc, true, fmt.Errorf("%w%s", err, note)
			}
			return loc, true, err
		}
	}
	return loc, true, nil
}

// lostIndex is a listed pack index with no good copy (chunkSet.lost).
type lostIndex struct {
	err error
	// away: some home of the index is not usable (a good copy may be there).
	away bool
}

// lostMayHide reports whether a lost index, or the index of a pack with
// none listed (hidden), has a home that is not usable.
func (cs *chunkSet) lostMayHide() bool {
	if len(cs.hidden) > 0 {
		return true
	}
	for _, l := range cs.lost {
		if l.away {
			return true
		}
	}
	return false
}

// lostNote is what locate adds to a chunk in no index when indexes are
// lost or packs unindexed: which (at most 4 of each), and what rebuilds
// them. "" when there are none.
func (cs *chunkSet) lostNote(r *region) string {
	if len(cs.lost) == 0 && len(cs.unindexed) == 0 {
		return ""
	}
	names := func(ids []packID) string {
		slices.SortFunc(ids, func(a, b packID) int { return bytes.Compare(a[:], b[:]) })
		var out []string
		for j, id := range ids {
			if j == 4 {
				out = append(out, fmt.Sprintf("and %d more", len(ids)-j))
				break
			}
			out = append(out, id.String())
		}
		return strings.Join(out, ", ")
	}
	var parts []string
	if len(cs.lost) > 0 {
		ids := make([]packID, 0, len(cs.lost))
		for id := range cs.lost {
			ids = append(ids, id)
		}
		parts = append(parts, "pack index "+names(ids)+" has no good copy on the usable stores")
	}
	if len(cs.unindexed) > 0 {
		parts = append(parts, "pack "+names(slices.Clone(cs.unindexed))+" has no index on any store")
	}
	return fmt.Sprintf(" (%s: if the chunk is there, snapfs region repair %s rebuilds the index from the pack's own table)", strings.Join(parts, "; "), r.cfg.Name)
}

// whyHidden says why an index may be out of sight (locate): too few
// stores usable, or the stores away that are homes of a lost or unlisted
// index (named, so the engineer knows which to bring back).
func (r *region) whyHidden(cs *chunkSet) string {
	if r.indexesMayHide() || !cs.lostMayHide() {
		return r.tooFewUsable()
	}
	var ids []packID
	for id, l := range cs.lost {
		if l.away {
			ids = append(ids, id)
		}
	}
	ids = append(ids, cs.hidden...)
	away := map[int]bool{}
	for _, id := range ids {
		for _, i := range r.indexHomes(id.String()) {
			if r.bad[i] != nil {
				away[i] = true
			}
		}
	}
	var names []string
	for _, i := range slices.Sorted(maps.Keys(away)) {
		names = append(names, fmt.Sprintf("store %d (%s)", i, store.Redact(r.cfg.Stores[i])))
	}
	return fmt.Sprintf("a pack index with no good copy on the usable stores has a home away: %s may hold a good copy; bring it back and try again", strings.Join(names, ", "))
}

// tooFewUsable says why an index may be out of sight (locate).
func (r *region) tooFewUsable() string {
	return fmt.Sprintf("too few stores usable (%d of %d; each index is on %d)", r.n()-r.unusable(), r.n(), r.indexCopies())
}

// deleteAll deletes one object from every usable store.
func (r *region) deleteAll(ctx context.Context, name string) error {
	return firstErr(forEach(r.n(), func(i int) error {
		if r.bad[i] != nil {
			return nil
		}
		if err := r.stores[i].Delete(ctx, name); err != nil {
			// A store that fails a delete is unavailable, as one that
			// fails a put (putOn): exit 11, not 1 (or 10 for EROFS).
			return fmt.Errorf("%w: store %d (%s): delete %s: %w", ErrUnavailable, i, r.stores[i].Location(), name, err)
		}
		return nil
	}))
}

// getMeta reads a metadata object (typ, under dir with id) from the first
// store holding a copy that authenticates, and returns its plaintext and
// sealed bytes.
func (r *region) getMeta(ctx context.Context, typ byte, dir, id string) (pt, sealed []byte, err error) {
	return r.getMetaListed(ctx, typ, dir, id, nil)
}

// getMetaListed is getMeta trying first the stores that a listing found
// the object on (sizes, from list; nil: none known), so an index on some
// stores costs no read of the others while a listed copy is good.
func (r *region) getMetaListed(ctx context.Context, typ byte, dir, id string, sizes []int64) (pt, sealed []byte, err error) {
	var errs []error
	notFound := 0
	order := make([]int, 0, r.n())
	for i := range r.stores {
		if sizes != nil && sizes[i] >= 0 {
			order = append(order, i)
		}
	}
	for i := range r.stores {
		if sizes == nil || sizes[i] < 0 {
			order = append(order, i)
		}
	}
	for _, i := range order {
		s := r.stores[i]
		if r.bad[i] != nil {
			continue
		}
		b, err := s.Get(ctx, dir+id, 0, -1)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				notFound++
			}
			if ctx.Err() != nil {
				return nil, nil, err
			}
			errs = append(errs, fmt.Errorf("store %d: %w", i, err))
			continue
		}
		p, err := r.keys.Open(typ, id, b)
		if err != nil {
			errs = append(errs, fmt.Errorf("store %d: %w", i, err))
			continue
		}
		return p, b, nil
	}
	if notFound == len(errs) {
		return nil, nil, fmt.Errorf("%w: %s%s on any store", ErrNotFound, dir, id)
	}
	return nil, nil, fmt.Errorf("%s%s: no good copy: %w", dir, id, joinErrs(errs...))
}

// listing is what the usable stores hold under a prefix: name (without
// the prefix) -> per store size (-1: absent).
type listing map[string][]int64

func (r *region) list(ctx context.Context, prefix string) (listing, error) {
	per := make([]map[string]int64, r.n())
	errs := forEach(r.n(), func(i int) error {
		if r.bad[i] != nil {
			return nil
		}
		got := map[string]int64{}
		err := r.stores[i].List(ctx, prefix, func(name string, size int64) error {
			got[strings.TrimPrefix(name, prefix)] = size
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			// A store that cannot list is unavailable (exit 11), as one
			// that cannot be opened.
			return fmt.Errorf("%w: store %d (%s): list %s: %w", ErrUnavailable, i, r.stores[i].Location(), prefix, err)
		}
		per[i] = got
		return nil
	})
	if err := firstErr(errs); err != nil {
		return nil, err
	}
	out := listing{}
	for i, got := range per {
		for name, size := range got {
			sizes, ok := out[name]
			if !ok {
				sizes = make([]int64, r.n())
				for j := range sizes {
					sizes[j] = -1
				}
				out[name] = sizes
			}
			sizes[i] = size
		}
	}
	return out, nil
}

// chunkLoc is where a chunk is stored.
type chunkLoc struct {
	x *format.Index // the index of the pack that holds the chunk (in chunkSet.packs)
	i int32         // the chunk's entry in x
}

func (l chunkLoc) pack() packID        { return packID(l.x.Pack) }
func (l chunkLoc) entry() format.Entry { return l.x.Entries[l.i] }

// chunkSet is the region's chunks, from the pack indexes.
type chunkSet struct {
	chunks map[format.ChunkID]chunkLoc
	packs  map[packID]*format.Index
	cache  string // directory of cached index objects ("" : none)
	// unreadable: indexed packs with fewer than k shards listed.
	unreadable map[packID]bool
	// lost: listed indexes with no good copy (every copy on a usable
	// store missing or corrupt), left out of the set: their chunks are in
	// no index (locate). Set by loadChunks on the set it returns (never on
	// a kept one); repair rebuilds them from their packs' own tables.
	lost map[packID]lostIndex
	// unindexed: packs with shards listed and no index listed on any
	// store while its homes are all usable (an interrupted sync's, or a
	// pack whose index was deleted): named by locate's errors.
	unindexed []packID
	// hidden: packs with shards listed and no index listed on the usable
	// stores while some home of their index is away: a good copy may be
	// there, so a chunk in no index is unavailable, not lost (locate).
	hidden []packID
	// base: a kept set (read only) this one adds to (a sync's packs): its
	// chunks and packs count as this one's. Only lookup, index and
	// readable see it; readers that index chunks and packs directly get
	// sets without a base.
	base *chunkSet
}

// lookup finds where chunk id is stored.
func (cs *chunkSet) lookup(id format.ChunkID) (chunkLoc, bool) {
	if l, ok := cs.chunks[id]; ok {
		return l, true
	}
	if cs.base != nil {
		return cs.base.lookup(id)
	}
	return chunkLoc{}, false
}

// index is pack p's index, or nil.
func (cs *chunkSet) index(p packID) *format.Index {
	if x := cs.packs[p]; x != nil {
		return x
	}
	if cs.base != nil {
		return cs.base.index(p)
	}
	return nil
}

// isUnreadable: pack p's index is in the set, with fewer than k shards.
func (cs *chunkSet) isUnreadable(p packID) bool {
	if cs.packs[p] != nil {
		return cs.unreadable[p]
	}
	return cs.base != nil && cs.base.isUnreadable(p)
}

func (cs *chunkSet) add(x *format.Index) { cs.addPack(x, true) }

// addPack adds a pack index; a chunk in several packs is located in one
// that is readable (readable: at least k shards were listed) if any is,
// and among those as a full chunk rather than a delta (a base must be
// full; a full copy needs no other pack).
func (cs *chunkSet) addPack(x *format.Index, readable bool) {
	id := packID(x.Pack)
	cs.packs[id] = x
	if !readable {
		if cs.unreadable == nil {
			cs.unreadable = map[packID]bool{}
		}
		cs.unreadable[id] = true
	}
	for i, e := range x.Entries {
		if old, ok := cs.lookup(e.ID); !ok || readable && cs.isUnreadable(old.pack()) ||
			readable && old.entry().IsDelta() && !e.IsDelta() ||
			(readable || cs.isUnreadable(old.pack())) && !cs.baseFull(old.entry()) && cs.baseFull(e) {
			cs.chunks[e.ID] = chunkLoc{x: x, i: int32(i)}
		}
	}
}

// baseFull reports whether entry e reads with cs as far as its base goes:
// a full chunk, or a delta whose base is located at a full chunk in a
// readable pack. A delta whose base is in no pack is garbage: prune
// deleted its base's pack, keeping the delta's pack for its other chunks,
// because nothing needed the delta's chunk then; a store put back from a
// backup can list that base's index again, its pack still unreadable
// (TestRtrial11RevertedBlockAfterBasePruned).
func (cs *chunkSet) baseFull(e format.Entry) bool {
	if e.Base == nil {
		return true
	}
	b, ok := cs.lookup(*e.Base)
	return ok && !b.entry().IsDelta() && !cs.isUnreadable(b.pack())
}

// settle relocates each chunk located at a delta that does not read
// (baseFull) to another copy that does, if some pack holds one: the same
// content shipped again later (a block reverted to an earlier state) is
// found there whatever order the packs were added in (addPack prefers
// such a copy, but only when the dead delta's base is already known to be
// missing, and a new delta's own base may be added after it). A readable
// copy is preferred, then a full one. Every build ends with it, a full
// one and one on top of a kept set alike (buildSet): 0.6-0.9 ms for
// 65536 chunks against 4-22 ms for the copy of the kept set
// (BenchmarkChunkSetKeptReuse, load 14).
func (cs *chunkSet) settle() {
	var broken map[format.ChunkID]bool
	for _, x := range cs.packs {
		for _, e := range x.Entries {
			if e.Base == nil || cs.baseFull(e) {
				continue
			}
			if loc, ok := cs.chunks[e.ID]; ok && !cs.baseFull(loc.entry()) {
				if broken == nil {
					broken = map[format.ChunkID]bool{}
				}
				broken[e.ID] = true
			}
		}
	}
	if len(broken) == 0 {
		return
	}
	for _, x := range cs.packs {
		readable := !cs.unreadable[packID(x.Pack)]
		for i, e := range x.Entries {
			if !broken[e.ID] || !cs.baseFull(e) {
				continue
			}
			old := cs.chunks[e.ID]
			oldReadable := !cs.unreadable[old.pack()]
			if !cs.baseFull(old.entry()) || readable && !oldReadable ||
				readable == oldReadable && old.entry().IsDelta() && !e.IsDelta() {
				cs.chunks[e.ID] = chunkLoc{x: x, i: int32(i)}
			}
		}
	}
}

// remember adds a pack index just written and caches its sealed bytes.
func (cs *chunkSet) remember(x *format.Index, sealed []byte) {
	cs.add(x)
	if cs.cache != "" {
		_ = writeFileAtomic(filepath.Join(cs.cache, packID(x.Pack).String()), sealed)
	}
}

// Modes of loadChunks for an index missing on some usable store.
const (
	chunksRead  = iota // use it as it is (check, restore: read only)
	chunksHeal         // re-put it from a good copy; use it even if that fails (prune)
	chunksDedup        // re-put it from a good copy; leave it out if that fails (sync)
)

// loadChunks builds the chunk set from every pack index in the region,
// fetching the ones not in the local cache (<storeDir>/regions/<name>.cache/
// index/, which can always be deleted and is rebuilt from the stores).
// An index missing on some usable store (an interrupted index write) is
// handled as mode says.
func (m *Manager) loadChunks(ctx context.Context, r *region, mode int) (*chunkSet, error) {
	remote, err := r.list(ctx, indexDir)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(m.cacheDir(r.cfg.Name), "index")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("region cache: %w", err)
	}
	// Never deduplicate against a pack that cannot be read (an orphaned
	// index): its chunks are sent again. Readers prefer a readable copy.
	packs, err := r.list(ctx, packDir)
	if err != nil {
		return nil, err
	}
	// The chunk map is sized up front from the index objects' sizes (an
	// entry is 45 bytes), bounded so that a store listing a huge object
	// cannot make it allocate much: growing it as it fills rehashed it
	// several times (half the time of building it, BenchmarkChunkSetBuild).
	est := 0
	for _, sizes := range remote {
		est += int(min(slices.Max(sizes), 1<<30) / 45)
	}
	kept := m.chunkCache.get(r)
	listed := map[string]pendingPack{} // the indexes the set is made of
	var lost map[packID]lostIndex      // listed, with no good copy
	var unindexed, hidden []packID
	for name := range packs {
		if id, ok := parsePackID(name); ok && remote[name] == nil {
			if r.homesUsable(name) {
				unindexed = append(unindexed, id)
			} else {
				hidden = append(hidden, id)
			}
		}
	}
	fromMem := 0
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("region cache: %w", err)
	}
	cached := map[string]bool{}
	for _, e := range ents {
		if _, ok := remote[e.Name()]; !ok {
			_ = os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		cached[e.Name()] = true
	}
	for name, sizes := range remote {
		if _, ok := parsePackID(name); !ok {
			m.log.Warn("foreign object in region", "region", r.cfg.Name, "object", indexDir+name)
			continue
		}
		readable := r.shards(packs[name]) >= r.k
		if !readable && mode == chunksDedup {
			m.log.Warn("pack index without a readable pack; not used for dedup", "region", r.cfg.Name, "pack", name)
			continue
		}
		partial := !r.indexOnHomes(name, sizes)
		if x := kept.index(name); x != nil && !partial {
			// Decoded before: an index never changes once written.
			listed[name] = pendingPack{x, readable}
			fromMem++
			continue
		}
		var pt, sealed []byte
		var err error
		if cached[name] && !partial {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err == nil {
				pt, err = r.keys.Open(format.TypeIndex, name, b)
			}
			if err != nil {
				m.log.Warn("dropping bad cached index", "region", r.cfg.Name, "pack", name, "err", err)
				pt = nil
			}
		}
		if pt == nil {
			pt, sealed, err = r.getMetaListed(ctx, format.TypeIndex, indexDir, name, sizes)
			if err != nil && ctx.Err() != nil {
				return nil, err
			}
		}
		var x *format.Index
		if err == nil {
			if x, err = format.DecodeIndex(pt); err == nil && x.Pack != [16]byte(mustPackID(name)) {
				err = fmt.Errorf("%w: index %s names pack %x", ErrCorrupt, name, x.Pack)
			}
		}
		if errors.Is(err, format.ErrUnsupportedVersion) {
			// Of a newer snapfs: fail closed, never read as lost (a prune
			// that cannot see its deltas would delete their bases:
			// TestOldDecoderFailsClosed).
			return nil, fmt.Errorf("region %q: pack index %s: %w", r.cfg.Name, name, err)
		}
		if err != nil {
			// No good copy on the usable stores: left out (its chunks are
			// in no index: locate), never a failure of every snapshot.
			// Repair rebuilds it from its pack's own table.
			away := !r.homesUsable(name)
			m.log.Warn("pack index has no good copy on the usable stores; left out (snapfs region repair rebuilds it from its pack)", "region", r.cfg.Name, "pack", name, "homes_away", away, "err", err)
			if lost == nil {
				lost = map[packID]lostIndex{}
			}
			lost[mustPackID(name)] = lostIndex{fmt.Errorf("region %q: pack index %s: %w", r.cfg.Name, name, err), away}
			continue
		}
		if partial && mode != chunksRead {
			// Finish the interrupted index write before trusting it.
			herr := m.guard(ctx, r, false) // no index a prune removed put back
			if herr == nil {
				herr = firstErr(forEach(r.n(), func(i int) error {
					if r.bad[i] != nil || sizes[i] >= 0 || !r.indexHome(name, i) {
						return nil
					}
					if err := r.stores[i].Put(ctx, indexDir+name, sealed); err != nil {
						return fmt.Errorf("%w: store %d (%s): put %s%s: %w", ErrUnavailable, i, r.stores[i].Location(), indexDir, name, err)
					}
					return nil
				}))
			}
			if herr != nil {
				m.log.Warn("pack index not on every store", "region", r.cfg.Name, "pack", name, "err", herr)
				if mode == chunksDedup {
					continue // not trusted for dedup: its chunks are sent again
				}
			} else {
				partial = false
			}
		}
		if sealed != nil && !partial {
			_ = writeFileAtomic(filepath.Join(dir, name), sealed)
		}
		listed[name] = pendingPack{x, readable}
	}
	cs, reused := buildSet(kept, listed, est, dir)
	rc := &regionChunks{listed: listed, set: cs}
	if len(cs.chunks) > maxCachedChunks {
		rc = &regionChunks{} // too large to keep: loaded anew each time
	}
	m.chunkCache.put(r, rc)
	m.log.Debug("chunk set", "region", r.cfg.Name, "indexes", len(listed), "decoded_before", fromMem, "set_reused", reused, "chunks", len(cs.chunks))
	switch {
	case rc.set == nil || mode == chunksRead:
		if len(lost) > 0 || len(unindexed) > 0 || len(hidden) > 0 {
			c := *cs // the kept set is shared: lost, unindexed and hidden are this load's
			cs = &c
		}
	case mode == chunksDedup:
		// Sync adds the packs it writes: on top of the kept set, read only.
		cs = &chunkSet{chunks: map[format.ChunkID]chunkLoc{}, packs: map[packID]*format.Index{}, cache: dir, base: cs}
	default:
		cs = cs.clone() // prune drops orphaned indexes from its copy
	}
	cs.lost, cs.unindexed, cs.hidden = lost, unindexed, hidden
	return cs, nil
}

func mustPackID(s string) packID {
	id, _ := parsePackID(s)
	return id
}

// readManifest reads the newest copy of the manifest stored under name
// id nid.
func (r *region) readManifest(ctx context.Context, nid string) (*format.Manifest, error) {
	c, err := r.readManifestAll(ctx, nid)
	if err != nil {
		return nil, err
	}
	return c.mf, nil
}

// manifestCopies is what every usable store holds of one manifest.
type manifestCopies struct {
	mf     *format.Manifest // the newest good copy (highest Seq)
	sealed []byte           // its sealed bytes
	pts    [][]byte         // per store: the plaintext of its good copy (nil: none)
	errs   []error          // per store: why it has no good copy (nil: it has one, or is unusable)
	newest []byte           // mf encoded
}

// stale lists the usable stores whose copy is missing, bad, or differs
// from the newest.
func (c *manifestCopies) stale(r *region) []int {
	var out []int
	for i := range c.pts {
		if r.bad[i] == nil && (c.pts[i] == nil || !bytes.Equal(c.pts[i], c.newest)) {
			out = append(out, i)
		}
	}
	return out
}

// readManifestAll reads the manifest stored under name id nid from every
// usable store and picks the newest good copy: a rewrite (Prune) that
// reached only some stores is seen, never mistaken for the whole truth.
// Copies with the same sealed bytes (every store's, after a put to all)
// are opened and decoded once: a manifest of a large disk is MBs.
func (r *region) readManifestAll(ctx context.Context, nid string) (*manifestCopies, error) {
	c := &manifestCopies{pts: make([][]byte, r.n()), errs: make([]error, r.n())}
	mfs := make([]*format.Manifest, r.n())
	sealed := make([][]byte, r.n())
	got := make([]error, r.n())
	forEach(r.n(), func(i int) error {
		if r.bad[i] != nil {
			return nil
		}
		sealed[i], got[i] = r.stores[i].Get(ctx, snapDir+nid, 0, -1)
		return nil
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range sealed {
		if r.bad[i] != nil {
			continue
		}
		if err := got[i]; err != nil {
			c.errs[i] = fmt.Errorf("store %d: %w", i, err)
			sealed[i] = nil
			continue
		}
		if j := slices.IndexFunc(sealed[:i], func(b []byte) bool { return b != nil && bytes.Equal(b, sealed[i]) }); j >= 0 {
			if c.errs[j] == nil {
				c.pts[i], mfs[i] = c.pts[j], mfs[j]
			} else {
				c.errs[i] = fmt.Errorf("store %d: %w", i, errors.Unwrap(c.errs[j]))
			}
			continue
		}
		pt, err := r.keys.Open(format.TypeManifest, nid, sealed[i])
		var mf *format.Manifest
		if err == nil {
			mf, err = format.DecodeManifest(pt)
		}
		if err != nil {
			c.errs[i] = fmt.Errorf("store %d: %w", i, err)
			continue
		}
		c.pts[i], mfs[i] = pt, mf
	}
	notFound, nerr := 0, 0
	for i := range mfs {
		if mfs[i] != nil && (c.mf == nil || mfs[i].Seq > c.mf.Seq) {
			c.mf, c.sealed = mfs[i], sealed[i]
		}
		if c.errs[i] != nil {
			nerr++
			if errors.Is(c.errs[i], store.ErrNotFound) {
				notFound++
			}
		}
	}
	if c.mf != nil {
		// Re-encode what is kept so pts compare in one encoding (an old
		// version's copy equals its re-encoding only if the content is
		// the same): once per distinct copy.
		enc := map[*format.Manifest][]byte{}
		for i, mf := range mfs {
			if mf == nil {
				continue
			}
			b, ok := enc[mf]
			if !ok {
				b, _ = mf.Encode()
				enc[mf] = b
			}
			c.pts[i] = b
		}
		c.newest = enc[c.mf]
		return c, nil
	}
	if notFound == nerr {
		return nil, fmt.Errorf("%w: %s%s on any store", ErrNotFound, snapDir, nid)
	}
	return nil, fmt.Errorf("%s%s: no good copy: %w", snapDir, nid, joinErrs(c.errs...))
}

// onAll reports whether a listed object (sizes from list) is on every
// usable store. A nil sizes (an object this run wrote) counts as on all.
func (r *region) onAll(sizes []int64) bool {
	for i, s := range sizes {
		if s < 0 && r.bad[i] == nil {
			return false
		}
	}
	return true
}

// shards counts the usable stores that hold a listed object.
func (r *region) shards(sizes []int64) int {
	n := 0
	for i, s := range sizes {
		if s >= 0 && r.bad[i] == nil {
			n++
		}
	}
	return n
}

// blockMap is a disk's full block -> chunk map.
type blockMap map[uint64]format.ChunkID

// resolveDisk returns the full block map of disk of manifest mf, following
// its delta chain. cache holds manifests already read (by name id).
func (r *region) resolveDisk(ctx context.Context, mf *format.Manifest, disk string, cache map[string]*format.Manifest) (blockMap, *format.ManifestDisk, error) {
	chain, err := r.diskChain(ctx, mf, disk, cache)
	if err != nil {
		return nil, nil, err
	}
	top := chain[0]
	bm := make(blockMap, len(chain[len(chain)-1].Entries))
	for i := len(chain) - 1; i >= 0; i-- {
		for _, e := range chain[i].Entries {
			if e.Zero {
				delete(bm, e.Block)
			} else {
				bm[e.Block] = e.ID
			}
		}
	}
	nblocks := top.Blocks()
	for b := range bm {
		if b >= nblocks { // the disk shrank along the chain
			delete(bm, b)
		}
	}
	return bm, top, nil
}

// diskChain returns disk of manifest mf and of every manifest of its delta
// chain, newest first (the last is a full map).
func (r *region) diskChain(ctx context.Context, mf *format.Manifest, disk string, cache map[string]*format.Manifest) ([]*format.ManifestDisk, error) {
	var chain []*format.ManifestDisk
	cur := mf
	for depth := 0; ; depth++ {
		d := cur.Disk(disk)
		if d == nil {
			return nil, fmt.Errorf("%w: remote snapshot %q has no disk %q", ErrNotFound, cur.Name, disk)
		}
		chain = append(chain, d)
		if d.Parent == "" {
			return chain, nil
		}
		if depth > format.MaxDepth*4 {
			return nil, fmt.Errorf("%w: manifest chain of %q disk %q too long", ErrCorrupt, mf.Name, disk)
		}
		p, ok := cache[d.Parent]
		if !ok {
			var err error
			if p, err = r.readManifest(ctx, d.Parent); err != nil {
				return nil, fmt.Errorf("parent of remote snapshot %q: %w", cur.Name, err)
			}
			if cache != nil {
				cache[d.Parent] = p
			}
		}
		cur = p
	}
}
