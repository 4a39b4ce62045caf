package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// Lazy restore (restore --lazy): the new disk's bottom layer is a rowstore
// lazy layer whose source is the region's disk (replicate.RemoteDisk,
// range reads verified against the chunk ids). The service opens the
// source, creates the disk, attaches the source and, with Wait, streams
// hydration progress like a sync. The daemon re-attaches the source of
// every lazy layer when it starts (resumeLazy), retrying with backoff
// while the region is unreachable; a command without a daemon hydrates
// only while it runs (the next daemon resumes).

// remoteDisk is what a lazy layer needs of a region's disk.
type remoteDisk interface {
	rowstore.LayerSource
	rowstore.StoredLister
	rowstore.BatchSource
	Size() int64
	BlockSize() int
	StoredBlocks() int64
	Encrypted() bool
	Close() error
}

// lazyState is the Local's re-attachment work.
type lazyState struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// attachErr is, per lazy layer whose source could not be attached,
	// why (the last try): disk info shows it, since no source means the
	// engine has no error of its own to report.
	attachErr map[uint64]string
	// The background hold work (local_hold.go): its context, made on
	// first use; holdStopped once stopLazy ran.
	holdCtxV    context.Context
	holdCancel  context.CancelFunc
	holdStopped bool
}

// setAttachErr records (err nil: clears) why layer's source is not attached.
func (l *Local) setAttachErr(layer uint64, err error) {
	l.lz.mu.Lock()
	defer l.lz.mu.Unlock()
	if err == nil {
		delete(l.lz.attachErr, layer)
		return
	}
	if l.lz.attachErr == nil {
		l.lz.attachErr = map[uint64]string{}
	}
	l.lz.attachErr[layer] = err.Error()
}

// withAttachErr gives a disk whose lazy source is not attached the reason
// the daemon last failed to attach it, when the engine has none.
func (l *Local) withAttachErr(d Disk) Disk {
	h := d.Hydration
	if h == nil || h.Attached || h.LastError != "" {
		return d
	}
	l.lz.mu.Lock()
	why := l.lz.attachErr[h.Layer]
	l.lz.mu.Unlock()
	if why != "" {
		hc := *h
		hc.LastError = why
		d.Hydration = &hc
	}
	return d
}

