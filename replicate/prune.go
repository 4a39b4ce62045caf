package replicate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
)

// OrphanAge is how old a pack without an index must be before Prune
// deletes it: younger ones may belong to a sync that is still running.
const OrphanAge = time.Hour

// MarkerAge is how old a copying marker must be before Prune runs while it
// exists: a younger one may belong to a sync that is still running (on
// any host), which may deduplicate against any manifest or pack.
const MarkerAge = 24 * time.Hour

// PruneStats is what Prune did.
type PruneStats struct {
	Deleted        []string `json:"deleted"`   // remote snapshots removed
	Rewritten      []string `json:"rewritten"` // kept snapshots rewritten as full manifests
	PacksDeleted   int      `json:"packs_deleted"`
	OrphansDeleted int      `json:"orphans_deleted"`
	BytesFreed     int64    `json:"bytes_freed"`
}

// Prune keeps the keepLast newest remote snapshots and those created
// within keepWithin of now, removes the others, and then removes the packs
// no kept snapshot references and orphan shards (packs without an index)
// older than OrphanAge. A kept snapshot whose manifest is a delta over a
// removed one is first rewritten as a full manifest. At least one of
// keepLast and keepWithin must be positive.
func (m *Manager) Prune(ctx context.Context, regionName string, keepLast int, keepWithin time.Duration) (PruneStats, error) {
	var st PruneStats
	if keepLast <= 0 && keepWithin <= 0 {
		return st, fmt.Errorf("%w: prune needs keep-last or keep-within", ErrInvalid)
	}
	r, err := m.openRegion(ctx, regionName, true)
	if err != nil {
		return st, err
	}
	defer r.close()
	mfs, markers, differ, err := m.remoteAllCopies(ctx, r)
	if err != nil {
		return st, err
	}
	now := m.opts.Now()
	if err := m.checkNoSync(ctx, r, markers, now); err != nil {
		return st, err
	}
	// A manifest whose copies differ (a rewrite that reached only some
	// stores) is finished first: the newest copy goes on every store
	// before any parent is deleted.
	for _, nid := range slices.Sorted(maps.Keys(differ)) {
		if err := r.putAll(ctx, snapDir+nid, differ[nid].sealed, nil); err != nil {
			return st, fmt.Errorf("prune: finish rewrite of %q: %w", mfs[nid].Name, err)
		}
		m.log.Info("prune: finished an interrupted manifest rewrite", "region", regionName, "snapshot", mfs[nid].Name)
	}
	nids := make([]string, 0, len(mfs))
	for nid := range mfs {
		nids = append(nids, nid)
	}
	slices.SortFunc(nids, func(a, b string) int { return mfs[b].Created.Compare(mfs[a].Created) }) // newest first
	keep := map[string]bool{}
	for i, nid := range nids {
		if i < keepLast || (keepWithin > 0 && now.Sub(mfs[nid].Created) <= keepWithin) {
			keep[nid] = true
		}
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
		if err := r.deleteAll(ctx, snapDir+nid); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		st.Deleted = append(st.Deleted, mfs[nid].Name)
		delete(mfs, nid)
	}
	// Chunks the kept snapshots need.
	need := map[format.ChunkID]bool{}
	for _, mf := range mfs {
		for _, d := range mf.Disks {
			bm, _, err := r.resolveDisk(ctx, mf, d.Name, mfs)
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
	packs, err := r.list(ctx, packDir)
	if err != nil {
		return st, err
	}
	copying := len(markers) > 0
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
		x, indexed := cs.packs[id]
		young := now.Sub(id.time()) < OrphanAge
		if indexed {
			if young && copying || slices.ContainsFunc(x.Entries, func(e format.Entry) bool { return need[e.ID] }) {
				continue
			}
			// The index goes first: a chunk set never names a deleted pack.
			if err := r.deleteAll(ctx, indexDir+name); err != nil {
				return st, fmt.Errorf("prune: %w", err)
			}
			st.PacksDeleted++
		} else {
			if young || keepOrphans {
				continue
			}
			st.OrphansDeleted++
		}
		if err := r.deleteAll(ctx, packDir+name); err != nil {
			return st, fmt.Errorf("prune: %w", err)
		}
		for _, s := range sizes {
			st.BytesFreed += max(s, 0)
		}
	}
	m.log.Info("region pruned", "region", regionName, "deleted", len(st.Deleted), "rewritten", len(st.Rewritten), "packs", st.PacksDeleted, "orphans", st.OrphansDeleted)
	return st, nil
}

// checkNoSync fails with ErrConflict while a copying marker younger than
// MarkerAge exists (or one that cannot be read, whose age is unknown).
func (m *Manager) checkNoSync(ctx context.Context, r *region, markers map[string]*format.Marker, now time.Time) error {
	for _, mk := range markers {
		if age := now.Sub(mk.Started); age < MarkerAge {
			return fmt.Errorf("%w: prune region %q: snapshot %q is being copied (copying marker %s old, younger than %s); retry when the sync is done", ErrConflict, r.cfg.Name, mk.Name, age.Round(time.Second), MarkerAge)
		}
	}
	snaps, err := r.list(ctx, snapDir)
	if err != nil {
		return err
	}
	marks, err := r.list(ctx, copyDir)
	if err != nil {
		return err
	}
	for nid := range marks {
		if _, ok := snaps[nid]; ok {
			continue // a finished copy whose marker was left behind
		}
		if _, ok := markers[nid]; !ok {
			return fmt.Errorf("%w: prune region %q: copying marker %s%s cannot be read, so a sync may be running; run repair or remove it", ErrConflict, r.cfg.Name, copyDir, nid)
		}
	}
	return nil
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
