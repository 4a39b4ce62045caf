package replicate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/snapfs/snapfs/replicate/erasure"
	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
)

// Problem kinds.
const (
	ProblemMissing     = "missing"
	ProblemCorrupt     = "corrupt"
	ProblemUnreachable = "unreachable"
	// ProblemStale: a good manifest copy that differs from the newest
	// copy (an interrupted rewrite); Repair puts the newest copy.
	ProblemStale = "stale"
	// ProblemPruned: a store's copy of the manifest of a snapshot that
	// prune removed (the store was away, or put back from a backup, while
	// prune ran; see prunedCopies): left out of listings and restores;
	// Repair and Prune delete it, never put it back on the other stores.
	ProblemPruned = "pruned"
	// ProblemUnwritable: a store that is up and read but refused the
	// check's shared lock object (read-only, full, no write permission):
	// restores, checks and lazy disks still read it; sync, prune and
	// repair fail until it takes writes. Repair cannot help.
	ProblemUnwritable = "unwritable"
)

// Problem is one bad object copy on one store.
type Problem struct {
	Store int `json:"store"` // -1: not about one store

	Object string `json:"object"`
	Kind   string `json:"kind"`
	Err    string `json:"error,omitempty"`
}

// Report is what Check found.
type Report struct {
	Stores        int  `json:"stores"`
	Packs         int  `json:"packs"`
	Indexes       int  `json:"indexes"`
	Manifests     int  `json:"manifests"`
	ShardsChecked int  `json:"shards_checked"`
	DataRead      bool `json:"data_read"`
	// DeltasChecked counts the delta chunks rebuilt and checked against
	// their ids (with DataRead).
	DeltasChecked int       `json:"deltas_checked,omitempty"`
	Problems      []Problem `json:"problems"`
	// Lost are the remote snapshots that cannot be restored: they need a
	// chunk in no pack index, a pack with fewer than k good shards on the
	// reachable stores while the unreachable ones could not make up the
	// difference, or a manifest that is gone. Snapshots are named as in
	// PruneStats.Deleted; one whose manifest has no good copy on any store
	// (its name unknown) as "unreadable manifest <name id>".
	Lost []string `json:"lost,omitempty"`
	// LostPacks are the indexed packs that cannot be read (fewer than k
	// good shards, counting unreachable stores as good).
	LostPacks []string `json:"lost_packs,omitempty"`
	// Unavailable are the snapshots that cannot be restored now because
	// stores are unreachable, but may be once they are back: not lost.
	Unavailable []string `json:"unavailable,omitempty"`
	// Degraded are restorable snapshots that need a pack with a missing
	// or corrupt shard: Repair rebuilds it.
	Degraded []string `json:"degraded,omitempty"`
	// Unindexed are packs without an index on any store: garbage of an
	// interrupted sync, which Prune deletes after OrphanAge and Repair at
	// once. Not a problem: a pack whose table holds a chunk a snapshot
	// needs (its index was lost) is in RebuildableIndexes instead.
	Unindexed []string `json:"unindexed,omitempty"`
	// OrphanIndexes are pack indexes whose pack has no shard on any store;
	// Prune and Repair delete them (a snapshot needing one is lost).
	OrphanIndexes []string `json:"orphan_indexes,omitempty"`
	// DeadPacks are indexed packs with fewer than k good shards (counting
	// unreachable stores as good) that no snapshot needs: what a stale
	// store kept of packs prune deleted. Garbage, not lost data: Repair
	// (when every store is reachable) and Prune delete them.
	DeadPacks []string `json:"dead_packs,omitempty"`
	// RebuildableIndexes are the packs whose index has no good copy on
	// any store (deleted, or every copy corrupt) while the pack's own
	// table reads: each is also a problem (store -1), and Repair rebuilds
	// it from the pack.
	RebuildableIndexes []string `json:"rebuildable_indexes,omitempty"`
	// Unreachable are the stores that could not be used.
	Unreachable []int `json:"unreachable,omitempty"`
	// Unwritable are the stores that were read but refused a write (the
	// check's lock object): each is also a ProblemUnwritable.
	Unwritable []int `json:"unwritable,omitempty"`
	// Verdict sums the report up for scripts: "ok"; "unavailable" (stores
	// unreachable or unwritable, nothing known lost or degraded: exit 11,
	// repair cannot help, bring the stores back or make them take writes);
	// "degraded" (copies missing or corrupt
	// on reachable stores, nothing lost: repair); "lost" (some snapshot
	// cannot be restored).
	Verdict string `json:"verdict"`
}

// verdict computes Report.Verdict.
func (r Report) verdict() string {
	switch {
	case len(r.Lost) > 0 || len(r.LostPacks) > 0:
		return "lost"
	case r.OK() && len(r.Unreachable) == 0:
		return "ok"
	case len(r.Degraded) == 0 && !slices.ContainsFunc(r.Problems, func(p Problem) bool { return p.Kind != ProblemUnreachable && p.Kind != ProblemUnwritable }):
		return "unavailable"
	}
	return "degraded"
}

// OK reports whether nothing was wrong: no problem copy, no lost,
// unavailable or degraded snapshot. Garbage (unindexed packs, orphaned
// indexes) is not a problem.
func (r Report) OK() bool {
	return len(r.Problems) == 0 && len(r.Lost) == 0 && len(r.Degraded) == 0 && len(r.Unavailable) == 0 && len(r.LostPacks) == 0
}

