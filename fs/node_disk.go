package fs

import (
	"context"
	"math"
	"syscall"

	"golang.org/x/sys/unix"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// diskNode is M/disks/<disk>: a read-write raw image of fixed (growable) size.
// The modes of the mount's disk images: a disk is a raw block device's
// content (every file of its filesystem, whatever their own modes, and the
// plaintext of an unlocked encrypted disk), so only the daemon's user may
// open it, as /dev/sdX is root's. With --allow-other, other users browse
// the files of snapshots through <d>.files, where the guest's own modes
// and owners apply; they never read an image whole.
const (
	diskMode  = 0o600 // disks/<d>
	imageMode = 0o400 // snapshots/<s>/<d>, images/<i>, regions/<r>/<s>/<d>
)

type diskNode struct {
	gofs.Inode
	m    *mountState
	name string
}

func (m *mountState) diskAttr(a *fuse.Attr, e DiskEntry) {
	m.fileAttr(a, diskIno(e.ID), diskMode, e.Size, e.Allocated, e.BlockSize, e.Modified)
}

func (n *diskNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer n.m.recoverOp("getattr disk", n.name, &errno)
	e, err := n.m.backend.Disk(n.name)
	if err != nil {
		return n.m.fail("getattr disk", n.name, err)
	}
	n.m.diskAttr(&out.Attr, e)
	out.SetTimeout(n.m.nameTimeout)
	return 0
}

// Setattr changes the size (grow only: disks never shrink, since shrinking
// would silently destroy data at the end of a filesystem) and accepts
// atime/mtime changes without effect (times belong to storage; `touch`
// must not fail). chmod and chown fail with EPERM unless they change nothing:
// the mode and owner are fixed, and pretending otherwise would mislead.
func (n *diskNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) (errno syscall.Errno) {
	defer n.m.recoverOp("setattr disk", n.name, &errno)
	e, err := n.m.backend.Disk(n.name)
	if err != nil {
		return n.m.fail("setattr disk", n.name, err)
	}
	if mode, ok := in.GetMode(); ok && mode&07777 != diskMode {
		return syscall.EPERM
	}
	if uid, ok := in.GetUID(); ok && uid != n.m.uid {
		return syscall.EPERM
	}
	if gid, ok := in.GetGID(); ok && gid != n.m.gid {
		return syscall.EPERM
	}
	if size, ok := in.GetSize(); ok {
		switch {
		case size > math.MaxInt64:
			return syscall.EFBIG
		case int64(size) < e.Size:
			return syscall.EINVAL
		case int64(size) > e.Size:
			if err := n.m.backend.ResizeDisk(n.name, int64(size)); err != nil {
				return n.m.fail("resize disk", n.name, err)
			}
			if e, err = n.m.backend.Disk(n.name); err != nil {
				return n.m.fail("setattr disk", n.name, err)
			}
		}
	}
	n.m.diskAttr(&out.Attr, e)
	out.SetTimeout(n.m.nameTimeout)
	return 0
}

// Open opens the disk through the Backend; every open is one DiskHandle, so
// the engine's busy checks see it. Reads and writes bypass the page cache
// (FOPEN_DIRECT_IO, see doc.go: a read over a corrupt block fails whole);
// mmap still works (CAP_DIRECT_IO_ALLOW_MMAP).
func (n *diskNode) Open(ctx context.Context, flags uint32) (_ gofs.FileHandle, _ uint32, errno syscall.Errno) {
	defer n.m.recoverOp("open disk", n.name, &errno)
	h, err := n.m.backend.OpenDisk(n.name)
	if err != nil {
		return nil, 0, n.m.fail("open disk", n.name, err)
	}
	writable := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	return &diskFile{m: n.m, name: n.name, h: h, writable: writable}, fuse.FOPEN_DIRECT_IO, 0
}

// Allocate is here and not on diskFile because it may resize the disk by name.
// Modes (see doc.go):
//   - PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE[|KEEP_SIZE]: Backend PunchHole on the
//     part inside the disk;
//   - 0 or KEEP_SIZE (preallocation): nothing to do inside the disk, since
//     storage is allocated on write; mode 0 past the end grows the disk, as
//     posix_fallocate promises; so does ZERO_RANGE without KEEP_SIZE;
//   - anything else (collapse, insert, unshare): EOPNOTSUPP.
func (n *diskNode) Allocate(ctx context.Context, f gofs.FileHandle, off, length uint64, mode uint32) (errno syscall.Errno) {
	defer n.m.recoverOp("fallocate disk", n.name, &errno)
	if off > math.MaxInt64 || length > math.MaxInt64-off {
		return syscall.EFBIG
	}
	start, end := int64(off), int64(off+length)
	df, _ := f.(*diskFile)
	if df == nil { // the kernel always passes the handle; be safe anyway
		h, err := n.m.backend.OpenDisk(n.name)
		if err != nil {
			return n.m.fail("fallocate disk", n.name, err)
		}
		defer h.Close()
		df = &diskFile{m: n.m, name: n.name, h: h}
	}
	size := df.h.Size()
	var punch, grow bool
	switch mode {
	case 0:
		grow = true
	case unix.FALLOC_FL_KEEP_SIZE:
	case unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE:
		punch = true
	case unix.FALLOC_FL_ZERO_RANGE:
		punch, grow = true, true
	default:
		return syscall.EOPNOTSUPP
	}
	if punch && start < size {
		if err := df.h.PunchHole(start, min(end, size)-start); err != nil {
			return n.m.fail("punch hole", n.name, err)
		}
		df.dirty.Store(true)
	}
	if grow && end > size {
		if err := n.m.backend.ResizeDisk(n.name, end); err != nil {
			return n.m.fail("resize disk", n.name, err)
		}
	}
	return 0
}
