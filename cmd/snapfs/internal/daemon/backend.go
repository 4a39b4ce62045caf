package daemon

import (
	"context"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/fs"
	"github.com/snapfs/snapfs/rowstore"
)

// backend adapts the engine to fs.Backend. It calls the store directly (not
// the Service's mutating methods), so no FUSE request ever runs a Service
// hook that would notify the kernel from inside a request.
type backend struct {
	l *service.Local
	s *rowstore.Store
}

var _ fs.Backend = (*backend)(nil)

func newBackend(l *service.Local) *backend { return &backend{l: l, s: l.Store()} }

func diskEntry(d rowstore.DiskInfo) fs.DiskEntry {
	return fs.DiskEntry{ID: d.ID, Name: d.Name, Size: d.Size, Allocated: d.Allocated, BlockSize: d.BlockSize,
		Created: d.Created, Modified: d.Modified}
}

func (b *backend) Disks() ([]fs.DiskEntry, error) {
	ds, err := b.s.ListDisks()
	if err != nil {
		return nil, err
	}
	ds = b.l.HideScratch(ds) // scratch clones are opened by name, never listed
	out := make([]fs.DiskEntry, 0, len(ds))
	for _, d := range ds {
		out = append(out, diskEntry(d))
	}
	return out, nil
}

func (b *backend) Disk(name string) (fs.DiskEntry, error) {
	d, err := b.s.GetDisk(name)
	if err != nil {
		return fs.DiskEntry{}, err
	}
	return diskEntry(d), nil
}

func (b *backend) OpenDisk(name string) (fs.DiskHandle, error) {
	if h, ok, err := b.l.OpenRemoteScratch(name); ok { // the clone of a remote disk (.files under regions/)
		return h, err
	}
	h, err := b.s.OpenDisk(name)
	if err != nil {
		return nil, err
	}
	return h, nil
}

func (b *backend) ResizeDisk(name string, size int64) error { return b.s.ResizeDisk(name, size) }

func (b *backend) snapshotEntry(s service.Snapshot) (fs.SnapshotEntry, error) {
	js, err := service.TypedJSON("snapshot", s)
	if err != nil {
		return fs.SnapshotEntry{}, err
	}
	e := fs.SnapshotEntry{ID: s.ID, Name: s.Name, Created: s.Created, JSON: append(js, '\n')}
	for _, d := range s.Disks {
		e.Disks = append(e.Disks, fs.SnapshotDisk{Name: d.Name, Size: d.Size, Allocated: d.Allocated})
	}
	return e, nil
}

func (b *backend) Snapshots() ([]fs.SnapshotEntry, error) {
	ss, err := b.l.ListSnapshots(context.Background(), "")
	if err != nil {
		return nil, err
	}
	out := make([]fs.SnapshotEntry, 0, len(ss))
	for _, s := range ss {
		e, err := b.snapshotEntry(s)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (b *backend) Snapshot(name string) (fs.SnapshotEntry, error) {
	s, err := b.l.SnapshotOf(name)
	if err != nil {
		return fs.SnapshotEntry{}, err
	}
	return b.snapshotEntry(s)
}

func (b *backend) OpenSnapshotDisk(snap, disk string) (fs.ReadHandle, error) {
	r, err := b.s.OpenSnapshotDisk(snap, disk)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (b *backend) imageEntry(im rowstore.ImageInfo) (fs.ImageEntry, error) {
	return fs.ImageEntry{ID: im.ID, Name: im.Name, Size: im.Size, Allocated: im.Allocated, Created: im.Created}, nil
}

func (b *backend) Images() ([]fs.ImageEntry, error) {
	ims, err := b.s.ListImages()
	if err != nil {
		return nil, err
	}
	out := make([]fs.ImageEntry, 0, len(ims))
	for _, im := range ims {
		e, err := b.imageEntry(im)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (b *backend) Image(name string) (fs.ImageEntry, error) {
	im, err := b.s.GetImage(name)
	if err != nil {
		return fs.ImageEntry{}, err
	}
	return b.imageEntry(im)
}

func (b *backend) OpenImage(name string) (fs.ReadHandle, error) {
	r, err := b.s.OpenImage(name)
	if err != nil {
		return nil, err
	}
	return r, nil
}
