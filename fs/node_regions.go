package fs

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"sort"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Regions is what M/regions/ needs: the remote regions the daemon knows,
// their snapshots, and their disks opened for reading on demand (see
// Options.Regions; without it there is no regions/ directory).
//
// Listing must be cheap and fetch no disk data: Regions and
// RemoteSnapshots read configuration and manifests (the implementation
// may cache them), OpenRemoteDisk reads the disk's blocks only when read.
type Regions interface {
	// Regions lists the configured regions by name.
	Regions() ([]string, error)
	// RemoteSnapshots lists the snapshots of a region. Names are unique
	// in the list (the implementation tells apart two hosts' snapshots of
	// one name).
	RemoteSnapshots(region string) ([]RemoteSnapshotEntry, error)
	// OpenRemoteDisk opens disk of snapshot (a name from RemoteSnapshots)
	// of region, read-only. Its reads fail with an error (EIO) when the
	// data cannot be fetched or verified, never with wrong data.
	OpenRemoteDisk(region, snapshot, disk string) (ReadHandle, error)
}

// RemoteSnapshotEntry describes a snapshot in a region.
type RemoteSnapshotEntry struct {
	Name    string
	Created time.Time
	// Key identifies the snapshot (host and snapshot id): a snapshot
	// replaced under the same name gets new inode numbers.
	Key   string
	Disks []SnapshotDisk
}

// Inode numbers under regions/ (see ino.go): kind tag, and 56 bits of
// FNV-1a of the path (region, snapshot key, disk). A collision needs
// about 2^28 names in one mount.
const (
	kindRegion     = 7
	kindRemoteSnap = 8
	kindRemoteDisk = 9

	inoRegions = 5
)

func pathIno(kind uint64, parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return kind<<kindShift | fold(h.Sum64(), kindShift)
}

// remoteFilesIno numbers the <d>.files directory of a remote disk: the
// .files kind, bit 54 set (local snapshot ids never reach it), the hash.
func remoteFilesIno(region, key, disk string) uint64 {
	return uint64(kindFilesDir)<<kindShift | 1<<54 | fold(pathIno(0, region, key, disk), 38)<<memberBits
}

// regionsTop is M/regions: one directory per configured region, listed
// live.
type regionsTop struct {
	gofs.Inode
	changeGuard
	m *mountState
}

func (n *regionsTop) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.m.dirAttr(&out.Attr, inoRegions, 0555, n.m.mounted)
	out.SetTimeout(fixedTimeout)
	return 0
}

func (n *regionsTop) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer n.m.recoverOp("lookup region", name, &errno)
	rs, err := n.m.regions.Regions()
	if err != nil {
		return nil, n.m.fail("list regions", "", err)
	}
	for _, r := range rs {
		if r == name {
			ino := pathIno(kindRegion, name)
			n.m.dirAttr(&out.Attr, ino, 0555, n.m.mounted)
			n.m.dynamicEntry(out)
			node := &regionDir{m: n.m, changeGuard: changeGuard{syscall.EROFS}, region: name, ino: ino}
			return n.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino, Gen: 1}), 0
		}
	}
	return nil, syscall.ENOENT
}

func (n *regionsTop) Readdir(ctx context.Context) (_ gofs.DirStream, errno syscall.Errno) {
	defer n.m.recoverOp("list regions", "", &errno)
	rs, err := n.m.regions.Regions()
	if err != nil {
		return nil, n.m.fail("list regions", "", err)
	}
	list := make([]fuse.DirEntry, 0, len(rs))
	for _, r := range rs {
		list = append(list, fuse.DirEntry{Name: r, Ino: pathIno(kindRegion, r), Mode: syscall.S_IFDIR})
	}
	return gofs.NewListDirStream(list), 0
}

// regionDir is M/regions/<r>: one directory per remote snapshot.
type regionDir struct {
	gofs.Inode
	changeGuard
	m      *mountState
	region string
	ino    uint64
}

func (n *regionDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.m.dirAttr(&out.Attr, n.ino, 0555, n.m.mounted)
	out.SetTimeout(fixedTimeout)
	return 0
}

func (n *regionDir) find(name string) (RemoteSnapshotEntry, syscall.Errno) {
	ss, err := n.m.regions.RemoteSnapshots(n.region)
	if err != nil {
		return RemoteSnapshotEntry{}, n.m.fail("list remote snapshots", n.region, remoteErr(err))
	}
	for _, s := range ss {
		if s.Name == name {
			return s, 0
		}
	}
	return RemoteSnapshotEntry{}, syscall.ENOENT
}

