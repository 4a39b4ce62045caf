package replicate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/rowstore"
)

// Stats count what a sync did.
type Stats struct {
	Snapshots      int     `json:"snapshots"`       // snapshots copied
	Skipped        int     `json:"skipped"`         // already in the region
	BlocksExamined int64   `json:"blocks_examined"` // non-zero blocks named by the diffs
	BlocksRead     int64   `json:"blocks_read"`     // blocks read from the local store (chunk missing)
	BytesRead      int64   `json:"bytes_read"`
	PacksWritten   int     `json:"packs_written"`
	BytesWritten   []int64 `json:"bytes_written"` // per store, every object
	// Pruned counts local snapshots not copied because this host's prune
	// removed them from the region (see Sync).
	Pruned int `json:"pruned"`
	// Copied names the snapshots copied: each is restorable when Sync
	// returns, also when it returns an error for a later one.
	Copied []string `json:"copied,omitempty"`
	// Expired counts local snapshots not copied because the region's
	// retention would remove them at once (see retained).
	Expired int `json:"expired"`
	// PrunedSnapshots and ExpiredSnapshots name the snapshots Pruned and
	// Expired count (the service records them: not pending).
	PrunedSnapshots  []string `json:"pruned_snapshots,omitempty"`
	ExpiredSnapshots []string `json:"expired_snapshots,omitempty"`
	// Deltas counts the blocks stored as deltas over their old version
	// (DeltaBytes: those blocks' bytes; see delta.go).
	Deltas     int64 `json:"deltas"`
	DeltaBytes int64 `json:"delta_bytes"`
}

// TotalWritten sums BytesWritten.
func (s Stats) TotalWritten() int64 {
	var t int64
	for _, b := range s.BytesWritten {
		t += b
	}
	return t
}

// Sync copies every local snapshot that holds any of disks (every
// snapshot if disks is empty) and is not yet in the region, oldest first.
// It returns when all of them are durable in the region (every store).
// A snapshot this host's prune removed from the region (a tombstone under
// pruned/) is not copied again; see CopySnapshot to force it.
func (m *Manager) Sync(ctx context.Context, regionName string, disks []string, progress Progress) (Stats, error) {
	progress = orNoProgress(progress)
	snaps, err := m.rs.ListSnapshots()
	if err != nil {
		return Stats{}, fmt.Errorf("sync: %w", err)
	}
	var todo []rowstore.SnapshotInfo
	for _, s := range snaps {
		if len(disks) == 0 || slices.ContainsFunc(s.Disks, func(d rowstore.SnapshotDiskInfo) bool { return slices.Contains(disks, d.Name) }) {
			todo = append(todo, s)
		}
	}
	keep, expired, err := m.selectForSync(regionName, todo, snaps)
	if err != nil {
		return Stats{}, fmt.Errorf("sync: %w", err)
	}
	st, err := m.copySnapshots(ctx, regionName, keep, false, progress)
	st.Expired = expired
	for _, s := range todo {
		if !slices.ContainsFunc(keep, func(k rowstore.SnapshotInfo) bool { return k.ID == s.ID }) {
			st.ExpiredSnapshots = append(st.ExpiredSnapshots, s.Name)
		}
	}
	return st, err
}

// selectForSync is the selection of what Sync copies: of todo, the
// snapshots the region's retention keeps (retained).
func (m *Manager) selectForSync(regionName string, todo, local []rowstore.SnapshotInfo) ([]rowstore.SnapshotInfo, int, error) {
	if err := validRegionName(regionName); err != nil {
		return nil, 0, err
	}
	c, err := m.loadConfig(regionName)
	if err != nil {
		return nil, 0, err
	}
	keep, expired := retained(todo, local, c.Retention, m.opts.Now())
	return keep, expired, nil
}

// CopySnapshot copies one local snapshot to the region (nothing if it is
// there already). It is an explicit request: a snapshot that prune
// removed is copied again (and its tombstone removed).
func (m *Manager) CopySnapshot(ctx context.Context, regionName, snapshot string, progress Progress) (Stats, error) {
	s, err := m.rs.GetSnapshot(snapshot)
	if err != nil {
		return Stats{}, fmt.Errorf("copy snapshot: %w", err)
	}
	return m.copySnapshots(ctx, regionName, []rowstore.SnapshotInfo{s}, true, orNoProgress(progress))
}

// phases times the steps of a job for its debug log.
type phases struct {
	last time.Time
	d    []any
}

func newPhases() *phases { return &phases{last: time.Now()} }

// done ends the step called name.
func (p *phases) done(name string) {
	now := time.Now()
	p.d = append(p.d, name, now.Sub(p.last).Round(time.Microsecond))
	p.last = now
}

// same reports whether a remote object describes the local snapshot s.
func same(s rowstore.SnapshotInfo, id uint64, created time.Time) bool {
	return id == s.ID && created.Equal(s.Created)
}

