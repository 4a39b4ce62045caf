package replicate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
)

// holdDir holds the holds of a region (see the package doc, "Holds").
const holdDir = "holds/"

// HoldInfo is one hold: a host's lazily restored disk that still reads
// from a remote snapshot, which prune therefore keeps.
type HoldInfo struct {
	ID               string    `json:"id"` // object name under holds/
	Snapshot         string    `json:"snapshot"`
	SnapshotHost     string    `json:"snapshot_host,omitempty"` // host id of the snapshot's host ("" unknown)
	SnapshotHostName string    `json:"snapshot_host_name,omitempty"`
	SnapshotDisk     string    `json:"snapshot_disk,omitempty"`
	Holder           string    `json:"holder"`    // holding host's name
	HolderID         string    `json:"holder_id"` // holding host's id
	Disk             string    `json:"disk,omitempty"`
	Layer            uint64    `json:"layer"`
	Created          time.Time `json:"created"`
	Damaged          string    `json:"damaged,omitempty"` // the object could not be read: why
	nid              string
}

// Label names the hold's holder in reports: "host/disk".
func (h HoldInfo) Label() string {
	who := h.Holder
	if who == "" {
		who = h.HolderID
	}
	if h.Disk == "" {
		return who
	}
	return who + "/" + h.Disk
}

// holdName is the object name of holder's hold of manifest nid for its
// lazy layer: "<nid>.<holder id>.<layer>".
func holdName(nid string, holder format.HostID, layer uint64) string {
	return nid + "." + holder.String() + "." + strconv.FormatUint(layer, 10)
}

func parseHoldName(s string) (nid, holder string, layer uint64, ok bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", 0, false
	}
	layer, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil {
		return "", "", 0, false
	}
	return parts[0], parts[1], layer, true
}

// PutHold records, on every store of region it can reach, that this host's
// lazy layer (read by its disk localDisk) reads disk of the snapshot
// (host and snapshot as in OpenRemoteDiskOf): prune keeps the snapshot
// and what it needs until the hold is released. Putting it again is
// harmless (the same object). Failures: see writeHold.
func (m *Manager) PutHold(ctx context.Context, region, host, snapshot, disk string, layer uint64, localDisk string) (HoldInfo, error) {
	r, err := m.openRegion(ctx, region, false)
	if err != nil {
		return HoldInfo{}, err
	}
	defer r.close()
	// The shared lock: no prune runs between finding the manifest and
	// the hold landing.
	lctx, unlock, err := m.lock(ctx, r, false, "hold")
	if err != nil {
		return HoldInfo{}, err
	}
	defer unlock()
	nid, mf, err := m.findSnapshot(lctx, r, host, snapshot)
	if err != nil {
		return HoldInfo{}, fmt.Errorf("hold: %w", err)
	}
	h := &format.Hold{Holder: m.host.ID, Layer: layer, Created: m.opts.Now().UTC(), SnapshotHost: mf.Host,
		HolderName: m.host.Name, Disk: localDisk, Snapshot: mf.Name, SnapshotDisk: disk, SnapshotHostName: mf.HostName}
	return m.writeHold(lctx, r, nid, h)
}

// Hold is PutHold of the snapshot disk d reads, through d's open region
// and under its shared lock (no second open of the region, no manifest
// listing: restore --lazy stays fast).
func (d *RemoteDisk) Hold(ctx context.Context, layer uint64, localDisk string) (HoldInfo, error) {
	jc, err := d.lockCtx(ctx)
	if err != nil {
		return HoldInfo{}, err
	}
	defer jc.(*joinedCtx).done()
	d.storesMu.RLock()
	defer d.storesMu.RUnlock()
	m := d.m
	h := &format.Hold{Holder: m.host.ID, Layer: layer, Created: m.opts.Now().UTC(), SnapshotHost: d.mf.Host,
		HolderName: m.host.Name, Disk: localDisk, Snapshot: d.mf.Name, SnapshotDisk: d.disk, SnapshotHostName: d.mf.HostName}
	return m.writeHold(jc, d.r, d.nid, h)
}

