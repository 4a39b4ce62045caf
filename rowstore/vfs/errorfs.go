package vfs

import (
	"os"
	"sync/atomic"
)

// OpKind names an operation counted by ErrorFS.
type OpKind uint8

// The operations ErrorFS counts. File.Close is deliberately not among them:
// it is never counted and never failed, so that a test's cleanup always
// releases the inner file and the op numbering does not depend on how
// carefully error paths close files.
const (
	OpCreate OpKind = iota
	OpOpen
	OpOpenReadWrite
	OpRemove
	OpRename
	OpMkdirAll
	OpList
	OpStat
	OpSyncDir
	OpStatfs
	OpReadAt
	OpWriteAt
	OpWrite
	OpSync
	OpTruncate
	OpFileStat
)

var opNames = [...]string{
	OpCreate:        "create",
	OpOpen:          "open",
	OpOpenReadWrite: "open-rw",
	OpRemove:        "remove",
	OpRename:        "rename",
	OpMkdirAll:      "mkdirall",
	OpList:          "list",
	OpStat:          "stat",
	OpSyncDir:       "syncdir",
	OpStatfs:        "statfs",
	OpReadAt:        "readat",
	OpWriteAt:       "writeat",
	OpWrite:         "write",
	OpSync:          "sync",
	OpTruncate:      "truncate",
	OpFileStat:      "fstat",
}

func (k OpKind) String() string {
	if int(k) < len(opNames) {
		return opNames[k]
	}
	return "op?"
}

// Mutating reports whether the operation changes durable state: creating,
// removing, renaming, writing, truncating, and both kinds of sync.
func (k OpKind) Mutating() bool {
	switch k {
	case OpCreate, OpRemove, OpRename, OpMkdirAll, OpSyncDir, OpWriteAt, OpWrite, OpSync, OpTruncate:
		return true
	}
	return false
}

// Op describes one operation as ErrorFS presents it to an Injector.
type Op struct {
	Kind  OpKind
	Path  string // the path named, or the path the file was opened with
	Index int64  // position among all counted ops of the ErrorFS, from 0
	// WriteIndex is the position among the mutating ops, from 0, or -1 if
	// the op is not mutating.
	WriteIndex int64
}

// Injector decides whether ErrorFS fails an operation. Implementations must be
// safe for concurrent use.
type Injector interface {
	ShouldFail(op Op) bool
}

// InjectorFunc adapts a function to Injector.
type InjectorFunc func(op Op) bool

// ShouldFail calls f.
func (f InjectorFunc) ShouldFail(op Op) bool { return f(op) }

// FailAt fails exactly the i-th counted operation (from 0). A negative i
// fails nothing, so FailAt(-1) only counts.
func FailAt(i int64) Injector {
	return InjectorFunc(func(op Op) bool { return op.Index == i })
}

// FailWrites fails exactly the i-th mutating operation (from 0).
func FailWrites(i int64) Injector {
	return InjectorFunc(func(op Op) bool { return op.WriteIndex == i })
}

// Never fails nothing; with ErrorFS.Ops it measures how many ops a run takes.
var Never Injector = InjectorFunc(func(Op) bool { return false })

// ErrorFS wraps an FS and consults an Injector before every operation of the
// FS and of the files it opened (Close excepted, see OpKind). A failed
// operation does nothing and returns an *os.PathError naming the operation
// and path that wraps ErrInjected. ErrorFS is safe for concurrent use; with
// concurrent callers the numbering of ops is whatever order they arrive in.
type ErrorFS struct {
	inner  FS
	inj    Injector
	ops    atomic.Int64
	writes atomic.Int64
}

var _ FS = (*ErrorFS)(nil)

// NewErrorFS returns an ErrorFS over inner. A nil inj fails nothing.
func NewErrorFS(inner FS, inj Injector) *ErrorFS {
	if inj == nil {
		inj = Never
	}
	return &ErrorFS{inner: inner, inj: inj}
}

// Ops returns how many operations have been counted so far (failed ones
// included).
func (e *ErrorFS) Ops() int64 { return e.ops.Load() }

