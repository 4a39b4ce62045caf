package fs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FilesSuffix ends the name of the directory that shows the files inside a
// snapshot's disk or an image: M/snapshots/<s>/<d>.files, M/images/<i>.files.
const FilesSuffix = ".files"

// FilesSource names the immutable image a .files directory shows: disk
// Disk of snapshot Snapshot, or image Image; ID is the snapshot's or the
// image's ID.
type FilesSource struct {
	Snapshot, Disk, Image string
	ID                    uint64
	// Region is set for a disk of a remote snapshot (M/regions/<r>/<s>/<d>.files):
	// Snapshot is the name RemoteSnapshots gave, Key its RemoteSnapshotEntry.Key.
	Region string
	Key    string
}

func (s FilesSource) String() string {
	if s.Region != "" {
		return "regions/" + s.Region + "/" + s.Snapshot + "/" + s.Disk
	}
	if s.Image != "" {
		return "image " + s.Image
	}
	return s.Snapshot + "/" + s.Disk
}

// Files opens the filesystems inside disk images for the .files
// directories. The namespace only presents the directory trees it is
// handed: how they are opened (and released) is the implementation's.
type Files interface {
	// Parts lists the filesystems inside src that can be shown: [""] for a
	// filesystem on the whole disk, ["p1", "p2", ...] for partitions. An
	// empty list (and nil error) means src has no .files entry.
	Parts(src FilesSource) ([]string, error)
	// Enter makes part of src available (opening it if needed) and returns
	// it held: the caller uses Dir() and calls Release when done.
	Enter(src FilesSource, part string) (FilesTree, error)
}

// FilesTree is a held, mounted filesystem of a Files.
type FilesTree interface {
	// Dir is the host directory the filesystem is mounted on, read-only.
	Dir() string
	// Track registers a file opened inside Dir: the implementation closes
	// it when it must release the filesystem for good (unmount, exit).
	Track(f *os.File)
	// Untrack forgets f (the caller closes it).
	Untrack(f *os.File)
	// Release ends the hold.
	Release()
}

// Inode numbers inside .files trees (see ino.go for the others):
//
//	bits 63..56  kindFilesDir: a <d>.files directory (snapshot member or image)
//	             kindFilesTree: a node of an open tree
//	bits 55..40  the tree's number (one per source and partition, per mount)
//	bits 39..0   the inode number inside the filesystem; 0 is the tree's top
//	             directory (<d>.files or <d>.files/pN). Inode numbers that do
//	             not fit, or that live on another device (btrfs subvolumes),
//	             are numbered from 2^39 up in order of first sight.
const (
	kindFilesDir  = 5
	kindFilesTree = 6
	treeShift     = 40
	treeInoMask   = 1<<treeShift - 1
	mappedBase    = 1 << 39
)

// filesState numbers the trees of a mount and maps inode numbers that do
// not fit. It lives as long as the mount.
type filesState struct {
	mu    sync.Mutex
	trees map[string]*treeNums
	next  uint64
}

type treeNums struct {
	num    uint64
	dev    uint64 // device of the tree's root when last seen
	mapped map[[2]uint64]uint64
	nextM  uint64
}

func (s *filesState) tree(src FilesSource, part string) *treeNums {
	key := src.String() + "\x00" + part + "\x00" + strconv.FormatUint(src.ID, 10) + "\x00" + src.Key
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trees == nil {
		s.trees = map[string]*treeNums{}
	}
	t := s.trees[key]
	if t == nil {
		s.next++
		t = &treeNums{num: fold(s.next, kindShift-treeShift), mapped: map[[2]uint64]uint64{}, nextM: mappedBase}
		s.trees[key] = t
	}
	return t
}

// ino is the FUSE inode number of a file with stat st in tree t whose root
// is on device rootDev.
func (s *filesState) ino(t *treeNums, st *syscall.Stat_t, rootDev uint64) uint64 {
	base := uint64(kindFilesTree)<<kindShift | t.num<<treeShift
	if uint64(st.Dev) == rootDev && st.Ino < mappedBase && st.Ino != 0 {
		return base | st.Ino
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]uint64{uint64(st.Dev), st.Ino}
	n, ok := t.mapped[k]
	if !ok {
		n = t.nextM
		t.nextM++
		if t.nextM > treeInoMask {
			t.nextM = mappedBase
		}
		t.mapped[k] = n
	}
	return base | n
}