// restoreLazy implements Restore with Lazy.
func (l *Local) restoreLazy(ctx context.Context, r RestoreRequest, progress Progress) (RestoreStats, error) {
	if r.KeyFile != "" {
		return RestoreStats{}, fmt.Errorf("%w: restore --lazy into an encrypted disk is not supported yet (restore without --lazy)", rowstore.ErrInvalid)
	}
	if r.Rate < 0 {
		return RestoreStats{}, fmt.Errorf("%w: negative --rate", rowstore.ErrInvalid)
	}
	if err := rowstore.ValidateName("disk", r.To); err != nil {
		return RestoreStats{}, err
	}
	if rowstore.IsTempDiskName(r.To) {
		return RestoreStats{}, fmt.Errorf("%w: disk name %q is reserved for temporary disks", rowstore.ErrInvalid, r.To)
	}
	if _, err := l.store.GetDisk(r.To); err == nil {
		return RestoreStats{}, fmt.Errorf("%w: local disk %q", rowstore.ErrExists, r.To) // as the eager restore says
	} else if !errors.Is(err, rowstore.ErrNotFound) {
		return RestoreStats{}, fmt.Errorf("restore --lazy: %w", err)
	}
	m, err := l.manager()
	if err != nil {
		return RestoreStats{}, err
	}
	t0 := time.Now()
	rd, err := openReopening(ctx, l.log, m, r.Region, r.Host, r.Snapshot, r.Disk, nil)
	if err != nil {
		return RestoreStats{}, fmt.Errorf("restore --lazy: %w", err)
	}
	// From now on the source is this snapshot, not whatever later bears
	// its name (see openReopening).
	var want *replicate.RemoteIdentity
	if id, ok := identityOf(rd); ok {
		want = &id // the snapshot openReopening keeps to
	}
	if rd.Encrypted() {
		rd.Close()
		return RestoreStats{}, fmt.Errorf("%w: disk %q of snapshot %q was encrypted on its host: restore it into an encrypted disk (--encrypt --key-file FILE, without --lazy)", replicate.ErrInvalid, r.Disk, r.Snapshot)
	}
	origin := rowstore.LazyOrigin{Region: r.Region, Host: r.Host, Snapshot: r.Snapshot, Disk: r.Disk, Size: rd.Size(), BlockSize: rd.BlockSize(), Rate: r.Rate}
	if want != nil {
		origin.HostID, origin.SnapshotID, origin.Created = want.HostID, want.SnapshotID, want.Created
	}
	// The disk is built under a temporary name and gets its own only once
	// its hold is written: a process killed at any step leaves either
	// nothing under r.To (the daemon's start deletes the temporary disk,
	// CleanTempDisks; then nothing reads its layer: it is not attached, its
	// hold is released and GC drops it, resumeLazy) or a disk whose hold
	// keeps its snapshot from every host's prune
	// (TestLazyKillNeverListsUnheldDisk). A disk listed without its hold
	// read EIO for good once another host pruned its snapshot.
	tmp, release := rowstore.NewTempDiskName()
	defer release()
	if _, err := l.store.CreateLazyDisk(tmp, origin, rd.StoredBlocks()); err != nil {
		rd.Close()
		return RestoreStats{}, fmt.Errorf("restore --lazy: %w", err)
	}
	t1 := time.Now()
	lazyStep("lazy-created")
	var layer uint64
	held := false
	// notKept undoes what a failed step left: the temporary disk, rd, and
	// the hold once written.
	notKept := func(err error) (RestoreStats, error) {
		l.dropTemp(tmp)
		rd.Close()
		what := fmt.Sprintf("disk %s was not kept", r.To)
		if held {
			what += "; " + l.releaseLayerHold(ctx, r.Region, layer)
		}
		return RestoreStats{}, fmt.Errorf("restore --lazy: %w (%s)", err, what)
	}
	if layer, err = l.lazyLayerOf(tmp); err != nil {
		return notKept(err)
	}
	// The hold (local_hold.go), before the disk has its name: no prune of
	// any host removes what the disk reads. It names r.To, the disk it
	// holds for. It is written through rd before rd is attached: once
	// attached, the store closes rd when hydration ends, at once for a
	// disk that stores few blocks, and a hold written through a closed rd
	// failed (TestLazyRestoreOfEmptyDisk). rd's shared lock keeps prune
	// out meanwhile.
	if _, err := rd.hold(ctx, m, origin, layer, r.To); err != nil {
		return notKept(err)
	}
	held = true
	lazyStep("lazy-held")
	if err := l.store.AttachLazy(layer, rd, rowstore.HydrateOptions{}); err != nil {
		return notKept(err)
	}
	lazyStep("lazy-attached")
	if err := l.store.RenameDisk(tmp, r.To); err != nil {
		return notKept(err) // a disk of that name was made meanwhile
	}
	l.namesChanged()
	l.log.Debug("restore --lazy", "disk", r.To, "open_region_disk", t1.Sub(t0), "create_attach_hold", time.Since(t1))
	lazyStep("lazy-renamed")
	// Released once hydrated, also when --wait is interrupted (the disk
	// hydrates on; TestLazyWaitInterruptedReleasesHoldWhenHydrated).
	l.watchHold(layer, r.Region, rd)
	if !r.Wait {
		st, _, _ := l.store.LazyStatusOf(r.To)
		// Hydration counts what is missing in the background: until it
		// has, its total is 0, but the region's disk knows it now.
		return RestoreStats{Blocks: st.Local, BlocksTotal: max(st.Total, rd.StoredBlocks())}, nil
	}
	p := progressOf(progress)
	p.Event(replicate.Event{Type: replicate.EventStart, Op: "hydrate", Region: r.Region, Snapshot: r.Snapshot, Disk: r.To})
	var last rowstore.LazyStatus
	err = l.store.WaitHydrated(ctx, r.To, 250*time.Millisecond, func(st rowstore.LazyStatus) {
		last = st
		p.Event(replicate.Event{Type: replicate.EventBlocks, Op: "hydrate", Region: r.Region, Snapshot: r.Snapshot, Disk: r.To,
			Blocks: st.Local, BlocksTotal: st.Total, Bytes: st.BytesFetched})
	})
	done := replicate.Event{Type: replicate.EventDone, Op: "hydrate", Region: r.Region, Snapshot: r.Snapshot, Disk: r.To,
		Blocks: last.Total, BlocksTotal: last.Total, Bytes: last.BytesFetched}
	if err != nil {
		done.Blocks, done.Err = last.Local, err.Error()
		p.Event(done)
		return RestoreStats{Blocks: last.Local, BlocksTotal: last.Total, BytesRead: last.BytesFetched}, err
	}
	p.Event(done)
	_ = l.releaseHolds(ctx, r.Region) // hydrated: the disk no longer reads from the region (logged)
	return RestoreStats{Blocks: last.Total, BlocksTotal: last.Total, BytesRead: last.BytesFetched, Hydrated: true}, nil
}

