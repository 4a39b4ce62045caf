package fs

import (
	"context"
	"sort"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// fixedTimeout is the kernel cache lifetime of things that never change: the
// three top-level directories and the files inside a snapshot directory.
const fixedTimeout = time.Hour

// changeGuard answers every namespace change (create, mkdir, mknod, link,
// symlink, unlink, rmdir, rename, setattr) in a directory with one errno:
// EPERM where the namespace is fixed by the CLI (the root, disks/), EROFS
// where it is read-only (snapshots/, images/ and below). go-fuse lets an
// unimplemented Unlink or Rmdir succeed silently, so every directory embeds
// one of these.
type changeGuard struct {
	errno syscall.Errno
}

func (g *changeGuard) changeErrno() syscall.Errno { return g.errno }

func (g *changeGuard) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, g.errno
}

func (g *changeGuard) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, g.errno
}

func (g *changeGuard) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, g.errno
}

func (g *changeGuard) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, g.errno
}

func (g *changeGuard) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, g.errno
}

func (g *changeGuard) Unlink(ctx context.Context, name string) syscall.Errno { return g.errno }

func (g *changeGuard) Rmdir(ctx context.Context, name string) syscall.Errno { return g.errno }

// Rename fails with EROFS if either side is read-only, else with the guard's
// errno.
func (g *changeGuard) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if p, ok := newParent.(interface{ changeErrno() syscall.Errno }); ok && p.changeErrno() == syscall.EROFS {
		return syscall.EROFS
	}
	return g.errno
}

func (g *changeGuard) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return g.errno
}

// Access refuses W_OK in read-only directories.
func (g *changeGuard) Access(ctx context.Context, mask uint32) syscall.Errno {
	if mask&2 != 0 && g.errno == syscall.EROFS { // W_OK
		return syscall.EROFS
	}
	return 0
}

func (m *mountState) setOwner(a *fuse.Attr) {
	a.Uid = m.uid
	a.Gid = m.gid
}

func setTimes(a *fuse.Attr, t time.Time) {
	a.SetTimes(&t, &t, &t)
}

func (m *mountState) dirAttr(a *fuse.Attr, ino uint64, perm uint32, t time.Time) {
	a.Ino = ino
	a.Mode = syscall.S_IFDIR | perm
	a.Nlink = 2
	a.Size = 4096
	a.Blksize = 4096
	m.setOwner(a)
	setTimes(a, t)
}

func (m *mountState) fileAttr(a *fuse.Attr, ino uint64, perm uint32, size, allocated int64, blksize int, t time.Time) {
	a.Ino = ino
	a.Mode = syscall.S_IFREG | perm
	a.Nlink = 1
	a.Size = uint64(max(size, 0))
	a.Blocks = uint64(max(allocated, 0)+511) / 512
	if blksize <= 0 {
		blksize = 4096
	}
	a.Blksize = uint32(blksize)
	m.setOwner(a)
	setTimes(a, t)
}

// rootNode is M/: the three fixed directories.
type rootNode struct {
	gofs.Inode
	changeGuard
	m *mountState

	disks, snapshots, images *gofs.Inode
}

func (n *rootNode) OnAdd(ctx context.Context) {
	n.changeGuard.errno = syscall.EPERM
	m := n.m
	n.disks = n.NewPersistentInode(ctx, &disksDir{m: m, changeGuard: changeGuard{syscall.EPERM}},
		gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: inoDisks})
	n.snapshots = n.NewPersistentInode(ctx, &snapshotsDir{m: m, changeGuard: changeGuard{syscall.EROFS}},
		gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: inoSnapshots})
	n.images = n.NewPersistentInode(ctx, &imagesDir{m: m, changeGuard: changeGuard{syscall.EROFS}},
		gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: inoImages})
	n.AddChild("disks", n.disks, false)
	n.AddChild("snapshots", n.snapshots, false)
	n.AddChild("images", n.images, false)
	if m.regions != nil { // node_regions.go
		n.AddChild("regions", n.NewPersistentInode(ctx, &regionsTop{m: m, changeGuard: changeGuard{syscall.EROFS}},
			gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: inoRegions}), false)
	}
}