func filesDirIno(kind uint64, id uint64, member int) uint64 {
	if kind == kindImage {
		return uint64(kindFilesDir)<<kindShift | 1<<55 | fold(id, kindShift-1)
	}
	return uint64(kindFilesDir)<<kindShift | fold(id, snapIDBits-1)<<memberBits | fold(uint64(member), memberBits)
}

// filesErrno maps an error of the host filesystem to the errno shown:
// ordinary outcomes pass, everything else (corruption: EUCLEAN, EBADMSG,
// ESTALE, ...) is EIO.
func filesErrno(err error) syscall.Errno {
	var e syscall.Errno
	if !errors.As(err, &e) {
		return syscall.EIO
	}
	return passErrno(e)
}

// passErrno is e when it is an ordinary outcome, else EIO.
func passErrno(e syscall.Errno) syscall.Errno {
	switch e {
	case syscall.ENOENT, syscall.ENOTDIR, syscall.EISDIR, syscall.ENODATA, syscall.ERANGE, syscall.E2BIG,
		syscall.ENAMETOOLONG, syscall.ELOOP, syscall.EINVAL, syscall.EROFS, syscall.EACCES, syscall.EPERM,
		syscall.EOPNOTSUPP, syscall.ENXIO, syscall.EBUSY:
		return e
	}
	return syscall.EIO
}

// filesLeaf is what every node inside a .files directory shares: its
// source, partition and path inside the filesystem ("" for the top).
type filesLeaf struct {
	m    *mountState
	src  FilesSource
	part string
	rel  string
	nums *treeNums
	// made is the time shown on synthetic top directories.
	made time.Time
}

func (l *filesLeaf) name() string {
	return l.src.String() + ".files/" + filepath.Join(l.part, l.rel)
}

// enter holds the tree and returns the host path of this node.
func (l *filesLeaf) enter(op string) (FilesTree, string, syscall.Errno) {
	t, err := l.m.files.Enter(l.src, l.part)
	if err != nil {
		errno := l.m.fail(op, l.name(), err)
		if errno == syscall.EBUSY || errno == syscall.ENOENT || errno == syscall.ENOKEY {
			return nil, "", errno // all trees in use; gone; an encrypted disk locked
		}
		return nil, "", syscall.EIO // a filesystem that cannot be opened
	}
	return t, filepath.Join(t.Dir(), l.rel), 0
}

func (l *filesLeaf) fail(op string, err error) syscall.Errno {
	errno := filesErrno(err)
	if errno == syscall.EIO {
		l.m.log.Error("snapfs: "+op, "name", l.name(), "err", err, "errno", errno.Error())
	}
	return errno
}

func (l *filesLeaf) rootDev(t FilesTree) uint64 {
	var st syscall.Stat_t
	if err := syscall.Lstat(t.Dir(), &st); err == nil {
		l.nums.dev = uint64(st.Dev)
	}
	return l.nums.dev
}

func (l *filesLeaf) fillAttr(t FilesTree, a *fuse.Attr, st *syscall.Stat_t) {
	a.FromStat(st)
	if uint64(st.Dev) != l.nums.dev {
		l.rootDev(t)
	}
	a.Ino = l.m.filesState.ino(l.nums, st, l.nums.dev)
}

// allowed checks, for a caller other than root and the mount's owner
// (possible only with AllowOther), the permission bits want (4 read, 1
// search) of the file at p as stored: owner, group (the caller's primary
// group), other.
func (l *filesLeaf) allowed(ctx context.Context, p string, want uint32) syscall.Errno {
	c, ok := fuse.FromContext(ctx)
	if !ok || c.Uid == 0 || c.Uid == l.m.uid {
		return 0
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return l.fail("access in .files", err)
	}
	perm := st.Mode
	switch {
	case c.Uid == st.Uid:
		perm >>= 6
	case c.Gid == st.Gid:
		perm >>= 3
	}
	if perm&want != want {
		return syscall.EACCES
	}
	return 0
}

