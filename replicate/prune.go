package replicate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
)

// OrphanAge is the grace period of a pack without an index: Prune deletes
// one only when it is older (Repair, which runs alone, deletes any). A
// younger one may be the work of a sync whose lock went stale while it
// still ran.
const OrphanAge = time.Hour

// PruneOptions choose what Prune keeps. Without KeepLast and KeepWithin,
// the region's Retention applies.
type PruneOptions struct {
	// KeepLast keeps the newest KeepLast snapshots of each group;
	// KeepWithin those created within KeepWithin of now. At least one
	// must be positive.
	KeepLast   int
	KeepWithin time.Duration
	// Hosts limits the prune to these hosts' snapshots (host id, host
	// name, or "unknown" for snapshots copied before hosts existed).
	// Default: this host's only. AllHosts prunes every host's.
	Hosts    []string
	AllHosts bool
	// Only, when set, removes exactly these snapshots of this host (by
	// name; a policy's remote retention) and keeps every other: KeepLast,
	// KeepWithin and the region's retention are not used.
	Only []string
	// DryRun: decide what prune would delete and rewrite, return it as
	// the stats (PruneStats.DryRun set) and change nothing; under a
	// shared lock.
	DryRun bool
}

// PruneStats is what Prune did.
type PruneStats struct {
	// Deleted names the remote snapshots removed ("name" for this host's
	// and hostless ones, "name@host" for other hosts'). After an error it
	// also names those being removed when it stopped.
	Deleted        []string `json:"deleted"`
	Rewritten      []string `json:"rewritten"` // kept snapshots rewritten as full manifests
	PacksDeleted   int      `json:"packs_deleted"`
	OrphansDeleted int      `json:"orphans_deleted"` // unindexed packs (garbage of interrupted syncs)
	IndexesDeleted int      `json:"indexes_deleted"` // indexes whose pack is gone from every store
	MarkersDeleted int      `json:"markers_deleted"` // copying markers of dead syncs
	BytesFreed     int64    `json:"bytes_freed"`
	// Held names the snapshots kept only because a host's lazily
	// restored disk holds them: "snapshot (held by host/disk, ...)".
	Held []string `json:"held,omitempty"`
	// BytesPerStore is BytesFreed per store (index i: store i).
	BytesPerStore []int64 `json:"bytes_per_store,omitempty"`
	// DryRun: nothing was changed; the stats say what prune would do.
	DryRun bool `json:"dry_run,omitempty"`
}

// label names a remote snapshot in reports: its name, with "@host" when it
// belongs to another host.
func (m *Manager) label(mf *format.Manifest) string {
	if mf.Host.IsZero() || mf.Host == m.host.ID {
		return mf.Name
	}
	return mf.Name + "@" + mf.HostName
}

// hostMatch reports whether host (id, name) is selected by sel (a host id,
// a host name, or "unknown").
func hostMatch(id format.HostID, name, sel string) bool {
	if id.IsZero() {
		return sel == "unknown"
	}
	return sel == id.String() || sel == name
}

// groupKey is a retention group: the host and the disks of a snapshot.
func groupKey(mf *format.Manifest) string {
	var disks []string
	for _, d := range mf.Disks {
		disks = append(disks, d.Name)
	}
	slices.Sort(disks)
	return mf.Host.String() + "\x00" + strings.Join(disks, ",")
}