var fixedDirs = []struct {
	name string
	ino  uint64
	perm uint32
}{
	{"disks", inoDisks, 0755},
	{"images", inoImages, 0555},
	{"snapshots", inoSnapshots, 0555},
}

func (n *rootNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.m.dirAttr(&out.Attr, inoRoot, 0755, n.m.mounted)
	out.SetTimeout(fixedTimeout)
	return 0
}

func (n *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	for _, d := range fixedDirs {
		if d.name == name {
			n.m.dirAttr(&out.Attr, d.ino, d.perm, n.m.mounted)
			out.SetEntryTimeout(fixedTimeout)
			out.SetAttrTimeout(fixedTimeout)
			return n.GetChild(name), 0
		}
	}
	if name == "regions" && n.m.regions != nil {
		n.m.dirAttr(&out.Attr, inoRegions, 0555, n.m.mounted)
		out.SetEntryTimeout(fixedTimeout)
		out.SetAttrTimeout(fixedTimeout)
		return n.GetChild(name), 0
	}
	return nil, syscall.ENOENT
}

func (n *rootNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	list := make([]fuse.DirEntry, 0, len(fixedDirs))
	for _, d := range fixedDirs {
		list = append(list, fuse.DirEntry{Name: d.name, Ino: d.ino, Mode: syscall.S_IFDIR})
	}
	if n.m.regions != nil {
		list = append(list, fuse.DirEntry{Name: "regions", Ino: inoRegions, Mode: syscall.S_IFDIR})
	}
	return gofs.NewListDirStream(list), 0
}

// statfs fills statfs of any node outside .files: the filesystem holding
// the store (Options.StatfsPath), which is what disks can still take. The
// kernel asks the node of the path given (go-fuse leaves a node without
// Statfs all zeros, block size included), so every node type answers.
func (m *mountState) statfs(out *fuse.StatfsOut) syscall.Errno {
	if m.statfsPath != "" {
		var s syscall.Statfs_t
		if err := syscall.Statfs(m.statfsPath, &s); err == nil {
			out.FromStatfsT(&s)
		} else {
			m.log.Warn("statfs of the store's filesystem", "path", m.statfsPath, "err", err)
		}
	}
	if out.Bsize == 0 {
		out.Bsize, out.Frsize = 4096, 4096
	}
	out.NameLen = 255
	return 0
}

func (n *rootNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.m.statfs(out)
}
func (n *disksDir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.m.statfs(out)
}
func (n *snapshotsDir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.m.statfs(out)
}
func (n *snapshotDir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.m.statfs(out)
}
func (n *imagesDir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.m.statfs(out)
}
func (n *diskNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.m.statfs(out)
}
func (n *imageNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.m.statfs(out)
}
func (n *jsonNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.m.statfs(out)
}
func (n *regionsTop) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.m.statfs(out)
}
func (n *regionDir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.m.statfs(out)
}
func (n *remoteSnapDir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.m.statfs(out)
}

// dynamicEntry fills the timeouts of a name in disks/, snapshots/, images/.
func (m *mountState) dynamicEntry(out *fuse.EntryOut) {
	out.SetEntryTimeout(m.nameTimeout)
	out.SetAttrTimeout(m.nameTimeout)
}

// disksDir is M/disks: one read-write file per disk, listed live.
type disksDir struct {
	gofs.Inode
	changeGuard
	m *mountState
}

func (n *disksDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.m.dirAttr(&out.Attr, inoDisks, 0755, n.m.mounted)
	out.SetTimeout(fixedTimeout)
	return 0
}

func (n *disksDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer n.m.recoverOp("lookup disk", name, &errno)
	e, err := n.m.backend.Disk(name)
	if err != nil {
		return nil, n.m.fail("lookup disk", name, err)
	}
	n.m.diskAttr(&out.Attr, e)
	n.m.dynamicEntry(out)
	node := &diskNode{m: n.m, name: name}
	return n.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: diskIno(e.ID), Gen: 1}), 0
}

