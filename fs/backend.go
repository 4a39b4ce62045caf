package fs

import "time"

// Backend is everything the namespace needs from storage. The daemon hands the
// FUSE layer an adapter over the engine (rowstore.Store); the FUSE layer never
// sees how data is stored.
//
// Errors returned by a Backend wrap the sentinel errors of package rowstore
// (ErrNotFound, ErrBusy, ErrReadOnly, ErrCorrupt, ErrNoSpace, ErrInvalid, ...);
// the FUSE layer maps them to errno in one place.
type Backend interface {
	// Disks lists the read-write disks.
	Disks() ([]DiskEntry, error)
	// Disk describes one disk.
	Disk(name string) (DiskEntry, error)
	// OpenDisk opens a disk for reading and writing. Every open handle counts
	// as "open" for the busy checks of rollback and delete.
	OpenDisk(name string) (DiskHandle, error)
	// ResizeDisk grows a disk (truncate to a larger size). Shrinking is refused
	// with an error wrapping rowstore.ErrInvalid.
	ResizeDisk(name string, size int64) error

	// Snapshots lists snapshots, each with its member disks.
	Snapshots() ([]SnapshotEntry, error)
	// Snapshot describes one snapshot.
	Snapshot(name string) (SnapshotEntry, error)
	// OpenSnapshotDisk opens the image of disk as of snapshot snap, read-only.
	OpenSnapshotDisk(snap, disk string) (ReadHandle, error)

	// Images lists images.
	Images() ([]ImageEntry, error)
	// Image describes one image.
	Image(name string) (ImageEntry, error)
	// OpenImage opens an image read-only.
	OpenImage(name string) (ReadHandle, error)
}

// DiskEntry describes a disk.
type DiskEntry struct {
	ID        uint64 // stable for the life of the disk; never reused
	Name      string
	Size      int64 // logical size in bytes
	Allocated int64 // bytes of stored (non-zero) blocks visible in the disk
	BlockSize int
	Created   time.Time
	Modified  time.Time
}

// SnapshotEntry describes a snapshot.
type SnapshotEntry struct {
	ID      uint64 // stable, never reused
	Name    string
	Created time.Time
	Disks   []SnapshotDisk
	// JSON is the content of snapshot.json: the snapshot's metadata as the CLI's
	// `snapshot info --json` prints it, newline-terminated.
	JSON []byte
}

// SnapshotDisk is one disk of a snapshot.
type SnapshotDisk struct {
	Name      string
	Size      int64
	Allocated int64
}

// ImageEntry describes an image.
type ImageEntry struct {
	ID        uint64
	Name      string
	Size      int64
	Allocated int64
	Created   time.Time
}

// ReadHandle reads an immutable disk image (a snapshot's disk or an image).
type ReadHandle interface {
	// ReadAt reads len(p) bytes at off. Past the end it returns what there is
	// and io.EOF; unwritten ranges read as zeros.
	ReadAt(p []byte, off int64) (int, error)
	Size() int64
	Close() error
}

// DiskHandle reads and writes a disk.
type DiskHandle interface {
	ReadHandle
	// WriteAt writes p at off; writes past Size fail with rowstore.ErrInvalid.
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes every write made before it durable.
	Sync() error
	// PunchHole makes [off, off+length) read as zeros and frees whole blocks in it.
	PunchHole(off, length int64) error
	// Allocated is the bytes of stored blocks visible in the disk now.
	Allocated() int64
}
