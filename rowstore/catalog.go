package rowstore

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
)

// DiskInfo describes a disk.
type DiskInfo struct {
	ID        uint64    `json:"id"`
	Name      string    `json:"name"`
	Size      int64     `json:"size"`
	BlockSize int       `json:"block_size"`
	Allocated int64     `json:"allocated"`
	Created   time.Time `json:"created"`
	Modified  time.Time `json:"modified"`
	Origin    string    `json:"origin,omitempty"`
	Open      int       `json:"open_handles"`
	Encrypted bool      `json:"encrypted,omitempty"` // blocks sealed with the disk's key (crypt.go)
	Locked    bool      `json:"locked,omitempty"`    // encrypted and its key not unlocked here
	// Hydration is set while the disk reads through a lazy layer (lazy.go).
	Hydration *LazyStatus `json:"hydration,omitempty"`
}

// SnapshotInfo describes a snapshot.
type SnapshotInfo struct {
	ID      uint64             `json:"id"`
	Name    string             `json:"name"`
	Created time.Time          `json:"created"`
	Kind    string             `json:"kind"`
	Disks   []SnapshotDiskInfo `json:"disks"`
	// Policy and Consistency: see SnapshotOptions.
	Policy      string `json:"policy,omitempty"`
	Consistency string `json:"consistency,omitempty"`
}

// SnapshotDiskInfo is one disk of a snapshot.
type SnapshotDiskInfo struct {
	Name      string `json:"name"`
	DiskID    uint64 `json:"disk_id"`
	Size      int64  `json:"size"`
	BlockSize int    `json:"block_size"`
	// Allocated is the bytes of stored blocks the disk showed when the
	// snapshot was taken (recorded then: reading it costs nothing).
	Allocated int64 `json:"allocated"`
}

// ImageInfo describes an image.
type ImageInfo struct {
	ID        uint64    `json:"id"`
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	Size      int64     `json:"size"`
	BlockSize int       `json:"block_size"`
	Snapshot  string    `json:"snapshot"`
	Disk      string    `json:"disk"`
	// Allocated is the bytes of stored blocks the image shows.
	Allocated int64 `json:"allocated"`
}