func (n *disksDir) Readdir(ctx context.Context) (_ gofs.DirStream, errno syscall.Errno) {
	defer n.m.recoverOp("list disks", "", &errno)
	disks, err := n.m.backend.Disks()
	if err != nil {
		return nil, n.m.fail("list disks", "", err)
	}
	list := make([]fuse.DirEntry, 0, len(disks))
	for _, d := range disks {
		list = append(list, fuse.DirEntry{Name: d.Name, Ino: diskIno(d.ID), Mode: syscall.S_IFREG})
	}
	return gofs.NewListDirStream(list), 0
}

// snapshotsDir is M/snapshots: one read-only directory per snapshot.
type snapshotsDir struct {
	gofs.Inode
	changeGuard
	m *mountState
}

func (n *snapshotsDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.m.dirAttr(&out.Attr, inoSnapshots, 0555, n.m.mounted)
	out.SetTimeout(fixedTimeout)
	return 0
}

func (n *snapshotsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer n.m.recoverOp("lookup snapshot", name, &errno)
	e, err := n.m.backend.Snapshot(name)
	if err != nil {
		return nil, n.m.fail("lookup snapshot", name, err)
	}
	n.m.dirAttr(&out.Attr, snapDirIno(e.ID), 0555, e.Created)
	n.m.dynamicEntry(out)
	node := newSnapshotDir(n.m, name, e)
	return n.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: snapDirIno(e.ID), Gen: 1}), 0
}

func (n *snapshotsDir) Readdir(ctx context.Context) (_ gofs.DirStream, errno syscall.Errno) {
	defer n.m.recoverOp("list snapshots", "", &errno)
	snaps, err := n.m.backend.Snapshots()
	if err != nil {
		return nil, n.m.fail("list snapshots", "", err)
	}
	list := make([]fuse.DirEntry, 0, len(snaps))
	for _, s := range snaps {
		list = append(list, fuse.DirEntry{Name: s.Name, Ino: snapDirIno(s.ID), Mode: syscall.S_IFDIR})
	}
	return gofs.NewListDirStream(list), 0
}

// snapshotJSON is the name of the metadata file in every snapshot directory.
// A disk of that name would be hidden by it; the CLI refuses such names.
const snapshotJSON = "snapshot.json"

// snapshotDir is M/snapshots/<snap>: its disks and snapshot.json. The member
// list is fixed when the node is made (a snapshot's disks never change; a
// new snapshot under the same name has a new ID and so a new node).
type snapshotDir struct {
	gofs.Inode
	changeGuard
	m       *mountState
	name    string
	id      uint64
	created time.Time
	members []SnapshotDisk // sorted by name; member number = index+1
}

func newSnapshotDir(m *mountState, name string, e SnapshotEntry) *snapshotDir {
	members := append([]SnapshotDisk(nil), e.Disks...)
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	return &snapshotDir{m: m, changeGuard: changeGuard{syscall.EROFS}, name: name, id: e.ID, created: e.Created, members: members}
}

func (n *snapshotDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.m.dirAttr(&out.Attr, snapDirIno(n.id), 0555, n.created)
	out.SetTimeout(fixedTimeout)
	return 0
}

// current returns the Backend's entry for this snapshot, or ENOENT when it
// was deleted (or its name now names another snapshot).
func (n *snapshotDir) current(op string) (SnapshotEntry, syscall.Errno) {
	e, err := n.m.backend.Snapshot(n.name)
	if err != nil {
		return e, n.m.fail(op, n.name, err)
	}
	if e.ID != n.id {
		return e, syscall.ENOENT
	}
	return e, 0
}

