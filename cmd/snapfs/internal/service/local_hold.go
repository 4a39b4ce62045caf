package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// Holds (replicate's package doc, "Holds"): a lazily restored disk's hold
// keeps its region snapshot from any host's prune while the disk still
// reads from the region. restoreLazy writes it before it reports success;
// it is released when the layer is hydrated (watchHold, or restore --wait
// itself), when disk delete leaves nothing reading the layer, and at each
// daemon start and after each of this host's syncs to the region for every
// hold of this host whose layer no longer reads from the region (a release
// that failed before is retried then; a released hold a stale store kept
// and repair spread again goes at the next sync). A
// failed release is logged, never fatal: a hold kept too long only keeps
// a snapshot.

// holdReleaseTimeout bounds one region's release of holds.
const holdReleaseTimeout = 30 * time.Second

// holdLive reports whether hold h of this host still needs its snapshot:
// its layer is a lazy layer of region not hydrated yet that a disk, a
// snapshot member or an image reads through (stillRead). ls is listed
// after the holds were, so a hold being written meanwhile finds its layer.
func (l *Local) holdLive(region string) func(replicate.HoldInfo) bool {
	var (
		ls     []rowstore.LazyLayer
		listed bool
		failed bool
	)
	return func(h replicate.HoldInfo) bool {
		if !listed {
			listed = true
			var err error
			if ls, err = l.store.ListLazy(); err != nil {
				l.log.Warn("holds: listing lazy layers failed; keeping every hold", "err", err)
				failed = true
			}
		}
		if failed {
			return true
		}
		i := slices.IndexFunc(ls, func(x rowstore.LazyLayer) bool { return x.Layer == h.Layer })
		if i < 0 || ls[i].Origin.Region != region {
			return false // hydrated, or gone
		}
		return stillRead(ls[i])
	}
}

// stillRead reports whether lazy layer x may still be read: a disk, a
// snapshot member or an image reads through it (rowstore counts them), the
// rule of a hold's release (holdLive). It used to be judged by names (a
// disk reads it, or a local snapshot holds a disk of the hold's disk
// name), which released the hold while an image, or a snapshot of the
// restore's temporary disk, still read the layer
// (TestRev12lazyImageKeepsHold, TestRev12lazySnapshotOfTempDiskKeepsHold),
// and kept it, for a layer nothing read, while an unrelated snapshot held
// a disk of that name (TestRev12lazyDaemonlessLeftoverHoldReleased).
func stillRead(x rowstore.LazyLayer) bool {
	return len(x.Disks) > 0 || x.Readers > 0
}

// releaseHolds releases this host's holds in region that no longer hold
// anything (see holdLive); errors are logged and returned.
func (l *Local) releaseHolds(ctx context.Context, region string) error {
	m, err := l.manager()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, holdReleaseTimeout)
	defer cancel()
	rel, err := m.ReleaseOwnHolds(ctx, region, l.holdLive(region))
	for _, h := range rel {
		l.log.Info("hold released: the lazy disk no longer reads from the region", "region", region, "snapshot", h.Snapshot, "disk", h.Disk)
	}
	if err != nil {
		l.log.Warn("holds: release failed; retried at the next daemon start", "region", region, "err", err)
	}
	return err
}

// hasRegions reports whether the store has region configurations (without
// making the host identity a Manager would).
func (l *Local) hasRegions() bool {
	ents, _ := os.ReadDir(filepath.Join(l.dir, "regions"))
	return slices.ContainsFunc(ents, func(e os.DirEntry) bool { return strings.HasSuffix(e.Name(), ".json") })
}

// sweepHolds releases, in the background, this host's holds that no
// longer hold anything, in every region (the daemon's start).
func (l *Local) sweepHolds() {
	if !l.hasRegions() {
		return
	}
	ctx, ok := l.holdCtx()
	if !ok {
		return
	}
	go func() {
		defer l.lz.wg.Done()
		m, err := l.manager()
		if err != nil {
			l.log.Warn("holds: sweep", "err", err)
			return
		}
		rs, err := m.ListRegions()
		if err != nil {
			l.log.Warn("holds: sweep", "err", err)
			return
		}
		for _, c := range rs {
			if ctx.Err() != nil {
				return
			}
			_ = l.releaseHolds(ctx, c.Name)
		}
	}()
}

// holdCtx is the context of the background hold work (cancelled by
// stopLazy), with one more job counted in l.lz.wg; ok is false once it
// stopped.
func (l *Local) holdCtx() (context.Context, bool) {
	l.lz.mu.Lock()
	defer l.lz.mu.Unlock()
	if l.lz.holdStopped {
		return nil, false
	}
	if l.lz.holdCancel == nil {
		l.lz.holdCtxV, l.lz.holdCancel = context.WithCancel(context.Background())
	}
	l.lz.wg.Add(1)
	return l.lz.holdCtxV, true
}