// readTombstone reads and decodes the tombstone of the snapshot object nid.
func (r *region) readTombstone(ctx context.Context, nid string) (*format.Tombstone, error) {
	pt, _, err := r.getMeta(ctx, format.TypeTomb, prunedDir, nid)
	if err != nil {
		return nil, err
	}
	return format.DecodeTombstone(pt)
}

// readTombstoneNewest reads every usable store's copy of the tombstone of
// nid and returns the newest: of the copies with a sequence (version 2)
// the highest, else a version 1 one. Copies differ when a store comes
// back from a backup holding the tombstone of an earlier prune of the
// same snapshot (a copy since removed it, a later prune wrote a higher
// sequence): judging by the first store that answers, a copy (sync)
// wrote a sequence no higher than the last prune's, and a manifest that
// prune removed looked newer than the stale tombstone (prunedCopies)
// (TestRev14RecopyAboveEveryTombstoneCopy,
// TestRev14PrunedStaysPrunedOverStaleTombstone). A copy that cannot be
// read or decoded is passed over; with no good copy the error is
// getMeta's.
func (r *region) readTombstoneNewest(ctx context.Context, nid string) (*format.Tombstone, error) {
	ts := make([]*format.Tombstone, r.n())
	errs := forEach(r.n(), func(i int) error { // in parallel: a slow store costs one wait
		if r.bad[i] != nil {
			return nil
		}
		b, err := r.stores[i].Get(ctx, prunedDir+nid, 0, -1)
		if err != nil {
			return fmt.Errorf("store %d: %w", i, err)
		}
		pt, err := r.keys.Open(format.TypeTomb, nid, b)
		if err == nil {
			ts[i], err = format.DecodeTombstone(pt)
		}
		if err != nil {
			return fmt.Errorf("store %d: %w", i, err)
		}
		return nil
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var best *format.Tombstone
	for _, t := range ts {
		if t != nil && (best == nil || newerTomb(t, best)) {
			best = t
		}
	}
	if best != nil {
		return best, nil
	}
	var failed []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			failed = append(failed, err)
		}
	}
	if len(failed) == 0 {
		return nil, fmt.Errorf("%w: %s%s on any store", ErrNotFound, prunedDir, nid)
	}
	return nil, fmt.Errorf("%s%s: no good copy: %w", prunedDir, nid, joinErrs(failed...))
}

// copiedSincePrune reports whether manifest nid, beside a tombstone of
// its snapshot, was put after the prune that wrote the tombstone (newer
// than its newest copy: copiedAfter). A manifest or tombstone with no
// good copy is not (it is judged as before tombstones had a sequence).
func (m *Manager) copiedSincePrune(ctx context.Context, r *region, nid string) (bool, error) {
	t, err := r.readTombstoneNewest(ctx, nid)
	if err == nil {
		var c *manifestCopies
		if c, err = r.readManifestAll(ctx, nid); err == nil {
			return copiedAfter(c.mf, t), nil
		}
	}
	if cerr := ctx.Err(); cerr != nil {
		return false, cerr
	}
	return false, nil
}

// copiedAfter reports whether manifest mf was put after the prune that
// wrote tombstone t of the same snapshot: a copy since writes a sequence
// above the removed manifest's (version 2 tombstones record it).
func copiedAfter(mf *format.Manifest, t *format.Tombstone) bool {
	return t.HasSeq() && mf.Seq > t.Seq
}

// newerTomb reports whether tombstone copy a is newer than b: a sequence
// above none or a lower one; equal ones by the time of the prune.
func newerTomb(a, b *format.Tombstone) bool {
	switch {
	case a.HasSeq() != b.HasSeq():
		return a.HasSeq()
	case a.HasSeq() && a.Seq != b.Seq:
		return a.Seq > b.Seq
	}
	return a.Pruned.After(b.Pruned)
}

// readTombstones reads the pruned/ tombstones by name id (unreadable ones
// are logged and left out).
func (m *Manager) readTombstones(ctx context.Context, r *region) (map[string]*format.Tombstone, error) {
	l, err := r.list(ctx, prunedDir)
	if err != nil {
		return nil, err
	}
	out := map[string]*format.Tombstone{}
	for nid := range l {
		t, err := r.readTombstone(ctx, nid)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			m.log.Warn("unreadable tombstone", "region", r.cfg.Name, "id", nid, "err", err)
			continue
		}
		out[nid] = t
	}
	return out, nil
}