// Check verifies that every object is on every store it belongs to: the
// config, indexes, manifests and markers on all stores, shard i of every
// pack on store i, with valid headers (metadata is authenticated, shard
// headers parsed). With readData every shard's checksum is verified too.
// Problems are reported, not errors; the error is for a check that could
// not run.
func (m *Manager) Check(ctx context.Context, regionName string, readData bool, progress Progress) (Report, error) {
	progress = orNoProgress(progress)
	progress.Event(Event{Type: EventStart, Op: "check", Region: regionName})
	r, err := m.openRegion(ctx, regionName, false)
	if err != nil {
		return Report{}, err
	}
	defer r.close()
	ctx, unlock, err := m.lock(ctx, r, false, "check")
	if err != nil {
		return Report{}, err
	}
	defer unlock()
	rep, _, err := m.check(ctx, r, readData, true, progress)
	if err == nil {
		rep.unwritable(ctx)
	}
	ev := Event{Type: EventDone, Op: "check", Region: regionName}
	if err != nil {
		ev.Err = err.Error()
	}
	progress.Event(ev)
	return rep, err
}

// unwritable adds to the report the stores that refused the shared lock
// Check holds (ctx's lease) while they are read: a store up but not
// writable, on which every sync, prune and repair fails.
func (r *Report) unwritable(ctx context.Context) {
	ls, _ := ctx.Value(leaseKey{}).(*lease)
	if ls == nil {
		return
	}
	for i, e := range ls.refused {
		if e == nil {
			continue
		}
		r.Unwritable = append(r.Unwritable, i)
		r.Problems = append(r.Problems, Problem{Store: i, Object: "*", Kind: ProblemUnwritable,
			Err: fmt.Sprintf("refuses writes (read-only? full?): %v; restores, checks and lazy disks read it, sync, prune and repair fail until it takes writes", e)})
	}
	r.Verdict = r.verdict()
}

// packProblems maps a pack to its problem stores.
type packProblems map[packID][]int

// checked is what check found that repair acts on besides the report.
type checked struct {
	pp      packProblems             // packs with bad shards
	rebuild map[packID]*rebuiltIndex // lost indexes their packs' tables rebuild
	// keepUnindexed: no unindexed pack is garbage (classes.keepUnindexed,
	// or the snapshots could not be classified).
	keepUnindexed bool
}

