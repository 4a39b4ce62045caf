package vfs

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DirectAlign is the alignment direct I/O needs of buffers, offsets and
// lengths here (the device's logical block; 4096 covers every common
// device).
const DirectAlign = 4096

// ErrNoDirect says that the file system refused direct I/O (EINVAL, as
// tmpfs before Linux 6.6 did, or EOPNOTSUPP): nothing was left behind,
// and the caller writes buffered (WriteFile) instead.
var ErrNoDirect = errors.New("vfs: direct I/O not supported")

const bounceSize = 1 << 20

var bounces = sync.Pool{New: func() any {
	b := make([]byte, bounceSize+DirectAlign)
	off := int((DirectAlign - uintptr(unsafe.Pointer(&b[0]))%DirectAlign) % DirectAlign)
	return b[off : off+bounceSize : off+bounceSize]
}}

// WriteFileDirect is WriteFile on the operating system's file system with
// direct I/O (O_DIRECT): the bytes go from data to the device, not through
// the page cache, for large objects that are not read again soon (a
// region's shards). The aligned prefix is written directly (from data when
// it is aligned, which Go's large allocations are, else through an aligned
// bounce buffer), the tail under a block through the page cache on the
// same descriptor. Durability and atomicity are WriteFile's (writeAtomic).
// An error wrapping ErrNoDirect means the file system refuses direct I/O.
func WriteFileDirect(name string, data []byte, perm os.FileMode) error {
	create := func(tmp string) (File, error) {
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_DIRECT, perm)
		if refused(err) {
			// Linux creates the file before it checks O_DIRECT: the
			// refused open leaves an empty tmp behind (ours: O_EXCL and
			// a random name), which would stay until a sweep.
			_ = os.Remove(tmp)
			return nil, ErrNoDirect
		}
		if err != nil {
			return nil, err
		}
		return osFile{f}, nil
	}
	return writeAtomic(Default, name, create, func(f File) error {
		err := writeDirect(f.(osFile).File, data)
		if refused(err) {
			return fmt.Errorf("%w: %w", ErrNoDirect, err)
		}
		return err
	})
}

// writeDirect writes data at offset 0 of f, opened with O_DIRECT: the
// aligned prefix directly, the tail buffered (O_DIRECT cleared).
func writeDirect(f *os.File, data []byte) error {
	n := len(data) &^ (DirectAlign - 1)
	if n > 0 {
		if uintptr(unsafe.Pointer(&data[0]))%DirectAlign == 0 {
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

// refused reports whether err says the file system does not do direct
// I/O (or not with this alignment).
func refused(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)
}