func (m *Manager) copySnapshots(ctx context.Context, regionName string, todo []rowstore.SnapshotInfo, explicit bool, progress Progress) (st Stats, err error) {
	progress.Event(Event{Type: EventStart, Op: "sync", Region: regionName})
	defer func() {
		ev := Event{Type: EventDone, Op: "sync", Region: regionName, Bytes: st.TotalWritten()}
		if err != nil {
			ev.Err = err.Error()
		}
		progress.Event(ev)
	}()
	ph := newPhases()
	defer func() { m.log.Debug("sync timings", append([]any{"region", regionName}, ph.d...)...) }()
	r, err := m.openRegion(ctx, regionName, true)
	if err != nil {
		return st, err
	}
	defer r.close()
	ph.done("open")
	st.BytesWritten = make([]int64, r.n())
	ctx, unlock, err := m.lock(ctx, r, false, "sync")
	if err != nil {
		return st, err
	}
	defer func() { unlock(); ph.done("unlock") }()
	ph.done("lock")
	defer func() {
		if err != nil && context.Cause(ctx) != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
	}()
	remote, err := r.list(ctx, snapDir)
	if err != nil {
		return st, err
	}
	markers, err := r.list(ctx, copyDir)
	if err != nil {
		return st, err
	}
	tombs, err := m.readTombstones(ctx, r)
	if err != nil {
		return st, err
	}
	ph.done("list")
	cs, err := m.loadChunks(ctx, r, chunksDedup)
	if err != nil {
		return st, err
	}
	ph.done("chunks")
	local, err := m.rs.ListSnapshots()
	if err != nil {
		return st, err
	}
	manifests := map[string]*format.Manifest{}
	var refused []error
	for _, snap := range todo {
		nid := r.snapNID(m.host.ID, snap.Name)
		if t := tombs[nid]; t != nil && same(snap, t.SnapshotID, t.Created) && !explicit {
			st.Pruned++
			st.PrunedSnapshots = append(st.PrunedSnapshots, snap.Name)
			continue
		}
		if t := tombs[r.keys.NameID(snap.Name)]; t != nil && same(snap, t.SnapshotID, t.Created) && !explicit {
			st.Pruned++ // pruned before hosts existed
			st.PrunedSnapshots = append(st.PrunedSnapshots, snap.Name)
			continue
		}
		if t := tombs[nid]; t != nil && same(snap, t.SnapshotID, t.Created) && remote[nid] != nil {
			// An explicit copy of a snapshot prune removed, whose manifest
			// is still in the region: a stale store's leftover
			// (prunedCopies) or an interrupted prune's. It is not the
			// copy asked for (its packs may be gone): deleted first, then
			// the snapshot is copied anew. Unless the manifest was put
			// after the prune (newer than every copy of the tombstone: a
			// stale store brought the tombstone back): that is the copy
			// asked for, live, and is left alone
			// (TestRev14CopyKeepsLiveManifestBesideStaleTombstone).
			live, err := m.copiedSincePrune(ctx, r, nid)
			if err != nil {
				return st, fmt.Errorf("sync snapshot %q to region %q: %w", snap.Name, regionName, err)
			}
			if !live {
				if err := r.deleteAll(ctx, snapDir+nid); err != nil {
					return st, fmt.Errorf("sync snapshot %q to region %q: remove the pruned copy: %w", snap.Name, regionName, err)
				}
				delete(remote, nid)
			}
		}
		found := nid
		if _, ok := remote[nid]; !ok {
			// A copy made before hosts existed (same snapshot id and time)
			// is this host's: not copied again.
			if legacy := r.keys.NameID(snap.Name); remote[legacy] != nil {
				mf, err := r.readManifest(ctx, legacy)
				if err != nil && !errors.Is(err, ErrNotFound) {
					return st, fmt.Errorf("snapshot %q: %w", snap.Name, err)
				}
				if err == nil && same(snap, mf.SnapshotID, mf.Created) {
					found = legacy
				}
			}
		}
		if sizes, ok := remote[found]; ok {
			// A copy whose chain reaches a manifest gone from every store
			// cannot be restored (check and the listing say lost): it is
			// shipped again, as a full map or over a parent whose chain
			// is whole, instead of being skipped for good (and every
			// later snapshot of its disks failing over it as a parent).
			var reship *format.Manifest
			// The common case, a finished copy: one copy read, the
			// others' tags compared (oneCopy).
			if _, marked := markers[found]; !marked && r.oneSize(sizes) {
				if mf := r.oneCopy(ctx, found, sizes); mf != nil && same(snap, mf.SnapshotID, mf.Created) {
					gone, err := r.chainGone(ctx, mf, remote, manifests)
					if err != nil {
						return st, fmt.Errorf("snapshot %q: %w", snap.Name, err)
					}
					if !gone {
						manifests[found] = mf
						st.Skipped++
						ph.done("skip")
						continue
					}
					reship = mf
				}
			}
			if reship == nil {
				skipped, mf, err := m.finishOrSkip(ctx, r, regionName, snap, found, sizes, remote, markers, manifests, &refused, st.BytesWritten)
				switch {
				case err != nil && found == nid && onlyCorrupt(err) && ctx.Err() == nil:
					// No good copy on any store (each corrupt): the region
					// lost it; this host still has it, so it ships it again
					// (its new manifest replaces the damaged copies)
					// instead of failing every sync of this host for good.
					m.log.Warn("sync: the region's copy of this snapshot is unreadable on every store (lost): shipping it again",
						"region", regionName, "snapshot", snap.Name, "err", err)
				case err != nil:
					return st, err
				case skipped:
					manifests[found] = mf
					st.Skipped++
					ph.done("skip")
					continue
				case mf == nil: // refused: another snapshot of that name
					continue
				default:
					reship = mf
				}
			}
			if reship != nil {
				m.log.Warn("sync: the region's copy of this snapshot is a delta whose chain reaches a manifest gone or unreadable on every store (it cannot be restored): shipping it again",
					"region", regionName, "snapshot", snap.Name)
				if found == nid {
					manifests[nid] = reship // copyOne writes the next sequence
				}
			}
		}
		// A snapshot of a disk still hydrating from a region cannot be
		// diffed yet (rowstore refuses: its missing blocks would read as
		// zeros): it is left out, before anything of it is written (a
		// copying marker), and the rest ships; the next sync ships it once
		// the disk is whole. It stopped the whole sync, every later
		// snapshot of every disk of this host with it, for as long as the
		// disk hydrated (TestTrial15SyncBesideHydratingDisk).
		// So is a snapshot of an encrypted disk whose key is locked (disk
		// lock): it stopped every later snapshot too, until unlocked.
		if err := m.readable(ctx, snap); err != nil {
			when := "once the disk is whole"
			switch {
			case errors.Is(err, rowstore.ErrLocked):
				when = "once its disk is unlocked"
			case !errors.Is(err, rowstore.ErrBusy):
				return st, fmt.Errorf("sync snapshot %q to region %q: %w", snap.Name, regionName, err)
			}
			refused = append(refused, fmt.Errorf("snapshot %q not shipped to region %q now (the next sync ships it %s): %w", snap.Name, regionName, when, err))
			continue
		}
		var minSeq uint64
		if t := tombs[nid]; t != nil {
			// The tombstone goes before the manifest is put: a manifest
			// beside its snapshot's tombstone is a pruned one a stale
			// store kept (prunedCopies), never a copy made after. The
			// new manifest's sequence is above the pruned one's, so a
			// stale store that brings the tombstone back (put back from
			// a backup taken between the prune and now) does not make
			// this copy look pruned (TestRegion14StaleTombstoneKeepsRecopy):
			// above every copy's, as a stale store may hold an earlier
			// prune's (TestRev14RecopyAboveEveryTombstoneCopy).
			nt, err := r.readTombstoneNewest(ctx, nid)
			if errors.Is(err, ErrNotFound) {
				nt, err = t, nil // gone since the listing: the copy read then
			}
			if err != nil {
				return st, fmt.Errorf("sync snapshot %q to region %q: read its tombstone: %w", snap.Name, regionName, err)
			}
			if nt.HasSeq() {
				minSeq = nt.Seq + 1
			}
			if err := r.deleteAll(ctx, prunedDir+nid); err != nil {
				return st, fmt.Errorf("sync snapshot %q to region %q: remove its tombstone: %w", snap.Name, regionName, err)
			}
			delete(tombs, nid)
		}
		if err := m.copyOne(ctx, r, cs, snap, local, remote, tombs, manifests, minSeq, &st, progress, ph); err != nil {
			return st, fmt.Errorf("sync snapshot %q to region %q: %w", snap.Name, regionName, err)
		}
		remote[nid] = nil
		st.Snapshots++
		st.Copied = append(st.Copied, snap.Name)
	}
	if !explicit {
		m.dropTombstones(ctx, r, tombs, local)
	}
	return st, joinErrs(refused...)
}

