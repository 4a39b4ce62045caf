package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/rowstore"
)

// Hooks let the daemon keep its FUSE mount in step with catalog changes made
// through the Service. Each may be nil. They are never called from inside a
// FUSE request.
type Hooks struct {
	// NamesChanged runs after a disk, snapshot or image was created or deleted.
	NamesChanged func()
	// DiskChanged runs after a disk's content or size changed behind the
	// mount's back (rollback, resize).
	DiskChanged func(name string)
	// Shutdown flushes, unmounts and makes the daemon exit; nil without a daemon.
	Shutdown func(ctx context.Context) error
}

// Local is the Service over an open store, in this process. It is the only
// implementation of the operations; the daemon serves it on the socket.
type Local struct {
	store *rowstore.Store
	dir   string
	hooks Hooks
	log   *slog.Logger
	reg   regionState // regions: the replicate.Manager and the copies record
	pol   policyState // policies: the scheduler's status (local_policy.go)

	// mountpoint and started are set by the daemon (SetDaemon).
	mountpoint string
	started    time.Time

	mu      sync.Mutex
	scratch int             // last scratch clone number used
	files   *browse.Manager // .files (local_files.go); nil without a daemon
	lz      lazyState       // lazy disks' sources (local_lazy.go)

	rem remoteState // M/regions/ (local_remote.go)
}

// NewLocal returns a Local over store (opened from dir). Close closes store.
func NewLocal(store *rowstore.Store, dir string) *Local {
	return &Local{store: store, dir: dir, log: slog.New(slog.DiscardHandler)}
}

// SetLogger sets the logger of region operations (default: discard). Call
// it before serving requests.
func (l *Local) SetLogger(log *slog.Logger) {
	if log != nil {
		l.log = log
	}
}

// Store is the engine behind l (for the daemon's FUSE adapter).
func (l *Local) Store() *rowstore.Store { return l.store }

// Dir is the store's directory.
func (l *Local) Dir() string { return l.dir }

// SetDaemon records that a daemon serves l, mounted at mountpoint, and hooks
// its mount in. Call it before serving requests.
func (l *Local) SetDaemon(mountpoint string, h Hooks) {
	l.mountpoint, l.hooks, l.started = mountpoint, h, time.Now().UTC()
	l.resumeLazy() // local_lazy.go
}

func (l *Local) namesChanged() {
	if l.hooks.NamesChanged != nil {
		l.hooks.NamesChanged()
	}
}

func (l *Local) diskChanged(name string) {
	if l.hooks.DiskChanged != nil {
		l.hooks.DiskChanged(name)
	}
}

// Status implements Service.
func (l *Local) Status(context.Context) (Status, error) {
	st := Status{Store: l.dir}
	if l.mountpoint != "" {
		st.Daemon, st.PID, st.Mountpoint, st.Started = true, os.Getpid(), l.mountpoint, l.started
	}
	return st, nil
}

// CreateDisk implements Service.
func (l *Local) CreateDisk(_ context.Context, r CreateDiskRequest) (Disk, error) {
	if r.Encrypt || r.KeyFile != "" {
		return l.createEncryptedDisk(r) // local_crypt.go
	}
	var d Disk
	var err error
	switch {
	case r.FromSnapshot != "" || r.FromDisk != "":
		if r.FromImage != "" || r.Size != 0 || r.BlockSize != 0 {
			return Disk{}, fmt.Errorf("%w: a clone of a snapshot takes its size and block size from it and cannot also come from an image", rowstore.ErrInvalid)
		}
		if r.FromSnapshot == "" || r.FromDisk == "" {
			return Disk{}, fmt.Errorf("%w: a clone needs both the snapshot and the disk in it", rowstore.ErrInvalid)
		}
		d, err = l.store.CloneDisk(r.Name, r.FromSnapshot, r.FromDisk)
	case r.FromImage != "":
		if r.Size != 0 || r.BlockSize != 0 {
			return Disk{}, fmt.Errorf("%w: a disk from an image takes its size and block size from it", rowstore.ErrInvalid)
		}
		d, err = l.store.CreateDiskFromImage(r.Name, r.FromImage)
	default:
		if r.Size == 0 {
			return Disk{}, fmt.Errorf("%w: a new disk needs a size", rowstore.ErrInvalid)
		}
		d, err = l.store.CreateDisk(r.Name, r.Size, r.BlockSize)
	}
	if err != nil {
		return Disk{}, err
	}
	l.namesChanged()
	return l.store.GetDisk(d.Name)
}

