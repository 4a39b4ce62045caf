package daemon

import (
	"context"
	"errors"
	"io"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/fs"
)

// regions adapts the service's remote views to fs.Regions: M/regions/.
type regions struct {
	l *service.Local
}

var _ fs.Regions = regions{}

func (r regions) Regions() ([]string, error) { return r.l.RemoteRegions() }

func (r regions) RemoteSnapshots(region string) ([]fs.RemoteSnapshotEntry, error) {
	vs, err := r.l.RemoteViews(context.Background(), region)
	if err != nil {
		return nil, err
	}
	out := make([]fs.RemoteSnapshotEntry, 0, len(vs))
	for _, v := range vs {
		e := fs.RemoteSnapshotEntry{Name: v.Name, Created: v.Created, Key: v.Key()}
		for _, d := range v.Disks {
			alloc := d.Size // a delta's map does not say how much is stored
			if !d.Delta {
				alloc = int64(d.Blocks) * int64(d.BlockSize)
			}
			e.Disks = append(e.Disks, fs.SnapshotDisk{Name: d.Name, Size: d.Size, Allocated: min(alloc, d.Size)})
		}
		out = append(out, e)
	}
	return out, nil
}

func (r regions) OpenRemoteDisk(region, snapshot, disk string) (fs.ReadHandle, error) {
	return r.l.OpenRemoteDisk(context.Background(), region, snapshot, disk)
}

// probeReader wraps a remote disk for the .files probe: a read error
// (stores unreachable) comes back from Close, so the probe fails and is
// not cached as "no filesystem" (browse caches a layout per source).
func probeReader(r *service.RemoteReader, err error) (browse.ReaderAtSize, error) {
	if err != nil {
		return nil, err
	}
	return &failingProbe{r: r}, nil
}

type failingProbe struct {
	r   *service.RemoteReader
	err error
}

func (p *failingProbe) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.r.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) && p.err == nil {
		p.err = err
	}
	return n, err
}

func (p *failingProbe) Size() int64 { return p.r.Size() }

func (p *failingProbe) Close() error {
	cerr := p.r.Close()
	if p.err != nil {
		return p.err
	}
	return cerr
}