// listCatalog lists every record of a kind, converted, in name order.
func listCatalog[R, I any](s *Store, kind index.CatalogKind, conv func(*Store, R) (I, error)) ([]I, error) {
	var recs []R
	err := s.idx.View(func(t *index.Txn) error {
		return index.Each(t, kind, func(r R) error {
			recs = append(recs, r)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := make([]I, 0, len(recs))
	for _, r := range recs {
		i, err := conv(s, r)
		if err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	return out, nil
}

// snapshotInfo describes a snapshot record. Its allocation is recorded;
// records older than the space accounting are counted once (pointAllocated).
func snapshotInfo(s *Store, r index.Snapshot) (SnapshotInfo, error) {
	si := SnapshotInfo{ID: r.ID, Name: r.Name, Created: r.Created, Kind: r.Kind, Policy: r.Policy, Consistency: r.Consistency}
	for _, m := range r.Members {
		a, err := s.pointAllocated(m.Allocated, link{m.Layer, m.Epoch}, m.Size, m.BlockSize)
		if err != nil {
			return SnapshotInfo{}, fmt.Errorf("snapshot %q disk %q: allocation: %w", r.Name, m.Disk, err)
		}
		si.Disks = append(si.Disks, SnapshotDiskInfo{Name: m.Disk, DiskID: m.DiskID, Size: m.Size, BlockSize: m.BlockSize, Allocated: a})
	}
	return si, nil
}

func imageInfo(s *Store, r index.Image) (ImageInfo, error) {
	a, err := s.pointAllocated(r.Allocated, link{r.Layer, r.Epoch}, r.Size, r.BlockSize)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("image %q: allocation: %w", r.Name, err)
	}
	return ImageInfo{ID: r.ID, Name: r.Name, Created: r.Created, Size: r.Size, BlockSize: r.BlockSize, Snapshot: r.Snapshot, Disk: r.Disk, Allocated: a}, nil
}

func int64p(n int64) *int64 { return &n }

func notFound(kind, name string, err error) error {
	if errors.Is(err, index.ErrNotFound) {
		return fmt.Errorf("%w: %s %q", ErrNotFound, kind, name)
	}
	return err
}

// CreateDisk creates an empty disk.
func (s *Store) CreateDisk(name string, size int64, blockSize int) (DiskInfo, error) {
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	if err := firstErr(ValidateName("disk", name), ValidateDiskSize(size), ValidateBlockSize(blockSize)); err != nil {
		return DiskInfo{}, err
	}
	return s.newDisk(name, func(t *index.Txn) (index.Layer, index.Disk, int64, error) {
		return index.Layer{Epoch: 1, BlockSize: blockSize}, index.Disk{Size: size, BlockSize: blockSize}, 0, nil
	})
}

// CloneDisk creates a disk from a disk of a snapshot, in constant time.
func (s *Store) CloneDisk(name, snapshot, disk string) (DiskInfo, error) {
	if err := firstErr(ValidateName("disk", name), ValidateName("snapshot", snapshot), ValidateName("disk", disk)); err != nil {
		return DiskInfo{}, err
	}
	return s.newDisk(name, func(t *index.Txn) (index.Layer, index.Disk, int64, error) {
		m, err := memberOf(t, snapshot, disk)
		if err != nil {
			return index.Layer{}, index.Disk{}, 0, err
		}
		a, err := s.pointAllocated(m.Allocated, link{m.Layer, m.Epoch}, m.Size, m.BlockSize)
		if err != nil {
			return index.Layer{}, index.Disk{}, 0, err
		}
		return index.Layer{Parent: m.Layer, ParentEpoch: m.Epoch, Epoch: 1, BlockSize: m.BlockSize},
			index.Disk{Size: m.Size, BlockSize: m.BlockSize, Origin: "snapshot " + snapshot + "/" + disk}, a / int64(m.BlockSize), nil
	})
}

// CreateDiskFromImage creates a disk from an image, in constant time.
func (s *Store) CreateDiskFromImage(name, image string) (DiskInfo, error) {
	if err := firstErr(ValidateName("disk", name), ValidateName("image", image)); err != nil {
		return DiskInfo{}, err
	}
	return s.newDisk(name, func(t *index.Txn) (index.Layer, index.Disk, int64, error) {
		var im index.Image
		if err := t.Get(index.KindImage, image, &im); err != nil {
			return index.Layer{}, index.Disk{}, 0, notFound("image", image, err)
		}
		a, err := s.pointAllocated(im.Allocated, link{im.Layer, im.Epoch}, im.Size, im.BlockSize)
		if err != nil {
			return index.Layer{}, index.Disk{}, 0, err
		}
		return index.Layer{Parent: im.Layer, ParentEpoch: im.Epoch, Epoch: 1, BlockSize: im.BlockSize},
			index.Disk{Size: im.Size, BlockSize: im.BlockSize, Origin: "image " + image}, a / int64(im.BlockSize), nil
	})
}

func memberOf(t *index.Txn, snapshot, disk string) (index.Member, error) {
	var sr index.Snapshot
	if err := t.Get(index.KindSnapshot, snapshot, &sr); err != nil {
		return index.Member{}, notFound("snapshot", snapshot, err)
	}
	for _, m := range sr.Members {
		if m.Disk == disk {
			return m, nil
		}
	}
	return index.Member{}, fmt.Errorf("%w: snapshot %q has no disk %q", ErrNotFound, snapshot, disk)
}

func (s *Store) newDisk(name string, mk func(t *index.Txn) (index.Layer, index.Disk, int64, error)) (DiskInfo, error) {
	if err := firstErr(s.checkOpen(), checkNewDiskName(name)); err != nil {
		return DiskInfo{}, err
	}
	s.catMu.Lock()
	defer s.catMu.Unlock()
	var rec index.Disk
	var blocks int64
	err := s.catalogUpdateSync(func(t *index.Txn) error {
		if err := absent(t, index.KindDisk, "disk", name); err != nil {
			return err
		}
		l, d, n, err := mk(t)
		if err != nil {
			return err
		}
		blocks = n
		now := time.Now().UTC()
		if l.ID, err = t.NextLayer(); err != nil {
			return err
		}
		if d.ID, err = t.NextID(); err != nil {
			return err
		}
		l.Created, d.Created, d.Name, d.Layer = now, now, name, l.ID
		if err := t.PutLayer(l); err != nil {
			return err
		}
		rec = d
		// Counted before the disk exists for anyone: no write can come
		// between its creation and its count.
		s.acct.set(d.ID, l.ID, blocks)
		return t.Put(index.KindDisk, name, d)
	})
	if err != nil {
		if rec.ID != 0 {
			s.acct.forget(rec.ID)
		}
		return DiskInfo{}, err
	}
	return DiskInfo{ID: rec.ID, Name: name, Size: rec.Size, BlockSize: rec.BlockSize, Allocated: blocks * int64(rec.BlockSize),
		Created: rec.Created, Modified: rec.Created, Origin: rec.Origin}, nil
}

// ListDisks lists disks in name order.
func (s *Store) ListDisks() ([]DiskInfo, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	var names []string
	err := s.idx.View(func(t *index.Txn) error {
		return index.Each(t, index.KindDisk, func(d index.Disk) error {
			names = append(names, d.Name)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := make([]DiskInfo, 0, len(names))
	for _, n := range names {
		di, err := s.GetDisk(n)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, di)
	}
	return out, nil
}

// GetDisk describes a disk.
func (s *Store) GetDisk(name string) (DiskInfo, error) {
	if err := s.checkOpen(); err != nil {
		return DiskInfo{}, err
	}
	if err := ValidateName("disk", name); err != nil {
		return DiskInfo{}, err
	}
	d, err := s.diskByName(name)
	if err != nil {
		return DiskInfo{}, err
	}
	alloc, err := d.allocated()
	if err != nil {
		return DiskInfo{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	enc, locked := s.encryptionOf(d.chain[0].layer)
	return DiskInfo{ID: d.id, Name: d.name, Size: d.size.Load(), BlockSize: d.bs, Allocated: alloc,
		Created: d.created, Modified: d.modified, Origin: d.origin, Open: d.opens, Encrypted: enc, Locked: locked,
		Hydration: s.hydrationOf(d.name, d.chain)}, nil // lazy.go
}

// ResizeDisk grows a disk to size. Disks never shrink: a filesystem inside
// would lose data; a smaller size is an error wrapping ErrInvalid.
func (s *Store) ResizeDisk(name string, size int64) error {
	if err := firstErr(s.checkOpen(), ValidateName("disk", name), ValidateDiskSize(size)); err != nil {
		return err
	}
	d, err := s.diskByName(name)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// A snapshot under way records the size its freeze saw (snapshot.go).
	d.waitSnapshotLocked()
	if size < d.size.Load() {
		return fmt.Errorf("%w: disk %q is %d bytes; disks grow but never shrink (asked for %d)", ErrInvalid, name, d.size.Load(), size)
	}
	if size == d.size.Load() {
		return nil
	}
	s.catMu.Lock()
	defer s.catMu.Unlock()
	err = s.catalogUpdateSync(func(t *index.Txn) error {
		var rec index.Disk
		if err := t.Get(index.KindDisk, name, &rec); err != nil {
			return notFound("disk", name, err)
		}
		rec.Size = size
		return t.Put(index.KindDisk, name, rec)
	})
	if err == nil {
		d.size.Store(size)
	}
	return err
}

// DeleteDisk deletes a disk. Its snapshots, clones and images stay; the
// space only it used comes back at the next GC. An open disk is refused
// with ErrBusy unless force (after a moment's wait for handles being
// closed: closegrace.go); with force its unsynced writes are discarded.
func (s *Store) DeleteDisk(name string, force bool) error {
	if err := firstErr(s.checkOpen(), ValidateName("disk", name)); err != nil {
		return err
	}
	d, err := s.diskByName(name)
	if err != nil {
		return err
	}
	if !force {
		d.waitClosed(s.opts.CloseGrace) // (closegrace.go)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.waitSnapshotLocked() // (snapshot.go)
	if d.opens > 0 && !force {
		return fmt.Errorf("%w: disk %q is open (%s); close it, or use --force", ErrBusy, name, handles(d.opens))
	}
	s.catMu.Lock()
	defer s.catMu.Unlock()
	if err := s.catalogUpdateSync(func(t *index.Txn) error { return t.Delete(index.KindDisk, name) }); err != nil {
		return err
	}
	d.deleted = true
	d.cache, d.cacheBytes = map[ids.Block]*cblock{}, 0
	s.acct.forget(d.id)
	s.disksMu.Lock()
	delete(s.disks, d.id)
	delete(s.diskNames, d.name)
	s.deletedDisks[d.id] = true
	s.disksMu.Unlock()
	s.lazyDisksChanged() // a hydration this disk needed stops now (lazy.go)
	return nil
}

// lockDisks loads and locks disks in ascending id order; the returned
// function unlocks them.
func (s *Store) lockDisks(names []string) ([]*diskState, func(), error) {
	seen := map[string]bool{}
	var ds []*diskState
	for _, n := range names {
		if err := ValidateName("disk", n); err != nil {
			return nil, nil, err
		}
		if seen[n] {
			return nil, nil, fmt.Errorf("%w: disk %q named twice", ErrInvalid, n)
		}
		seen[n] = true
		d, err := s.diskByName(n)
		if err != nil {
			return nil, nil, err
		}
		ds = append(ds, d)
	}
	// None of them may be having a snapshot taken (snapshot.go): waited
	// for with no other disk's lock held.
	var unlock func()
	for {
		unlock = s.relockDisks(ds)
		var busy *diskState
		for _, d := range ds {
			if d.snapBusy {
				busy = d
				break
			}
		}
		if busy == nil {
			break
		}
		unlock()
		busy.mu.Lock()
		busy.waitSnapshotLocked()
		busy.mu.Unlock()
	}
	for _, d := range ds {
		if d.deleted {
			unlock()
			return nil, nil, fmt.Errorf("%w: disk %q", ErrNotFound, d.name)
		}
	}
	return ds, unlock, nil
}

// relockDisks locks disks in ascending id order; the returned function
// unlocks them.
func (s *Store) relockDisks(ds []*diskState) func() {
	sorted := append([]*diskState(nil), ds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].id < sorted[j].id })
	for _, d := range sorted {
		d.mu.Lock()
	}
	return func() {
		for _, d := range sorted {
			d.mu.Unlock()
		}
	}
}

// CreateSnapshot takes a snapshot of one or more disks, atomically: a
// consistency group. It contains every write made before it was called.
// Its cost does not depend on how much data the disks hold.
func (s *Store) CreateSnapshot(name string, disks []string, kind string) (SnapshotInfo, error) {
	return s.CreateSnapshotWith(name, disks, SnapshotOptions{Kind: kind})
}

// CreateSnapshotWith is CreateSnapshot with options.
func (s *Store) CreateSnapshotWith(name string, disks []string, o SnapshotOptions) (SnapshotInfo, error) {
	kind := o.Kind
	if err := firstErr(s.checkOpen(), ValidateName("snapshot", name)); err != nil {
		return SnapshotInfo{}, err
	}
	if len(disks) == 0 {
		return SnapshotInfo{}, fmt.Errorf("%w: a snapshot needs at least one disk", ErrInvalid)
	}
	if kind == "" {
		kind = "manual"
	}
	t0 := time.Now()
	var tDrain, tCommit1, tFreeze, tFrozen, tRelock, tCatalog time.Duration
	var frozenBytes int64
	defer func() {
		s.log.Debug("snapshot create", "snapshot", name, "drain", tDrain, "commit1", tCommit1, "freeze", tFreeze, "write_frozen", tFrozen,
			"relock", tRelock, "catalog", tCatalog, "total", time.Since(t0), "frozen_bytes", frozenBytes)
	}()
	lap := func(d *time.Duration) { *d = time.Since(t0) }
	// A cache over its bound (what writers cached during the last snapshot,
	// up to snapRoom) is brought down first, writers going on, so that the
	// frozen part is at most about CacheBytes.
	for _, n := range disks {
		if d, err := s.diskByName(n); err == nil { // (else lockDisks says why)
			d.mu.Lock()
			var err error
			if d.cacheBytes > s.opts.CacheBytes && !d.deleted {
				err = d.writeBackLocked(s.opts.CacheBytes-s.opts.CacheBytes/8, 0)
			}
			d.mu.Unlock()
			if err != nil {
				return SnapshotInfo{}, err
			}
		}
	}
	lap(&tDrain)
	// Then what the log holds is committed, writers going on as usual, so
	// that the commit of the catalog change, while writers are held to
	// their caches (whole blocks wait), has few versions to put in the
	// index (tens of ms per 64 MiB appended under load); the log started
	// its writeback as it grew, so this sync finds little to write
	// (segment.EarlyWriteback). Then the caches are the snapshot's
	// (snapshot.go): written back and committed without the disks' locks
	// while writers go on into new caches.
	if err := s.commit(); err != nil {
		return SnapshotInfo{}, err
	}
	lap(&tCommit1)
	ds, unlock, err := s.lockDisks(disks)
	if err != nil {
		return SnapshotInfo{}, err
	}
	if ok, err := s.exists(index.KindSnapshot, name); err != nil || ok {
		unlock()
		if err == nil {
			err = fmt.Errorf("%w: snapshot %q", ErrExists, name)
		}
		return SnapshotInfo{}, err
	}
	for _, d := range ds {
		d.freezeLocked()
		frozenBytes += d.frozenBytes
	}
	unlock()
	lap(&tFreeze)
	defer func() { // a no-op once the snapshot is in
		for _, d := range ds {
			d.mu.Lock()
			if d.snapBusy {
				d.thawLocked()
			}
			d.mu.Unlock()
		}
	}()
	if h := testHookSnapshotFrozen; h != nil {
		if err := h(); err != nil {
			return SnapshotInfo{}, err
		}
	}
	for _, d := range ds {
		d.mu.Lock()
		err := d.writeFrozenLocked()
		d.mu.Unlock()
		if err != nil {
			return SnapshotInfo{}, err
		}
	}
	lap(&tFrozen)
	// What the catalog change needs of the disks is read under their locks;
	// the change itself (its log sync above all) runs without them, writers
	// going on into their caches: while snapBusy nothing is appended for
	// the heads, and every other change of these disks (delete, resize,
	// rename, rollback, the next snapshot: lockDisks) waits for its end.
	// Each member records the head's count (immutable from here on).
	type member struct {
		name         string
		id           uint64
		layer        ids.Layer
		size, counts int64
		bs           int
	}
	ms := make([]member, len(ds))
	unlock = s.relockDisks(ds)
	for i, d := range ds {
		if d.deleted {
			unlock()
			return SnapshotInfo{}, fmt.Errorf("%w: disk %q", ErrNotFound, d.name)
		}
		n, err := d.headBlocksLocked()
		if err != nil {
			unlock()
			return SnapshotInfo{}, err
		}
		ms[i] = member{name: d.name, id: d.id, layer: d.chain[0].layer, size: d.size.Load(), counts: n * int64(d.bs), bs: d.bs}
	}
	unlock()
	lap(&tRelock)
	// The catalog record is appended after the frozen writes; its commit
	// (logCatalog) makes them and every write before them durable before
	// the snapshot is in the index, and puts their versions in the index
	// before the epoch moves (pending versions are looked up at a link's
	// epoch only).
	var rec index.Snapshot
	s.catMu.Lock()
	err = s.catalogUpdate(func(t *index.Txn) error {
		if err := absent(t, index.KindSnapshot, "snapshot", name); err != nil {
			return err
		}
		id, err := t.NextID()
		if err != nil {
			return err
		}
		rec = index.Snapshot{ID: id, Name: name, Created: time.Now().UTC(), Kind: kind, Policy: o.Policy, Consistency: o.Consistency}
		for _, m := range ms {
			l, err := t.Layer(m.layer)
			if err != nil {
				return err
			}
			rec.Members = append(rec.Members, index.Member{Disk: m.name, DiskID: m.id, Layer: l.ID, Epoch: l.Epoch, Size: m.size, BlockSize: m.bs,
				Allocated: int64p(m.counts)})
			l.Epoch++
			if err := t.PutLayer(l); err != nil {
				return err
			}
		}
		return t.Put(index.KindSnapshot, name, rec)
	})
	s.catMu.Unlock()
	lap(&tCatalog)
	if err != nil {
		s.snapList.changed(nil)
		return SnapshotInfo{}, err
	}
	// The epochs moved in the index: follow in memory before anything else,
	// so no write goes to the snapshot's epoch.
	unlock = s.relockDisks(ds)
	for _, d := range ds {
		d.chain = append([]link{{d.chain[0].layer, d.chain[0].epoch + 1}}, d.chain[1:]...)
		d.thawLocked() // (nothing frozen is left) writers may append again
	}
	unlock()
	info, ierr := snapshotInfo(s, rec)
	if ierr != nil {
		s.snapList.changed(nil)
	} else {
		s.snapList.changed(withSnapshot(info))
	}
	// Durable: the record is synced in the log. The index is synced in the
	// background (catalogSyncSoon), the checkpoint held before the record
	// until then.
	if err := s.catalogSyncSoon(); err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot %q: %w", name, err)
	}
	return info, ierr
}

func (s *Store) exists(kind index.CatalogKind, name string) (bool, error) {
	var ok bool
	err := s.idx.View(func(t *index.Txn) error {
		var err error
		ok, err = t.Exists(kind, name)
		return err
	})
	return ok, err
}

// ListSnapshots lists snapshots, oldest first.
func (s *Store) ListSnapshots() ([]SnapshotInfo, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	gen := s.snapList.gen.Load()
	if out, ok := s.snapList.get(gen); ok {
		return out, nil
	}
	out, err := listCatalog(s, index.KindSnapshot, snapshotInfo)
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if err == nil {
		s.snapList.put(gen, out)
	}
	return out, err
}

// snapshotList is ListSnapshots' answer as of a generation of the snapshot
// records. Without it every call decoded every snapshot record, and every
// snapshot create called it (the manual quota counts the disk's snapshots):
// a create cost O(snapshots), 3-4 ms at 256 snapshots.
//
// Snapshot records are written only by CreateSnapshotWith and
// deleteNamed(KindSnapshot), under catMu; each calls changed once its
// catalog change returned, which bumps gen and patches the list (or drops
// it when the change failed). A reader loads gen before it reads the index,
// so a list read while a change lands is tagged with the older gen and never
// served after it; the patches are idempotent, since such a list may already
// hold the change. Other catalog changes (disks, images, policies) leave the
// list alone: a snapshot's description depends on its record only.
type snapshotList struct {
	gen  atomic.Uint64
	mu   sync.Mutex
	ok   bool
	at   uint64
	list []SnapshotInfo // never handed out: callers get copies
}

func (c *snapshotList) get(gen uint64) ([]SnapshotInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ok || c.at != gen {
		return nil, false
	}
	return cloneSnapshotInfos(c.list), true
}

func (c *snapshotList) put(gen uint64, list []SnapshotInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok && c.at > gen {
		return // a newer list is cached
	}
	c.list, c.at, c.ok = cloneSnapshotInfos(list), gen, true
}

// changed is called, under catMu, after a catalog change that wrote
// snapshot records returned; patch turns the list before the change into
// the list after it (nil: the change failed, drop the list).
func (c *snapshotList) changed(patch func([]SnapshotInfo) []SnapshotInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gen.Add(1)
	if patch != nil && c.ok && c.at == g-1 {
		c.list, c.at = patch(c.list), g
		return
	}
	c.ok = false
}

// withSnapshot is the list with si in it, in ID order (idempotent).
func withSnapshot(si SnapshotInfo) func([]SnapshotInfo) []SnapshotInfo {
	return func(l []SnapshotInfo) []SnapshotInfo {
		i := sort.Search(len(l), func(i int) bool { return l[i].ID >= si.ID })
		if i < len(l) && l[i].ID == si.ID {
			return l
		}
		return append(l[:i], append([]SnapshotInfo{si}, l[i:]...)...)
	}
}

// withoutSnapshot is the list without the snapshot named name (idempotent).
func withoutSnapshot(name string) func([]SnapshotInfo) []SnapshotInfo {
	return func(l []SnapshotInfo) []SnapshotInfo {
		out := l[:0]
		for _, si := range l {
			if si.Name != name {
				out = append(out, si)
			}
		}
		return out
	}
}

func cloneSnapshotInfos(in []SnapshotInfo) []SnapshotInfo {
	out := make([]SnapshotInfo, len(in))
	for i, si := range in {
		si.Disks = append([]SnapshotDiskInfo(nil), si.Disks...)
		out[i] = si
	}
	return out
}

// GetSnapshot describes a snapshot.
func (s *Store) GetSnapshot(name string) (SnapshotInfo, error) {
	if err := firstErr(s.checkOpen(), ValidateName("snapshot", name)); err != nil {
		return SnapshotInfo{}, err
	}
	var r index.Snapshot
	if err := s.idx.View(func(t *index.Txn) error { return t.Get(index.KindSnapshot, name, &r) }); err != nil {
		return SnapshotInfo{}, notFound("snapshot", name, err)
	}
	return snapshotInfo(s, r)
}

// DeleteSnapshot deletes a snapshot. It never fails because clones, images
// or later snapshots depend on it: what they need is kept until nothing does.
func (s *Store) DeleteSnapshot(name string) error {
	return s.deleteNamed(index.KindSnapshot, "snapshot", name)
}

// DeleteImage deletes an image; disks made from it keep their data.
func (s *Store) DeleteImage(name string) error {
	return s.deleteNamed(index.KindImage, "image", name)
}

func (s *Store) deleteNamed(kind index.CatalogKind, what, name string) error {
	if err := firstErr(s.checkOpen(), ValidateName(what, name)); err != nil {
		return err
	}
	s.catMu.Lock()
	defer s.catMu.Unlock()
	err := s.catalogUpdate(func(t *index.Txn) error {
		if ok, err := t.Exists(kind, name); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("%w: %s %q", ErrNotFound, what, name)
			}
			return err
		}
		return t.Delete(kind, name)
	})
	if kind == index.KindSnapshot {
		if err != nil {
			s.snapList.changed(nil)
		} else {
			s.snapList.changed(withoutSnapshot(name))
		}
	}
	if err != nil {
		return err
	}
	return s.syncCatalogIfStale()
}

// OpenSnapshotDisk opens the image of a disk as of a snapshot, read-only.
// One of an encrypted disk whose key is locked is refused (ErrLocked).
func (s *Store) OpenSnapshotDisk(snapshot, disk string) (*Reader, error) {
	return s.refuseLocked(s.OpenSnapshotDiskMeta(snapshot, disk)) // crypt.go
}

// OpenSnapshotDiskMeta is OpenSnapshotDisk for its size and allocation
// only: it opens one of a locked encrypted disk too (its reads fail with
// ErrLocked).
func (s *Store) OpenSnapshotDiskMeta(snapshot, disk string) (*Reader, error) {
	if err := firstErr(s.checkOpen(), ValidateName("snapshot", snapshot), ValidateName("disk", disk)); err != nil {
		return nil, err
	}
	var m index.Member
	if err := s.idx.View(func(t *index.Txn) error {
		var err error
		m, err = memberOf(t, snapshot, disk)
		return err
	}); err != nil {
		return nil, err
	}
	return s.newReader(link{m.Layer, m.Epoch}, m.Size, m.BlockSize, fmt.Sprintf("snapshot %q disk %q", snapshot, disk),
		func(t *index.Txn) error { _, err := memberOf(t, snapshot, disk); return err })
}

// CreateImage makes a read-only image from a disk of a snapshot.
func (s *Store) CreateImage(name, snapshot, disk string) (ImageInfo, error) {
	if err := firstErr(s.checkOpen(), ValidateName("image", name), ValidateName("snapshot", snapshot), ValidateName("disk", disk)); err != nil {
		return ImageInfo{}, err
	}
	s.catMu.Lock()
	defer s.catMu.Unlock()
	var rec index.Image
	err := s.catalogUpdateSync(func(t *index.Txn) error {
		if err := absent(t, index.KindImage, "image", name); err != nil {
			return err
		}
		m, err := memberOf(t, snapshot, disk)
		if err != nil {
			return err
		}
		id, err := t.NextID()
		if err != nil {
			return err
		}
		a, err := s.pointAllocated(m.Allocated, link{m.Layer, m.Epoch}, m.Size, m.BlockSize)
		if err != nil {
			return err
		}
		rec = index.Image{ID: id, Name: name, Created: time.Now().UTC(), Layer: m.Layer, Epoch: m.Epoch,
			Size: m.Size, BlockSize: m.BlockSize, Snapshot: snapshot, Disk: disk, Allocated: int64p(a)}
		return t.Put(index.KindImage, name, rec)
	})
	if err != nil {
		return ImageInfo{}, err
	}
	return imageInfo(s, rec)
}

// ListImages lists images in name order.
func (s *Store) ListImages() ([]ImageInfo, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	return listCatalog(s, index.KindImage, imageInfo)
}

// GetImage describes an image.
func (s *Store) GetImage(name string) (ImageInfo, error) {
	if err := firstErr(s.checkOpen(), ValidateName("image", name)); err != nil {
		return ImageInfo{}, err
	}
	var r index.Image
	if err := s.idx.View(func(t *index.Txn) error { return t.Get(index.KindImage, name, &r) }); err != nil {
		return ImageInfo{}, notFound("image", name, err)
	}
	return imageInfo(s, r)
}

// OpenImage opens an image read-only. One of an encrypted disk whose key is
// locked is refused (ErrLocked).
func (s *Store) OpenImage(name string) (*Reader, error) {
	return s.refuseLocked(s.OpenImageMeta(name)) // crypt.go
}

// OpenImageMeta is OpenImage for its size and allocation only: it opens
// one of a locked encrypted disk too (its reads fail with ErrLocked).
func (s *Store) OpenImageMeta(name string) (*Reader, error) {
	im, err := s.GetImage(name)
	if err != nil {
		return nil, err
	}
	var r index.Image
	if err := s.idx.View(func(t *index.Txn) error { return t.Get(index.KindImage, name, &r) }); err != nil {
		return nil, notFound("image", name, err)
	}
	return s.newReader(link{r.Layer, r.Epoch}, im.Size, im.BlockSize, fmt.Sprintf("image %q", name),
		func(t *index.Txn) error {
			var again index.Image
			if err := t.Get(index.KindImage, name, &again); err != nil {
				return notFound("image", name, err)
			}
			return nil
		})
}

// RollbackDisk makes a disk read as it was in a snapshot, in constant time.
// Snapshots taken after that one stay intact. An open disk is refused with
// ErrBusy unless force (after closegrace.go's wait). Writes made before the rollback are kept in the
// disk's old history (later snapshots see them), never in the new head.
func (s *Store) RollbackDisk(name, snapshot string, force bool) error {
	if err := firstErr(s.checkOpen(), ValidateName("disk", name), ValidateName("snapshot", snapshot)); err != nil {
		return err
	}
	if !force {
		s.waitClosedByName(name) // (closegrace.go)
	}
	ds, unlock, err := s.lockDisks([]string{name})
	if err != nil {
		return err
	}
	defer unlock()
	d := ds[0]
	if d.opens > 0 && !force {
		return fmt.Errorf("%w: disk %q is open (%s); close it, or use --force", ErrBusy, name, handles(d.opens))
	}
	if err := d.flushLocked(); err != nil {
		return err
	}
	// The catalog record's commit makes the flushed writes durable too.
	s.catMu.Lock()
	defer s.catMu.Unlock()
	var newHead index.Layer
	var m index.Member
	var alloc int64
	err = s.catalogUpdate(func(t *index.Txn) error {
		var err error
		if m, err = memberOf(t, snapshot, name); err != nil {
			return err
		}
		if alloc, err = s.pointAllocated(m.Allocated, link{m.Layer, m.Epoch}, m.Size, m.BlockSize); err != nil {
			return err
		}
		if m.DiskID != d.id {
			return fmt.Errorf("%w: snapshot %q holds an earlier disk named %q, not this one; create a new disk from it instead", ErrInvalid, snapshot, name)
		}
		var rec index.Disk
		if err := t.Get(index.KindDisk, name, &rec); err != nil {
			return notFound("disk", name, err)
		}
		id, err := t.NextLayer()
		if err != nil {
			return err
		}
		newHead = index.Layer{ID: id, Parent: m.Layer, ParentEpoch: m.Epoch, Epoch: 1, BlockSize: m.BlockSize, Created: time.Now().UTC()}
		if err := t.PutLayer(newHead); err != nil {
			return err
		}
		rec.Layer, rec.Size = id, m.Size
		return t.Put(index.KindDisk, name, rec)
	})
	if err != nil {
		return err
	}
	s.acct.set(d.id, newHead.ID, alloc/int64(m.BlockSize)) // the snapshot's count
	// The head moved in the index: follow in memory before the sync, so
	// writes never go to the old head even if the sync fails.
	var chain []link
	if err := s.idx.View(func(t *index.Txn) error {
		var err error
		chain, err = chainOf(t, newHead.ID, newHead.Epoch)
		return err
	}); err != nil {
		return err
	}
	d.chain, d.modified = chain, time.Now()
	d.size.Store(m.Size)
	if err := s.syncCatalogIfStale(); err != nil {
		return fmt.Errorf("rollback of %q: %w", name, err)
	}
	return nil
}

// absent returns an error wrapping ErrExists if a named record exists.
func absent(t *index.Txn, kind index.CatalogKind, what, name string) error {
	ok, err := t.Exists(kind, name)
	if err == nil && ok {
		err = fmt.Errorf("%w: %s %q", ErrExists, what, name)
	}
	return err
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// RenameDisk gives a disk a new name (restore builds a disk under a
// temporary name and renames it when it is complete). An open disk is
// refused with ErrBusy.
func (s *Store) RenameDisk(name, newName string) error {
	if err := firstErr(s.checkOpen(), ValidateName("disk", name), ValidateName("disk", newName), checkNewDiskName(newName)); err != nil {
		return err
	}
	s.waitClosedByName(name) // (closegrace.go)
	ds, unlock, err := s.lockDisks([]string{name})
	if err != nil {
		return err
	}
	defer unlock()
	d := ds[0]
	if d.opens > 0 {
		return fmt.Errorf("%w: disk %q is open (%s)", ErrBusy, name, handles(d.opens))
	}
	s.catMu.Lock()
	defer s.catMu.Unlock()
	err = s.catalogUpdateSync(func(t *index.Txn) error {
		if err := absent(t, index.KindDisk, "disk", newName); err != nil {
			return err
		}
		var rec index.Disk
		if err := t.Get(index.KindDisk, name, &rec); err != nil {
			return notFound("disk", name, err)
		}
		rec.Name = newName
		if err := t.Delete(index.KindDisk, name); err != nil {
			return err
		}
		return t.Put(index.KindDisk, newName, rec)
	})
	if err == nil {
		s.disksMu.Lock()
		delete(s.diskNames, d.name)
		s.diskNames[newName] = d.id
		d.name = newName
		s.disksMu.Unlock()
	}
	return err
}
