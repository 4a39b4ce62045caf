package vfs

import (
	"errors"
	"io"
	"math/rand"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrCrashed is returned by every operation of a CrashFS (and of its files)
// after Crash was called on it: the state after the crash lives in the FS
// that Crash returned.
var ErrCrashed = errors.New("vfs: file system has crashed; use the FS returned by Crash")

// unlimitedCapacity is what Statfs reports as Total when no capacity is set.
const unlimitedCapacity = 1 << 50

// CrashFS is an in-memory FS that can produce a possible state after power
// loss (see Crash). Paths are interpreted relative to its root: "a/b", "/a/b"
// and "./a/b" name the same file. It is safe for concurrent use; one mutex
// serializes every operation.
//
// Model. Every file has a durable content (as of its last Sync) and a list of
// the writes and truncations since then. Every namespace change (create,
// mkdir, remove, rename) is appended to a log; SyncDir(d) makes durable every
// logged change that touches d, together with the earlier changes of the same
// files (so a synced rename also keeps the create it renamed). Changes that
// are durable are folded into a base namespace.
type CrashFS struct {
	mu       sync.Mutex
	crashed  bool
	capacity int64 // 0: unlimited
	used     int64 // sum of the current sizes of linked files
	nextIno  uint64
	inodes   map[uint64]*inode
	cur      nsState // the namespace as the FS's users see it now
	base     nsState // the namespace with only durable changes applied
	log      []*nsOp // changes since base, oldest first
}

var _ FS = (*CrashFS)(nil)

const rootIno = 1

type inode struct {
	dir     bool
	data    []byte // current content
	synced  []byte // content as of the last Sync; INVARIANT: never aliased by data
	pending []dataOp
	mtime   time.Time
}

type dataOp struct {
	trunc bool
	off   int64 // write offset, or the new size of a truncation
	data  []byte
}

// nsState maps a directory's inode to its entries (name -> inode). A
// directory exists in the state iff it has a key.
type nsState map[uint64]map[string]uint64

func (s nsState) clone() nsState {
	c := make(nsState, len(s))
	for d, ents := range s {
		m := make(map[string]uint64, len(ents))
		for n, i := range ents {
			m[n] = i
		}
		c[d] = m
	}
	return c
}

type nsKind uint8

const (
	nsCreate nsKind = iota
	nsMkdir
	nsRemove
	nsRename
)

type nsOp struct {
	kind    nsKind
	dir     uint64
	name    string
	dir2    uint64 // rename target directory
	name2   string
	ino     uint64
	durable bool
}

// apply replays op on s. Ops whose preconditions do not hold in s (because
// an earlier op was lost in a crash) are no-ops.
func (s nsState) apply(op *nsOp) {
	ents, ok := s[op.dir]
	if !ok {
		return
	}
	switch op.kind {
	case nsCreate:
		ents[op.name] = op.ino
	case nsMkdir:
		if _, exists := ents[op.name]; !exists {
			ents[op.name] = op.ino
			if _, ok := s[op.ino]; !ok {
				s[op.ino] = map[string]uint64{}
			}
		}
	case nsRemove:
		if ents[op.name] == op.ino {
			delete(ents, op.name)
		}
	case nsRename:
		dst, ok := s[op.dir2]
		if ents[op.name] == op.ino && ok {
			delete(ents, op.name)
			dst[op.name2] = op.ino
		}
	}
}

// NewCrashFS returns an empty CrashFS holding only its root directory.
func NewCrashFS() *CrashFS {
	c := &CrashFS{
		nextIno: rootIno + 1,
		inodes:  map[uint64]*inode{rootIno: {dir: true, mtime: time.Now()}},
		cur:     nsState{rootIno: {}},
		base:    nsState{rootIno: {}},
	}
	return c
}

// SetCapacity sets the size of the simulated disk in bytes: Statfs reports it
// as Total, and a write or truncation that would make the sum of all file
// sizes exceed it fails with an error wrapping syscall.ENOSPC and changes
// nothing. 0 means unlimited (Statfs then reports 2^50 bytes).
func (c *CrashFS) SetCapacity(bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.capacity = bytes
}

// Crash simulates a power loss and returns a new CrashFS holding one possible
// state of the disk afterwards; c itself refuses every further operation
// (ErrCrashed), as do the files opened on it. Crash itself may be called
// again on c, with other seeds, to explore other states of the same history:
// the state is a function of c's history and seed only.
//
//   - a namespace change made durable by SyncDir is kept; every other one
//     is independently kept or lost (so an unsynced create may vanish, and
//     an unsynced rename may or may not have happened, but atomically);
//   - a file's content as of its last Sync is kept; each later write is kept,
//     lost, or torn (a random-length prefix of it kept), and each later
//     truncation is kept or lost, in the order they were made.
func (c *CrashFS) Crash(seed int64) *CrashFS {
	c.mu.Lock()
	defer c.mu.Unlock()
	rng := rand.New(rand.NewSource(seed))
	st := c.base.clone()
	for _, op := range c.log {
		if op.durable || rng.Intn(2) == 0 {
			st.apply(op)
		}
	}
	// Keep what is reachable from the root.
	reach := nsState{}
	var inos []uint64
	var walk func(d uint64)
	walk = func(d uint64) {
		ents := st[d]
		reach[d] = ents
		for _, i := range ents {
			inos = append(inos, i)
			if _, isDir := st[i]; isDir {
				walk(i)
			}
		}
	}
	walk(rootIno)
	slices.Sort(inos)
	n := &CrashFS{
		capacity: c.capacity,
		nextIno:  c.nextIno,
		inodes:   map[uint64]*inode{rootIno: {dir: true, mtime: time.Now()}},
		cur:      reach,
		base:     reach.clone(),
	}
	for _, i := range inos {
		old := c.inodes[i]
		if old.dir {
			n.inodes[i] = &inode{dir: true, mtime: old.mtime}
			continue
		}
		data := slices.Clone(old.synced)
		for _, p := range old.pending {
			if p.trunc {
				if rng.Intn(2) == 0 {
					data = resize(data, p.off)
				}
				continue
			}
			w := p.data
			switch rng.Intn(3) {
			case 0: // kept
			case 1: // lost
				continue
			case 2: // torn: a strict prefix is kept
				w = w[:rng.Intn(len(w))]
			}
			data = writeAt(data, w, p.off)
		}
		n.inodes[i] = &inode{data: data, synced: slices.Clone(data), mtime: old.mtime}
		n.used += int64(len(data))
	}
	c.crashed = true
	return n
}

func resize(b []byte, size int64) []byte {
	if int64(len(b)) >= size {
		return b[:size]
	}
	return append(b, make([]byte, size-int64(len(b)))...)
}

func writeAt(b, p []byte, off int64) []byte {
	if end := off + int64(len(p)); end > int64(len(b)) {
		b = resize(b, end)
	}
	copy(b[off:], p)
	return b
}

func split(name string) []string {
	p := path.Clean("/" + name)
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

func pathErr(op, name string, err error) error {
	return &os.PathError{Op: op, Path: name, Err: err}
}

// resolveLocked returns the directory holding name's last component, and that
// component ("" for the root).
func (c *CrashFS) resolveLocked(op, name string) (uint64, string, error) {
	if c.crashed {
		return 0, "", pathErr(op, name, ErrCrashed)
	}
	parts := split(name)
	if len(parts) == 0 {
		return 0, "", nil
	}
	d := uint64(rootIno)
	for _, p := range parts[:len(parts)-1] {
		i, ok := c.cur[d][p]
		if !ok {
			return 0, "", pathErr(op, name, syscall.ENOENT)
		}
		if !c.inodes[i].dir {
			return 0, "", pathErr(op, name, syscall.ENOTDIR)
		}
		d = i
	}
	return d, parts[len(parts)-1], nil
}

// lookupLocked returns the inode of name.
func (c *CrashFS) lookupLocked(op, name string) (uint64, error) {
	d, n, err := c.resolveLocked(op, name)
	if err != nil {
		return 0, err
	}
	if n == "" {
		return rootIno, nil
	}
	i, ok := c.cur[d][n]
	if !ok {
		return 0, pathErr(op, name, syscall.ENOENT)
	}
	return i, nil
}

func (c *CrashFS) logLocked(op *nsOp) {
	c.cur.apply(op)
	c.log = append(c.log, op)
}

// Create implements FS.
func (c *CrashFS) Create(name string) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, n, err := c.resolveLocked("create", name)
	if err != nil {
		return nil, err
	}
	if n == "" {
		return nil, pathErr("create", name, syscall.EISDIR)
	}
	if i, ok := c.cur[d][n]; ok {
		ino := c.inodes[i]
		if ino.dir {
			return nil, pathErr("create", name, syscall.EISDIR)
		}
		if len(ino.data) > 0 {
			c.used -= int64(len(ino.data))
			ino.data = nil
			ino.pending = append(ino.pending, dataOp{trunc: true})
		}
		return &crashFile{fs: c, ino: i, name: name, writable: true}, nil
	}
	i := c.nextIno
	c.nextIno++
	c.inodes[i] = &inode{mtime: time.Now()}
	c.logLocked(&nsOp{kind: nsCreate, dir: d, name: n, ino: i})
	return &crashFile{fs: c, ino: i, name: name, writable: true}, nil
}

func (c *CrashFS) open(op, name string, writable bool) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, err := c.lookupLocked(op, name)
	if err != nil {
		return nil, err
	}
	if c.inodes[i].dir {
		return nil, pathErr(op, name, syscall.EISDIR)
	}
	return &crashFile{fs: c, ino: i, name: name, writable: writable}, nil
}