// lookup finds name below this directory.
func (l *filesLeaf) lookup(ctx context.Context, parent *gofs.Inode, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	t, p, errno := l.enter("lookup in .files")
	if errno != 0 {
		return nil, errno
	}
	defer t.Release()
	if errno := l.allowed(ctx, p, 1); errno != 0 {
		return nil, errno
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(p, name), &st); err != nil {
		return nil, l.fail("lookup in .files", err)
	}
	l.fillAttr(t, &out.Attr, &st)
	out.SetEntryTimeout(fixedTimeout)
	out.SetAttrTimeout(fixedTimeout)
	child := &filesNode{filesLeaf: filesLeaf{m: l.m, src: l.src, part: l.part, rel: filepath.Join(l.rel, name), nums: l.nums, made: l.made}}
	child.changeGuard.errno = syscall.EROFS
	return parent.NewInode(ctx, child, gofs.StableAttr{Mode: st.Mode & syscall.S_IFMT, Ino: out.Attr.Ino, Gen: 1}), 0
}

func (l *filesLeaf) readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	t, p, errno := l.enter("list .files")
	if errno != 0 {
		return nil, errno
	}
	defer t.Release()
	if errno := l.allowed(ctx, p, 4); errno != 0 {
		return nil, errno
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, l.fail("list .files", err)
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, l.fail("list .files", err)
	}
	dev := l.rootDev(t)
	list := make([]fuse.DirEntry, 0, len(ents))
	for _, e := range ents {
		var st syscall.Stat_t
		ino := uint64(0)
		if info, err := e.Info(); err == nil {
			if s, ok := info.Sys().(*syscall.Stat_t); ok {
				st = *s
				ino = l.m.filesState.ino(l.nums, &st, dev)
			}
		}
		list = append(list, fuse.DirEntry{Name: e.Name(), Ino: ino, Mode: modeOf(e.Type())})
	}
	return gofs.NewListDirStream(list), 0
}

func modeOf(t os.FileMode) uint32 {
	switch {
	case t&os.ModeDir != 0:
		return syscall.S_IFDIR
	case t&os.ModeSymlink != 0:
		return syscall.S_IFLNK
	case t&os.ModeNamedPipe != 0:
		return syscall.S_IFIFO
	case t&os.ModeSocket != 0:
		return syscall.S_IFSOCK
	case t&os.ModeCharDevice != 0:
		return syscall.S_IFCHR
	case t&os.ModeDevice != 0:
		return syscall.S_IFBLK
	}
	return syscall.S_IFREG
}

// filesTop is a <d>.files directory of a whole-disk filesystem, or a
// <d>.files/pN directory: synthetic attributes (looking it up mounts
// nothing), the filesystem's root as its content.
type filesTop struct {
	gofs.Inode
	changeGuard
	filesLeaf
}

func (n *filesTop) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.m.dirAttr(&out.Attr, n.StableAttr().Ino, 0555, n.made)
	out.SetTimeout(fixedTimeout)
	return 0
}

func (n *filesTop) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer n.m.recoverOp("lookup in .files", n.name(), &errno)
	return n.lookup(ctx, n.EmbeddedInode(), name, out)
}

func (n *filesTop) Readdir(ctx context.Context) (_ gofs.DirStream, errno syscall.Errno) {
	defer n.m.recoverOp("list .files", n.name(), &errno)
	return n.readdir(ctx)
}

func (n *filesTop) Statfs(ctx context.Context, out *fuse.StatfsOut) (errno syscall.Errno) {
	defer n.m.recoverOp("statfs .files", n.name(), &errno)
	return statfsLeaf(&n.filesLeaf, out)
}

func statfsLeaf(l *filesLeaf, out *fuse.StatfsOut) syscall.Errno {
	t, p, errno := l.enter("statfs .files")
	if errno != 0 {
		return errno
	}
	defer t.Release()
	var s syscall.Statfs_t
	if err := syscall.Statfs(p, &s); err != nil {
		return l.fail("statfs .files", err)
	}
	out.FromStatfsT(&s)
	return 0
}

// partsDir is the <d>.files directory of a partitioned disk: one filesTop
// per partition holding a filesystem.
type partsDir struct {
	gofs.Inode
	changeGuard
	m     *mountState
	src   FilesSource
	parts []string
	made  time.Time
}