// ListDisks implements Service.
func (l *Local) ListDisks(context.Context) ([]Disk, error) {
	ds, err := l.store.ListDisks()
	lookup := l.originsListed()
	for i := range ds {
		ds[i].Origin = originAsItStands(ds[i], lookup)
	}
	return l.HideScratch(ds), err // scratch clones are never listed
}

// GetDisk implements Service.
func (l *Local) GetDisk(_ context.Context, name string) (Disk, error) {
	d, err := l.store.GetDisk(name)
	if err == nil {
		d.Origin = originAsItStands(d, l.originRead)
		d = l.withAttachErr(d) // local_lazy.go
	}
	return d, err
}

// originCreated says when the snapshot (image false) or image named name
// was made; an error wrapping rowstore.ErrNotFound when it is gone.
type originCreated func(image bool, name string) (time.Time, error)

// originRead reads one origin's record.
func (l *Local) originRead(image bool, name string) (time.Time, error) {
	if image {
		im, err := l.store.GetImage(name)
		return im.Created, err
	}
	si, err := l.store.GetSnapshot(name)
	return si.Created, err
}

// originsListed answers from one listing of the snapshots (kept in memory
// by the engine) and one of the images, made on first need: a disk list
// reads no record per clone. When a listing fails it reads the record.
func (l *Local) originsListed() originCreated {
	var listed [2]map[string]time.Time // snapshots, images
	var failed [2]bool
	return func(image bool, name string) (time.Time, error) {
		k := 0
		if image {
			k = 1
		}
		if listed[k] == nil && !failed[k] {
			m := map[string]time.Time{}
			if image {
				ims, err := l.store.ListImages()
				for _, im := range ims {
					m[im.Name] = im.Created
				}
				failed[k] = err != nil
			} else {
				sis, err := l.store.ListSnapshots()
				for _, si := range sis {
					m[si.Name] = si.Created
				}
				failed[k] = err != nil
			}
			listed[k] = m
		}
		if failed[k] {
			return l.originRead(image, name)
		}
		t, ok := listed[k][name]
		if !ok {
			return time.Time{}, fmt.Errorf("%w: origin %q", rowstore.ErrNotFound, name)
		}
		return t, nil
	}
}

// originAsItStands is d's origin ("snapshot S/D" or "image I"), marked
// "(deleted)" when that snapshot or image is gone, or was deleted and made
// again after the clone (a newer one of the same name is not the origin).
// The clone does not depend on it: what it reads is kept by the engine.
func originAsItStands(d Disk, created originCreated) string {
	var at time.Time
	var err error
	switch {
	case strings.HasPrefix(d.Origin, "snapshot "):
		snap, _, _ := strings.Cut(strings.TrimPrefix(d.Origin, "snapshot "), "/")
		at, err = created(false, snap)
	case strings.HasPrefix(d.Origin, "image "):
		at, err = created(true, strings.TrimPrefix(d.Origin, "image "))
	default:
		return d.Origin
	}
	if errors.Is(err, rowstore.ErrNotFound) || (err == nil && at.After(d.Created)) {
		return d.Origin + " (deleted)"
	}
	return d.Origin
}

// ResizeDisk implements Service.
func (l *Local) ResizeDisk(_ context.Context, name string, size int64) (Disk, error) {
	if err := l.store.ResizeDisk(name, size); err != nil {
		return Disk{}, err
	}
	l.diskChanged(name)
	return l.store.GetDisk(name)
}

// DeleteDisk implements Service.
func (l *Local) DeleteDisk(ctx context.Context, name string, force bool) error {
	lazyRegion := l.lazyRegionOf(name) // local_hold.go
	if err := l.store.DeleteDisk(name, force); err != nil {
		return l.withHolders(err, name)
	}
	l.releaseAfterDelete(ctx, lazyRegion)
	if force {
		l.diskChanged(name) // an open file must not keep reading cached pages
	}
	l.namesChanged()
	return nil
}

// withHolders adds to a disk's busy error what holds its file open under
// the daemon's mount (holders.go): the loop device and where it is
// mounted, the processes.
func (l *Local) withHolders(err error, disk string) error {
	if !errors.Is(err, rowstore.ErrBusy) || l.mountpoint == "" {
		return err
	}
	if h := Holders(filepath.Join(l.mountpoint, "disks", disk), false); h != "" {
		return fmt.Errorf("%w; held by %s", err, h)
	}
	return err
}