// errFirstBlock stops readable's look at the first block.
var errFirstBlock = errors.New("first block")

// readable fails with rowstore.ErrBusy when a disk of snap reads through
// a disk still hydrating from a region, and with rowstore.ErrLocked when
// it is an encrypted disk whose key is locked: rowstore's diff refuses the
// first before it visits a block, and a read of the first stored block
// the second, so a diff stopped there asks rowstore's own rules (no second
// copy of them here) at the cost of an index seek, and of one block read
// for an encrypted disk.
func (m *Manager) readable(ctx context.Context, snap rowstore.SnapshotInfo) error {
	for _, d := range snap.Disks {
		enc, err := m.rs.SnapshotDiskEncrypted(snap.Name, d.Name)
		if err != nil {
			return err
		}
		_, err = m.rs.StreamDiff(ctx, nil, rowstore.Point{Snapshot: snap.Name, Disk: d.Name}, rowstore.StreamOptions{
			BatchBytes: d.BlockSize, Buffers: 1,
			Visit: func(c rowstore.Change) (bool, error) {
				switch {
				case !enc:
					return false, errFirstBlock
				case c.Zero:
					return false, nil
				}
				return true, nil // read it: a locked key fails the read
			},
			Data: func(*rowstore.BlockBatch) error { return errFirstBlock },
		})
		if err != nil && !errors.Is(err, errFirstBlock) {
			return err
		}
	}
	return nil
}