func (n *partsDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.m.dirAttr(&out.Attr, n.StableAttr().Ino, 0555, n.made)
	out.SetTimeout(fixedTimeout)
	return 0
}

func (n *partsDir) top(part string) *filesTop {
	top := &filesTop{filesLeaf: filesLeaf{m: n.m, src: n.src, part: part, nums: n.m.filesState.tree(n.src, part), made: n.made}}
	top.changeGuard.errno = syscall.EROFS
	return top
}

func (n *partsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	for _, p := range n.parts {
		if p == name {
			top := n.top(p)
			ino := uint64(kindFilesTree)<<kindShift | top.nums.num<<treeShift
			n.m.dirAttr(&out.Attr, ino, 0555, n.made)
			out.SetEntryTimeout(fixedTimeout)
			out.SetAttrTimeout(fixedTimeout)
			return n.NewInode(ctx, top, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino, Gen: 1}), 0
		}
	}
	return nil, syscall.ENOENT
}

func (n *partsDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	list := make([]fuse.DirEntry, 0, len(n.parts))
	for _, p := range n.parts {
		nums := n.m.filesState.tree(n.src, p)
		list = append(list, fuse.DirEntry{Name: p, Ino: uint64(kindFilesTree)<<kindShift | nums.num<<treeShift, Mode: syscall.S_IFDIR})
	}
	return gofs.NewListDirStream(list), 0
}

// lookupFiles answers the lookup of "<d>.files" in a snapshot directory or
// images/: ENOENT when the Files has no filesystem for it. ino is the
// directory's inode number.
func (m *mountState) lookupFiles(ctx context.Context, parent *gofs.Inode, src FilesSource, ino uint64, made time.Time, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if m.files == nil {
		return nil, syscall.ENOENT
	}
	parts, err := m.files.Parts(src)
	if err != nil {
		return nil, m.fail("probe .files", src.String(), err)
	}
	if len(parts) == 0 {
		return nil, syscall.ENOENT
	}
	m.dirAttr(&out.Attr, ino, 0555, made)
	out.SetEntryTimeout(fixedTimeout)
	out.SetAttrTimeout(fixedTimeout)
	var node gofs.InodeEmbedder
	if len(parts) == 1 && parts[0] == "" {
		top := &filesTop{filesLeaf: filesLeaf{m: m, src: src, part: "", nums: m.filesState.tree(src, ""), made: made}}
		top.changeGuard.errno = syscall.EROFS
		node = top
	} else {
		node = &partsDir{m: m, changeGuard: changeGuard{syscall.EROFS}, src: src, parts: parts, made: made}
	}
	return parent.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino, Gen: 1}), 0
}

// hasFiles says whether src has a .files entry (for Readdir); errors are
// logged and count as no.
func (m *mountState) hasFiles(src FilesSource) bool {
	if m.files == nil {
		return false
	}
	parts, err := m.files.Parts(src)
	if err != nil {
		m.fail("probe .files", src.String(), err)
		return false
	}
	return len(parts) > 0
}

// filesNode is a file, directory or symlink inside a .files tree.
type filesNode struct {
	gofs.Inode
	changeGuard
	filesLeaf
}

func (n *filesNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer n.m.recoverOp("getattr in .files", n.name(), &errno)
	t, p, errno := n.enter("getattr in .files")
	if errno != 0 {
		return errno
	}
	defer t.Release()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return n.fail("getattr in .files", err)
	}
	n.fillAttr(t, &out.Attr, &st)
	out.SetTimeout(fixedTimeout)
	return 0
}

func (n *filesNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer n.m.recoverOp("lookup in .files", n.name(), &errno)
	return n.lookup(ctx, n.EmbeddedInode(), name, out)
}

func (n *filesNode) Readdir(ctx context.Context) (_ gofs.DirStream, errno syscall.Errno) {
	defer n.m.recoverOp("list .files", n.name(), &errno)
	return n.readdir(ctx)
}

func (n *filesNode) Readlink(ctx context.Context) (_ []byte, errno syscall.Errno) {
	defer n.m.recoverOp("readlink in .files", n.name(), &errno)
	t, p, errno := n.enter("readlink in .files")
	if errno != 0 {
		return nil, errno
	}
	defer t.Release()
	s, err := os.Readlink(p)
	if err != nil {
		return nil, n.fail("readlink in .files", err)
	}
	return []byte(s), 0
}

