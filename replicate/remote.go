package replicate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
)

// State is the state of a remote snapshot.
type State string

// Remote snapshot states.
const (
	StateAbsent    State = "absent"    // not in the region
	StateCopying   State = "copying"   // a copy started (marker), no manifest yet
	StateAvailable State = "available" // manifest present: restorable
	StateDegraded  State = "degraded"  // available, but the last check found bad shards it needs
	// StateLost: its manifest (or one of its chain) has no good copy on
	// any store (each damaged): it cannot be restored. Its name is not
	// known (the manifest holds it): Name and NameID are its name id.
	StateLost State = "lost"
	// StatePruned and StateExpired are states of a local snapshot's copy
	// that the region will never hold, so it is not pending (status's
	// region lag leaves it out): prune removed it from the region (sync
	// does not ship it again; snapshot copy does), or sync did not ship
	// it because the region's retention would remove it at once.
	StatePruned  State = "pruned"
	StateExpired State = "expired"
)

// RemoteDiskInfo is one disk of a remote snapshot, as listed (see RemoteDisk
// to read one).
type RemoteDiskInfo struct {
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	BlockSize int    `json:"block_size"`
	Blocks    int    `json:"manifest_entries"`
	Delta     bool   `json:"delta"`
}

// RemoteSnapshot is a snapshot in a region.
type RemoteSnapshot struct {
	Name string `json:"name"`
	// HostID and Host say whose snapshot it is ("unknown": copied before
	// hosts existed); Mine: this host's.
	HostID string `json:"host_id"`
	Host   string `json:"host"`
	Mine   bool   `json:"mine"`
	// NameID is set for a lost snapshot whose manifest cannot be read
	// (StateLost): its object name, snapshots/<name id>.
	NameID  string           `json:"name_id,omitempty"`
	ID      uint64           `json:"id"`
	Created time.Time        `json:"created"`
	Kind    string           `json:"kind,omitempty"`
	State   State            `json:"state"`
	Disks   []RemoteDiskInfo `json:"disks,omitempty"`
	// HeldBy names the lazily restored disks ("host/disk") whose holds
	// keep it from prune (hold.go; filled by the service's listing).
	HeldBy []string `json:"held_by,omitempty"`
}

func (m *Manager) remoteOf(mf *format.Manifest) RemoteSnapshot {
	rs := RemoteSnapshot{Name: mf.Name, HostID: mf.Host.String(), Host: hostName(mf.Host, mf.HostName), Mine: mf.Host == m.host.ID,
		ID: mf.SnapshotID, Created: mf.Created, Kind: mf.Kind, State: StateAvailable}
	for _, d := range mf.Disks {
		rs.Disks = append(rs.Disks, RemoteDiskInfo{Name: d.Name, Size: d.Size, BlockSize: d.BlockSize, Blocks: len(d.Entries), Delta: d.Parent != ""})
	}
	return rs
}

func hostName(id format.HostID, name string) string {
	if id.IsZero() {
		return "unknown"
	}
	return name
}

// checkState is what the last Check found, kept in the region's cache.
type checkState struct {
	Time time.Time `json:"time"`
	// Degraded are the name ids of snapshots found degraded, lost or
	// unavailable.
	Degraded []string `json:"degraded_ids"`
}

func (m *Manager) checkStatePath(name string) string {
	return filepath.Join(m.cacheDir(name), "check.json")
}

func (m *Manager) loadCheckState(name string) checkState {
	var cs checkState
	b, err := os.ReadFile(m.checkStatePath(name))
	if err == nil {
		_ = json.Unmarshal(b, &cs)
	}
	return cs
}

func (m *Manager) saveCheckState(name string, cs checkState) error {
	if err := os.MkdirAll(m.cacheDir(name), 0o700); err != nil {
		return fmt.Errorf("region cache: %w", err)
	}
	b, err := json.Marshal(cs)
	if err != nil {
		return err
	}
	return writeFileAtomic(m.checkStatePath(name), b)
}