func (n *snapshotDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer n.m.recoverOp("lookup snapshot file", n.name+"/"+name, &errno)
	if name == snapshotJSON {
		e, errno := n.current("lookup snapshot.json")
		if errno != 0 {
			return nil, errno
		}
		ino := snapFileIno(n.id, 0)
		n.m.fileAttr(&out.Attr, ino, 0444, int64(len(e.JSON)), int64(len(e.JSON)), 4096, e.Created)
		// The content (e.g. a replication state) may change: no caching.
		node := &jsonNode{m: n.m, snap: n.name, id: n.id}
		return n.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: ino, Gen: 1}), 0
	}
	if disk, ok := strings.CutSuffix(name, FilesSuffix); ok {
		for i, d := range n.members {
			if d.Name == disk {
				src := FilesSource{Snapshot: n.name, Disk: disk, ID: n.id}
				return n.m.lookupFiles(ctx, n.EmbeddedInode(), src, filesDirIno(kindSnapFile, n.id, i+1), n.created, out)
			}
		}
		return nil, syscall.ENOENT
	}
	for i, d := range n.members {
		if d.Name != name {
			continue
		}
		ino := snapFileIno(n.id, i+1)
		n.m.fileAttr(&out.Attr, ino, imageMode, d.Size, d.Allocated, 0, n.created)
		out.SetEntryTimeout(fixedTimeout)
		out.SetAttrTimeout(fixedTimeout)
		snap, disk := n.name, d.Name
		node := &imageNode{
			m: n.m, what: "snapshot disk", name: snap + "/" + disk, ino: ino,
			size: d.Size, allocated: d.Allocated, mtime: n.created,
			open: func() (ReadHandle, error) { return n.m.backend.OpenSnapshotDisk(snap, disk) },
		}
		return n.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: ino, Gen: 1}), 0
	}
	return nil, syscall.ENOENT
}

func (n *snapshotDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	list := make([]fuse.DirEntry, 0, len(n.members)+1)
	for i, d := range n.members {
		list = append(list, fuse.DirEntry{Name: d.Name, Ino: snapFileIno(n.id, i+1), Mode: syscall.S_IFREG})
	}
	list = append(list, fuse.DirEntry{Name: snapshotJSON, Ino: snapFileIno(n.id, 0), Mode: syscall.S_IFREG})
	for i, d := range n.members { // node_files.go
		if n.m.hasFiles(FilesSource{Snapshot: n.name, Disk: d.Name, ID: n.id}) {
			list = append(list, fuse.DirEntry{Name: d.Name + FilesSuffix, Ino: filesDirIno(kindSnapFile, n.id, i+1), Mode: syscall.S_IFDIR})
		}
	}
	return gofs.NewListDirStream(list), 0
}

// imagesDir is M/images: one read-only file per image, listed live.
type imagesDir struct {
	gofs.Inode
	changeGuard
	m *mountState
}

func (n *imagesDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.m.dirAttr(&out.Attr, inoImages, 0555, n.m.mounted)
	out.SetTimeout(fixedTimeout)
	return 0
}

func (n *imagesDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer n.m.recoverOp("lookup image", name, &errno)
	if image, ok := strings.CutSuffix(name, FilesSuffix); ok && n.m.files != nil { // node_files.go
		e, err := n.m.backend.Image(image)
		if err != nil {
			return nil, n.m.fail("lookup image", image, err)
		}
		return n.m.lookupFiles(ctx, n.EmbeddedInode(), FilesSource{Image: image, ID: e.ID}, filesDirIno(kindImage, e.ID, 0), e.Created, out)
	}
	e, err := n.m.backend.Image(name)
	if err != nil {
		return nil, n.m.fail("lookup image", name, err)
	}
	ino := imageIno(e.ID)
	n.m.fileAttr(&out.Attr, ino, imageMode, e.Size, e.Allocated, 0, e.Created)
	n.m.dynamicEntry(out)
	node := &imageNode{
		m: n.m, what: "image", name: name, ino: ino,
		size: e.Size, allocated: e.Allocated, mtime: e.Created,
		open: func() (ReadHandle, error) { return n.m.backend.OpenImage(name) },
	}
	return n.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: ino, Gen: 1}), 0
}

func (n *imagesDir) Readdir(ctx context.Context) (_ gofs.DirStream, errno syscall.Errno) {
	defer n.m.recoverOp("list images", "", &errno)
	images, err := n.m.backend.Images()
	if err != nil {
		return nil, n.m.fail("list images", "", err)
	}
	list := make([]fuse.DirEntry, 0, len(images))
	for _, im := range images {
		list = append(list, fuse.DirEntry{Name: im.Name, Ino: imageIno(im.ID), Mode: syscall.S_IFREG})
		if n.m.hasFiles(FilesSource{Image: im.Name, ID: im.ID}) { // node_files.go
			list = append(list, fuse.DirEntry{Name: im.Name + FilesSuffix, Ino: filesDirIno(kindImage, im.ID, 0), Mode: syscall.S_IFDIR})
		}
	}
	return gofs.NewListDirStream(list), 0
}