func (n *filesNode) Getxattr(ctx context.Context, attr string, dest []byte) (_ uint32, errno syscall.Errno) {
	defer n.m.recoverOp("getxattr in .files", n.name(), &errno)
	t, p, errno := n.enter("getxattr in .files")
	if errno != 0 {
		return 0, errno
	}
	defer t.Release()
	sz, err := unix.Lgetxattr(p, attr, dest)
	if err != nil {
		return 0, n.fail("getxattr in .files", err)
	}
	return uint32(sz), 0
}

func (n *filesNode) Listxattr(ctx context.Context, dest []byte) (_ uint32, errno syscall.Errno) {
	defer n.m.recoverOp("listxattr in .files", n.name(), &errno)
	t, p, errno := n.enter("listxattr in .files")
	if errno != 0 {
		return 0, errno
	}
	defer t.Release()
	sz, err := unix.Llistxattr(p, dest)
	if err != nil {
		return 0, n.fail("listxattr in .files", err)
	}
	return uint32(sz), 0
}

func (n *filesNode) Statfs(ctx context.Context, out *fuse.StatfsOut) (errno syscall.Errno) {
	defer n.m.recoverOp("statfs .files", n.name(), &errno)
	return statfsLeaf(&n.filesLeaf, out)
}

func (n *filesNode) Allocate(ctx context.Context, f gofs.FileHandle, off, length uint64, mode uint32) syscall.Errno {
	return syscall.EROFS
}

// Open opens the file read-only and holds its tree until Release. Reads
// bypass the page cache (FOPEN_DIRECT_IO, as for images: a read over a
// corrupt block fails whole, with EIO); the host filesystem caches.
func (n *filesNode) Open(ctx context.Context, flags uint32) (_ gofs.FileHandle, _ uint32, errno syscall.Errno) {
	defer n.m.recoverOp("open in .files", n.name(), &errno)
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	t, p, errno := n.enter("open in .files")
	if errno != 0 {
		return nil, 0, errno
	}
	if errno := n.allowed(ctx, p, 4); errno != 0 {
		t.Release()
		return nil, 0, errno
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NOATIME, 0)
	if err != nil && errors.Is(err, syscall.EPERM) { // O_NOATIME needs ownership or CAP_FOWNER
		f, err = os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	}
	if err != nil {
		t.Release()
		return nil, 0, n.fail("open in .files", err)
	}
	t.Track(f)
	return &filesFile{leaf: &n.filesLeaf, t: t, f: f}, fuse.FOPEN_DIRECT_IO, 0
}

// filesFile is one open of a regular file inside a .files tree.
type filesFile struct {
	leaf *filesLeaf
	t    FilesTree
	mu   sync.Mutex // guards f against Release
	f    *os.File
}

func (f *filesFile) Read(ctx context.Context, dest []byte, off int64) (_ fuse.ReadResult, errno syscall.Errno) {
	defer f.leaf.m.recoverOp("read in .files", f.leaf.name(), &errno)
	n, err := f.f.ReadAt(dest, off)
	if err != nil && !errors.Is(err, os.ErrClosed) && n < len(dest) && !isEOF(err) {
		return nil, f.leaf.fail("read in .files", err)
	}
	if errors.Is(err, os.ErrClosed) {
		return nil, syscall.EIO // released for good (umount)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func isEOF(err error) bool { return err != nil && strings.Contains(err.Error(), "EOF") }

func (f *filesFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}

// Lseek answers SEEK_DATA and SEEK_HOLE from the host filesystem, so that
// cp --sparse and tar find the holes of sparse files.
func (f *filesFile) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	n, err := unix.Seek(int(f.f.Fd()), int64(off), int(whence))
	if err != nil {
		return 0, f.leaf.fail("lseek in .files", err)
	}
	return uint64(n), 0
}

func (f *filesFile) Release(ctx context.Context) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f != nil {
		f.t.Untrack(f.f)
		_ = f.f.Close()
		f.f = nil
		f.t.Release()
	}
	return 0
}