// finishOrSkip reads every copy of manifest found, this host's copy of
// local snapshot snap, when Sync cannot skip it on one copy. It finishes
// an interrupted manifest write (a copy missing or different on some
// store, or the marker still there). skipped: the copy is whole, mf its
// manifest. Not skipped, mf set: the copy cannot be restored (chainGone)
// and is shipped again. Not skipped, mf nil: the region holds another
// snapshot of that name from this host (refused gets why).
func (m *Manager) finishOrSkip(ctx context.Context, r *region, regionName string, snap rowstore.SnapshotInfo, found string, sizes []int64, remote, markers listing, manifests map[string]*format.Manifest, refused *[]error, written []int64) (bool, *format.Manifest, error) {
	c, err := r.readManifestAll(ctx, found)
	if err != nil {
		return false, nil, fmt.Errorf("snapshot %q: %w", snap.Name, err)
	}
	mf := c.mf
	if !same(snap, mf.SnapshotID, mf.Created) {
		// This host made another snapshot of this name before
		// (deleted locally since): the region keeps that one.
		*refused = append(*refused, fmt.Errorf("%w: snapshot %q (id %d, %s): region %q holds another snapshot of that name from this host (id %d, %s); not shipped: the region keeps that copy (never replaced: it may be the only one left) until retention prunes it (region prune), and a sync after that ships this one if retention keeps it; to ship it now, snapshot it again under another name", ErrExists, snap.Name, snap.ID, snap.Created.Format(time.RFC3339), regionName, mf.SnapshotID, mf.Created.Format(time.RFC3339)))
		return false, nil, nil
	}
	if gone, err := r.chainGone(ctx, mf, remote, manifests); err != nil {
		return false, nil, fmt.Errorf("snapshot %q: %w", snap.Name, err)
	} else if gone {
		return false, mf, nil // shipped again: the finishing is moot
	}
	if _, marked := markers[found]; marked || !r.onAll(sizes) || len(c.stale(r)) > 0 {
		// Not a manifest a prune removed while this sync was
		// stopped past its lease: only under a lock still held.
		if err := m.stillLocked(ctx, r); err != nil {
			return false, nil, fmt.Errorf("sync snapshot %q: finish manifest: %w", snap.Name, err)
		}
		if err := r.putAll(ctx, snapDir+found, c.sealed, written); err != nil {
			return false, nil, fmt.Errorf("sync snapshot %q: finish manifest: %w", snap.Name, err)
		}
		if err := r.deleteAll(ctx, copyDir+found); err != nil {
			return false, nil, fmt.Errorf("sync snapshot %q: remove copying marker: %w", snap.Name, err)
		}
		m.log.Info("interrupted manifest write finished", "region", r.cfg.Name, "snapshot", snap.Name)
	}
	return true, mf, nil
}

// chainGone reports whether a disk of mf is a delta whose chain of parents
// reaches a manifest the region no longer holds whole: gone from every
// store (prune rewrites a delta as full before it deletes its parent, so
// this is loss, not a prune at work; Sync holds its shared lock) or
// unreadable on every one, at any depth (a delta over a delta over it
// cannot be restored either). A direct parent the listing remote lacks
// is decided without a read; the parents read further up go to cache
// (diskChain, as the delta bases use).
func (r *region) chainGone(ctx context.Context, mf *format.Manifest, remote listing, cache map[string]*format.Manifest) (bool, error) {
	for _, d := range mf.Disks {
		if d.Parent == "" {
			continue
		}
		if _, ok := remote[d.Parent]; !ok {
			return true, nil
		}
		if _, err := r.diskChain(ctx, mf, d.Name, cache); errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) {
			return true, nil
		} else if err != nil {
			return false, err
		}
	}
	return false, nil
}

// oneCopy reads the manifest nid (listed with one size on every usable
// store) whole from one store and only its last 16 bytes, the GCM tag,
// from the others. A put to every store writes the same sealed bytes, and
// every seal (a rewrite by Prune) draws a new nonce, so copies with one
// size and one tag are one sealed object: the manifest is returned, and
// Sync may skip it without reading every copy (a manifest of a large disk
// is MBs). On any doubt (a tag that differs, an error) it returns nil and
// the caller reads every copy (readManifestAll), which finds and finishes
// an interrupted write. A copy rotted in place is Check's to find, as
// for every object Sync does not read.
func (r *region) oneCopy(ctx context.Context, nid string, sizes []int64) *format.Manifest {
	first := slices.IndexFunc(r.bad, func(err error) bool { return err == nil })
	if first < 0 || sizes[first] < tagSize {
		return nil
	}
	var whole []byte
	tags := make([][]byte, r.n())
	errs := forEach(r.n(), func(i int) error {
		var err error
		switch {
		case r.bad[i] != nil:
		case i == first:
			whole, err = r.stores[i].Get(ctx, snapDir+nid, 0, -1)
		default:
			tags[i], err = r.stores[i].Get(ctx, snapDir+nid, sizes[i]-tagSize, tagSize)
		}
		return err
	})
	if firstErr(errs) != nil || int64(len(whole)) != sizes[first] {
		return nil
	}
	tag := whole[len(whole)-tagSize:]
	for i, t := range tags {
		if r.bad[i] == nil && i != first && !bytes.Equal(t, tag) {
			return nil
		}
	}
	pt, err := r.keys.Open(format.TypeManifest, nid, whole)
	if err != nil {
		return nil
	}
	mf, err := format.DecodeManifest(pt)
	if err != nil {
		return nil
	}
	return mf
}

