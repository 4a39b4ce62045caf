package fs

import (
	"context"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// imageNode is an immutable image: M/snapshots/<snap>/<disk> or
// M/images/<image>. Its attributes are fixed when the node is made.
type imageNode struct {
	gofs.Inode
	m         *mountState
	what      string // "image" or "snapshot disk", for logs
	name      string
	ino       uint64
	size      int64
	allocated int64
	mtime     time.Time
	open      func() (ReadHandle, error)
}

func (n *imageNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.m.fileAttr(&out.Attr, n.ino, imageMode, n.size, n.allocated, 0, n.mtime)
	out.SetTimeout(fixedTimeout)
	return 0
}

func (n *imageNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (n *imageNode) Access(ctx context.Context, mask uint32) syscall.Errno {
	if mask&2 != 0 { // W_OK
		return syscall.EROFS
	}
	return 0
}

func (n *imageNode) Allocate(ctx context.Context, f gofs.FileHandle, off, length uint64, mode uint32) syscall.Errno {
	return syscall.EROFS
}

// Open refuses writing. Reads bypass the page cache (FOPEN_DIRECT_IO, see
// doc.go: a read over a corrupt block fails whole, never short).
func (n *imageNode) Open(ctx context.Context, flags uint32) (_ gofs.FileHandle, _ uint32, errno syscall.Errno) {
	defer n.m.recoverOp("open "+n.what, n.name, &errno)
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	h, err := n.open()
	if err != nil {
		return nil, 0, n.m.fail("open "+n.what, n.name, err)
	}
	return &imageFile{m: n.m, what: n.what, name: n.name, h: h}, fuse.FOPEN_DIRECT_IO, 0
}

// imageFile is one open of an immutable image.
type imageFile struct {
	m    *mountState
	what string
	name string
	h    ReadHandle
}

func (f *imageFile) Read(ctx context.Context, dest []byte, off int64) (_ fuse.ReadResult, errno syscall.Errno) {
	defer f.m.recoverOp("read "+f.what, f.name, &errno)
	n, err := readFull(f.h, dest, off)
	if err != nil {
		return nil, f.m.fail("read "+f.what, f.name, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *imageFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}

func (f *imageFile) Release(ctx context.Context) (errno syscall.Errno) {
	defer f.m.recoverOp("release "+f.what, f.name, &errno)
	if err := f.h.Close(); err != nil {
		return f.m.fail("release "+f.what, f.name, err)
	}
	return 0
}

// jsonNode is M/snapshots/<snap>/snapshot.json. Unlike the images its content
// may change (a replication state), so it is read at open and served with
// FOPEN_DIRECT_IO, and its attributes are not cached.
type jsonNode struct {
	gofs.Inode
	m    *mountState
	snap string
	id   uint64
}

func (n *jsonNode) current() (SnapshotEntry, syscall.Errno) {
	e, err := n.m.backend.Snapshot(n.snap)
	if err != nil {
		return e, n.m.fail("snapshot.json", n.snap, err)
	}
	if e.ID != n.id {
		return e, syscall.ENOENT
	}
	return e, 0
}

func (n *jsonNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer n.m.recoverOp("getattr snapshot.json", n.snap, &errno)
	e, errno := n.current()
	if errno != 0 {
		return errno
	}
	n.m.fileAttr(&out.Attr, snapFileIno(n.id, 0), 0444, int64(len(e.JSON)), int64(len(e.JSON)), 4096, e.Created)
	return 0
}

func (n *jsonNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (n *jsonNode) Access(ctx context.Context, mask uint32) syscall.Errno {
	if mask&2 != 0 { // W_OK
		return syscall.EROFS
	}
	return 0
}

func (n *jsonNode) Allocate(ctx context.Context, f gofs.FileHandle, off, length uint64, mode uint32) syscall.Errno {
	return syscall.EROFS
}

func (n *jsonNode) Open(ctx context.Context, flags uint32) (_ gofs.FileHandle, _ uint32, errno syscall.Errno) {
	defer n.m.recoverOp("open snapshot.json", n.snap, &errno)
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	e, errno := n.current()
	if errno != 0 {
		return nil, 0, errno
	}
	return &bytesFile{data: append([]byte(nil), e.JSON...)}, fuse.FOPEN_DIRECT_IO, 0
}

// bytesFile serves a byte slice taken at open.
type bytesFile struct {
	data []byte
}

func (f *bytesFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off < 0 || off >= int64(len(f.data)) {
		return fuse.ReadResultData(nil), 0
	}
	n := copy(dest, f.data[off:])
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *bytesFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}