// Writes returns how many mutating operations have been counted so far.
func (e *ErrorFS) Writes() int64 { return e.writes.Load() }

func (e *ErrorFS) check(kind OpKind, path string) error {
	op := Op{Kind: kind, Path: path, Index: e.ops.Add(1) - 1, WriteIndex: -1}
	if kind.Mutating() {
		op.WriteIndex = e.writes.Add(1) - 1
	}
	if e.inj.ShouldFail(op) {
		return &os.PathError{Op: kind.String(), Path: path, Err: ErrInjected}
	}
	return nil
}

func (e *ErrorFS) wrap(f File, name string, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &errorFile{fs: e, f: f, name: name}, nil
}

// Create implements FS.
func (e *ErrorFS) Create(name string) (File, error) {
	if err := e.check(OpCreate, name); err != nil {
		return nil, err
	}
	f, err := e.inner.Create(name)
	return e.wrap(f, name, err)
}

// Open implements FS.
func (e *ErrorFS) Open(name string) (File, error) {
	if err := e.check(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.inner.Open(name)
	return e.wrap(f, name, err)
}

// OpenReadWrite implements FS.
func (e *ErrorFS) OpenReadWrite(name string) (File, error) {
	if err := e.check(OpOpenReadWrite, name); err != nil {
		return nil, err
	}
	f, err := e.inner.OpenReadWrite(name)
	return e.wrap(f, name, err)
}

// Remove implements FS.
func (e *ErrorFS) Remove(name string) error {
	if err := e.check(OpRemove, name); err != nil {
		return err
	}
	return e.inner.Remove(name)
}

// Rename implements FS.
func (e *ErrorFS) Rename(oldname, newname string) error {
	if err := e.check(OpRename, oldname); err != nil {
		return err
	}
	return e.inner.Rename(oldname, newname)
}

// MkdirAll implements FS.
func (e *ErrorFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := e.check(OpMkdirAll, dir); err != nil {
		return err
	}
	return e.inner.MkdirAll(dir, perm)
}

// List implements FS.
func (e *ErrorFS) List(dir string) ([]string, error) {
	if err := e.check(OpList, dir); err != nil {
		return nil, err
	}
	return e.inner.List(dir)
}

// Stat implements FS.
func (e *ErrorFS) Stat(name string) (os.FileInfo, error) {
	if err := e.check(OpStat, name); err != nil {
		return nil, err
	}
	return e.inner.Stat(name)
}

// SyncDir implements FS.
func (e *ErrorFS) SyncDir(dir string) error {
	if err := e.check(OpSyncDir, dir); err != nil {
		return err
	}
	return e.inner.SyncDir(dir)
}

// Statfs implements FS.
func (e *ErrorFS) Statfs(path string) (DiskSpace, error) {
	if err := e.check(OpStatfs, path); err != nil {
		return DiskSpace{}, err
	}
	return e.inner.Statfs(path)
}

type errorFile struct {
	fs   *ErrorFS
	f    File
	name string
}

func (f *errorFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(OpReadAt, f.name); err != nil {
		return 0, err
	}
	return f.f.ReadAt(p, off)
}

func (f *errorFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(OpWriteAt, f.name); err != nil {
		return 0, err
	}
	return f.f.WriteAt(p, off)
}

func (f *errorFile) Write(p []byte) (int, error) {
	if err := f.fs.check(OpWrite, f.name); err != nil {
		return 0, err
	}
	return f.f.Write(p)
}

func (f *errorFile) Sync() error {
	if err := f.fs.check(OpSync, f.name); err != nil {
		return err
	}
	return f.f.Sync()
}

func (f *errorFile) Truncate(size int64) error {
	if err := f.fs.check(OpTruncate, f.name); err != nil {
		return err
	}
	return f.f.Truncate(size)
}

func (f *errorFile) Stat() (os.FileInfo, error) {
	if err := f.fs.check(OpFileStat, f.name); err != nil {
		return nil, err
	}
	return f.f.Stat()
}

// Close is neither counted nor failed.
func (f *errorFile) Close() error { return f.f.Close() }
