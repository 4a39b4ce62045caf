package replicate

import (
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
		return st, err
	}
	defer r.close()
	ctx, unlock, err := m.lock(ctx, r, true, "prune")
	if err != nil {
		return st, err
	}
	defer unlock()
	mfs, markers, differ, err := m.remoteAllCopies(ctx, r)
	if err != nil {
		return st, err
	}
	if err := m.prunePrunedCopies(ctx, r); err != nil {
		return st, err
	}
	now := m.opts.Now()
	// A manifest whose copies differ (a rewrite that reached only some
	// stores) is finished first: the newest copy goes on every store
	// before any parent is deleted.
	for _, nid := range slices.Sorted(maps.Keys(differ)) {
		if err := m.guard(ctx, r, false); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		if err := r.putAll(ctx, snapDir+nid, differ[nid].sealed, nil); err != nil {
			return st, fmt.Errorf("prune: finish rewrite of %q: %w", mfs[nid].Name, err)
		}
		m.log.Info("prune: finished an interrupted manifest rewrite", "region", regionName, "snapshot", mfs[nid].Name)
	}
	// No sync runs (the lock): a marker without a manifest is a dead
	// sync's.
	for _, nid := range sortedKeysOf(markers) {
		if err := m.guard(ctx, r, false); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		if err := r.deleteAll(ctx, copyDir+nid); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		st.MarkersDeleted++
	}
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
	if err := m.keepHeld(ctx, r, mfs, keep, &st); err != nil { // hold.go
		return st, fmt.Errorf("prune: %w", err)
	}
	// Rewrite kept children of removed parents as full, oldest first, while
	// every manifest still exists.
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
				m.log.Warn("prune: a kept snapshot's chain reaches a manifest gone from every store: it is lost; not rewritten", "region", regionName, "snapshot", m.label(mf), "disk", d.Name, "err", err)
				continue
			}
			if err != nil {
				return st, fmt.Errorf("prune: rewrite %q: %w", mf.Name, err)
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
			return st, err
		}
		sealed, err := r.keys.Seal(format.TypeManifest, nid, pt)
		if err != nil {
			return st, err
		}
		if err := m.guard(ctx, r, false); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		if err := r.putAll(ctx, snapDir+nid, sealed, nil); err != nil {
			return st, fmt.Errorf("prune: rewrite %q: %w", mf.Name, err)
		}
		mfs[nid] = &nmf
		st.Rewritten = append(st.Rewritten, mf.Name)
	}
	for _, nid := range nids {
		if keep[nid] {
			continue
		}
		mf := mfs[nid]
		st.Deleted = append(st.Deleted, m.label(mf))
		// The tombstone first: a snapshot whose manifest is gone always
		// has one, so its host's sync never ships it again.
		t := &format.Tombstone{Host: mf.Host, SnapshotID: mf.SnapshotID, Created: mf.Created, Pruned: now.UTC(), Name: mf.Name}
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
		delete(mfs, nid)
	}
	// Chunks the kept snapshots need.
	need := map[format.ChunkID]bool{}
	for _, mf := range mfs {
		for _, d := range mf.Disks {
			bm, _, err := r.resolveDisk(ctx, mf, d.Name, mfs)
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
				return st, fmt.Errorf("prune: %q: %w", mf.Name, err)
			}
			for _, id := range bm {
				need[id] = true
			}
		}
	}
	cs, err := m.loadChunks(ctx, r, chunksHeal)
	if err != nil {
		return st, err
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
		return st, fmt.Errorf("prune: %w", err)
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
				return st, fmt.Errorf("prune: a kept snapshot needs chunk %v, in no index, and the own table of a pack that may hold it could not be read: no pack deleted, run prune again: %w", id, unread)
			}
		}
	}
	packs, err := r.list(ctx, packDir)
	if err != nil {
		return st, err
	}
	// Before anything it reads is deleted: is this still the lock holder
	// (not stopped past its lease, not forced out)?
	if err := m.guard(ctx, r, true); err != nil {
		return st, fmt.Errorf("prune: %w", err)
	}
	// An index whose pack has no shard on any store is orphaned: nothing
	// can be read through it, and sync must not deduplicate against it.
	n, err := m.dropOrphanIndexes(ctx, r, cs, packs)
	st.IndexesDeleted = n
	if err != nil {
		return st, fmt.Errorf("prune: %w", err)
	}
	// A pack without an index may hold a chunk a kept snapshot needs only
	// if some needed chunk is in no index: then no orphan is deleted.
	keepOrphans := false
	for id := range need {
		if _, ok := cs.chunks[id]; !ok {
			keepOrphans = true
			m.log.Warn("prune: a kept snapshot needs a chunk in no pack index; keeping every unindexed pack", "region", regionName)
			break
		}
	}
	for name, sizes := range packs {
		id, ok := parsePackID(name)
		if !ok {
			continue
		}
		if recovered[id] != nil {
			m.log.Warn("prune: keeping a pack whose index is lost and which a kept snapshot needs; snapfs region repair rebuilds the index", "region", regionName, "pack", name)
			continue
		}
		x, indexed := cs.packs[id]
		if indexed {
			if slices.ContainsFunc(x.Entries, func(e format.Entry) bool { return need[e.ID] }) {
				continue
			}
			// The index goes first: a chunk set never names a deleted pack.
			if err := m.guard(ctx, r, false); err != nil {
				return st, fmt.Errorf("prune: %w", err)
			}
			if err := r.deleteAll(ctx, indexDir+name); err != nil {
				return st, fmt.Errorf("prune: %w", err)
			}
			st.PacksDeleted++
		} else {
			if _, lost := cs.lost[id]; lost {
				// Its index is listed but has no good copy: what the pack
				// holds is not known (repair rebuilds the index from it).
				m.log.Warn("prune: keeping a pack whose index has no good copy; snapfs region repair rebuilds it", "region", regionName, "pack", name)
				continue
			}
			if keepOrphans || m.packYoung(ctx, r, name, id, sizes, now) {
				continue
			}
			st.OrphansDeleted++
		}
		if err := m.guard(ctx, r, false); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		if err := r.deleteAll(ctx, packDir+name); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		for _, s := range sizes {
			st.BytesFreed += max(s, 0)
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

// dropOrphanIndexes deletes the indexes whose pack has no shard on any
// store (the caller holds the exclusive lock and every store is usable)
// and forgets them in cs.
func (m *Manager) dropOrphanIndexes(ctx context.Context, r *region, cs *chunkSet, packs listing) (int, error) {
	ids := slices.SortedFunc(maps.Keys(cs.packs), func(a, b packID) int { return slices.Compare(a[:], b[:]) })
	n := 0
	for _, id := range ids {
		if _, ok := packs[id.String()]; ok {
			continue
		}
		if err := m.guard(ctx, r, false); err != nil {
			return n, err
		}
		if err := r.deleteAll(ctx, indexDir+id.String()); err != nil {
			return n, err
		}
		for _, e := range cs.packs[id].Entries {
			if loc, ok := cs.chunks[e.ID]; ok && loc.pack() == id {
				delete(cs.chunks, e.ID)
			}
		}
		delete(cs.packs, id)
		m.log.Info("orphaned pack index removed", "region", r.cfg.Name, "pack", id.String())
		n++
	}
	return n, nil
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
