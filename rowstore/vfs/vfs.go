package vfs

import (
	"errors"
	"io"
	"os"
)

// FS is the one door to durable I/O. Every byte the engine keeps (segment files,
// the superblock, the lock file) goes through an FS, so tests can inject faults
// and simulate crashes. Badger manages its own files and is not behind it.
//
// Paths are slash-separated and absolute or relative to the process working
// directory; implementations do not interpret them beyond that.
type FS interface {
	// Create creates name (truncating an existing file) for reading and writing.
	// The new directory entry is durable only after SyncDir of its parent.
	Create(name string) (File, error)
	// Open opens an existing file read-only.
	Open(name string) (File, error)
	// OpenReadWrite opens an existing file for reading and writing.
	OpenReadWrite(name string) (File, error)
	// Remove removes a file or an empty directory. Durable after SyncDir of the parent.
	Remove(name string) error
	// Rename atomically replaces newname by oldname. Durable after SyncDir of the parent.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and its parents; durable after SyncDir of each parent.
	MkdirAll(dir string, perm os.FileMode) error
	// List returns the names (not paths) of the entries of dir, sorted.
	List(dir string) ([]string, error)
	// Stat describes name.
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the entries of dir (creations, removals, renames) durable.
	SyncDir(dir string) error
	// Statfs reports the space of the filesystem holding path.
	Statfs(path string) (DiskSpace, error)
}

// File is an open file of an FS. ReadAt and WriteAt may be called concurrently;
// Write appends at the file's own offset and must not race with itself.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Writer
	io.Closer
	// Sync makes every byte written to the file before it durable. After a
	// crash, data written but not synced may be kept, lost, or torn.
	Sync() error
	// Truncate changes the file's size. Durable after Sync.
	Truncate(size int64) error
	// Stat describes the file; Size is the size including unsynced writes.
	Stat() (os.FileInfo, error)
}

// DiskSpace is what Statfs reports, in bytes.
type DiskSpace struct {
	Total int64
	Free  int64 // available to an unprivileged writer
}

// ErrInjected is the error returned by the error-injecting FS for the operation
// it was told to fail. Tests match it with errors.Is.
var ErrInjected = errors.New("vfs: injected fault")
