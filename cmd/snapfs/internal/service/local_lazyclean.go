package service

import (
	"context"
	"slices"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// What a killed restore --lazy leaves (local_lazy.go builds the disk under
// a temporary name, writes its hold naming the final name, attaches its
// source, then renames it): a temporary disk over a lazy layer, perhaps its
// hold in the region. The daemon's start (CleanRegionLeftovers, before
// rowstore's CleanTempDisks and before the mount lists disks) deletes such
// disks itself, so that it knows their layers: orphans. An orphan layer is
// not attached again (resumeLazy), its holds are released by the start's
// sweep whatever snapshot names they carry (holdLive), and a GC in the
// background drops the layer.
//
// A temporary disk deleted by CleanTempDisks alone (a daemonless command
// opened the store first) leaves a layer no disk reads: it is attached for
// reads only (its source idle, holding no region lock) until a GC drops
// it, and its hold goes at the first sweep (no disk, snapshot member or
// image reads the layer: stillRead).

// dropTemp deletes restoreLazy's temporary disk tmp after a failed step
// (logged: the next daemon start deletes it otherwise).
func (l *Local) dropTemp(tmp string) {
	if err := l.store.DeleteDisk(tmp, true); err != nil {
		l.log.Warn("restore --lazy: temporary disk not deleted (the next daemon start deletes it)", "disk", tmp, "err", err)
	}
	l.namesChanged()
}

// releaseLayerHold releases this host's hold of lazy layer layer in region
// (a restore that wrote it and then kept no disk); it says what became of
// the hold, for the restore's error.
func (l *Local) releaseLayerHold(ctx context.Context, region string, layer uint64) string {
	m, err := l.manager()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), holdReleaseTimeout)
		defer cancel()
		_, err = m.ReleaseOwnHolds(ctx, region, func(h replicate.HoldInfo) bool { return h.Layer != layer })
	}
	if err != nil {
		l.log.Warn("restore --lazy: releasing the hold of a disk not kept failed (retried at the next daemon start and sync)", "region", region, "layer", layer, "err", err)
		return "its hold goes at the next daemon start or sync"
	}
	return "its hold was released"
}

// cleanLazyTemps deletes the temporary disks of killed lazy restores and
// records their layers as orphans (see above). It runs at the daemon's
// start, before any restore of this process builds a temporary disk.
func (l *Local) cleanLazyTemps() {
	ls, err := l.store.ListLazy()
	if err != nil {
		l.log.Warn("lazy disks: listing for a killed restore's leftovers", "err", err)
		return
	}
	for _, x := range ls {
		if len(x.Disks) == 0 || !slices.ContainsFunc(x.Disks, rowstore.IsTempDiskName) {
			continue
		}
		// A snapshot member or an image reads the layer (a snapshot of the
		// temporary disk taken by hand while it was built): not an orphan.
		orphan := x.Readers == 0
		for _, d := range x.Disks {
			if !rowstore.IsTempDiskName(d) {
				orphan = false // a disk of its own reads it (none should)
				continue
			}
			if err := l.store.DeleteDisk(d, true); err != nil {
				l.log.Warn("temporary disk of a killed restore --lazy not deleted", "disk", d, "err", err)
				orphan = false
				continue
			}
			l.log.Info("deleted the temporary disk of a killed restore --lazy", "disk", d, "layer", x.Layer, "region", x.Origin.Region, "snapshot", x.Origin.Snapshot)
		}
		if orphan {
			l.lz.mu.Lock()
			if l.lz.orphans == nil {
				l.lz.orphans = map[uint64]bool{}
			}
			l.lz.orphans[x.Layer] = true
			l.lz.mu.Unlock()
		}
	}
}

// isOrphan reports whether layer is a killed lazy restore's (cleanLazyTemps).
func (l *Local) isOrphan(layer uint64) bool {
	l.lz.mu.Lock()
	defer l.lz.mu.Unlock()
	return l.lz.orphans[layer]
}

// dropOrphans runs a GC in the background when cleanLazyTemps found
// orphans: it removes their layers (nothing reads them).
func (l *Local) dropOrphans() {
	l.lz.mu.Lock()
	n := len(l.lz.orphans)
	l.lz.mu.Unlock()
	if n == 0 {
		return
	}
	if _, ok := l.holdCtx(); !ok {
		return
	}
	go func() {
		defer l.lz.wg.Done()
		st, err := l.store.GC()
		if err != nil {
			l.log.Warn("lazy disks: gc after a killed restore's leftovers failed (the next gc drops their layers)", "err", err)
			return
		}
		l.log.Info("lazy disks: a killed restore's layers dropped", "layers", n, "layers_deleted", st.LayersDeleted)
	}()
}