// Open implements FS. Directories cannot be opened (EISDIR).
func (c *CrashFS) Open(name string) (File, error) { return c.open("open", name, false) }

// OpenReadWrite implements FS.
func (c *CrashFS) OpenReadWrite(name string) (File, error) { return c.open("open", name, true) }

// Remove implements FS.
func (c *CrashFS) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, n, err := c.resolveLocked("remove", name)
	if err != nil {
		return err
	}
	if n == "" {
		return pathErr("remove", name, syscall.EBUSY)
	}
	i, ok := c.cur[d][n]
	if !ok {
		return pathErr("remove", name, syscall.ENOENT)
	}
	if c.inodes[i].dir && len(c.cur[i]) > 0 {
		return pathErr("remove", name, syscall.ENOTEMPTY)
	}
	c.used -= int64(len(c.inodes[i].data))
	c.logLocked(&nsOp{kind: nsRemove, dir: d, name: n, ino: i})
	return nil
}

// Rename implements FS. Renaming over an existing directory is refused.
func (c *CrashFS) Rename(oldname, newname string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, n, err := c.resolveLocked("rename", oldname)
	if err != nil {
		return err
	}
	d2, n2, err := c.resolveLocked("rename", newname)
	if err != nil {
		return err
	}
	if n == "" || n2 == "" {
		return pathErr("rename", oldname, syscall.EBUSY)
	}
	i, ok := c.cur[d][n]
	if !ok {
		return pathErr("rename", oldname, syscall.ENOENT)
	}
	if j, ok := c.cur[d2][n2]; ok {
		if j == i {
			return nil
		}
		if c.inodes[j].dir {
			return pathErr("rename", newname, syscall.EISDIR)
		}
		c.used -= int64(len(c.inodes[j].data))
	}
	c.logLocked(&nsOp{kind: nsRename, dir: d, name: n, dir2: d2, name2: n2, ino: i})
	return nil
}