// Prune applies the retention of o to the region's snapshots, per host and
// per disk set (each group keeps its own newest), removes the others
// (writing a tombstone for each, so the host that made it never ships it
// again), then removes the packs no kept snapshot references, indexes
// whose pack is gone, copying markers of dead syncs, and packs without an
// index older than OrphanAge. A kept snapshot whose manifest is a delta
// over a removed one is first rewritten as a full manifest. Prune holds
// the region's exclusive lock.
//
// Prune plans first and writes after (prunePlan): everything it will
// delete or rewrite is decided from what it read before its first write.
// With o.DryRun it stops there and returns the plan as its stats
// (PruneStats.DryRun), under a shared lock, writing nothing (not even an
// index copy's heal).
func (m *Manager) Prune(ctx context.Context, regionName string, o PruneOptions) (st PruneStats, err error) {
	keepLast, keepWithin := o.KeepLast, o.KeepWithin
	if len(o.Only) > 0 {
		keepLast, keepWithin = 1, 0 // not used: see only below
	}
	if keepLast <= 0 && keepWithin <= 0 {
		// The region's own retention, when it has one.
		if err := validRegionName(regionName); err != nil {
			return st, err
		}
		c, err := m.loadConfig(regionName)
		if err != nil {
			return st, err
		}
		keepLast, keepWithin = c.Retention.KeepLast, c.Retention.KeepWithin
	}
	if keepLast <= 0 && keepWithin <= 0 {
		return st, fmt.Errorf("%w: prune needs keep-last or keep-within (region %q has no retention: set one with region retention)", ErrInvalid, regionName)
	}
	r, err := m.openRegion(ctx, regionName, true)
	if err != nil {
		return st, pruneNeedsAll(regionName, err)
	}
	defer r.close()
	op := "prune"
	if o.DryRun {
		op = "prune-dry-run"
	}
	ctx, unlock, err := m.lock(ctx, r, !o.DryRun, op)
	if err != nil {
		return st, err
	}
	defer unlock()
	p, err := m.planPrune(ctx, r, o, keepLast, keepWithin)
	if err != nil {
		return st, err // nothing done: no stats of a plan not carried out
	}
	if o.DryRun {
		st = p.stats(r.n())
		st.DryRun = true
		return st, nil
	}
	if st, err = m.runPrune(ctx, r, p); err != nil && errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("region %q: prune stopped: %w (what it removed stays removed; run prune again once the store takes writes)", regionName, err)
	}
	return st, err
}

// pruneNeedsAll is openRegion's error for a prune with a store away: it
// names the store (openRegion does) and says what to do. Prune deletes a
// pack's shards on every store and its index on every home, so a store
// away would keep shards and index copies a later look could not judge
// (a stale store brought back), and the manifests' rewrites would miss
// it: it refuses, changing nothing, rather than prune part of the region.
func pruneNeedsAll(region string, err error) error {
	if !errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w (prune needs every store of the region: nothing was changed; bring the store back and run prune again, or replace it first with snapfs region repair %s --new-store)", err, region)
}

// prunePlan is what a prune will do, decided before its first write.
type prunePlan struct {
	regionName string
	mfs        map[string]*format.Manifest
	differ     map[string]*manifestCopies // manifests whose copies differ: put the newest on every store
	markers    []string                   // copying markers without a manifest
	rewrites   []pruneRewrite             // kept manifests over removed parents, oldest first
	drop       []string                   // manifests removed, newest first
	orphanIdx  []packID                   // indexes whose pack is on no store
	packs      []prunePack                // packs removed (indexed unneeded, and old unindexed ones)
	held       []string
	labels     map[string]string // of the dropped manifests (Manager.label)
	now        time.Time
}

type pruneRewrite struct {
	nid    string
	mf     *format.Manifest // the rewritten manifest
	sealed []byte
}

type prunePack struct {
	name    string
	indexed bool    // its index is deleted first
	sizes   []int64 // per store
}

// stats is what p deletes, as PruneStats (n stores).
func (p *prunePlan) stats(n int) PruneStats {
	var st PruneStats
	if p == nil {
		return st
	}
	st.Held = p.held
	st.MarkersDeleted = len(p.markers)
	st.IndexesDeleted = len(p.orphanIdx)
	for _, rw := range p.rewrites {
		st.Rewritten = append(st.Rewritten, rw.mf.Name)
	}
	for _, nid := range p.drop {
		st.Deleted = append(st.Deleted, p.label(nid))
	}
	if len(p.packs) > 0 {
		st.BytesPerStore = make([]int64, n)
	}
	for _, pk := range p.packs {
		if pk.indexed {
			st.PacksDeleted++
		} else {
			st.OrphansDeleted++
		}
		for i, s := range pk.sizes {
			st.BytesFreed += max(s, 0)
			if i < n {
				st.BytesPerStore[i] += max(s, 0)
			}
		}
	}
	return st
}

// label names the manifest nid of the plan (Manager.label's rule, kept
// with the plan: the manifest is gone from mfs once deleted).
func (p *prunePlan) label(nid string) string { return p.labels[nid] }