// tagSize is the length of the GCM tag that ends every sealed object.
const tagSize = 16

// dropTombstones removes this host's tombstones of snapshots it no longer
// has locally: they can never be shipped again, so the region forgets them.
func (m *Manager) dropTombstones(ctx context.Context, r *region, tombs map[string]*format.Tombstone, local []rowstore.SnapshotInfo) {
	for nid, t := range tombs {
		if t.Host != m.host.ID || slices.ContainsFunc(local, func(s rowstore.SnapshotInfo) bool { return same(s, t.SnapshotID, t.Created) }) {
			continue
		}
		if err := r.deleteAll(ctx, prunedDir+nid); err != nil {
			m.log.Warn("old tombstone not removed", "region", r.cfg.Name, "snapshot", t.Name, "err", err)
		}
	}
}

// base finds the newest local snapshot older than snap that holds the
// same disk, is in the region (as this host's, or as a copy made before
// hosts existed), and whose manifest is the same snapshot.
//
// A snapshot prune removed (its tombstone, tombs) is never a base: its
// manifest is gone, about to go (an interrupted prune), or a leftover that
// a stale store kept and that check, repair and prune treat as pruned
// (prunedCopies): a delta over it could not be restored once that copy is
// deleted (TestRtrial10NoDeltaOverPrunedLeftover).
func (m *Manager) base(ctx context.Context, r *region, snap rowstore.SnapshotInfo, d rowstore.SnapshotDiskInfo, local []rowstore.SnapshotInfo, remote listing, tombs map[string]*format.Tombstone, manifests map[string]*format.Manifest) (*rowstore.SnapshotInfo, *format.Manifest, string, error) {
	for i := len(local) - 1; i >= 0; i-- {
		s := local[i]
		if s.ID >= snap.ID {
			continue
		}
		j := slices.IndexFunc(s.Disks, func(x rowstore.SnapshotDiskInfo) bool { return x.Name == d.Name && x.DiskID == d.DiskID })
		if j < 0 || s.Disks[j].BlockSize != d.BlockSize {
			continue
		}
		for _, nid := range []string{r.snapNID(m.host.ID, s.Name), r.keys.NameID(s.Name)} {
			if _, ok := remote[nid]; !ok {
				continue
			}
			if t := tombs[nid]; t != nil && same(s, t.SnapshotID, t.Created) {
				continue
			}
			mf, ok := manifests[nid]
			if !ok {
				var err error
				if mf, err = r.readManifest(ctx, nid); err != nil {
					if onlyCorrupt(err) && ctx.Err() == nil {
						continue // lost in the region (every copy damaged): no base
					}
					return nil, nil, "", err
				}
				manifests[nid] = mf
			}
			if !same(s, mf.SnapshotID, mf.Created) || mf.Disk(d.Name) == nil {
				continue
			}
			return &local[i], mf, nid, nil
		}
	}
	return nil, nil, "", nil
}

