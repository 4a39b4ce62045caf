package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// Large objects (a pack's shards) are written with direct I/O (O_DIRECT):
// the bytes go from the caller's buffer to the device, not through the
// page cache. Measured on this project's virtio disk (dd, 2 MiB writes,
// then fsync): 810 MB/s and 0.06 s of system time per 512 MiB direct,
// 233 MB/s and 0.94 s buffered: a buffered write copies every byte into
// the page cache, and the fsync that must follow it (an object is durable
// before anything names it) then writes it back from there, while a
// region's shards are not read again soon. What makes the object durable
// is unchanged: the temporary file is fsynced (its size and extents; the
// device's cache), renamed over the name, the directory fsynced.
//
// Direct I/O needs the buffer, the file offset and the length aligned to
// the device's logical block (directAlign covers every common device):
// the aligned prefix of the object is written directly (from the caller's
// buffer when it is aligned, which Go's large allocations are, else
// through an aligned bounce buffer), the unaligned tail (under a block)
// through the page cache on the same descriptor. A file system that
// refuses O_DIRECT (EINVAL, as tmpfs before Linux 6.6 did, or
// EOPNOTSUPP) is remembered and written to as before (vfs.WriteFile); so
// is any object a direct write fails on that way.

const (
	// directMin is the smallest object written directly: below it the
	// page cache costs little, and small objects (indexes, manifests,
	// locks) are read back soon.
	directMin = 1 << 20
	// directAlign is the alignment of buffers, offsets and lengths.
	directAlign = 4096
	// bounceSize is the bounce buffer for unaligned data.
	bounceSize = 1 << 20
)

var bounces = sync.Pool{New: func() any {
	b := make([]byte, bounceSize+directAlign)
	off := int((directAlign - uintptr(unsafe.Pointer(&b[0]))%directAlign) % directAlign)
	return b[off : off+bounceSize : off+bounceSize]
}}

// errNoDirect says that direct I/O is refused here: write buffered.
var errNoDirect = errors.New("store: direct I/O not supported")

// putDirect writes data to path p as vfs.WriteFile does, but directly.
// It returns errNoDirect (nothing left behind) when the file system
// refuses direct I/O.
func (l *Local) putDirect(p string, data []byte) error {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	dir := filepath.Dir(p)
	tmp := filepath.Join(dir, vfs.TempPrefix+filepath.Base(p)+"-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_DIRECT, 0o644)
	if refused(err) {
		return errNoDirect
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	fail := func(step string, err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		if refused(err) {
			return errNoDirect
		}
		return fmt.Errorf("write %s: %s: %w", p, step, err)
	}
	if err := writeDirect(f, data); err != nil {
		return fail("write", err)
	}
	if err := f.Sync(); err != nil {
		return fail("sync", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: close: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: rename: %w", p, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", p, err)
	}
	return nil
}

// writeDirect writes data at offset 0 of f, opened with O_DIRECT: the
// aligned prefix directly, the tail buffered (O_DIRECT cleared).
func writeDirect(f *os.File, data []byte) error {
	n := len(data) &^ (directAlign - 1)
	if n > 0 {
		if uintptr(unsafe.Pointer(&data[0]))%directAlign == 0 {
			if _, err := f.WriteAt(data[:n], 0); err != nil {
				return err
			}
		} else {
			b := bounces.Get().([]byte)
			defer bounces.Put(b) //nolint:staticcheck // a slice header: the pool keeps the array
			for off := 0; off < n; {
				c := copy(b[:min(len(b), n-off)], data[off:n])
				if _, err := f.WriteAt(b[:c], int64(off)); err != nil {
					return err
				}
				off += c
			}
		}
	}
	if n == len(data) {
		return nil
	}
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(f.Fd(), unix.F_SETFL, fl&^unix.O_DIRECT)
	}
	if err != nil {
		return fmt.Errorf("clear O_DIRECT: %w", err)
	}
	_, err = f.WriteAt(data[n:], int64(n))
	return err
}

// Reads stay buffered. Restore's way of reading (8 data shards of 2 MiB
// at once from a cold cache) was measured both ways, interleaved
// (BenchmarkReadIntoCold of an earlier version, load 13-15): buffered
// 813-1132 MB/s and 0.29-0.33 CPU-s per GB, direct through an aligned
// bounce buffer (a shard's payload goes to an arbitrary offset of the
// pack, so the caller's buffer is not aligned) 615-955 MB/s and 0.29-0.48
// CPU-s per GB: the copy out of the bounce buffer costs what the page
// cache's did, and the kernel's readahead of a whole small file beats
// synchronous direct reads.

// refused reports whether err says the file system does not do direct
// I/O (or not with this alignment).
func refused(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)
}