// RollbackDisk implements Service.
func (l *Local) RollbackDisk(_ context.Context, name, snapshot string, force bool) (Disk, error) {
	if err := l.store.RollbackDisk(name, snapshot, force); err != nil {
		return Disk{}, l.withHolders(err, name)
	}
	l.diskChanged(name)
	return l.store.GetDisk(name)
}

// CreateSnapshot implements Service. The engine first commits everything
// written to the disks, so the snapshot holds every acknowledged write.
func (l *Local) CreateSnapshot(_ context.Context, name string, disks []string) (Snapshot, error) {
	si, err := l.store.CreateSnapshot(name, disks, "manual")
	if err != nil {
		return Snapshot{}, err
	}
	l.namesChanged()
	return l.snapshot(si, false)
}

// ListSnapshots implements Service.
func (l *Local) ListSnapshots(_ context.Context, disk string) ([]Snapshot, error) {
	if disk != "" {
		if err := rowstore.ValidateName("disk", disk); err != nil {
			return nil, err
		}
	}
	sis, err := l.store.ListSnapshots()
	if err != nil {
		return nil, err
	}
	out := []Snapshot{}
	for _, si := range sis {
		if disk != "" && !hasDisk(si, disk) {
			continue
		}
		s, err := l.snapshot(si, false)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if disk != "" && len(out) == 0 {
		// Neither a disk nor a snapshot has that name (a deleted disk's
		// snapshots keep it): a typo, not an empty list.
		if _, err := l.store.GetDisk(disk); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func hasDisk(si rowstore.SnapshotInfo, disk string) bool {
	for _, d := range si.Disks {
		if d.Name == disk {
			return true
		}
	}
	return false
}

// GetSnapshot implements Service.
func (l *Local) GetSnapshot(_ context.Context, name string) (Snapshot, error) {
	si, err := l.store.GetSnapshot(name)
	if err != nil {
		return Snapshot{}, err
	}
	return l.snapshot(si, true)
}

// snapshot completes an engine SnapshotInfo with state and copies. Its
// allocation was recorded when it was taken: nothing is counted here. With
// files (snapshot info, snapshot.json) it also probes the filesystems inside
// each disk (a few sectors read); create and list skip that, so they read
// no block of any disk.
func (l *Local) snapshot(si rowstore.SnapshotInfo, files bool) (Snapshot, error) {
	s := Snapshot{ID: si.ID, Name: si.Name, Created: si.Created, Kind: si.Kind, State: "available", Disks: []SnapshotDisk{}}
	for _, d := range si.Disks {
		s.Disks = append(s.Disks, SnapshotDisk{Name: d.Name, DiskID: d.DiskID, Size: d.Size, BlockSize: d.BlockSize, Allocated: d.Allocated})
		if files {
			s.Disks[len(s.Disks)-1].Files = l.filesLayout(si.ID, si.Name, d.Name) // local_files.go
		}
	}
	s.Copies = l.copies(si)
	s.Policy, s.Consistency = si.Policy, consistencyOf(si)
	return s, nil
}

// SnapshotOf is GetSnapshot for the FUSE adapter.
func (l *Local) SnapshotOf(name string) (Snapshot, error) {
	return l.GetSnapshot(context.Background(), name)
}

// DeleteSnapshot implements Service.
func (l *Local) DeleteSnapshot(_ context.Context, name string) error {
	if err := l.deleteSnapshot(name); err != nil { // local_files.go
		return err
	}
	l.namesChanged()
	return nil
}

// Diff implements Service.
func (l *Local) Diff(_ context.Context, r DiffRequest) (Diff, error) {
	if r.Old != "" && r.Old == r.New {
		return Diff{}, fmt.Errorf("%w: diff of snapshot %q with itself", rowstore.ErrInvalid, r.Old)
	}
	to := rowstore.Point{Snapshot: r.New, Disk: r.Disk}
	var from *rowstore.Point
	if r.Old != "" {
		from = &rowstore.Point{Snapshot: r.Old, Disk: r.Disk}
		if _, _, err := l.pointSize(*from); err != nil {
			return Diff{}, err
		}
	}
	size, bsi, err := l.pointSize(to)
	if err != nil {
		return Diff{}, err
	}
	bs := int64(bsi)
	out := Diff{Disk: r.Disk, Old: r.Old, New: r.New, Size: size, BlockSize: bsi, Ranges: []Range{}}
	_, err = l.store.Diff(from, to, func(c rowstore.Change) error {
		off := int64(c.Block) * bs
		n := min(bs, size-off)
		if n <= 0 {
			return nil
		}
		if k := len(out.Ranges); k > 0 && out.Ranges[k-1].Offset+out.Ranges[k-1].Length == off && out.Ranges[k-1].Zero == c.Zero {
			out.Ranges[k-1].Length += n
		} else {
			out.Ranges = append(out.Ranges, Range{Offset: off, Length: n, Zero: c.Zero})
		}
		out.ChangedBytes += n
		return nil
	})
	if err != nil {
		return Diff{}, err
	}
	return out, nil
}

// pointSize is the size and block size of a disk now or in a snapshot.
func (l *Local) pointSize(p rowstore.Point) (int64, int, error) {
	if p.Snapshot == "" {
		d, err := l.store.GetDisk(p.Disk)
		return d.Size, d.BlockSize, err
	}
	if err := rowstore.ValidateName("disk", p.Disk); err != nil {
		return 0, 0, err
	}
	si, err := l.store.GetSnapshot(p.Snapshot)
	if err != nil {
		return 0, 0, err
	}
	for _, d := range si.Disks {
		if d.Name == p.Disk {
			return d.Size, d.BlockSize, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: snapshot %q has no disk %q", rowstore.ErrNotFound, p.Snapshot, p.Disk)
}

// CreateImage implements Service.
func (l *Local) CreateImage(_ context.Context, name, snapshot, disk string) (Image, error) {
	im, err := l.store.CreateImage(name, snapshot, disk)
	if err != nil {
		return Image{}, err
	}
	l.namesChanged()
	return im, nil
}

// ListImages implements Service.
func (l *Local) ListImages(context.Context) ([]Image, error) {
	ims, err := l.store.ListImages()
	if ims == nil {
		ims = []Image{}
	}
	return ims, err
}

// GetImage implements Service.
func (l *Local) GetImage(_ context.Context, name string) (Image, error) {
	return l.store.GetImage(name)
}

// DeleteImage implements Service.
func (l *Local) DeleteImage(_ context.Context, name string) error {
	if err := l.store.DeleteImage(name); err != nil {
		return err
	}
	l.namesChanged()
	l.releaseDeletedFiles()
	return nil
}

// Usage implements Service.
func (l *Local) Usage(context.Context) (rowstore.Usage, error) {
	u, err := l.store.Usage()
	return l.hideScratchUsage(u), err
}

// FreshUsage implements Service.
func (l *Local) FreshUsage(context.Context) (rowstore.Usage, error) {
	u, err := l.store.FreshUsage()
	return l.hideScratchUsage(u), err
}

// hideScratchUsage drops the scratch clones (of snapshot mounts and
// .files browsing) from usage's disks, as disk list does: a user who
// never made "snapmount-before-upgrade-vol1-1" must not meet it. What
// they hold is throw-away and stays counted in the store's totals.
func (l *Local) hideScratchUsage(u rowstore.Usage) rowstore.Usage {
	scratch := l.scratchEntries()
	if len(scratch) == 0 {
		return u
	}
	disks := u.Disks[:0:0]
	for _, d := range u.Disks {
		if _, ok := scratch[d.Name]; !ok {
			disks = append(disks, d)
		}
	}
	u.Disks = disks
	return u
}

// GC implements Service.
func (l *Local) GC(context.Context) (rowstore.GCStats, error) { return l.store.GC() }

// ScratchPrefix starts the name of every scratch clone made for snapshot mount.
const ScratchPrefix = "snapmount-"

// Shutdown implements Service.
func (l *Local) Shutdown(ctx context.Context) error {
	if l.hooks.Shutdown == nil {
		return fmt.Errorf("%w: no daemon serves store %s", exitcode.ErrNoDaemon, l.dir)
	}
	return l.hooks.Shutdown(ctx)
}

// Close implements Service: it closes the region manager, then the store.
func (l *Local) Close() error {
	l.closeFiles() // local_files.go: before the store, whose clones it drops
	l.stopLazy()   // local_lazy.go: the sources hold region locks
	// local_remote.go: the remote disks still open, and their region locks.
	l.closeRemote()
	rerr := l.closeRegions()
	if err := l.store.Close(); err != nil {
		return err
	}
	return rerr
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