// check checks the region. shared: the caller holds the shared lock, so
// syncs may be running beside it and their unfinished copies are not
// reported (inFlight); repair holds the exclusive lock, where every missing
// copy is one to put back.
func (m *Manager) check(ctx context.Context, r *region, readData, shared bool, progress Progress) (Report, checked, error) {
	rep := Report{Stores: r.n(), DataRead: readData}
	add := func(p Problem) { rep.Problems = append(rep.Problems, p) }
	for i, e := range r.bad {
		if e != nil {
			if !errors.Is(e, store.ErrNotFound) && !errors.Is(e, format.ErrCorrupt) {
				rep.Unreachable = append(rep.Unreachable, i)
			}
			kind := ProblemUnreachable
			if errors.Is(e, store.ErrNotFound) || errors.Is(e, format.ErrCorrupt) {
				kind = ProblemCorrupt
				if errors.Is(e, store.ErrNotFound) {
					kind = ProblemMissing
				}
				add(Problem{Store: i, Object: configName, Kind: kind, Err: e.Error()})
				continue
			}
			add(Problem{Store: i, Object: "*", Kind: kind, Err: e.Error()})
		}
	}
	// Metadata: on every usable store, authenticating.
	var indexes listing
	var pruned map[string]bool         // manifests of pruned snapshots a stale store kept
	markerHosts := map[string]string{} // copying marker -> its host's id, as read here (inFlight)
	for _, md := range []struct {
		dir string
		typ byte
		n   *int
	}{{indexDir, format.TypeIndex, &rep.Indexes}, {snapDir, format.TypeManifest, &rep.Manifests}, {copyDir, format.TypeMarker, nil}} {
		l, err := r.list(ctx, md.dir)
		if err != nil {
			return rep, checked{}, err
		}
		if md.n != nil {
			*md.n = len(l)
		}
		if md.dir == indexDir {
			indexes = l
		}
		if md.dir == snapDir {
			marks, err := r.list(ctx, copyDir)
			if err != nil {
				return rep, checked{}, err
			}
			if pruned, err = m.prunedCopies(ctx, r, l, marks); err != nil {
				return rep, checked{}, err
			}
			rep.Manifests -= len(pruned)
		}
		for _, name := range sortedKeys(l) {
			sizes := l[name]
			if md.dir == snapDir && pruned[name] {
				for i, n := range sizes {
					if r.bad[i] == nil && n >= 0 {
						add(Problem{Store: i, Object: snapDir + name, Kind: ProblemPruned,
							Err: "copy of a snapshot prune removed (this store was away or put back from a backup): repair deletes it"})
					}
				}
				continue
			}
			var pts [][]byte // a marker's plaintext per store
			if md.dir == copyDir {
				pts = make([][]byte, r.n())
			}
			errs := forEach(r.n(), func(i int) error {
				if r.bad[i] != nil {
					return nil
				}
				if sizes[i] < 0 && md.dir == indexDir && !r.indexHome(name, i) {
					return nil // an index is on its homes (a copy elsewhere, of index version 3, is checked too)
				}
				if sizes[i] < 0 {
					return store.ErrNotFound
				}
				b, err := r.stores[i].Get(ctx, md.dir+name, 0, -1)
				if err != nil {
					return err
				}
				pt, err := r.keys.Open(md.typ, name, b)
				if err == nil && pts != nil {
					pts[i] = pt
				}
				return err
			})
			for _, pt := range pts {
				if mk, err := format.DecodeMarker(pt); pt != nil && err == nil {
					markerHosts[name] = mk.Host.String()
					break
				}
			}
			for i, err := range errs {
				if err == nil {
					continue
				}
				kind := ProblemCorrupt
				if errors.Is(err, store.ErrNotFound) {
					kind = ProblemMissing
				}
				add(Problem{Store: i, Object: md.dir + name, Kind: kind, Err: err.Error()})
			}
			if md.dir != snapDir {
				continue
			}
			// Copies that authenticate must also be the same manifest.
			c, err := r.readManifestAll(ctx, name)
			if err != nil {
				continue // reported above
			}
			for _, i := range c.stale(r) {
				if c.pts[i] != nil {
					add(Problem{Store: i, Object: md.dir + name, Kind: ProblemStale, Err: fmt.Sprintf("copy differs from the newest (sequence %d)", c.mf.Seq)})
				}
			}
		}
	}
	// Packs: shard i on store i. Shards of a pack without an index are
	// garbage of an interrupted sync: counted, never a problem.
	packs, err := r.list(ctx, packDir)
	if err != nil {
		return rep, checked{}, err
	}
	rep.Packs = len(packs)
	pp := packProblems{}
	ps := packStates{}
	unreach := len(rep.Unreachable)
	names := sortedKeys(packs)
	for n, name := range names {
		id, ok := parsePackID(name)
		if !ok {
			continue
		}
		if indexes[name] == nil {
			if r.homesUsable(name) { // else its index may be on the unusable stores
				rep.Unindexed = append(rep.Unindexed, name)
			}
			continue
		}
		sizes := packs[name]
		errs := forEach(r.n(), func(i int) error {
			if r.bad[i] != nil {
				return r.bad[i]
			}
			if sizes[i] < 0 {
				return store.ErrNotFound
			}
			var h erasure.Header
			if readData {
				b, err := r.stores[i].Get(ctx, packDir+name, 0, -1)
				if err != nil {
					return err
				}
				if h, _, err = erasure.DecodeShard(b); err != nil {
					return err
				}
			} else {
				b, err := r.stores[i].Get(ctx, packDir+name, 0, min(int64(erasure.HeaderSize), sizes[i]))
				if err != nil {
					return err
				}
				if h, err = erasure.ParseHeader(b); err != nil {
					return err
				}
				if int64(erasure.HeaderSize)+h.PayloadLen != sizes[i] {
					return fmt.Errorf("%w: %d bytes, header says %d", erasure.ErrCorruptShard, sizes[i], int64(erasure.HeaderSize)+h.PayloadLen)
				}
			}
			if h.Index != i || h.K != r.k || h.M != r.m {
				return fmt.Errorf("%w: shard %d of %d+%d at store %d", erasure.ErrCorruptShard, h.Index, h.K, h.M, i)
			}
			return nil
		})
		bad, badReachable := 0, 0
		for i, err := range errs {
			rep.ShardsChecked++
			if err == nil {
				continue
			}
			bad++
			pp[id] = append(pp[id], i)
			if r.bad[i] != nil {
				continue // reported once for the store
			}
			badReachable++
			kind := ProblemCorrupt
			if errors.Is(err, store.ErrNotFound) {
				kind = ProblemMissing
			}
			add(Problem{Store: i, Object: packDir + name, Kind: kind, Err: err.Error()})
		}
		switch good := r.n() - bad; {
		case good+unreach < r.k:
			rep.LostPacks = append(rep.LostPacks, name)
			ps[id] = packLost
		case good < r.k:
			ps[id] = packUnavailable
		case badReachable > 0:
			ps[id] = packDegraded
		}
		if n%16 == 0 {
			progress.Event(Event{Type: EventBlocks, Op: "check", Region: r.cfg.Name, Pack: name, Blocks: int64(n), BlocksTotal: int64(len(names))})
		}
	}
	// An index whose pack has no shard on any reachable store: orphaned
	// when every store was reachable, else perhaps on the others.
	for _, name := range sortedKeys(indexes) {
		id, ok := parsePackID(name)
		if !ok {
			continue
		}
		if _, ok := packs[name]; ok {
			continue
		}
		if unreach == 0 {
			rep.OrphanIndexes = append(rep.OrphanIndexes, name)
			ps[id] = packLost
		} else if unreach >= r.k {
			ps[id] = packUnavailable
		} else {
			ps[id] = packLost
		}
	}
	var bad map[badChunk]bool
	if readData {
		// Every delta rebuilds over its base and hashes to its id.
		n, b, err := m.checkDeltas(ctx, r, ps, add)
		if err != nil {
			return rep, checked{}, err
		}
		rep.DeltasChecked, bad = n, b
	}
	// Which snapshots need a pack with problems, a chunk in no index or a
	// delta that does not rebuild.
	cls, err := m.classifySnapshots(ctx, r, ps, bad)
	keepUnindexed := err != nil || cls.keepUnindexed
	if err != nil {
		m.log.Warn("check: cannot tell degraded snapshots", "region", r.cfg.Name, "err", err)
		add(Problem{Store: -1, Object: snapDir, Kind: ProblemCorrupt, Err: "cannot tell which snapshots are degraded: " + err.Error()})
	}
	rep.Degraded, rep.Lost, rep.Unavailable = cls.labels[packDegraded], cls.labels[packLost], cls.labels[packUnavailable]
	// Lost indexes: a problem each (not of one store), with the snapshots
	// needing them and what rebuilds them.
	for _, id := range sortedIDs(cls.rebuild) {
		rb, name := cls.rebuild[id], id.String()
		rep.RebuildableIndexes = append(rep.RebuildableIndexes, name)
		rep.Unindexed = slices.DeleteFunc(rep.Unindexed, func(n string) bool { return n == name })
		kind, what := ProblemMissing, "on no store"
		if rb.listed {
			kind, what = ProblemCorrupt, "no good copy on the usable stores"
		}
		slices.Sort(rb.needed)
		add(Problem{Store: -1, Object: indexDir + name, Kind: kind,
			Err: fmt.Sprintf("pack index %s; needed by %s; snapfs region repair rebuilds it from the pack's own table", what, joinOrNone(rb.needed))})
	}
	for _, id := range sortedIDs(cls.unrebuilt) {
		add(Problem{Store: -1, Object: indexDir + id.String(), Kind: ProblemCorrupt,
			Err: "pack index: no good copy on the usable stores, and the pack's own table cannot be read either: " + cls.unrebuilt[id].Error()})
	}
	if err == nil && cls.complete {
		// A lost pack no snapshot needs is garbage a stale store kept (its
		// index and shards of a pack prune deleted), not lost data: its
		// missing copies are no problem, and repair deletes it.
		dead := map[string]bool{}
		rep.LostPacks = slices.DeleteFunc(rep.LostPacks, func(name string) bool {
			id, _ := parsePackID(name)
			if cls.packs[id] {
				return false
			}
			dead[name] = true
			delete(pp, id)
			rep.DeadPacks = append(rep.DeadPacks, name)
			return true
		})
		rep.Problems = slices.DeleteFunc(rep.Problems, func(p Problem) bool {
			if name, ok := cutPrefix(p.Object, packDir); ok {
				return dead[name]
			}
			if name, ok := cutPrefix(p.Object, indexDir); ok {
				return dead[name]
			}
			return false
		})
	}
	if err == nil && shared {
		rep.Problems = m.inFlight(ctx, r, rep.Problems, cls.packs, markerHosts)
	}
	rep.Verdict = rep.verdict()
	if err := m.saveCheckState(r.cfg.Name, checkState{Time: m.opts.Now().UTC(), Degraded: cls.nids}); err != nil {
		m.log.Warn("check: state not saved", "region", r.cfg.Name, "err", err)
	}
	return rep, checked{pp: pp, rebuild: cls.rebuild, keepUnindexed: keepUnindexed}, nil
}