// MkdirAll implements FS. perm is ignored.
func (c *CrashFS) MkdirAll(dir string, perm os.FileMode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		return pathErr("mkdir", dir, ErrCrashed)
	}
	d := uint64(rootIno)
	for _, p := range split(dir) {
		i, ok := c.cur[d][p]
		if ok {
			if !c.inodes[i].dir {
				return pathErr("mkdir", dir, syscall.ENOTDIR)
			}
			d = i
			continue
		}
		i = c.nextIno
		c.nextIno++
		c.inodes[i] = &inode{dir: true, mtime: time.Now()}
		c.logLocked(&nsOp{kind: nsMkdir, dir: d, name: p, ino: i})
		d = i
	}
	return nil
}

// List implements FS.
func (c *CrashFS) List(dir string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, err := c.lookupLocked("list", dir)
	if err != nil {
		return nil, err
	}
	if !c.inodes[i].dir {
		return nil, pathErr("list", dir, syscall.ENOTDIR)
	}
	names := make([]string, 0, len(c.cur[i]))
	for n := range c.cur[i] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Stat implements FS.
func (c *CrashFS) Stat(name string) (os.FileInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, err := c.lookupLocked("stat", name)
	if err != nil {
		return nil, err
	}
	return c.infoLocked(name, i), nil
}

func (c *CrashFS) infoLocked(name string, i uint64) os.FileInfo {
	ino := c.inodes[i]
	parts := split(name)
	base := "/"
	if len(parts) > 0 {
		base = parts[len(parts)-1]
	}
	return fileInfo{name: base, size: int64(len(ino.data)), dir: ino.dir, mtime: ino.mtime}
}

// SyncDir implements FS: it makes durable every logged namespace change that
// touches dir, and every earlier change of the files and directories those
// changes name.
func (c *CrashFS) SyncDir(dir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, err := c.lookupLocked("syncdir", dir)
	if err != nil {
		return err
	}
	if !c.inodes[d].dir {
		return pathErr("syncdir", dir, syscall.ENOTDIR)
	}
	needed := map[uint64]bool{}
	for k := len(c.log) - 1; k >= 0; k-- {
		op := c.log[k]
		if op.dir == d || (op.kind == nsRename && op.dir2 == d) || needed[op.ino] {
			op.durable = true
			needed[op.ino] = true
		}
	}
	k := 0
	for ; k < len(c.log) && c.log[k].durable; k++ {
		c.base.apply(c.log[k])
	}
	c.log = slices.Delete(c.log, 0, k)
	return nil
}

// Statfs implements FS with the capacity set by SetCapacity.
func (c *CrashFS) Statfs(name string) (DiskSpace, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.lookupLocked("statfs", name); err != nil {
		return DiskSpace{}, err
	}
	total := c.capacity
	if total == 0 {
		total = unlimitedCapacity
	}
	return DiskSpace{Total: total, Free: max(total-c.used, 0)}, nil
}

// growLocked accounts for a file growing by delta bytes (negative: shrinking).
func (c *CrashFS) growLocked(op, name string, delta int64) error {
	if delta > 0 && c.capacity > 0 && c.used+delta > c.capacity {
		return pathErr(op, name, syscall.ENOSPC)
	}
	c.used += delta
	return nil
}

type crashFile struct {
	fs       *CrashFS
	ino      uint64
	name     string
	writable bool
	off      int64 // for Write; guarded by fs.mu
	closed   bool  // guarded by fs.mu
}

func (f *crashFile) checkLocked(op string, write bool) (*inode, error) {
	switch {
	case f.fs.crashed:
		return nil, pathErr(op, f.name, ErrCrashed)
	case f.closed:
		return nil, pathErr(op, f.name, os.ErrClosed)
	case write && !f.writable:
		return nil, pathErr(op, f.name, syscall.EBADF)
	}
	return f.fs.inodes[f.ino], nil
}

func (f *crashFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	ino, err := f.checkLocked("read", false)
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("read", f.name, syscall.EINVAL)
	}
	if off >= int64(len(ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *crashFile) writeAtLocked(p []byte, off int64) (int, error) {
	ino, err := f.checkLocked("write", true)
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("write", f.name, syscall.EINVAL)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := f.fs.growLocked("write", f.name, max(off+int64(len(p))-int64(len(ino.data)), 0)); err != nil {
		return 0, err
	}
	ino.data = writeAt(ino.data, p, off)
	ino.pending = append(ino.pending, dataOp{off: off, data: slices.Clone(p)})
	ino.mtime = time.Now()
	return len(p), nil
}

func (f *crashFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.writeAtLocked(p, off)
}

func (f *crashFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	n, err := f.writeAtLocked(p, f.off)
	f.off += int64(n)
	return n, err
}

func (f *crashFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	ino, err := f.checkLocked("sync", false)
	if err != nil {
		return err
	}
	ino.synced = slices.Clone(ino.data)
	ino.pending = nil
	return nil
}

func (f *crashFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	ino, err := f.checkLocked("truncate", true)
	if err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	if err := f.fs.growLocked("truncate", f.name, size-int64(len(ino.data))); err != nil {
		return err
	}
	ino.data = resize(ino.data, size)
	ino.pending = append(ino.pending, dataOp{trunc: true, off: size})
	ino.mtime = time.Now()
	return nil
}

func (f *crashFile) Stat() (os.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if _, err := f.checkLocked("stat", false); err != nil {
		return nil, err
	}
	return f.fs.infoLocked(f.name, f.ino), nil
}

func (f *crashFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if _, err := f.checkLocked("close", false); err != nil {
		return err
	}
	f.closed = true
	return nil
}

type fileInfo struct {
	name  string
	size  int64
	dir   bool
	mtime time.Time
}

func (i fileInfo) Name() string { return i.name }
func (i fileInfo) Size() int64  { return i.size }
func (i fileInfo) Mode() os.FileMode {
	if i.dir {
		return os.ModeDir | 0o755
	}
	return 0o644
}
func (i fileInfo) ModTime() time.Time { return i.mtime }
func (i fileInfo) IsDir() bool        { return i.dir }
func (i fileInfo) Sys() any           { return nil }