// copyOne copies one snapshot: marker, packs and indexes, manifest, and
// then removes the marker. The blocks stream through a pipeline (see
// pipeline.go): the diff hands out each block with its data, read where
// the diff found it; workers verify and compress; full packs are sealed,
// erasure coded and uploaded while the next ones fill.
func (m *Manager) copyOne(ctx context.Context, r *region, cs *chunkSet, snap rowstore.SnapshotInfo, local []rowstore.SnapshotInfo, remote listing, tombs map[string]*format.Tombstone, manifests map[string]*format.Manifest, minSeq uint64, st *Stats, progress Progress, ph *phases) (err error) {
	nid := r.snapNID(m.host.ID, snap.Name)
	marker := &format.Marker{Name: snap.Name, SnapshotID: snap.ID, Created: snap.Created, Started: m.opts.Now().UTC(), Host: m.host.ID, HostName: m.host.Name}
	mb, err := r.keys.Seal(format.TypeMarker, nid, marker.Encode())
	if err != nil {
		return err
	}
	// The marker is written while the diff starts; the pipeline puts no
	// pack before it is durable, and finishes only once it is.
	markerBytes := make([]int64, r.n())
	marked := make(chan error, 1)
	go func() { marked <- r.putAll(ctx, copyDir+nid, mb, markerBytes) }()
	mf := &format.Manifest{Name: snap.Name, SnapshotID: snap.ID, Created: snap.Created, Kind: snap.Kind, Host: m.host.ID, HostName: m.host.Name}
	if old := manifests[nid]; old != nil && same(snap, old.SnapshotID, old.Created) {
		// Shipped again over a copy that cannot be restored (chainGone):
		// of copies that differ after an interrupted put, this one wins.
		mf.Seq = old.Seq + 1
	}
	mf.Seq = max(mf.Seq, minSeq) // above a pruned copy's (its tombstone's)
	// The parents' readers (old versions of changed blocks, for deltas)
	// close after the pipeline has stopped: its workers read them.
	var sources []*deltaSource
	defer func() {
		for _, ds := range sources {
			_ = ds.rd.Close()
		}
	}()
	pl := m.startPipeline(ctx, r, st, progress, snap.Name, marked)
	defer func() {
		for i, n := range markerBytes { // the marker put has ended: the pipeline waited for it
			st.BytesWritten[i] += n
		}
	}()
	defer func() {
		if pl != nil {
			pl.abort(cs)
		}
	}()
	pending := map[format.ChunkID]bool{}
	used := map[packID]bool{} // packs this snapshot deduplicates against
	for _, d := range snap.Disks {
		md := format.ManifestDisk{Name: d.Name, Size: d.Size, BlockSize: d.BlockSize}
		// An encrypted disk is recorded so: a restore must encrypt it again.
		if md.Encrypted, err = m.rs.SnapshotDiskEncrypted(snap.Name, d.Name); err != nil {
			return err
		}
		var from *rowstore.Point
		var ds *deltaSource
		bsnap, bmf, bnid, err := m.base(ctx, r, snap, d, local, remote, tombs, manifests)
		if err != nil {
			return err
		}
		ph.done("find-base")
		if bsnap != nil && bmf.Disk(d.Name).Depth+1 < format.MaxDepth {
			// A delta needs every chunk of its parent to be readable: a
			// parent with a chunk in no readable pack (a lost pack) is no
			// base, and the full map resends what is missing. Every entry
			// of the parent's chain is checked (no block map is built: a
			// chunk a later delta replaced counts too, which only errs on
			// the safe side), through the packs that held its chunks when
			// last checked or written while those are all readable
			// (cover.go).
			chain, err := r.diskChain(ctx, bmf, d.Name, manifests)
			if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
				return err
			}
			ph.done("chain")
			// A parent whose chain reaches a manifest gone or unreadable
			// on every store cannot be restored: no base either.
			ok := err == nil && m.chainReadable(r, cs, chain, used)
			if ok {
				from = &rowstore.Point{Snapshot: bsnap.Name, Disk: d.Name}
				md.Parent, md.Depth = bnid, bmf.Disk(d.Name).Depth+1
			} else {
				m.log.Warn("sync: parent snapshot needs chunks the region cannot read; sending a full map", "region", r.cfg.Name, "snapshot", snap.Name, "parent", bsnap.Name, "disk", d.Name)
			}
		}
		if bsnap != nil {
			// Deltas over the local parent's blocks (also when the map
			// is sent full: at MaxDepth, or over a parent the region
			// cannot read whole; a base is checked chunk by chunk); a
			// parent that cannot be opened (an encrypted disk whose key
			// is locked) gives none: blocks go whole.
			if rd, err := m.rs.OpenSnapshotDisk(bsnap.Name, d.Name); err == nil {
				ds = &deltaSource{rd: rd, cs: cs, keys: r.keys, size: min(d.Size, rd.Size()), packs: map[packID]bool{}}
				sources = append(sources, ds)
			} else {
				m.log.Info("sync: parent snapshot not readable here; no deltas", "region", r.cfg.Name, "snapshot", snap.Name, "parent", bsnap.Name, "disk", d.Name, "err", err)
			}
		}
		ph.done("base")
		to := rowstore.Point{Snapshot: snap.Name, Disk: d.Name}
		ev := Event{Type: EventBlocks, Op: "sync", Region: r.cfg.Name, Snapshot: snap.Name, Disk: d.Name}
		progress.Event(Event{Type: EventSnapshot, Op: "sync", Region: r.cfg.Name, Snapshot: snap.Name, Disk: d.Name})
		var total, done uint64
		// Data runs in the stream's reader goroutine, Visit and Progress
		// in this one: the read counts are atomic until the stream ends.
		var nblocks, nbytes atomic.Int64
		_, err = m.rs.StreamDiff(ctx, from, to, rowstore.StreamOptions{
			BatchBytes: streamBatch, Buffers: streamBuffers,
			Visit: func(c rowstore.Change) (bool, error) {
				if c.Zero {
					md.Entries = append(md.Entries, format.MapEntry{Block: c.Block, Zero: true})
					return false, nil
				}
				st.BlocksExamined++
				id := r.keys.ChunkID(c.Digest)
				md.Entries = append(md.Entries, format.MapEntry{Block: c.Block, ID: id})
				if loc, ok := cs.lookup(id); ok && cs.usable(loc, used) {
					return false, nil // a delta's base counts as used too
				}
				if pending[id] {
					return false, nil
				}
				pending[id] = true
				return true, nil
			},
			Data: func(b *rowstore.BlockBatch) error {
				nblocks.Add(int64(len(b.Blocks)))
				nbytes.Add(int64(len(b.Blocks)) * int64(d.BlockSize))
				return pl.compress(b, ds)
			},
			Progress: func(d, t uint64) {
				done, total = d, t
				ev.Blocks, ev.BlocksTotal, ev.Bytes = int64(done), int64(total), st.BytesRead+nbytes.Load()
				progress.Event(ev)
			},
		})
		st.BlocksRead += nblocks.Load()
		st.BytesRead += nbytes.Load()
		if err != nil {
			if perr := pl.failed(); perr != nil {
				err = perr // the pipeline's failure stopped the stream
			}
			if from != nil && errors.Is(err, rowstore.ErrNotFound) {
				if _, gerr := m.rs.GetSnapshot(from.Snapshot); errors.Is(gerr, rowstore.ErrNotFound) {
					// Deleted since it was chosen as the base: not this
					// snapshot's fault, and the next run picks another.
					return fmt.Errorf("sync %s: %w: snapshot %s, the base of this incremental copy, was deleted meanwhile: run it again (%v)", to, ErrConflict, from.Snapshot, err)
				}
			}
			return fmt.Errorf("sync %s: %w", to, err)
		}
		mf.Disks = append(mf.Disks, md)
		ph.done("stream")
	}
	p := pl
	pl = nil
	written, err := p.finish(cs)
	for _, w := range written {
		used[packID(w.x.Pack)] = true
	}
	for _, ds := range sources {
		for id := range ds.packs { // the packs of the bases this snapshot's deltas name
			used[id] = true
		}
	}
	st.Deltas += p.deltas.Load()
	st.DeltaBytes += p.deltaBytes.Load()
	m.chunkCache.learn(r, written)
	if err != nil {
		return err
	}
	ph.done("flush")
	// Every pack and index is durable: the manifest goes last, once this
	// sync's lock is known to be still held (so no prune or repair has run
	// since it was taken) and the parents and packs it needs are known to
	// be still there (defence in depth).
	if err := m.stillLocked(ctx, r); err != nil {
		return err
	}
	if err := r.verifyRefs(ctx, mf, used); err != nil {
		return err
	}
	ph.done("verify")
	pt, err := mf.Encode()
	if err != nil {
		return err
	}
	sealed, err := r.keys.Seal(format.TypeManifest, nid, pt)
	if err != nil {
		return err
	}
	if err := r.putAll(ctx, snapDir+nid, sealed, st.BytesWritten); err != nil {
		return err
	}
	manifests[nid] = mf
	m.rememberCovers(r, mf, used)
	ph.done("manifest")
	if err := r.deleteAll(ctx, copyDir+nid); err != nil {
		m.log.Warn("copying marker left behind", "region", r.cfg.Name, "snapshot", snap.Name, "err", err)
	}
	ph.done("unmark")
	m.log.Info("snapshot copied", "region", r.cfg.Name, "snapshot", snap.Name, "blocks_read", st.BlocksRead, "packs", st.PacksWritten)
	return nil
}