// packState is how bad a pack is; higher is worse.
type packState int

const (
	packOK packState = iota
	packDegraded
	packUnavailable
	packLost
)

type packStates map[packID]packState

type classes struct {
	labels map[packState][]string // snapshot labels by their worst pack
	nids   []string               // name ids of every snapshot not OK
	packs  map[packID]bool        // the packs some snapshot needs
	// complete: every manifest was read and resolved, so packs holds
	// every pack any snapshot needs (a pack outside it is garbage).
	complete bool
	// rebuild: the indexes repair rebuilds from their packs' tables (a
	// lost index, or an unindexed pack a snapshot needs).
	rebuild map[packID]*rebuiltIndex
	// unrebuilt: lost indexes whose pack's table cannot be read either.
	unrebuilt map[packID]error
	// keepUnindexed: some snapshot needs a chunk in no index and in no
	// pack table read: no unindexed pack is known to be garbage.
	keepUnindexed bool
}

// inFlight drops from problems the missing copies that are a running
// sync's work, not damage (check shares the region with syncs; trial 9):
// a copy that is there when looked at again; a missing copy of a copying
// marker (a state, read from any store); a missing copy of an index whose
// pack no snapshot needs (sync and prune put an index on every store
// before they use it); a missing copy of a manifest whose copying marker
// is still there and whose host has a live sync lock (its sync puts it on
// every store before it removes the marker; a dead sync's half-written
// manifest is reported, as before).
func (m *Manager) inFlight(ctx context.Context, r *region, problems []Problem, needed map[packID]bool, markerHosts map[string]string) []Problem {
	out := problems[:0]
	var live map[string]bool // hosts with a live sync lock (read once)
	for _, p := range problems {
		if p.Kind != ProblemMissing || p.Store < 0 || p.Object == configName || r.bad[p.Store] != nil {
			out = append(out, p)
			continue
		}
		dir, name, _ := strings.Cut(p.Object, "/")
		dir += "/"
		var settled bool
		switch dir {
		case copyDir:
			settled = true
		case indexDir:
			id, ok := parsePackID(name)
			settled = ok && !needed[id]
		case snapDir:
			if host, marked := markerHosts[name]; marked {
				if live == nil {
					live = m.liveSyncHosts(ctx, r)
				}
				settled = live[host]
			}
		}
		if !settled && (dir == indexDir || dir == snapDir) {
			if _, err := r.stores[p.Store].Get(ctx, p.Object, 0, 1); err == nil {
				settled = true // put since the listing
			}
		}
		if settled {
			m.log.Debug("check: a missing copy that a sync is writing", "region", r.cfg.Name, "store", p.Store, "object", p.Object)
			continue
		}
		out = append(out, p)
	}
	return out
}

// classifySnapshots sorts the snapshots by the worst pack they need: a
// chunk in no index, a delta whose base is in none, a copy in bad (a delta
// that does not rebuild, read where readers read the chunk), or a
// manifest chain that cannot be resolved, is lost.
func (m *Manager) classifySnapshots(ctx context.Context, r *region, ps packStates, bad map[badChunk]bool) (classes, error) {
	out := classes{labels: map[packState][]string{}, packs: map[packID]bool{}}
	// A manifest with no good copy on any store cannot be restored: its
	// snapshot is lost (so are deltas over it: resolveDisk fails).
	// The manifests first, then the indexes: a sync puts a manifest only
	// once every index it needs is on the stores, so a manifest read here
	// has its indexes in the chunk set read after; the other way round, a
	// sync that ended in between made its snapshot look lost
	// (TestTrial9CheckNoFalseLostDuringSync).
	unreadable := map[string]error{}
	mfs, _, _, err := m.scanManifests(ctx, r, false, unreadable)
	if err != nil {
		return out, err
	}
	cs, err := m.loadChunks(ctx, r, chunksRead)
	if err != nil {
		return out, err
	}
	for _, nid := range sortedKeysOf(unreadable) {
		out.labels[packLost] = append(out.labels[packLost], "unreadable manifest "+nid)
		out.nids = append(out.nids, nid)
	}
	// Fewer than k stores usable, or a lost or unlisted index with a home
	// away: a chunk in no index may be in an index on those stores.
	hidden := r.indexesMayHide() || cs.lostMayHide()
	missing := map[format.ChunkID]bool{}
	out.pass(ctx, m, r, mfs, cs, ps, bad, hidden, missing, nil)
	// A lost index (no good copy), or an unindexed pack holding a chunk a
	// snapshot needs that is in no index: the pack's own table tells.
	// Those that read are indexes repair rebuilds; the snapshots are
	// classified again with them, their packs degraded.
	out.rebuild, out.unrebuilt, _, err = m.packTables(ctx, r, cs, missing, true)
	if err != nil {
		return out, err
	}
	if len(out.rebuild) > 0 {
		cs = cs.clone()
		for _, id := range sortedIDs(out.rebuild) {
			cs.add(out.rebuild[id].x)
			ps[id] = max(ps[id], packDegraded)
		}
		cs.settle()
		out.labels, out.nids, out.packs = map[packState][]string{}, nil, map[packID]bool{}
		for _, nid := range sortedKeysOf(unreadable) {
			out.labels[packLost] = append(out.labels[packLost], "unreadable manifest "+nid)
			out.nids = append(out.nids, nid)
		}
		missing = map[format.ChunkID]bool{}
		out.pass(ctx, m, r, mfs, cs, ps, bad, hidden, missing, out.rebuild)
	}
	// A needed chunk in no index nor any table read: every unindexed pack
	// may hold it (none is garbage), and what snapshots need is not known.
	out.keepUnindexed = len(missing) > 0
	out.complete = len(unreadable) == 0 && !out.keepUnindexed && out.complete
	for _, l := range out.labels {
		slices.Sort(l)
	}
	return out, nil
}