// writeHold puts hold h of manifest nid on every usable store of r. It
// fails (ErrUnavailable), removing the copies written, when no store took
// it, or when a store that is up refused it and fewer than k took it. A
// store down since the region was opened gets the hold at the next
// attach of the lazy disk (the service puts it again then): prune runs
// only with every store up and keeps a manifest held on any one store.
func (m *Manager) writeHold(ctx context.Context, r *region, nid string, h *format.Hold) (HoldInfo, error) {
	region, snapshot := r.cfg.Name, h.Snapshot
	name := holdName(nid, h.Holder, h.Layer)
	sealed, err := r.keys.Seal(format.TypeHold, name, h.Encode())
	if err != nil {
		return HoldInfo{}, err
	}
	on, refused, ok := r.putQuorum(ctx, holdDir+name, sealed)
	written := 0
	for _, o := range on {
		if o {
			written++
		}
	}
	errs := append(refused, r.bad...) // the stores that refused it, then those not usable
	if !ok {
		if derr := r.deleteAll(context.WithoutCancel(ctx), holdDir+name); derr != nil {
			m.log.Warn("hold: removing a partly written hold failed", "region", region, "hold", name, "err", derr)
		}
		return HoldInfo{}, fmt.Errorf("%w: hold of snapshot %q written on %d of %d stores of region %q (needs %d): %w",
			ErrUnavailable, snapshot, written, r.n(), region, r.k, joinErrs(errs...))
	}
	if written < r.n() {
		m.log.Warn("hold: not written on every store", "region", region, "snapshot", snapshot, "written", written, "stores", r.n(), "err", joinErrs(errs...))
	}
	return holdInfo(name, nid, h), nil
}

func holdInfo(name, nid string, h *format.Hold) HoldInfo {
	hi := HoldInfo{ID: name, Snapshot: h.Snapshot, SnapshotHostName: h.SnapshotHostName, SnapshotDisk: h.SnapshotDisk, Holder: h.HolderName,
		HolderID: h.Holder.String(), Disk: h.Disk, Layer: h.Layer, Created: h.Created, nid: nid}
	if !h.SnapshotHost.IsZero() {
		hi.SnapshotHost = h.SnapshotHost.String()
	}
	return hi
}

// listHolds lists and reads the holds of r. A hold whose object cannot be
// read is still listed (from its name) with Damaged set: it still holds.
func (m *Manager) listHolds(ctx context.Context, r *region) ([]HoldInfo, error) {
	l, err := r.list(ctx, holdDir)
	if err != nil {
		return nil, err
	}
	var out []HoldInfo
	for _, name := range sortedKeys(l) {
		nid, holder, layer, ok := parseHoldName(name)
		if !ok {
			continue
		}
		pt, _, err := r.getMeta(ctx, format.TypeHold, holdDir, name)
		var h *format.Hold
		if err == nil {
			h, err = format.DecodeHold(pt)
		}
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // released meanwhile
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			out = append(out, HoldInfo{ID: name, HolderID: holder, Layer: layer, Damaged: err.Error(), nid: nid})
			continue
		}
		out = append(out, holdInfo(name, nid, h))
	}
	return out, nil
}

// heldBy maps the name id of each held manifest to its holds.
func (m *Manager) heldBy(ctx context.Context, r *region) (map[string][]HoldInfo, error) {
	hs, err := m.listHolds(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("holds: %w", err)
	}
	out := map[string][]HoldInfo{}
	for _, h := range hs {
		out[h.nid] = append(out[h.nid], h)
	}
	return out, nil
}

// Holds lists the holds of region.
func (m *Manager) Holds(ctx context.Context, region string) ([]HoldInfo, error) {
	r, err := m.openRegion(ctx, region, false)
	if err != nil {
		return nil, err
	}
	defer r.close()
	return m.listHolds(ctx, r)
}

// ReleaseHolds removes the holds of region that match selects, from every
// usable store, and returns them. A hold left on a store that could not
// be reached still holds (a later release removes it).
func (m *Manager) ReleaseHolds(ctx context.Context, region string, match func(HoldInfo) bool) ([]HoldInfo, error) {
	r, err := m.openRegion(ctx, region, false)
	if err != nil {
		return nil, err
	}
	defer r.close()
	hs, err := m.listHolds(ctx, r)
	if err != nil {
		return nil, err
	}
	var out []HoldInfo
	for _, h := range hs {
		if !match(h) {
			continue
		}
		if err := r.deleteAll(ctx, holdDir+h.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return out, fmt.Errorf("release hold %s: %w", h.ID, err)
		}
		m.log.Info("hold released", "region", region, "snapshot", h.Snapshot, "holder", h.Label())
		out = append(out, h)
	}
	return out, nil
}