// planPrune reads the region and decides what prune deletes and rewrites;
// it writes nothing but, unless o.DryRun, index copies missing on a home
// (loadChunks' heal, as sync does, before it trusts an index).
func (m *Manager) planPrune(ctx context.Context, r *region, o PruneOptions, keepLast int, keepWithin time.Duration) (*prunePlan, error) {
	p := &prunePlan{regionName: r.cfg.Name, labels: map[string]string{}, now: m.opts.Now()}
	mfs, markers, differ, err := m.remoteAllCopies(ctx, r)
	if err != nil {
		return p, err
	}
	p.mfs, p.differ = mfs, differ
	// No sync runs (the lock): a marker without a manifest is a dead
	// sync's. (A dry run holds a shared lock: a live sync's marker is
	// counted too.)
	p.markers = sortedKeysOf(markers)
	now := p.now
	nids := make([]string, 0, len(mfs))
	for nid := range mfs {
		nids = append(nids, nid)
	}
	slices.SortFunc(nids, func(a, b string) int { return mfs[b].Created.Compare(mfs[a].Created) }) // newest first
	inScope := func(mf *format.Manifest) bool {
		if o.AllHosts {
			return true
		}
		if len(o.Hosts) == 0 {
			return mf.Host == m.host.ID
		}
		return slices.ContainsFunc(o.Hosts, func(h string) bool { return hostMatch(mf.Host, mf.HostName, h) })
	}
	// A --host that names no host of the region's snapshots (a typo) is
	// not found, naming the hosts it holds, as restore --host is: it
	// pruned nothing and said "removed 0 snapshot(s)", exit 0.
	for _, h := range o.Hosts {
		if o.AllHosts || slices.ContainsFunc(nids, func(nid string) bool { return hostMatch(mfs[nid].Host, mfs[nid].HostName, h) }) {
			continue
		}
		var hosts []string
		for _, nid := range nids {
			if n := mfs[nid].HostName; n != "" && !slices.Contains(hosts, n) {
				hosts = append(hosts, n)
			}
		}
		slices.Sort(hosts)
		return p, fmt.Errorf("%w: region %q holds no snapshot of host %q (its snapshots' hosts: %s)", ErrNotFound, r.cfg.Name, h, cmp.Or(strings.Join(hosts, ", "), "none"))
	}
	keep := map[string]bool{}
	seen := map[string]int{} // per group
	for _, nid := range nids {
		mf := mfs[nid]
		if !inScope(mf) {
			keep[nid] = true
			continue
		}
		if len(o.Only) > 0 {
			keep[nid] = mf.Host != m.host.ID || !slices.Contains(o.Only, mf.Name)
			continue
		}
		g := groupKey(mf)
		if seen[g] < keepLast || (keepWithin > 0 && now.Sub(mf.Created) <= keepWithin) {
			keep[nid] = true
		}
		seen[g]++
	}
	var hs PruneStats
	if err := m.keepHeld(ctx, r, mfs, keep, &hs); err != nil { // hold.go
		return p, fmt.Errorf("prune: %w", err)
	}
	p.held = hs.Held
	// Kept children of removed parents are rewritten as full, oldest
	// first, while every manifest still exists (resolved against them all).
	for i := len(nids) - 1; i >= 0; i-- {
		nid := nids[i]
		if !keep[nid] {
			continue
		}
		mf := mfs[nid]
		changed := false
		nmf := *mf
		nmf.Seq = mf.Seq + 1
		nmf.Disks = slices.Clone(mf.Disks)
		for j, d := range mf.Disks {
			if d.Parent == "" || keep[d.Parent] {
				continue
			}
			bm, _, err := r.resolveDisk(ctx, mf, d.Name, mfs)
			if errors.Is(err, ErrNotFound) {
				// Its chain reaches a manifest gone from every store (all
				// are up, under the exclusive lock): it is lost already,
				// a rewrite cannot save it, and it must not wedge every
				// prune of the region. Its host's sync ships it again if
				// it still has it.
				m.log.Warn("prune: a kept snapshot's chain reaches a manifest gone from every store: it is lost; not rewritten", "region", r.cfg.Name, "snapshot", m.label(mf), "disk", d.Name, "err", err)
				continue
			}
			if err != nil {
				return p, fmt.Errorf("prune: rewrite %q: %w", mf.Name, err)
			}
			nd := d
			nd.Parent, nd.Depth, nd.Entries = "", 0, make([]format.MapEntry, 0, len(bm))
			for b, id := range bm {
				nd.Entries = append(nd.Entries, format.MapEntry{Block: b, ID: id})
			}
			slices.SortFunc(nd.Entries, func(a, b format.MapEntry) int { return cmpU64(a.Block, b.Block) })
			nmf.Disks[j] = nd
			changed = true
		}
		if !changed {
			continue
		}
		pt, err := nmf.Encode()
		if err != nil {
			return p, err
		}
		sealed, err := r.keys.Seal(format.TypeManifest, nid, pt)
		if err != nil {
			return p, err
		}
		p.rewrites = append(p.rewrites, pruneRewrite{nid, &nmf, sealed})
	}
	for _, nid := range nids {
		if !keep[nid] {
			p.drop = append(p.drop, nid)
			p.labels[nid] = m.label(mfs[nid])
		}
	}
	// Chunks the kept snapshots need: each kept manifest resolved as it
	// will be read once the plan ran (a rewritten one as its full map,
	// which is what its chain resolves to now).
	kept := maps.Clone(mfs)
	for _, rw := range p.rewrites {
		kept[rw.nid] = rw.mf
	}
	for _, nid := range p.drop {
		delete(kept, nid)
	}
	need := map[format.ChunkID]bool{}
	for _, mf := range kept {
		for _, d := range mf.Disks {
			bm, _, err := r.resolveDisk(ctx, mf, d.Name, kept)
			if errors.Is(err, ErrNotFound) {
				// Lost (see above): what its own entries name is kept.
				for _, e := range d.Entries {
					if !e.Zero {
						need[e.ID] = true
					}
				}
				continue
			}
			if err != nil {
				return p, fmt.Errorf("prune: %q: %w", mf.Name, err)
			}
			for _, id := range bm {
				need[id] = true
			}
		}
	}
	mode := chunksHeal
	if o.DryRun {
		mode = chunksRead
	}
	cs, err := m.loadChunks(ctx, r, mode)
	if err != nil {
		return p, err
	}
	if o.DryRun {
		cs = cs.clone() // the plan drops orphaned indexes from its copy
	}
	// A kept chunk in no index may be in a pack whose index was lost (no
	// good copy, or on no store): its own table names it, and a delta's
	// base, which must be kept too. Such packs are kept (repair rebuilds
	// their indexes).
	var missing map[format.ChunkID]bool
	for id := range need {
		if _, ok := cs.chunks[id]; !ok {
			if missing == nil {
				missing = map[format.ChunkID]bool{}
			}
			missing[id] = true
		}
	}
	recovered, _, unread, err := m.packTables(ctx, r, cs, missing, len(missing) > 0)
	if err != nil {
		return p, fmt.Errorf("prune: %w", err)
	}
	for _, id := range sortedIDs(recovered) {
		cs.add(recovered[id].x)
	}
	// A kept delta needs its base: the indexes name it (prune reads no
	// pack, but for the above), so a base is needed whatever snapshot it
	// came from.
	cs.needBases(need)
	if unread != nil {
		// A needed chunk still in no index may be a delta in a pack whose
		// table stores failed to read: its base, in any pack, is not
		// known. Nothing is deleted; the next prune reads it again
		// (TestLostIndexPruneTableUnreadableKeepsBases).
		for id := range need {
			if _, ok := cs.chunks[id]; !ok {
				return p, fmt.Errorf("prune: a kept snapshot needs chunk %v, in no index, and the own table of a pack that may hold it could not be read: no pack deleted, run prune again: %w", id, unread)
			}
		}
	}
	packs, err := r.list(ctx, packDir)
	if err != nil {
		return p, err
	}
	// An index whose pack has no shard on any store is orphaned: nothing
	// can be read through it, and sync must not deduplicate against it.
	p.orphanIdx = orphanIndexes(cs, packs)
	// A pack without an index may hold a chunk a kept snapshot needs only
	// if some needed chunk is in no index: then no orphan is deleted.
	keepOrphans := false
	for id := range need {
		if _, ok := cs.chunks[id]; !ok {
			keepOrphans = true
			m.log.Warn("prune: a kept snapshot needs a chunk in no pack index; keeping every unindexed pack", "region", r.cfg.Name)
			break
		}
	}
	for _, name := range slices.Sorted(maps.Keys(packs)) {
		sizes := packs[name]
		id, ok := parsePackID(name)
		if !ok {
			continue
		}
		if recovered[id] != nil {
			m.log.Warn("prune: keeping a pack whose index is lost and which a kept snapshot needs; snapfs region repair rebuilds the index", "region", r.cfg.Name, "pack", name)
			continue
		}
		x, indexed := cs.packs[id]
		if indexed {
			if slices.ContainsFunc(x.Entries, func(e format.Entry) bool { return need[e.ID] }) {
				continue
			}
		} else {
			if _, lost := cs.lost[id]; lost {
				// Its index is listed but has no good copy: what the pack
				// holds is not known (repair rebuilds the index from it).
				m.log.Warn("prune: keeping a pack whose index has no good copy; snapfs region repair rebuilds it", "region", r.cfg.Name, "pack", name)
				continue
			}
			if keepOrphans || m.packYoung(ctx, r, name, id, sizes, now) {
				continue
			}
		}
		p.packs = append(p.packs, prunePack{name, indexed, sizes})
	}
	return p, nil
}