// watchHold releases the hold of layer (region's) once the layer is
// hydrated, in the background. The store closes rd, the layer's source,
// when its hydration ends (AttachLazy): the watcher waits for that, then
// looks once whether the layer is hydrated or gone (else the source closed
// for another reason: a stop, a failed attach; the next attach watches
// again).
func (l *Local) watchHold(layer uint64, region string, rd *reopening) {
	ctx, ok := l.holdCtx()
	if !ok {
		return
	}
	go func() {
		defer l.lz.wg.Done()
		select {
		case <-ctx.Done():
			return
		case <-rd.closedC():
		}
		ls, err := l.store.ListLazy()
		if err != nil || slices.ContainsFunc(ls, func(x rowstore.LazyLayer) bool { return x.Layer == layer }) {
			return
		}
		for try := 0; try < 3; try++ {
			if l.releaseHolds(ctx, region) == nil || ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(try+1) * 5 * time.Second):
			}
		}
	}()
}

// lazyRegionOf is the region of the lazy layer disk reads through ("":
// none): the store's own lookup of one disk (LazyStatusOf), not ListLazy's
// walk of every disk's chain on each disk delete.
func (l *Local) lazyRegionOf(disk string) string {
	st, ok, err := l.store.LazyStatusOf(disk)
	if err != nil || !ok {
		return ""
	}
	return st.Origin.Region
}

// releaseAfterDelete is disk delete's hook: region is that of the lazy
// layer the deleted disk read through ("": none); its hold goes when
// nothing reads it any more. The daemon releases in the background (disk
// delete does not wait for a slow region); a command without a daemon
// releases before it exits.
func (l *Local) releaseAfterDelete(ctx context.Context, region string) {
	if region == "" {
		return
	}
	if l.mountpoint == "" {
		_ = l.releaseHolds(context.WithoutCancel(ctx), region)
		return
	}
	hctx, ok := l.holdCtx()
	if !ok {
		return
	}
	go func() {
		defer l.lz.wg.Done()
		_ = l.releaseHolds(hctx, region)
	}()
}

// markHeld fills the HeldBy of region's snapshots rs (a failure to list
// the holds is logged: the listing stands without them).
func (l *Local) markHeld(ctx context.Context, m *replicate.Manager, region string, rs []RemoteSnapshot) {
	if len(rs) == 0 {
		return
	}
	hs, err := m.Holds(ctx, region)
	if err != nil {
		l.log.Warn("region snapshots: listing holds failed", "region", region, "err", err)
		return
	}
	for i := range rs {
		for _, h := range hs {
			if h.Snapshot == rs[i].Name && h.SnapshotHost == rs[i].HostID {
				rs[i].HeldBy = append(rs[i].HeldBy, h.Label())
			}
		}
		slices.Sort(rs[i].HeldBy)
	}
}

// ReleaseHolds implements Service.
func (l *Local) ReleaseHolds(ctx context.Context, r ReleaseHoldsRequest) ([]HoldInfo, error) {
	if r.Region == "" || r.Snapshot == "" {
		return nil, fmt.Errorf("%w: release needs a region and a snapshot", rowstore.ErrInvalid)
	}
	m, err := l.manager()
	if err != nil {
		return nil, err
	}
	rel, err := m.ReleaseHoldsByHand(ctx, r.Region, replicate.HoldMatch(r.Snapshot, r.Host, r.Holder), r.Force)
	if err != nil {
		return rel, err
	}
	if len(rel) == 0 {
		return nil, fmt.Errorf("%w: no hold of snapshot %q%s in region %q", replicate.ErrNotFound, r.Snapshot, holderOf(r.Holder), r.Region)
	}
	return rel, nil
}

func holderOf(h string) string {
	if h == "" {
		return ""
	}
	return " by host " + h
}

// holder is a region disk that writes its own hold (replicate.RemoteDisk).
type holder interface {
	Hold(ctx context.Context, layer uint64, localDisk string) (replicate.HoldInfo, error)
}

// hold writes the hold of lazy layer (read by localDisk) on the snapshot
// disk of region r reads: through the open region disk when it can, else
// through the Manager.
func (r *reopening) hold(ctx context.Context, m *replicate.Manager, o rowstore.LazyOrigin, layer uint64, localDisk string) (replicate.HoldInfo, error) {
	if h, ok := r.cur().(holder); ok {
		return h.Hold(ctx, layer, localDisk)
	}
	return m.PutHold(ctx, o.Region, o.Host, o.Snapshot, o.Disk, layer, localDisk)
}