// lazyStep marks a step of restoreLazy: the daemon SIGKILLs itself there
// when SNAPFS_TEST_KILL_AT names it (killPointForTest), and the package's
// tests run testLazyStep there.
func lazyStep(step string) {
	killPointForTest(step)
	if testLazyStep != nil {
		testLazyStep(step)
	}
}

// testLazyStep is set by tests only.
var testLazyStep func(step string)

func (l *Local) lazyLayerOf(disk string) (uint64, error) {
	ls, err := l.store.ListLazy()
	if err != nil {
		return 0, err
	}
	for _, x := range ls {
		for _, d := range x.Disks {
			if d == disk {
				return x.Layer, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: disk %q reads through no lazy layer", rowstore.ErrNotFound, disk)
}

// resumeLazy re-attaches, in the background, the source of every lazy
// layer of the store (the daemon calls it once at start). A region that
// cannot be opened is tried again with backoff (1 s doubling to a minute)
// until it can or the Local closes; meanwhile reads of missing blocks fail
// with EIO.
func (l *Local) resumeLazy() {
	l.sweepHolds() // local_hold.go: holds whose release failed before
	ls, err := l.store.ListLazy()
	if err != nil {
		l.log.Warn("lazy disks: list", "err", err)
		return
	}
	if n := len(ls); n > 0 {
		ls = slices.DeleteFunc(ls, unread) // not attached: nothing would read through them
		l.dropUnread(n - len(ls))
	}
	if len(ls) == 0 {
		return
	}
	l.lz.mu.Lock()
	if l.lz.cancel != nil {
		l.lz.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.lz.cancel = cancel
	var first sync.WaitGroup
	for _, x := range ls {
		l.lz.wg.Add(1)
		first.Add(1)
		go func() {
			defer l.lz.wg.Done()
			l.attachWithRetry(ctx, x, first.Done)
		}()
	}
	l.lz.mu.Unlock()
	// The daemon reports ready once the first try of every attach is done
	// (bounded): a read of a lazy disk's missing block finds no source
	// before, and fails with EIO although the region is reachable (a VM
	// started as soon as the mount is ready saw I/O errors).
	tried := make(chan struct{})
	go func() { first.Wait(); close(tried) }()
	select {
	case <-tried:
	case <-time.After(lazyFirstAttachWait):
		l.log.Warn("lazy disks: their regions did not answer yet; reads of their missing blocks fail until they do", "waited", lazyFirstAttachWait)
	}
}

// lazyFirstAttachWait bounds how long the daemon's start waits for lazy
// disks' regions (an unreachable one must not keep the mount from serving).
const lazyFirstAttachWait = 15 * time.Second

// attachWithRetry attaches x's source, trying again with backoff; tried
// is called once, after the first try.
func (l *Local) attachWithRetry(ctx context.Context, x rowstore.LazyLayer, tried func()) {
	o := x.Origin
	backoff := time.Second
	var once sync.Once
	defer once.Do(tried)
	for {
		err := func() error {
			m, err := l.manager()
			if err != nil {
				return err
			}
			rd, err := openReopening(ctx, l.log, m, o.Region, o.Host, o.Snapshot, o.Disk, originIdentity(o))
			if err != nil {
				return err
			}
			if rd.Size() != o.Size || rd.BlockSize() != o.BlockSize {
				rd.Close()
				return fmt.Errorf("%w: the region's disk is %d bytes of %d-byte blocks; the lazy layer expects %d of %d", replicate.ErrCorrupt, rd.Size(), rd.BlockSize(), o.Size, o.BlockSize)
			}
			if err := l.store.AttachLazy(x.Layer, rd, rowstore.HydrateOptions{NoHydrate: len(x.Disks) == 0}); err != nil {
				rd.Close()
				if errors.Is(err, rowstore.ErrBusy) {
					return nil // attached meanwhile
				}
				return err
			}
			l.watchHold(x.Layer, o.Region, rd) // local_hold.go
			// The hold again (local_hold.go): on the stores that were down
			// when it was written, and for disks restored before holds.
			if len(x.Disks) > 0 {
				if _, herr := rd.hold(ctx, m, o, x.Layer, x.Disks[0]); herr != nil {
					l.log.Warn("lazy disk: putting its hold again failed (tried at the next attach)", "layer", x.Layer, "region", o.Region, "err", herr)
				}
			}
			return nil
		}()
		l.setAttachErr(x.Layer, err)
		once.Do(tried)
		if err == nil {
			l.log.Info("lazy disk: source attached", "layer", x.Layer, "disks", x.Disks, "region", o.Region, "snapshot", o.Snapshot, "disk", o.Disk)
			return
		}
		if errors.Is(err, replicate.ErrReplaced) {
			// Final: trying again would take the region's lock and read its
			// manifests every minute for ever. disk info keeps the error.
			l.log.Error("lazy disk: its source snapshot is gone from the region; its missing blocks fail", "layer", x.Layer, "disks", x.Disks, "region", o.Region, "err", err)
			return
		}
		l.log.Warn("lazy disk: attaching its region failed; retrying", "layer", x.Layer, "disks", x.Disks, "region", o.Region, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// stopLazy stops re-attachment and hydration (before the region manager
// closes: the sources hold region locks).
func (l *Local) stopLazy() {
	l.lz.mu.Lock()
	cancel, hcancel := l.lz.cancel, l.lz.holdCancel
	l.lz.holdStopped = true
	l.lz.mu.Unlock()
	if hcancel != nil {
		hcancel()
	}
	if cancel != nil {
		cancel()
	}
	l.lz.wg.Wait()
	l.store.StopLazy()
}

// reopening is a region's disk that is opened again when a read fails as
// unavailable (at most every reopenEvery): a RemoteDisk keeps the stores it
// opened, so a store that was missing when it opened (a file system not
// mounted yet) would stay missing for it even once back.
type reopening struct {
	open func(ctx context.Context) (remoteDisk, error)
	log  *slog.Logger

	mu     sync.RWMutex
	rd     remoteDisk
	last   time.Time
	closed bool
	// parked: rd was closed because nothing read through the layer any
	// more (its metadata still answers); the next read opens it again.
	parked bool
	// idle: the store said no disk reads through the layer (Idle). Reads
	// through a snapshot or image of it then open rd again (unpark), and
	// rd is parked again once no read came for parkAfter (idleTimer), so
	// one `cp` out of a snapshot does not keep the region's shared lock
	// (and other hosts' prune) out until the next start.
	idle      bool
	idleTimer *time.Timer
	// inflight counts the reads using rd (taken under mu's read lock, see
	// acquire): park closes rd only when none is.
	inflight  atomic.Int64
	lastRead  atomic.Int64  // unix nanoseconds of the last read's end
	parkAfter time.Duration // see idleFor
	// closedCh is closed by Close (made on first use, closedC).
	closedCh chan struct{}
}

// parkAfter is how long a region disk opened again after Idle stays open
// with no read through it (reopening.parkAfter, when set, in tests).
const parkAfter = 30 * time.Second

// idleFor is parkAfter, or the source's own (set before first use).
func (r *reopening) idleFor() time.Duration {
	if r.parkAfter > 0 {
		return r.parkAfter
	}
	return parkAfter
}

// closedC is closed once the source is closed (the store closes it when
// the layer's hydration ends, the layer is removed or the store stops).
func (r *reopening) closedC() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closedCh == nil {
		r.closedCh = make(chan struct{})
		if r.closed {
			close(r.closedCh)
		}
	}
	return r.closedCh
}

// park closes the region disk (releasing its lock) until the next read;
// false if it was closed or parked already, or a read is using it (then
// the idle timer tries again).
func (r *reopening) park() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.parked {
		return false
	}
	if r.inflight.Load() > 0 {
		r.armLocked(r.idleFor())
		return false
	}
	r.parked = true
	r.rd.Close()
	return true
}

// armLocked (re)starts the idle timer to fire in d (r.mu held).
func (r *reopening) armLocked(d time.Duration) {
	if r.idleTimer != nil {
		r.idleTimer.Stop()
	}
	r.idleTimer = time.AfterFunc(d, r.parkIfIdle)
}

// parkIfIdle parks the region disk when no read came for parkAfter, else
// waits for the rest of that time.
func (r *reopening) parkIfIdle() {
	r.mu.Lock()
	if r.closed || r.parked {
		r.mu.Unlock()
		return
	}
	if since := time.Since(time.Unix(0, r.lastRead.Load())); since < r.idleFor() || r.inflight.Load() > 0 {
		r.armLocked(max(r.idleFor()-since, time.Millisecond))
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	if r.park() {
		r.log.Info("lazy disk: no read through its layer for a while; region disk closed again (its lock released)", "after", r.idleFor())
	}
}

// acquire returns the region disk for one read (opening it again if it
// was parked) and the function that ends the read; rd is not closed by a
// park while the read runs.
func (r *reopening) acquire(ctx context.Context) (remoteDisk, func(), error) {
	for {
		if err := r.unpark(ctx); err != nil {
			return nil, nil, err
		}
		r.mu.RLock()
		if r.parked && !r.closed { // parked again between unpark and here
			r.mu.RUnlock()
			continue
		}
		rd := r.rd
		r.inflight.Add(1)
		r.mu.RUnlock()
		return rd, func() {
			r.lastRead.Store(time.Now().UnixNano())
			r.inflight.Add(-1)
		}, nil
	}
}

// Idle is rowstore.LayerIdler: the store calls it when the layer's
// hydration stopped because no disk uses the layer any more (a deleted
// lazy disk), its workers gone. The region disk is closed, so its shared
// region lock no longer keeps other hosts' prune out; a read through a
// snapshot that still holds the layer opens it again.
func (r *reopening) Idle() {
	r.mu.Lock()
	r.idle = true
	r.mu.Unlock()
	if r.park() {
		r.log.Info("lazy disk: no disk reads through its layer; region disk closed (its lock released)")
	}
}

// unpark opens the region disk again after park (nil: not parked).
func (r *reopening) unpark(ctx context.Context) error {
	r.mu.RLock()
	parked := r.parked && !r.closed
	r.mu.RUnlock()
	if !parked {
		return nil
	}
	nrd, err := r.openWaiting(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed || !r.parked {
		r.mu.Unlock()
		nrd.Close()
		return nil
	}
	old := r.rd
	if nrd.Size() != old.Size() || nrd.BlockSize() != old.BlockSize() || nrd.StoredBlocks() != old.StoredBlocks() {
		r.mu.Unlock()
		nrd.Close()
		return fmt.Errorf("%w: the region's disk changed shape on reopening", replicate.ErrCorrupt)
	}
	r.rd, r.parked, r.last = nrd, false, time.Now()
	r.lastRead.Store(time.Now().UnixNano())
	if r.idle {
		r.armLocked(r.idleFor())
	}
	r.mu.Unlock()
	r.log.Info("lazy disk: region disk opened again for a read")
	return nil
}

const reopenEvery = 5 * time.Second

// unparkLockWait bounds how long a read through a parked source waits for
// the region while another operation holds it exclusively (another host's
// prune or repair, which the park let in): the read waits, as a read of a
// disk that is busy does, instead of failing EIO at once (a `cp` out of a
// snapshot of the layer stopped half way whenever a prune ran).
var unparkLockWait = 2 * time.Minute

// openWaiting opens the region disk for unpark, trying again while the
// region is locked (ErrLocked), for at most unparkLockWait, until ctx ends
// or the source is closed.
func (r *reopening) openWaiting(ctx context.Context) (remoteDisk, error) {
	start := time.Now()
	backoff := 50 * time.Millisecond
	logged := false
	for {
		nrd, err := r.open(ctx)
		if err == nil || !errors.Is(err, replicate.ErrLocked) || time.Since(start) >= unparkLockWait {
			return nrd, err
		}
		if !logged {
			logged = true
			r.log.Info("lazy disk: a read waits for the region, locked by another operation", "wait_max", unparkLockWait, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (while the region was locked: %w)", ctx.Err(), err)
		case <-r.closedC():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// want, when set, is the identity of the snapshot the lazy layer was
// restored from (its host's id, its id and creation time): the source is
// opened by that host id, and a snapshot of another identity (the name
// reused after the one restored from was pruned) is refused, at every
// open and reopen, so a missing block fails instead of reading another
// snapshot's data (TestTrial9LazyDiskNeverReadsAnotherSnapshot).
func openReopening(ctx context.Context, log *slog.Logger, m *replicate.Manager, region, host, snapshot, disk string, want *replicate.RemoteIdentity) (*reopening, error) {
	r := &reopening{log: log}
	// want is set before r is returned and never after: the reopenings
	// (other goroutines, after r is handed over) read it unlocked.
	r.open = func(ctx context.Context) (remoteDisk, error) {
		rd, err := openRemoteDisk(ctx, m, region, host, snapshot, disk, want)
		if errors.Is(err, replicate.ErrReplaced) {
			err = fmt.Errorf("%w; the blocks not yet local cannot be read (delete the disk, or restore it again)", err)
		}
		return rd, err
	}
	rd, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	r.rd, r.last = rd, time.Now()
	if want == nil {
		// A lazy layer that recorded no identity (restored before it was
		// recorded): at least the reopenings of this run keep to the
		// snapshot first opened.
		if id, ok := identityOf(rd); ok {
			want = &id
		}
	}
	return r, nil
}

// identityOf is the identity of the snapshot rd reads, when it says.
func identityOf(rd remoteDisk) (replicate.RemoteIdentity, bool) {
	if r, ok := rd.(*reopening); ok {
		rd = r.cur()
	}
	x, ok := rd.(interface {
		Identity() replicate.RemoteIdentity
	})
	if !ok {
		return replicate.RemoteIdentity{}, false
	}
	return x.Identity(), true
}

// originIdentity is the identity o records (nil for a lazy layer
// restored before it was recorded).
func originIdentity(o rowstore.LazyOrigin) *replicate.RemoteIdentity {
	if o.SnapshotID == 0 && o.Created.IsZero() {
		return nil
	}
	return &replicate.RemoteIdentity{HostID: o.HostID, SnapshotID: o.SnapshotID, Created: o.Created}
}

func (r *reopening) cur() remoteDisk {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.rd
}

func (r *reopening) Size() int64         { return r.cur().Size() }
func (r *reopening) BlockSize() int      { return r.cur().BlockSize() }
func (r *reopening) StoredBlocks() int64 { return r.cur().StoredBlocks() }
func (r *reopening) Encrypted() bool     { return r.cur().Encrypted() }
func (r *reopening) Stored(b int64) bool { return r.cur().Stored(b) }

// EachStored lists the stored blocks (attach: O(stored), not O(size)).
func (r *reopening) EachStored(fn func(b int64)) { r.cur().EachStored(fn) }

func (r *reopening) ReadBlock(ctx context.Context, b int64, dst []byte) error {
	rd, done, err := r.acquire(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", replicate.ErrUnavailable, err)
	}
	defer done()
	err = rd.ReadBlock(ctx, b, dst)
	if err == nil || !errors.Is(err, replicate.ErrUnavailable) || ctx.Err() != nil {
		return err
	}
	nrd, rerr := r.reopen(ctx, rd)
	if rerr != nil {
		return rerr
	}
	if nrd == nil {
		return err
	}
	return nrd.ReadBlock(ctx, b, dst)
}

// ReadBlocks reads neighbouring blocks together (hydration's batches);
// when some fail as unavailable the region is reopened (as ReadBlock does)
// and those are read again.
func (r *reopening) ReadBlocks(ctx context.Context, blocks []int64, dsts [][]byte) []error {
	rd, done, err := r.acquire(ctx)
	if err != nil {
		errs := make([]error, len(blocks))
		for i := range errs {
			errs[i] = fmt.Errorf("%w: %w", replicate.ErrUnavailable, err)
		}
		return errs
	}
	defer done()
	errs := rd.ReadBlocks(ctx, blocks, dsts)
	var again []int
	for i, err := range errs {
		if err != nil && errors.Is(err, replicate.ErrUnavailable) {
			again = append(again, i)
		}
	}
	if len(again) == 0 || ctx.Err() != nil {
		return errs
	}
	nrd, rerr := r.reopen(ctx, rd)
	if nrd == nil {
		if rerr != nil {
			for _, i := range again {
				errs[i] = rerr
			}
		}
		return errs
	}
	bs, ds := make([]int64, len(again)), make([][]byte, len(again))
	for j, i := range again {
		bs[j], ds[j] = blocks[i], dsts[i]
	}
	for j, err := range nrd.ReadBlocks(ctx, bs, ds) {
		errs[again[j]] = err
	}
	return errs
}

// reopen opens the region's disk again after rd failed a read as
// unavailable, at most every reopenEvery and only if rd is still the
// current one. It returns the new disk, or nil if it was not reopened (an
// error only when the region changed shape).
func (r *reopening) reopen(ctx context.Context, rd remoteDisk) (remoteDisk, error) {
	r.mu.Lock()
	if r.closed || r.parked || r.rd != rd || time.Since(r.last) < reopenEvery {
		r.mu.Unlock()
		return nil, nil
	}
	r.last = time.Now()
	r.mu.Unlock()
	nrd, oerr := r.open(ctx)
	if oerr != nil {
		return nil, nil
	}
	if nrd.Size() != rd.Size() || nrd.BlockSize() != rd.BlockSize() || nrd.StoredBlocks() != rd.StoredBlocks() {
		nrd.Close()
		return nil, fmt.Errorf("%w: the region's disk changed shape on reopening", replicate.ErrCorrupt)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		nrd.Close()
		return nil, nil
	}
	old := r.rd
	r.rd = nrd
	r.mu.Unlock()
	old.Close() // reads in flight on it fail and are retried
	r.log.Info("lazy disk: region reopened after a failed read")
	return nrd, nil
}

func (r *reopening) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.idleTimer != nil {
		r.idleTimer.Stop()
	}
	if r.closedCh != nil {
		close(r.closedCh)
	}
	if r.parked {
		return nil
	}
	return r.rd.Close()
}