// rebuiltIndex is an index made from its pack's own table (packTable):
// of a listed index with no good copy, or of an unindexed pack a snapshot
// needs.
type rebuiltIndex struct {
	x      *format.Index
	sealed []byte
	listed bool     // the index is listed (every copy corrupt); else on no store
	needed []string // labels of the snapshots that need the pack
}

// pass classifies every manifest of mfs by the chunks it needs in cs (one
// pass of classifySnapshots): labels, nids and packs are added to; a
// needed chunk (or delta base) in no index is added to missing; the
// labels of the snapshots needing a pack of rebuilt are added to it.
func (out *classes) pass(ctx context.Context, m *Manager, r *region, mfs map[string]*format.Manifest, cs *chunkSet, ps packStates, bad map[badChunk]bool, hidden bool, missing map[format.ChunkID]bool, rebuilt map[packID]*rebuiltIndex) {
	out.complete = true
	for _, nid := range sortedKeysOf(mfs) {
		mf := mfs[nid]
		worst := packOK
		var uses map[packID]bool // the rebuilt packs it needs
		for _, d := range mf.Disks {
			bm, _, err := r.resolveDisk(ctx, mf, d.Name, mfs)
			if err != nil {
				worst = packLost
				out.complete = false // what its own entries name is still needed
				break
			}
			for _, id := range bm {
				loc, ok := cs.chunks[id]
				if !ok && hidden {
					// Its index may be on unusable stores only (its
					// homes): not known lost.
					worst, out.complete = max(worst, packUnavailable), false
					continue
				}
				if !ok {
					worst = packLost
					missing[id] = true
					continue // every missing chunk, for the packs' tables
				}
				out.packs[loc.pack()] = true // every one, for inFlight
				worst = max(worst, ps[loc.pack()])
				if rebuilt[loc.pack()] != nil {
					if uses == nil {
						uses = map[packID]bool{}
					}
					uses[loc.pack()] = true
				}
				if loc.entry().IsDelta() { // and its base's
					bl, err := cs.baseOf(loc)
					if err != nil && hidden {
						worst, out.complete = max(worst, packUnavailable), false
						continue
					}
					if err != nil {
						worst = packLost
						missing[*loc.entry().Base] = true
						continue
					}
					out.packs[bl.pack()] = true
					worst = max(worst, ps[bl.pack()])
					if rebuilt[bl.pack()] != nil {
						if uses == nil {
							uses = map[packID]bool{}
						}
						uses[bl.pack()] = true
					}
				}
				if bad[badChunk{loc.pack(), id}] {
					worst = packLost // its other chunks still count in packs
				}
			}
		}
		for p := range uses {
			rebuilt[p].needed = append(rebuilt[p].needed, m.label(mf))
		}
		if worst != packOK {
			out.labels[worst] = append(out.labels[worst], m.label(mf))
			out.nids = append(out.nids, nid)
		}
	}
}

// joinOrNone is names joined by ", ", or "no snapshot".
func joinOrNone(names []string) string {
	if len(names) == 0 {
		return "no snapshot"
	}
	return strings.Join(names, ", ")
}

