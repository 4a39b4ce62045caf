package fs

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// diskFile is one open of a disk: one Backend DiskHandle.
type diskFile struct {
	m     *mountState
	name  string
	h     DiskHandle
	dirty atomic.Bool // written since the last Sync through this handle
	// writable: opened for writing. Flush of a writable handle always syncs:
	// the kernel may send a page written through one descriptor (mmap,
	// writeback) on another, so per-handle dirtiness alone can miss writes.
	writable bool
}

func (f *diskFile) Read(ctx context.Context, dest []byte, off int64) (_ fuse.ReadResult, errno syscall.Errno) {
	defer f.m.recoverOp("read disk", f.name, &errno)
	n, err := readFull(f.h, dest, off)
	if err != nil {
		return nil, f.m.fail("read disk", f.name, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Write writes inside the disk. A write that starts at or past the end fails
// with EFBIG (disks grow only by truncate or fallocate); one that crosses the
// end is cut short at the end and reports the short count.
func (f *diskFile) Write(ctx context.Context, data []byte, off int64) (_ uint32, errno syscall.Errno) {
	defer f.m.recoverOp("write disk", f.name, &errno)
	if len(data) == 0 {
		return 0, 0
	}
	size := f.h.Size()
	if off < 0 || off >= size {
		return 0, syscall.EFBIG
	}
	if int64(len(data)) > size-off {
		data = data[:size-off]
	}
	f.dirty.Store(true)
	n, err := f.h.WriteAt(data, off)
	// Again after the write: a concurrent Fsync may have cleared the flag
	// between the first store and the write reaching the engine.
	f.dirty.Store(true)
	if err != nil {
		return uint32(n), f.m.fail("write disk", f.name, err)
	}
	return uint32(n), 0
}

// Fsync (fsync and fdatasync alike) makes every acknowledged write durable.
func (f *diskFile) Fsync(ctx context.Context, flags uint32) (errno syscall.Errno) {
	defer f.m.recoverOp("fsync disk", f.name, &errno)
	f.dirty.Store(false)
	if err := f.h.Sync(); err != nil {
		f.dirty.Store(true)
		return f.m.fail("fsync disk", f.name, err)
	}
	return 0
}

// Flush runs on every close(2) of a descriptor: for a handle opened for
// writing (or one that wrote), Sync, so that close reports write errors and
// data is durable once a clean close returns. Sync is cheap when nothing is
// pending.
func (f *diskFile) Flush(ctx context.Context) (errno syscall.Errno) {
	defer f.m.recoverOp("flush disk", f.name, &errno)
	if !f.dirty.Swap(false) && !f.writable {
		return 0
	}
	if err := f.h.Sync(); err != nil {
		f.dirty.Store(true)
		return f.m.fail("flush disk", f.name, err)
	}
	return 0
}

// Release closes the Backend handle (the kernel dropped its last reference).
func (f *diskFile) Release(ctx context.Context) (errno syscall.Errno) {
	defer f.m.recoverOp("release disk", f.name, &errno)
	if err := f.h.Close(); err != nil {
		return f.m.fail("release disk", f.name, err)
	}
	return 0
}

// readFull reads len(dest) bytes at off, stopping only at the end of the
// image: reads are never short inside the image, whatever the open mode
// (O_DIRECT reads are passed to the application as they are).
func readFull(h ReadHandle, dest []byte, off int64) (int, error) {
	size := h.Size()
	if off < 0 || off >= size {
		return 0, nil
	}
	if int64(len(dest)) > size-off {
		dest = dest[:size-off]
	}
	done := 0
	for done < len(dest) {
		n, err := h.ReadAt(dest[done:], off+int64(done))
		done += n
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return done, err
		}
		if n == 0 {
			return done, io.ErrNoProgress
		}
	}
	return done, nil
}