// verifyRefs checks that every parent manifest of mf is still on every
// usable store, the index of every pack in used on its usable homes, and the pack still
// has k shards, or fails with ErrConflict: the next sync then resends
// what is gone.
func (r *region) verifyRefs(ctx context.Context, mf *format.Manifest, used map[packID]bool) error {
	snaps, err := r.list(ctx, snapDir)
	if err != nil {
		return err
	}
	for _, d := range mf.Disks {
		if d.Parent != "" && (snaps[d.Parent] == nil || !r.onAll(snaps[d.Parent])) {
			return fmt.Errorf("%w: parent manifest %s%s of disk %q is gone from the region (a concurrent prune?); sync again to resend", ErrConflict, snapDir, d.Parent, d.Name)
		}
	}
	if len(used) == 0 {
		return nil
	}
	for _, dir := range []string{indexDir, packDir} {
		l, err := r.list(ctx, dir)
		if err != nil {
			return err
		}
		for id := range used {
			// The index is on every home (Sync healed it before use); a
			// pack is used with k shards or more (a degraded pack is
			// still readable: Repair rebuilds the rest), and Prune
			// deletes its index first.
			sizes := l[id.String()]
			ok := sizes != nil && r.indexOnHomes(id.String(), sizes)
			if dir == packDir {
				ok = sizes != nil && r.shards(sizes) >= r.k
			}
			if !ok {
				return fmt.Errorf("%w: %s%s, which this snapshot deduplicates against, is gone from the region (a concurrent prune?); sync again to resend", ErrConflict, dir, id)
			}
		}
	}
	return nil
}