// ReleaseHoldsByHand is ReleaseHolds for `region release`, which is meant
// for the holds of a host gone for good: unless force, it refuses
// (ErrLocked, changing nothing) when a hold it would remove belongs to a
// host that holds a live lock on the region (its lazy disk hydrating, a
// regions/ disk open: it is not gone, and a prune after the release would
// take blocks that disk still reads). It removed such holds: a release
// without --holder dropped every host's, a live lazy disk's included.
func (m *Manager) ReleaseHoldsByHand(ctx context.Context, region string, match func(HoldInfo) bool, force bool) ([]HoldInfo, error) {
	if !force {
		r, err := m.openRegion(ctx, region, false)
		if err != nil {
			return nil, err
		}
		hs, err := m.listHolds(ctx, r)
		var locks []LockInfo
		if err == nil {
			locks, err = m.readLocks(ctx, r)
		}
		r.close()
		if err != nil {
			return nil, err
		}
		var live []string
		for _, h := range hs {
			if !match(h) {
				continue
			}
			for _, l := range locks {
				if l.HostID == h.HolderID && !l.Stale && !l.dead && !l.Unreadable {
					live = append(live, fmt.Sprintf("%s (%s)", h.Label(), l.describe()))
					break
				}
			}
		}
		if len(live) > 0 {
			return nil, fmt.Errorf("%w: region %q: not released: the holder is not gone, it holds a live lock on the region: %s; its lazy disk still reads the snapshot (delete or hydrate it there, which releases the hold), or release with --force", ErrLocked, region, strings.Join(live, "; "))
		}
	}
	return m.ReleaseHolds(ctx, region, match)
}

// ReleaseOwnHolds removes this host's holds in region that live does not
// report as still reading from the region (a damaged hold of this host is
// kept: its layer is not known for sure).
func (m *Manager) ReleaseOwnHolds(ctx context.Context, region string, live func(HoldInfo) bool) ([]HoldInfo, error) {
	me := m.host.ID.String()
	return m.ReleaseHolds(ctx, region, func(h HoldInfo) bool { return h.HolderID == me && h.Damaged == "" && !live(h) })
}

// HoldMatch selects holds for a release by hand: of snapshot (its name;
// a damaged hold by its id), of the snapshot's host snapHost (host id or
// name; "" any), by holder (host id or name; "" any).
func HoldMatch(snapshot, snapHost, holder string) func(HoldInfo) bool {
	return func(h HoldInfo) bool {
		if h.Snapshot != snapshot && !(h.Damaged != "" && snapshot == h.ID) {
			return false
		}
		if holder != "" && holder != h.Holder && holder != h.HolderID {
			return false
		}
		return snapHost == "" || snapHost == h.SnapshotHost || snapHost == h.SnapshotHostName || (snapHost == "unknown" && h.SnapshotHost == "")
	}
}

// heldLabels is, per held manifest, the labels of its holders, sorted.
func heldLabels(hs []HoldInfo) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Label())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// keepHeld is prune's hook: every held manifest is kept (its parents and
// packs then are too, as for any kept snapshot), and st.Held names those
// kept only for their holds.
func (m *Manager) keepHeld(ctx context.Context, r *region, mfs map[string]*format.Manifest, keep map[string]bool, st *PruneStats) error {
	held, err := m.heldBy(ctx, r)
	if err != nil {
		return err
	}
	for _, nid := range slices.Sorted(maps.Keys(held)) {
		mf, ok := mfs[nid]
		if !ok || keep[nid] {
			continue
		}
		keep[nid] = true
		by := heldLabels(held[nid])
		st.Held = append(st.Held, fmt.Sprintf("%s (held by %s)", m.label(mf), strings.Join(by, ", ")))
		m.log.Info("prune: snapshot kept for its holds", "region", r.cfg.Name, "snapshot", m.label(mf), "held_by", by)
	}
	return nil
}
