package browse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/snapfs/snapfs/rowstore"
)

// CopyStats counts what Copy did.
type CopyStats struct {
	Files      int64 `json:"files"` // regular files
	Dirs       int64 `json:"dirs"`
	Symlinks   int64 `json:"symlinks"`
	HardLinks  int64 `json:"hard_links"` // names linked to a file copied before
	Other      int64 `json:"other"`      // fifos, sockets, devices
	Bytes      int64 `json:"bytes"`      // bytes of data copied (holes not counted)
	TotalBytes int64 `json:"total_bytes"`
}

// CopyOptions configure Copy.
type CopyOptions struct {
	// Overwrite replaces files and symlinks already at the destination (a
	// directory already there is an error either way).
	Overwrite bool
	// Progress, if set, is called with the running counts, at least after
	// every file.
	Progress func(CopyStats)
}

// Copy copies the entries srcs (paths under one source tree) into the
// directory dst, preserving what cp -a preserves: owners, modes, times,
// symlinks, hard links (among the copied names), extended attributes, and
// holes (found with SEEK_DATA/SEEK_HOLE). Nothing partial is left: the
// copy is made in a staging directory inside dst and each entry is renamed
// into place only when all of them were copied; on any error the staging
// directory is removed and dst is as before. Errors wrap rowstore's
// sentinels: ErrExists (a destination exists), ErrNotFound (a source does
// not), ErrCorrupt (a read failed with EIO), ErrNoSpace, ErrInvalid.
func Copy(ctx context.Context, srcs []string, dst string, opts CopyOptions) (CopyStats, error) {
	var st CopyStats
	fi, err := os.Stat(dst)
	if err != nil {
		return st, classify(fmt.Errorf("target %s: %w", dst, err))
	}
	if !fi.IsDir() {
		return st, fmt.Errorf("%w: target %s is not a directory", rowstore.ErrInvalid, dst)
	}
	names := map[string]string{}
	for _, s := range srcs {
		if _, err := os.Lstat(s); err != nil {
			return st, classify(fmt.Errorf("source %s: %w", s, err))
		}
		name := filepath.Base(filepath.Clean(s))
		if name == "/" || name == "." || name == ".." {
			return st, fmt.Errorf("%w: %s names no entry to restore (name the files or directories inside)", rowstore.ErrInvalid, s)
		}
		if prev, ok := names[name]; ok {
			return st, fmt.Errorf("%w: %s and %s would both be restored as %s", rowstore.ErrInvalid, prev, s, name)
		}
		names[name] = s
		if t, err := os.Lstat(filepath.Join(dst, name)); err == nil && (!opts.Overwrite || t.IsDir()) {
			return st, fmt.Errorf("%w: %s already exists (restore into another directory, or --overwrite to replace a file)", rowstore.ErrExists, filepath.Join(dst, name))
		}
	}
	for _, s := range srcs {
		_ = filepath.WalkDir(s, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if i, err := d.Info(); err == nil {
					st.TotalBytes += i.Size()
				}
			}
			return nil
		})
	}
	stage, err := os.MkdirTemp(dst, ".snapfs-restore-")
	if err != nil {
		return st, classify(fmt.Errorf("staging directory: %w", err))
	}
	defer os.RemoveAll(stage) // empty after success
	c := &copier{ctx: ctx, opts: opts, st: &st, links: map[[2]uint64]string{}}
	for _, s := range srcs {
		if err := c.copy(filepath.Clean(s), filepath.Join(stage, filepath.Base(filepath.Clean(s)))); err != nil {
			return st, classify(err)
		}
	}
	for name := range names {
		if err := os.Rename(filepath.Join(stage, name), filepath.Join(dst, name)); err != nil {
			return st, classify(fmt.Errorf("move %s into place: %w", name, err))
		}
	}
	return st, nil
}

// classify wraps an OS error with the sentinel its errno means.
func classify(err error) error {
	var e syscall.Errno
	if !errors.As(err, &e) {
		return err
	}
	switch e {
	case syscall.ENOENT:
		return fmt.Errorf("%w: %w", rowstore.ErrNotFound, err)
	case syscall.EEXIST:
		return fmt.Errorf("%w: %w", rowstore.ErrExists, err)
	case syscall.ENOSPC, syscall.EDQUOT:
		return fmt.Errorf("%w: %w", rowstore.ErrNoSpace, err)
	case syscall.EIO, syscall.EUCLEAN, syscall.EBADMSG:
		return fmt.Errorf("%w: %w", rowstore.ErrCorrupt, err)
	case syscall.EROFS:
		return fmt.Errorf("%w: %w", rowstore.ErrReadOnly, err)
	}
	return err
}

type copier struct {
	ctx   context.Context
	opts  CopyOptions
	st    *CopyStats
	links map[[2]uint64]string // (dev, ino) of a source file with several names -> its copy
}

func (c *copier) progress() {
	if c.opts.Progress != nil {
		c.opts.Progress(*c.st)
	}
}

// copy copies src to dst (which does not exist), recursively.
func (c *copier) copy(src, dst string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		for _, n := range names {
			if err := c.copy(filepath.Join(src, n), filepath.Join(dst, n)); err != nil {
				return err
			}
		}
		c.st.Dirs++
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		c.st.Symlinks++
	case unix.S_IFREG:
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if st.Nlink > 1 {
			if first, ok := c.links[key]; ok {
				if err := os.Link(first, dst); err != nil {
					return err
				}
				c.st.HardLinks++
				c.progress()
				return nil
			}
			c.links[key] = dst
		}
		if err := c.copyData(src, dst, st.Size); err != nil {
			return err
		}
		c.st.Files++
	default:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
		c.st.Other++
	}
	if err := copyMeta(src, dst, &st); err != nil {
		return err
	}
	c.progress()
	return nil
}

// copyData copies the data of a regular file, keeping its holes.
func (c *copier) copyData(src, dst string, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	buf := make([]byte, 1<<20)
	off := int64(0)
	for off < size {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) {
				break // only a hole up to the end
			}
			data = off // no SEEK_DATA: copy everything
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		for p := data; p < hole; {
			n, err := in.ReadAt(buf[:min(int64(len(buf)), hole-p)], p)
			if n > 0 {
				if _, werr := out.WriteAt(buf[:n], p); werr != nil {
					return werr
				}
				p += int64(n)
				c.st.Bytes += int64(n)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", src, err)
			}
		}
		if hole <= off {
			break
		}
		off = hole
		c.progress()
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

// copyMeta copies extended attributes, owner, mode and times, in that
// order (chown clears set-id bits; times last).
func copyMeta(src, dst string, st *unix.Stat_t) error {
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", dst, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dst, st.Mode&07777); err != nil {
			return fmt.Errorf("chmod %s: %w", dst, err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", dst, err)
	}
	return nil
}

func copyXattrs(src, dst string) error {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(src, buf)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENOSYS) {
			return nil
		}
		return fmt.Errorf("list xattrs of %s: %w", src, err)
	}
	val := make([]byte, 64<<10)
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		vn, err := unix.Lgetxattr(src, name, val)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return fmt.Errorf("xattr %s of %s: %w", name, src, err)
		}
		if err := unix.Lsetxattr(dst, name, val[:vn], 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
				continue // the target filesystem does not take this namespace
			}
			return fmt.Errorf("set xattr %s on %s: %w", name, dst, err)
		}
	}
	return nil
}