func (n *regionDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer n.m.recoverOp("lookup remote snapshot", n.region+"/"+name, &errno)
	s, errno := n.find(name)
	if errno != 0 {
		return nil, errno
	}
	ino := pathIno(kindRemoteSnap, n.region, s.Key)
	n.m.dirAttr(&out.Attr, ino, 0555, s.Created)
	n.m.dynamicEntry(out)
	members := append([]SnapshotDisk(nil), s.Disks...)
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	node := &remoteSnapDir{m: n.m, changeGuard: changeGuard{syscall.EROFS}, region: n.region, snap: s, members: members, ino: ino}
	return n.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino, Gen: 1}), 0
}

func (n *regionDir) Readdir(ctx context.Context) (_ gofs.DirStream, errno syscall.Errno) {
	defer n.m.recoverOp("list remote snapshots", n.region, &errno)
	ss, err := n.m.regions.RemoteSnapshots(n.region)
	if err != nil {
		return nil, n.m.fail("list remote snapshots", n.region, remoteErr(err))
	}
	list := make([]fuse.DirEntry, 0, len(ss))
	for _, s := range ss {
		list = append(list, fuse.DirEntry{Name: s.Name, Ino: pathIno(kindRemoteSnap, n.region, s.Key), Mode: syscall.S_IFDIR})
	}
	return gofs.NewListDirStream(list), 0
}

// remoteSnapDir is M/regions/<r>/<s>: the snapshot's disks, read-only,
// and their <d>.files directories. A remote snapshot's disks never change
// (a snapshot replaced under the name has another key, so another node).
type remoteSnapDir struct {
	gofs.Inode
	changeGuard
	m       *mountState
	region  string
	snap    RemoteSnapshotEntry
	members []SnapshotDisk
	ino     uint64
}

func (n *remoteSnapDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.m.dirAttr(&out.Attr, n.ino, 0555, n.snap.Created)
	out.SetTimeout(fixedTimeout)
	return 0
}

func (n *remoteSnapDir) filesSource(disk string) FilesSource {
	return FilesSource{Region: n.region, Snapshot: n.snap.Name, Disk: disk, Key: n.snap.Key}
}

func (n *remoteSnapDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer n.m.recoverOp("lookup remote disk", n.region+"/"+n.snap.Name+"/"+name, &errno)
	if disk, ok := strings.CutSuffix(name, FilesSuffix); ok {
		for _, d := range n.members {
			if d.Name == disk && n.m.files != nil {
				ino := remoteFilesIno(n.region, n.snap.Key, disk)
				n.m.dirAttr(&out.Attr, ino, 0555, n.snap.Created)
				out.SetEntryTimeout(fixedTimeout)
				out.SetAttrTimeout(fixedTimeout)
				node := &remoteFilesDir{m: n.m, changeGuard: changeGuard{syscall.EROFS}, src: n.filesSource(disk), made: n.snap.Created}
				return n.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino, Gen: 1}), 0
			}
		}
		return nil, syscall.ENOENT
	}
	for _, d := range n.members {
		if d.Name != name {
			continue
		}
		ino := pathIno(kindRemoteDisk, n.region, n.snap.Key, d.Name)
		n.m.fileAttr(&out.Attr, ino, imageMode, d.Size, d.Allocated, 0, n.snap.Created)
		out.SetEntryTimeout(fixedTimeout)
		out.SetAttrTimeout(fixedTimeout)
		region, snap, disk := n.region, n.snap.Name, d.Name
		node := &imageNode{
			m: n.m, what: "remote disk", name: region + "/" + snap + "/" + disk, ino: ino,
			size: d.Size, allocated: d.Allocated, mtime: n.snap.Created,
			open: func() (ReadHandle, error) {
				h, err := n.m.regions.OpenRemoteDisk(region, snap, disk)
				if err != nil {
					return nil, remoteErr(err)
				}
				return remoteReads{h}, nil
			},
		}
		return n.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: ino, Gen: 1}), 0
	}
	return nil, syscall.ENOENT
}

// Readdir lists the disks and, when the mount shows files, a <d>.files
// entry for each: listing probes nothing (a remote probe would fetch
// blocks), so a disk without a filesystem snapfs can show has an entry
// that is empty-handed (ENOENT) inside (remoteFilesDir).
func (n *remoteSnapDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	list := make([]fuse.DirEntry, 0, 2*len(n.members))
	for _, d := range n.members {
		list = append(list, fuse.DirEntry{Name: d.Name, Ino: pathIno(kindRemoteDisk, n.region, n.snap.Key, d.Name), Mode: syscall.S_IFREG})
		if n.m.files != nil {
			list = append(list, fuse.DirEntry{Name: d.Name + FilesSuffix, Ino: remoteFilesIno(n.region, n.snap.Key, d.Name), Mode: syscall.S_IFDIR})
		}
	}
	return gofs.NewListDirStream(list), 0
}

