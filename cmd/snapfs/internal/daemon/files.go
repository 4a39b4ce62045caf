package daemon

import (
	"context"
	"os"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/fs"
)

// files adapts the browse manager to fs.Files: the .files directories of
// the mount. Probing reads the image through the engine (a few sectors,
// cached per snapshot or image); entering opens the filesystem through the
// manager (scratch clone, loop device, read-only kernel mount).
type files struct {
	b *backend
	m *browse.Manager
}

var _ fs.Files = files{}

func browseSource(src fs.FilesSource) browse.Source {
	return browse.Source{Snapshot: src.Snapshot, Disk: src.Disk, Image: src.Image, ID: src.ID, Region: src.Region, RemoteKey: src.Key}
}

func (f files) layout(src fs.FilesSource) (browse.Layout, error) {
	return f.m.Layout(browseSource(src), func() (browse.ReaderAtSize, error) {
		if src.Region != "" { // regions.go
			return probeReader(f.b.l.OpenRemoteDisk(context.Background(), src.Region, src.Snapshot, src.Disk))
		}
		if src.Image != "" {
			return f.b.s.OpenImage(src.Image)
		}
		return f.b.s.OpenSnapshotDisk(src.Snapshot, src.Disk)
	})
}

func (f files) Parts(src fs.FilesSource) ([]string, error) {
	l, err := f.layout(src)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(l.Parts))
	for _, p := range l.Parts {
		out = append(out, p.Name)
	}
	return out, nil
}

func (f files) Enter(src fs.FilesSource, part string) (fs.FilesTree, error) {
	l, err := f.layout(src)
	if err != nil {
		return nil, err
	}
	t, err := f.m.Acquire(browseSource(src), l)
	if err != nil {
		return nil, err
	}
	dir, err := t.Dir(part)
	if err != nil {
		t.Release()
		return nil, err
	}
	return held{t: t, dir: dir}, nil
}

type held struct {
	t   *browse.Tree
	dir string
}

func (h held) Dir() string        { return h.dir }
func (h held) Track(f *os.File)   { h.t.Track(f) }
func (h held) Untrack(f *os.File) { h.t.Untrack(f) }
func (h held) Release()           { h.t.Release() }