// ListRemote lists the region's snapshots, oldest first, with their state.
func (m *Manager) ListRemote(ctx context.Context, regionName string) ([]RemoteSnapshot, error) {
	r, err := m.openRegion(ctx, regionName, false)
	if err != nil {
		return nil, err
	}
	defer r.close()
	unreadable := map[string]error{}
	mfs, markers, _, err := m.scanManifests(ctx, r, true, unreadable)
	if err != nil {
		return nil, err
	}
	// A delta over a manifest this scan did not find: either a prune (a
	// listing takes no lock) rewrote it as a full map on every store and
	// then deleted its parent after we read the delta, or the parent is
	// gone from every store. Read such manifests again (every copy, the
	// newest): a rewrite is complete before its parent goes, so one still
	// a delta over a parent not found is lost, as check and restore say.
	// One whose chain reaches an unreadable manifest is lost whatever a
	// second read finds: not read again.
	missing, bad := map[string]bool{}, map[string]bool{}
	for _, nid := range sortedKeysOf(mfs) {
		if !overLost(mfs, unreadable, nid, missing, true) || overLost(mfs, unreadable, nid, bad, false) {
			continue
		}
		c, err := r.readManifestAll(ctx, nid)
		switch {
		case errors.Is(err, ErrNotFound):
			delete(mfs, nid) // pruned meanwhile
		case err != nil && onlyCorrupt(err) && ctx.Err() == nil:
			delete(mfs, nid)
			unreadable[nid] = err
		case err != nil:
			return nil, fmt.Errorf("region %q: manifest %s: %w", r.cfg.Name, nid, err)
		default:
			mfs[nid] = c.mf
		}
	}
	degraded := m.loadCheckState(regionName).Degraded
	lost := map[string]bool{}
	var out []RemoteSnapshot
	for nid, mf := range mfs {
		rs := m.remoteOf(mf)
		if slices.Contains(degraded, nid) {
			rs.State = StateDegraded
		}
		if overLost(mfs, unreadable, nid, lost, true) {
			rs.State = StateLost // a delta over a manifest that cannot be read, or is gone
		}
		out = append(out, rs)
	}
	// Every readable snapshot is listed; one whose manifest cannot be read
	// on any store is named by its name id, lost.
	for _, nid := range sortedKeysOf(unreadable) {
		out = append(out, RemoteSnapshot{Name: nid, NameID: nid, Host: "?", State: StateLost})
	}
	for _, mk := range markers {
		out = append(out, RemoteSnapshot{Name: mk.Name, HostID: mk.Host.String(), Host: hostName(mk.Host, mk.HostName), Mine: mk.Host == m.host.ID,
			ID: mk.SnapshotID, Created: mk.Created, State: StateCopying})
	}
	slices.SortStableFunc(out, func(a, b RemoteSnapshot) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// overLost reports whether a disk of manifest nid is a delta whose chain
// of parents reaches a manifest in unreadable, or, with missing, one not
// in mfs at all (at any depth: a delta over a delta over it cannot be
// restored either). memo keeps the answers.
func overLost(mfs map[string]*format.Manifest, unreadable map[string]error, nid string, memo map[string]bool, missing bool) bool {
	if v, ok := memo[nid]; ok {
		return v
	}
	memo[nid] = false // a cycle (damage) ends here
	mf := mfs[nid]
	if mf == nil {
		_, bad := unreadable[nid]
		bad = bad || missing
		memo[nid] = bad
		return bad
	}
	for _, d := range mf.Disks {
		if d.Parent != "" && overLost(mfs, unreadable, d.Parent, memo, missing) {
			memo[nid] = true
			return true
		}
	}
	return false
}

// remoteAllCopies reads every manifest (by name id; the newest copy) and
// every marker without a manifest, and returns, by name id, the manifests
// whose copies are not the same on every usable store.
func (m *Manager) remoteAllCopies(ctx context.Context, r *region) (map[string]*format.Manifest, map[string]*format.Marker, map[string]*manifestCopies, error) {
	return m.remoteScan(ctx, r, false)
}

// remoteScan is remoteAllCopies; a listing (listing true: ListRemote,
// which the daemon runs after every sync to record what the region
// holds) reads a manifest whose copies have one size on every usable
// store from one store only, instead of every copy (a manifest of a large
// disk is MBs): copies that differ (an interrupted Prune rewrite) differ
// in size, as a rewrite turns a delta into a full map, and are read from
// every store. differ is nil for a listing.
func (m *Manager) remoteScan(ctx context.Context, r *region, listing bool) (map[string]*format.Manifest, map[string]*format.Marker, map[string]*manifestCopies, error) {
	return m.scanManifests(ctx, r, listing, nil)
}

// scanManifests is remoteScan; with unreadable set, a manifest with no
// good copy on any usable store (each copy corrupt: ErrCorrupt) is put
// there (name id: the error) and left out, instead of failing the scan
// (a listing and check report it; an operation that deletes or writes by
// the manifests must not go on without one, and fails).
func (m *Manager) scanManifests(ctx context.Context, r *region, listing bool, unreadable map[string]error) (map[string]*format.Manifest, map[string]*format.Marker, map[string]*manifestCopies, error) {
	snaps, err := r.list(ctx, snapDir)
	if err != nil {
		return nil, nil, nil, err
	}
	marks, err := r.list(ctx, copyDir)
	if err != nil {
		return nil, nil, nil, err
	}
	pruned, err := m.prunedCopies(ctx, r, snaps, marks)
	if err != nil {
		return nil, nil, nil, err
	}
	mfs := map[string]*format.Manifest{}
	differ := map[string]*manifestCopies{}
	for nid, sizes := range snaps {
		if pruned[nid] {
			continue // a stale store's copy of a pruned snapshot
		}
		if listing && r.oneSize(sizes) {
			pt, _, err := r.getMeta(ctx, format.TypeManifest, snapDir, nid)
			var mf *format.Manifest
			if err == nil {
				mf, err = format.DecodeManifest(pt)
			}
			if errors.Is(err, ErrNotFound) {
				continue // removed since the listing (a prune)
			}
			if err == nil {
				mfs[nid] = mf
				continue
			}
			// A bad copy: read them all, as below.
		}
		c, err := r.readManifestAll(ctx, nid)
		if errors.Is(err, ErrNotFound) {
			continue // removed since the listing (a prune)
		}
		if err != nil && unreadable != nil && onlyCorrupt(err) && ctx.Err() == nil {
			m.log.Warn("remote snapshot manifest unreadable on every store: the snapshot is lost", "region", r.cfg.Name, "name_id", nid, "err", err)
			unreadable[nid] = err
			continue
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("region %q: manifest %s: %w", r.cfg.Name, nid, err)
		}
		mfs[nid] = c.mf
		if !listing && len(c.stale(r)) > 0 {
			differ[nid] = c
		}
	}
	markers := m.readMarkers(ctx, r, snaps, marks)
	if listing {
		differ = nil
	}
	return mfs, markers, differ, nil
}

// prunedCopies returns the name ids in snaps (a listing of snapshots/)
// whose manifest is what a stale store kept of a snapshot prune removed:
// a store that was away (down, unmounted) or put back from a backup
// while prune deleted the manifest from every other store. Such a
// manifest is not on every usable store, has no copying marker (marks: a
// listing of copying/), and has a tombstone in the region for the same
// snapshot (host, snapshot id and creation time): prune writes the
// tombstone on every store before it deletes the manifest, and a copy of
// a pruned snapshot (CopySnapshot) removes the tombstone before it puts
// the manifest. Listings, restores, prune and check leave such copies
// out; check reports each as ProblemPruned and Repair and Prune delete
// it, instead of taking the other stores' lack of it for loss and
// putting it back on every store (TestRtrial10StaleStoreDoesNotUndoPrune).
// A tombstone that cannot be read, or a manifest with no good copy,
// makes no leftover (the manifest is treated as before).
func (m *Manager) prunedCopies(ctx context.Context, r *region, snaps, marks listing) (map[string]bool, error) {
	var cand []string
	for nid, sizes := range snaps {
		if _, copying := marks[nid]; copying {
			continue
		}
		for i, n := range sizes {
			if r.bad[i] == nil && n < 0 {
				cand = append(cand, nid)
				break
			}
		}
	}
	if len(cand) == 0 {
		return nil, nil
	}
	tombs, err := r.list(ctx, prunedDir)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, nid := range cand {
		if tombs[nid] == nil {
			continue
		}
		// The newest copy: a store put back from a backup may hold an
		// earlier prune's tombstone, whose lower sequence would make the
		// manifest the last prune removed look newer.
		t, err := r.readTombstoneNewest(ctx, nid)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		c, err := r.readManifestAll(ctx, nid)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		if c.mf.Host == t.Host && c.mf.SnapshotID == t.SnapshotID && c.mf.Created.Equal(t.Created) {
			if copiedAfter(c.mf, t) {
				// Put after the prune (an explicit copy writes a higher
				// sequence): the tombstone is the stale one, a store put
				// back from a backup taken between the prune and the copy.
				// Before, this copy was taken for a pruned leftover and
				// repair and prune deleted it from every store
				// (TestRegion14StaleTombstoneKeepsRecopy).
				m.log.Warn("a store holds the tombstone of a snapshot copied again since it was pruned (a store put back from a backup): the snapshot is kept",
					"region", r.cfg.Name, "snapshot", c.mf.Name, "pruned", t.Pruned)
				continue
			}
			m.log.Warn("a store holds the manifest of a snapshot prune removed (a store that was away or put back from a backup): left out, removed by repair or prune",
				"region", r.cfg.Name, "snapshot", c.mf.Name, "pruned", t.Pruned)
			out[nid] = true
		}
	}
	return out, nil
}

// scanMarkers reads the copying markers that have no manifest (syncs
// running or dead), from the listings alone: no manifest is read.
func (m *Manager) scanMarkers(ctx context.Context, r *region) (map[string]*format.Marker, error) {
	snaps, err := r.list(ctx, snapDir)
	if err != nil {
		return nil, err
	}
	marks, err := r.list(ctx, copyDir)
	if err != nil {
		return nil, err
	}
	return m.readMarkers(ctx, r, snaps, marks), nil
}

// readMarkers reads the markers listed in marks whose name id has no
// manifest listed in snaps; an unreadable marker is logged and left out.
func (m *Manager) readMarkers(ctx context.Context, r *region, snaps, marks map[string][]int64) map[string]*format.Marker {
	markers := map[string]*format.Marker{}
	for nid := range marks {
		if _, ok := snaps[nid]; ok {
			continue
		}
		pt, _, err := r.getMeta(ctx, format.TypeMarker, copyDir, nid)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			m.log.Warn("unreadable copying marker", "region", r.cfg.Name, "id", nid, "err", err)
			continue
		}
		mk, err := format.DecodeMarker(pt)
		if err != nil {
			m.log.Warn("unreadable copying marker", "region", r.cfg.Name, "id", nid, "err", err)
			continue
		}
		markers[nid] = mk
	}
	return markers
}

// onlyCorrupt reports whether err (readManifestAll's) says that every copy
// read is corrupt or missing, at least one corrupt: no store failed in a
// way that a later read might not.
func onlyCorrupt(err error) bool {
	var me multiErr
	if !errors.As(err, &me) {
		return false
	}
	corrupt := false
	for _, e := range me {
		switch {
		case errors.Is(e, ErrCorrupt):
			corrupt = true
		case errors.Is(e, store.ErrNotFound), errors.Is(e, ErrNotFound):
		default:
			return false
		}
	}
	return corrupt
}

// oneSize reports whether an object is on every usable store with the
// same size everywhere.
func (r *region) oneSize(sizes []int64) bool {
	size := int64(-1)
	for i, n := range sizes {
		if r.bad[i] != nil {
			continue
		}
		if n < 0 || size >= 0 && n != size {
			return false
		}
		size = n
	}
	return size >= 0
}

// RemoteState tells whether a local snapshot is in the region: absent,
// copying, available or degraded. Only this host's copy counts (or one
// made before hosts existed with the same snapshot id and time).
func (m *Manager) RemoteState(ctx context.Context, regionName, snapshot string) (RemoteSnapshot, error) {
	local, err := m.rs.GetSnapshot(snapshot)
	if err != nil {
		return RemoteSnapshot{}, err
	}
	out := RemoteSnapshot{Name: local.Name, HostID: m.host.ID.String(), Host: m.host.Name, Mine: true, ID: local.ID, Created: local.Created, Kind: local.Kind, State: StateAbsent}
	r, err := m.openRegion(ctx, regionName, false)
	if err != nil {
		return out, err
	}
	defer r.close()
	for _, nid := range []string{r.snapNID(m.host.ID, snapshot), r.keys.NameID(snapshot)} {
		mf, err := r.readManifest(ctx, nid)
		switch {
		case err == nil:
			if mf.SnapshotID != local.ID || !mf.Created.Equal(local.Created) {
				continue
			}
			out = m.remoteOf(mf)
			out.Mine = true
			if slices.Contains(m.loadCheckState(regionName).Degraded, nid) {
				out.State = StateDegraded
			}
			return out, nil
		case !errors.Is(err, ErrNotFound):
			return out, err
		}
		pt, _, err := r.getMeta(ctx, format.TypeMarker, copyDir, nid)
		if err == nil {
			if mk, err := format.DecodeMarker(pt); err == nil && mk.SnapshotID == local.ID {
				out.State = StateCopying
				return out, nil
			}
		}
	}
	return out, nil
}