// runPrune carries out plan p, in the order that keeps every invariant:
// finished manifest rewrites, dead markers, stale copies of pruned
// manifests, rewrites of kept deltas as full, tombstones before their
// manifests' deletes, and last (after the lock is looked at again on the
// stores) orphaned indexes and packs, each pack's index before its shards.
// Each write is guarded (the lease, the lock).
func (m *Manager) runPrune(ctx context.Context, r *region, p *prunePlan) (PruneStats, error) {
	var st PruneStats
	regionName := r.cfg.Name
	if err := m.prunePrunedCopies(ctx, r); err != nil {
		return st, err
	}
	// A manifest whose copies differ (a rewrite that reached only some
	// stores) is finished first: the newest copy goes on every store
	// before any parent is deleted.
	for _, nid := range slices.Sorted(maps.Keys(p.differ)) {
		if err := m.guard(ctx, r, false); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		if err := r.putAll(ctx, snapDir+nid, p.differ[nid].sealed, nil); err != nil {
			return st, fmt.Errorf("prune: finish rewrite of %q: %w", p.mfs[nid].Name, err)
		}
		m.log.Info("prune: finished an interrupted manifest rewrite", "region", regionName, "snapshot", p.mfs[nid].Name)
	}
	for _, nid := range p.markers {
		if err := m.guard(ctx, r, false); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		if err := r.deleteAll(ctx, copyDir+nid); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		st.MarkersDeleted++
	}
	st.Held = p.held
	for _, rw := range p.rewrites {
		if err := m.guard(ctx, r, false); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		if err := r.putAll(ctx, snapDir+rw.nid, rw.sealed, nil); err != nil {
			return st, fmt.Errorf("prune: rewrite %q: %w", rw.mf.Name, err)
		}
		st.Rewritten = append(st.Rewritten, rw.mf.Name)
	}
	for _, nid := range p.drop {
		mf := p.mfs[nid]
		st.Deleted = append(st.Deleted, p.label(nid))
		// The tombstone first: a snapshot whose manifest is gone always
		// has one, so its host's sync never ships it again.
		t := &format.Tombstone{Host: mf.Host, SnapshotID: mf.SnapshotID, Created: mf.Created, Pruned: p.now.UTC(), Name: mf.Name, Seq: mf.Seq}
		tb, err := r.keys.Seal(format.TypeTomb, nid, t.Encode())
		if err != nil {
			return st, err
		}
		if err := m.guard(ctx, r, false); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		if err := r.putAll(ctx, prunedDir+nid, tb, nil); err != nil {
			return st, fmt.Errorf("prune: tombstone of %q: %w", mf.Name, err)
		}
		if err := m.guard(ctx, r, false); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		if err := r.deleteAll(ctx, snapDir+nid); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
	}
	// Before anything it read is deleted: is this still the lock holder
	// (not stopped past its lease, not forced out)?
	if err := m.guard(ctx, r, true); err != nil {
		return st, fmt.Errorf("prune: %w", err)
	}
	for _, id := range p.orphanIdx {
		if err := m.guard(ctx, r, false); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		if err := r.deleteAll(ctx, indexDir+id.String()); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		m.log.Info("orphaned pack index removed", "region", regionName, "pack", id.String())
		st.IndexesDeleted++
	}
	for _, pk := range p.packs {
		if pk.indexed {
			// The index goes first: a chunk set never names a deleted pack.
			if err := m.guard(ctx, r, false); err != nil {
				return st, fmt.Errorf("prune: %w", err)
			}
			if err := r.deleteAll(ctx, indexDir+pk.name); err != nil {
				return st, fmt.Errorf("prune: %w", err)
			}
			st.PacksDeleted++
		} else {
			st.OrphansDeleted++
		}
		if err := m.guard(ctx, r, false); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		if err := r.deleteAll(ctx, packDir+pk.name); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		if st.BytesPerStore == nil {
			st.BytesPerStore = make([]int64, r.n())
		}
		for i, s := range pk.sizes {
			st.BytesFreed += max(s, 0)
			if i < r.n() {
				st.BytesPerStore[i] += max(s, 0)
			}
		}
	}
	m.log.Info("region pruned", "region", regionName, "deleted", len(st.Deleted), "rewritten", len(st.Rewritten), "packs", st.PacksDeleted, "orphans", st.OrphansDeleted, "indexes", st.IndexesDeleted, "markers", st.MarkersDeleted)
	return st, nil
}

