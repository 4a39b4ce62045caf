package service

import (
	"context"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// What a killed restore --lazy leaves (local_lazy.go builds the disk under
// a temporary name, writes its hold naming the final name, attaches its
// source, then renames it): a temporary disk over a lazy layer, perhaps its
// hold in the region. The daemon's start deletes the disk (CleanTempDisks,
// before the mount lists disks); then nothing reads the layer (unread),
// which is what every later step goes by.

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

// unread reports whether nothing reads lazy layer x any more: no disk, no
// snapshot member, no image (stillRead). The temporary disk of a killed
// restore --lazy, deleted at the daemon's start (CleanTempDisks, whether a
// daemon or a daemonless command opened the store first), leaves such a
// layer: it is not attached again (resumeLazy), its hold is released
// (holdLive) and GC drops it (dropUnread).
func unread(x rowstore.LazyLayer) bool { return !stillRead(x) }

// dropUnread runs a GC in the background when n lazy layers are unread:
// it removes them.
func (l *Local) dropUnread(n int) {
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
			l.log.Warn("lazy disks: gc of layers nothing reads failed (the next gc drops them)", "err", err)
			return
		}
		l.log.Info("lazy disks: layers nothing reads dropped (a killed restore's)", "layers", n, "layers_deleted", st.LayersDeleted)
	}()
}