func sortedKeys(l listing) []string {
	out := make([]string, 0, len(l))
	for k := range l {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RepairReport is what Repair did.
type RepairReport struct {
	Before   Report    `json:"before"`
	Repaired []Problem `json:"repaired"`
	Failed   []Problem `json:"failed,omitempty"`
	// Garbage removed: unindexed packs, orphaned indexes, copying markers
	// of dead syncs.
	OrphansDeleted int `json:"orphans_deleted"`
	IndexesDeleted int `json:"indexes_deleted"`
	MarkersDeleted int `json:"markers_deleted"`
	// DeadPacksDeleted: indexed packs no snapshot needs that could not be
	// read (Report.DeadPacks), deleted with their indexes.
	DeadPacksDeleted int `json:"dead_packs_deleted"`
	// IndexesRebuilt are the packs whose lost index (no good copy on any
	// store) Repair rebuilt from the pack's own table and put on its homes.
	IndexesRebuilt []string `json:"indexes_rebuilt"`
}

// Repair checks the region with readData and rewrites every missing or
// corrupt copy: pack shards are rebuilt from the good shards (any k),
// metadata is copied from a store with a good copy, and a store's config
// is re-made from the region's parameters. Unreachable stores are left.
// A pack index with no good copy on any store is rebuilt from the pack's
// own table (RepairReport.IndexesRebuilt; see the package doc, "Lost
// indexes"). Repair holds the exclusive lock, so it also removes garbage:
// unindexed packs no snapshot needs, copying markers of dead syncs, and
// (when every store is reachable) indexes whose pack is gone.
func (m *Manager) Repair(ctx context.Context, regionName string, progress Progress) (RepairReport, error) {
	return m.RepairWith(ctx, regionName, RepairOptions{}, progress)
}

// RepairOptions are Repair's choices.
type RepairOptions struct {
	// NewStores are stores (by shard index) that replace lost ones: each
	// must hold no region marker (an empty new disk or bucket); Repair
	// writes the marker and then rebuilds everything the store should
	// hold. Without this, a store without the marker is never written to
	// (it may be an unmounted file system).
	NewStores []int
}

// RepairWith is Repair with options.
func (m *Manager) RepairWith(ctx context.Context, regionName string, o RepairOptions, progress Progress) (RepairReport, error) {
	progress = orNoProgress(progress)
	progress.Event(Event{Type: EventStart, Op: "repair", Region: regionName})
	r, err := m.openRegion(ctx, regionName, false)
	if err != nil {
		return RepairReport{}, err
	}
	defer r.close()
	ctx, unlock, err := m.lock(ctx, r, true, "repair")
	if err != nil {
		return RepairReport{}, err
	}
	defer unlock()
	for _, i := range o.NewStores {
		if i < 0 || i >= r.n() {
			return RepairReport{}, fmt.Errorf("%w: new store %d: the region has stores 0 to %d", ErrInvalid, i, r.n()-1)
		}
		m.reopenNew(ctx, r, i)
		if r.bad[i] == nil {
			return RepairReport{}, fmt.Errorf("%w: new store %d (%s) already holds the region's marker: nothing written; run region repair without --new-store to rebuild what it lacks", ErrInvalid, i, store.Redact(r.cfg.Stores[i]))
		}
		if !errors.Is(r.bad[i], ErrNoMarker) {
			return RepairReport{}, fmt.Errorf("%w: new store %d (%s) is not a store without a region marker (%v): nothing written", ErrInvalid, i, store.Redact(r.cfg.Stores[i]), r.bad[i])
		}
		// Only an empty store is taken: one that holds objects but no
		// marker is someone else's (a typo in the URL, a file system
		// mounted at the wrong place), and the region is never written
		// beside foreign data (TestRev15trialNewStoreNotForeign).
		if r.stores[i] != nil {
			var first string
			err := r.stores[i].List(ctx, "", func(name string, _ int64) error { first = name; return errStopList })
			if err != nil && !errors.Is(err, errStopList) {
				return RepairReport{}, fmt.Errorf("%w: new store %d (%s): list: %w", ErrUnavailable, i, store.Redact(r.cfg.Stores[i]), err)
			}
			if first != "" {
				return RepairReport{}, fmt.Errorf("%w: new store %d (%s) is not empty (it holds %q and no region marker: another application's data, or the wrong URL?): nothing written; give an empty directory or bucket", ErrInvalid, i, store.Redact(r.cfg.Stores[i]), first)
			}
		}
		if err := m.guard(ctx, r, false); err != nil {
			return RepairReport{}, fmt.Errorf("repair: %w", err)
		}
		if err := m.repairConfig(ctx, r, i); err != nil {
			return RepairReport{}, fmt.Errorf("repair: new store %d: %w", i, err)
		}
		r.bad[i] = nil
		m.log.Info("new store of the region: marker written", "region", regionName, "store", i)
	}
	before, ck, err := m.check(ctx, r, true, false, progress)
	out := RepairReport{Before: before}
	if err != nil {
		return out, err
	}
	fail := func(p Problem, err error) {
		p.Err = err.Error()
		out.Failed = append(out.Failed, p)
	}
	var toRebuild []Problem // lost indexes check found rebuildable
	for _, p := range before.Problems {
		if p.Store < 0 && rebuildable(ck, p) {
			toRebuild = append(toRebuild, p) // rebuilt below
			continue
		}
		if p.Kind == ProblemUnreachable || p.Store < 0 {
			out.Failed = append(out.Failed, p)
			continue
		}
		switch {
		case p.Object == configName:
			if err := m.repairConfig(ctx, r, p.Store); err != nil {
				fail(p, err)
				continue
			}
			r.bad[p.Store] = nil
			out.Repaired = append(out.Repaired, p)
		}
	}
	problems, dead := before.Problems, before.DeadPacks
	if len(out.Repaired) > 0 { // stores are usable again: see what they lack
		var again Report
		if again, ck, err = m.check(ctx, r, true, false, progress); err != nil {
			return out, err
		}
		problems, dead = again.Problems, again.DeadPacks
	}
	// Lost indexes first: the copies check found corrupt are then put
	// back from the rebuilt one, as any metadata copy.
	for _, id := range sortedIDs(ck.rebuild) {
		rb := ck.rebuild[id]
		p := Problem{Store: -1, Object: indexDir + id.String(), Kind: ProblemMissing}
		if rb.listed {
			p.Kind = ProblemCorrupt
		}
		if err := m.putRebuilt(ctx, r, rb.x, rb.sealed); err != nil {
			fail(p, fmt.Errorf("index rebuilt from its pack not written: %w", err))
			continue
		}
		out.Repaired = append(out.Repaired, p)
		out.IndexesRebuilt = append(out.IndexesRebuilt, id.String())
		m.log.Info("pack index rebuilt from its pack's own table", "region", regionName, "pack", id.String(), "entries", len(rb.x.Entries), "needed_by", rb.needed)
		progress.Event(Event{Type: EventPack, Op: "repair", Region: regionName, Pack: id.String()})
	}
	// A lost index the first check found rebuildable and the second
	// (after stores were repaired) did not is still lost unless a store
	// made usable again lists it: never left out of the report
	// (TestLostIndexNotRebuiltIsReported).
	var indexes listing
	for _, p := range toRebuild {
		if rebuildable(ck, p) {
			continue // rebuilt or failed above
		}
		if indexes == nil {
			if indexes, err = r.list(ctx, indexDir); err != nil {
				return out, err
			}
		}
		name, _ := cutPrefix(p.Object, indexDir)
		if indexes[name] == nil || slices.ContainsFunc(problems, func(q Problem) bool { return q.Store < 0 && q.Object == p.Object }) {
			fail(p, errors.New("not rebuilt: the pack's own table did not read at repair's second check; run repair again"))
		}
	}
	for _, p := range problems {
		if p.Kind == ProblemUnreachable || p.Store < 0 || p.Object == configName || r.bad[p.Store] != nil {
			continue
		}
		if p.Kind == ProblemPruned {
			err := m.guard(ctx, r, false)
			if err == nil {
				err = r.stores[p.Store].Delete(ctx, p.Object)
			}
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				fail(p, err)
			} else {
				out.Repaired = append(out.Repaired, p)
			}
			continue
		}
		for _, md := range []struct {
			dir string
			typ byte
		}{{indexDir, format.TypeIndex}, {snapDir, format.TypeManifest}, {copyDir, format.TypeMarker}} {
			id, ok := cutPrefix(p.Object, md.dir)
			if !ok {
				continue
			}
			var sealed []byte
			var err error
			if md.dir == snapDir {
				var c *manifestCopies
				if c, err = r.readManifestAll(ctx, id); err == nil {
					sealed = c.sealed // the newest copy
				}
			} else {
				_, sealed, err = r.getMeta(ctx, md.typ, md.dir, id)
				if err != nil && md.dir == indexDir && ctx.Err() == nil {
					// No good copy on the stores: this host's cache
					// or the pack's own table (TestLostIndexRepairOnCachingHost).
					sealed, err = m.indexCopy(ctx, r, id, err)
				}
			}
			if err == nil {
				err = m.guard(ctx, r, false) // no pruned manifest put back
			}
			if err == nil {
				err = r.stores[p.Store].Put(ctx, p.Object, sealed)
			}
			if err != nil {
				fail(p, err)
			} else {
				out.Repaired = append(out.Repaired, p)
			}
		}
	}
	for _, id := range sortedPacks(ck.pp) {
		bad := ck.pp[id]
		shards := make([][]byte, r.n())
		forEach(r.n(), func(i int) error {
			if r.bad[i] != nil || slices.Contains(bad, i) {
				return nil
			}
			b, err := r.stores[i].Get(ctx, packDir+id.String(), 0, -1)
			if err == nil {
				shards[i] = b
			}
			return nil
		})
		full, _, err := erasure.Repair(shards)
		for _, i := range bad {
			p := Problem{Store: i, Object: packDir + id.String(), Kind: ProblemCorrupt}
			if r.bad[i] != nil {
				continue
			}
			if err != nil {
				fail(p, fmt.Errorf("%w: %w", ErrTooFewShards, err))
				continue
			}
			perr := m.guard(ctx, r, false)
			if perr == nil {
				perr = r.stores[i].Put(ctx, p.Object, full[i])
			}
			if perr != nil {
				fail(p, perr)
				continue
			}
			out.Repaired = append(out.Repaired, p)
		}
		progress.Event(Event{Type: EventPack, Op: "repair", Region: regionName, Pack: id.String()})
	}
	// A lost index the first check found rebuildable and the second
	// (after stores were repaired) did not is still lost unless a store
	// made usable again lists it: never left out of the report
	// (TestLostIndexNotRebuiltIsReported).
	var listed listing
	for _, p := range toRebuild {
		if rebuildable(ck, p) {
			continue // rebuilt or failed above
		}
		if listed == nil {
			if listed, err = r.list(ctx, indexDir); err != nil {
				return out, err
			}
		}
		name, _ := cutPrefix(p.Object, indexDir)
		if listed[name] == nil || slices.ContainsFunc(problems, func(q Problem) bool { return q.Store < 0 && q.Object == p.Object }) {
			fail(p, errors.New("not rebuilt: the pack's own table did not read at repair's second check; run repair again"))
		}
	}
	if err := m.repairHolds(ctx, r, &out); err != nil {
		return out, err
	}
	if err := m.repairGarbage(ctx, r, dead, ck, &out); err != nil {
		return out, err
	}
	if len(out.Failed) == 0 {
		_ = m.saveCheckState(regionName, checkState{Time: m.opts.Now().UTC()})
	}
	ev := Event{Type: EventDone, Op: "repair", Region: regionName}
	if len(out.Failed) > 0 {
		ev.Err = fmt.Sprintf("%d copies not repaired", len(out.Failed))
	}
	progress.Event(ev)
	return out, nil
}

// repairHolds puts every hold on each usable store that lacks it (a store
// replaced by --new-store, or down when the hold was written), copied
// from a store whose copy authenticates: the service puts a lazy disk's
// hold again only when it attaches the disk, so without this the stores
// holding a hold could all be replaced, one repair at a time, under a
// daemon that runs on, and another host's prune would delete what the
// lazy disk still reads (TestTrial9NewStoreRepairCopiesHolds). Release
// takes no lock: a hold released while it is copied is removed again
// (its source is read once more after the put), so a released hold is
// never brought back. A hold no copy of which authenticates is left as
// it is (it still holds by its name).
func (m *Manager) repairHolds(ctx context.Context, r *region, out *RepairReport) error {
	l, err := r.list(ctx, holdDir)
	if err != nil {
		return fmt.Errorf("repair: holds: %w", err)
	}
	for _, name := range sortedKeys(l) {
		if _, _, _, ok := parseHoldName(name); !ok {
			continue
		}
		var lack []int
		for i, n := range l[name] {
			if n < 0 && r.bad[i] == nil {
				lack = append(lack, i)
			}
		}
		if len(lack) == 0 {
			continue
		}
		_, sealed, err := r.getMeta(ctx, format.TypeHold, holdDir, name)
		if errors.Is(err, ErrNotFound) {
			continue // released meanwhile
		}
		for _, i := range lack {
			p := Problem{Store: i, Object: holdDir + name, Kind: ProblemMissing}
			perr := err
			if perr == nil {
				perr = m.guard(ctx, r, false)
			}
			if perr == nil {
				perr = r.stores[i].Put(ctx, p.Object, sealed)
			}
			if perr != nil {
				p.Err = perr.Error()
				out.Failed = append(out.Failed, p)
				continue
			}
			out.Repaired = append(out.Repaired, p)
		}
		if m.holdGone(ctx, r, name, lack) {
			// Released while we copied it: take the copies back.
			for _, i := range lack {
				_ = r.stores[i].Delete(ctx, holdDir+name)
			}
		}
	}
	return nil
}

// holdGone reports whether hold name is found on none of the usable
// stores outside except (the stores repair just copied it to).
func (m *Manager) holdGone(ctx context.Context, r *region, name string, except []int) bool {
	for i, s := range r.stores {
		if r.bad[i] != nil || slices.Contains(except, i) {
			continue
		}
		if _, err := s.Get(ctx, holdDir+name, 0, -1); !errors.Is(err, store.ErrNotFound) {
			return false
		}
	}
	return true
}

// liveSyncHosts returns the ids of the hosts with a live sync lock on r
// (none if the locks cannot be read).
func (m *Manager) liveSyncHosts(ctx context.Context, r *region) map[string]bool {
	live := map[string]bool{}
	locks, err := m.readLocks(ctx, r)
	if err != nil {
		return live
	}
	for _, l := range locks {
		if l.Op == "sync" && !l.Stale && !l.dead && !l.Unreadable {
			live[l.HostID] = true
		}
	}
	return live
}

// repairGarbage removes what no snapshot can need (the exclusive lock is
// held): unindexed packs (but those check found a snapshot may need: ck),
// markers without a running sync, and indexes whose pack has no shard on
// any store.
func (m *Manager) repairGarbage(ctx context.Context, r *region, dead []string, ck checked, out *RepairReport) error {
	// Only the markers are needed (no manifest is read: a lost one,
	// reported by check, does not stop the rest).
	markers, err := m.scanMarkers(ctx, r)
	if err != nil {
		return err
	}
	if err := m.guard(ctx, r, true); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	for _, nid := range sortedKeysOf(markers) {
		if err := m.guard(ctx, r, false); err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		if err := r.deleteAll(ctx, copyDir+nid); err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		out.MarkersDeleted++
	}
	indexes, err := r.list(ctx, indexDir)
	if err != nil {
		return err
	}
	packs, err := r.list(ctx, packDir)
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(packs) {
		id, ok := parsePackID(name)
		if !ok || indexes[name] != nil || !r.homesUsable(name) {
			continue // indexed, or its index may be on an unusable home
		}
		if ck.rebuild[id] != nil {
			// A snapshot needs it, and its rebuilt index could not be
			// written (reported in Failed): the next repair writes it.
			m.log.Warn("repair: keeping a pack a snapshot needs whose rebuilt index was not written", "region", r.cfg.Name, "pack", name)
			continue
		}
		if ck.keepUnindexed {
			// A snapshot needs a chunk in no index and in no pack table
			// that reads: this pack may hold it (prune keeps such packs
			// too). Those whose table read were rebuilt above.
			m.log.Warn("repair: keeping an unindexed pack: a snapshot needs a chunk in no index", "region", r.cfg.Name, "pack", name)
			continue
		}
		if err := m.guard(ctx, r, false); err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		if err := r.deleteAll(ctx, packDir+name); err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		out.OrphansDeleted++
	}
	if slices.ContainsFunc(r.bad, func(e error) bool { return e != nil }) {
		return nil // a pack may be on an unreachable store
	}
	// Packs no snapshot needs that cannot be read (check's DeadPacks):
	// the index first, as prune deletes.
	for _, name := range dead {
		for _, dir := range []string{indexDir, packDir} {
			if err := m.guard(ctx, r, false); err != nil {
				return fmt.Errorf("repair: %w", err)
			}
			if err := r.deleteAll(ctx, dir+name); err != nil {
				return fmt.Errorf("repair: %w", err)
			}
		}
		delete(indexes, name)
		out.DeadPacksDeleted++
	}
	for _, name := range sortedKeys(indexes) {
		if _, ok := parsePackID(name); !ok || packs[name] != nil {
			continue
		}
		if err := m.guard(ctx, r, false); err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		if err := r.deleteAll(ctx, indexDir+name); err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		out.IndexesDeleted++
	}
	return nil
}

func (m *Manager) repairConfig(ctx context.Context, r *region, i int) error {
	var created = m.opts.Now().UTC()
	for j := range r.stores {
		if j != i && r.bad[j] == nil {
			if c, err := readStoreConfig(ctx, r.stores[j]); err == nil {
				created = c.Created
				break
			}
		}
	}
	if r.stores[i] == nil {
		return fmt.Errorf("%w: store %d not open", ErrUnavailable, i)
	}
	c := &format.Config{K: r.k, M: r.m, Index: i, RegionID: r.id, Created: created}
	if err := c.Seal(r.keys); err != nil {
		return err
	}
	return r.stores[i].Put(ctx, configName, c.Encode())
}

// rebuildable reports whether problem p (of no one store) is a lost index
// check found its pack's table rebuilds (repair rebuilds it).
func rebuildable(ck checked, p Problem) bool {
	name, ok := cutPrefix(p.Object, indexDir)
	if !ok {
		return false
	}
	id, ok := parsePackID(name)
	return ok && ck.rebuild[id] != nil
}

func sortedPacks(pp packProblems) []packID {
	out := make([]packID, 0, len(pp))
	for id := range pp {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b packID) int { return slices.Compare(a[:], b[:]) })
	return out
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}