// packYoung reports whether unindexed pack id (listed with sizes) is
// younger than OrphanAge by its id's time (its writer's clock) or by the
// stores' times of its shards (the youngest; this host's clock corrected
// by its measured skew), so a pack whose writer's clock is behind is
// never taken for old while it is being written. A store time that cannot
// be read keeps the pack.
func (m *Manager) packYoung(ctx context.Context, r *region, name string, id packID, sizes []int64, now time.Time) bool {
	if now.Sub(id.time()) < OrphanAge {
		return true
	}
	view := m.cachedClock(r)
	age, byStore, err := m.storeAge(ctx, r, view, packDir+name, sizes, now)
	if err != nil {
		m.log.Warn("prune: an unindexed pack's store time not read; keeping it", "region", r.cfg.Name, "pack", name, "err", err)
		return true
	}
	return byStore && age < OrphanAge+view.margin()
}

// orphanIndexes lists the indexes of cs whose pack has no shard on any
// store, and forgets them in cs.
func orphanIndexes(cs *chunkSet, packs listing) []packID {
	ids := slices.SortedFunc(maps.Keys(cs.packs), func(a, b packID) int { return slices.Compare(a[:], b[:]) })
	var out []packID
	for _, id := range ids {
		if _, ok := packs[id.String()]; ok {
			continue
		}
		for _, e := range cs.packs[id].Entries {
			if loc, ok := cs.chunks[e.ID]; ok && loc.pack() == id {
				delete(cs.chunks, e.ID)
			}
		}
		delete(cs.packs, id)
		out = append(out, id)
	}
	return out
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// prunePrunedCopies deletes the manifests of pruned snapshots that a
// stale store kept (prunedCopies; left out of mfs, so prune deletes the
// packs only they name as it deletes any unneeded pack).
func (m *Manager) prunePrunedCopies(ctx context.Context, r *region) error {
	snaps, err := r.list(ctx, snapDir)
	if err != nil {
		return err
	}
	marks, err := r.list(ctx, copyDir)
	if err != nil {
		return err
	}
	pruned, err := m.prunedCopies(ctx, r, snaps, marks)
	if err != nil {
		return err
	}
	for _, nid := range slices.Sorted(maps.Keys(pruned)) {
		if err := m.guard(ctx, r, false); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		if err := r.deleteAll(ctx, snapDir+nid); err != nil {
			return fmt.Errorf("prune: stale copy of a pruned snapshot: %w", err)
		}
	}
	return nil
}