// remoteReads is an open remote disk whose failed reads are EIO, as the
// Regions interface says, whatever errno the cause wraps: a store's
// network error wraps ECONNREFUSED or ETIMEDOUT, a region lock another
// host holds maps to EAGAIN, a pack gone from the stores to ENOENT; a
// read(2) of data that exists but cannot be fetched must not say any of
// these. The cause stays in the chain (logged, errors.Is).
type remoteReads struct{ ReadHandle }

func (r remoteReads) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.ReadHandle.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		err = eioError{err}
	}
	return n, err
}

// eioError is an error that is syscall.EIO first (toErrno finds that
// errno before any the cause wraps), then its cause.
type eioError struct{ cause error }

func (e eioError) Error() string   { return e.cause.Error() }
func (e eioError) Unwrap() []error { return []error{syscall.EIO, e.cause} }

// remoteErr is an error of listing a region or opening a remote disk
// that keeps what the caller's errno table maps (a snapshot not found:
// ENOENT, an encrypted disk: ENOKEY, a wrong key...) but hides any raw
// errno its cause wraps: a store that refuses connections is EIO, not
// ECONNREFUSED.
func remoteErr(err error) error {
	if err == nil {
		return nil
	}
	return hiddenErrno{err}
}

type hiddenErrno struct{ cause error }

func (e hiddenErrno) Error() string        { return e.cause.Error() }
func (e hiddenErrno) Is(target error) bool { return errors.Is(e.cause, target) }

func (e hiddenErrno) As(target any) bool {
	if _, ok := target.(*syscall.Errno); ok {
		return false
	}
	return errors.As(e.cause, target)
}

// remoteFilesDir is M/regions/<r>/<s>/<d>.files. Looking it up probes
// nothing (the kernel looks up every listed name with READDIRPLUS, and a
// probe of a remote disk fetches blocks); the first lookup or listing
// inside probes the disk, and then it is the filesystem's root (a
// filesystem on the whole disk) or one pN directory per partition, as
// local .files directories are. A disk without a filesystem snapfs can
// show is ENOENT inside.
type remoteFilesDir struct {
	gofs.Inode
	changeGuard
	m    *mountState
	src  FilesSource
	made time.Time
}

func (n *remoteFilesDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.m.dirAttr(&out.Attr, n.StableAttr().Ino, 0555, n.made)
	out.SetTimeout(fixedTimeout)
	return 0
}

// resolve probes the disk: (whole-disk tree, nil) or (nil, partitions).
func (n *remoteFilesDir) resolve() (*filesTop, *partsDir, syscall.Errno) {
	parts, err := n.m.files.Parts(n.src)
	if err != nil {
		return nil, nil, n.m.fail("probe .files", n.src.String(), remoteErr(err))
	}
	if len(parts) == 0 {
		return nil, nil, syscall.ENOENT
	}
	if len(parts) == 1 && parts[0] == "" {
		top := &filesTop{filesLeaf: filesLeaf{m: n.m, src: n.src, part: "", nums: n.m.filesState.tree(n.src, ""), made: n.made}}
		top.changeGuard.errno = syscall.EROFS
		return top, nil, 0
	}
	return nil, &partsDir{m: n.m, changeGuard: changeGuard{syscall.EROFS}, src: n.src, parts: parts, made: n.made}, 0
}

func (n *remoteFilesDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer n.m.recoverOp("lookup in .files", n.src.String(), &errno)
	top, parts, errno := n.resolve()
	if errno != 0 {
		return nil, errno
	}
	if top != nil {
		return top.lookup(ctx, n.EmbeddedInode(), name, out)
	}
	for _, p := range parts.parts {
		if p == name {
			t := parts.top(p)
			ino := uint64(kindFilesTree)<<kindShift | t.nums.num<<treeShift
			n.m.dirAttr(&out.Attr, ino, 0555, n.made)
			out.SetEntryTimeout(fixedTimeout)
			out.SetAttrTimeout(fixedTimeout)
			return n.NewInode(ctx, t, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino, Gen: 1}), 0
		}
	}
	return nil, syscall.ENOENT
}

func (n *remoteFilesDir) Readdir(ctx context.Context) (_ gofs.DirStream, errno syscall.Errno) {
	defer n.m.recoverOp("list .files", n.src.String(), &errno)
	top, parts, errno := n.resolve()
	if errno != 0 {
		return nil, errno
	}
	if top != nil {
		return top.readdir(ctx)
	}
	return parts.Readdir(ctx)
}

func (n *remoteFilesDir) Statfs(ctx context.Context, out *fuse.StatfsOut) (errno syscall.Errno) {
	defer n.m.recoverOp("statfs .files", n.src.String(), &errno)
	top, _, errno := n.resolve()
	if errno != 0 {
		return errno
	}
	if top == nil {
		out.Bsize, out.Frsize, out.NameLen = 4096, 4096, 255
		return 0
	}
	return statfsLeaf(&top.filesLeaf, out)
}
