package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// isTemp reports whether a base name is a temporary file of Put
// (vfs.WriteFile's, or "~put-*" of older versions): List skips them.
func isTemp(base string) bool { return vfs.IsTemp(base) || strings.HasPrefix(base, "~put-") }

// TempOrphanAge is how old (by modification time) a temporary file of Put
// must be before List removes it as the leftover of a put that was killed
// or crashed: the grace period of an unindexed pack (replicate.OrphanAge),
// far longer than any live put goes without writing to its file.
const TempOrphanAge = time.Hour

// sweepTemp removes temporary file p (d) if it is older than
// TempOrphanAge; a fresh one may be a live put and stays. Best effort.
func sweepTemp(p string, d fs.DirEntry) {
	fi, err := d.Info()
	if err != nil || time.Since(fi.ModTime()) < TempOrphanAge {
		return
	}
	_ = os.Remove(p)
}

// errClosed is returned by a closed store's methods.
var errClosed = errors.New("store: closed")

// Local is a Store in a local directory: object "a/b" is the file
// <root>/a/b. Put writes a temporary file in the target directory, fsyncs
// it, renames it over the name and fsyncs the directory, so an object is
// whole or absent, also after a crash. Leftover temporary files of a crash
// are ignored by List, which removes those older than TempOrphanAge in
// the directories it walks (a killed lock put's in locks/, a killed
// sync's next to its packs).
type Local struct {
	root     string
	location string
	closed   atomic.Bool
	noDirect atomic.Bool // the file system refused direct I/O (direct.go)
	dirs     sync.Map    // object directories made durable by mkdir
}

// OpenLocal opens the directory root, which must be an absolute path and
// exist: a missing one (an unmounted file system) is an error wrapping
// ErrMissing, never created, so a "remote" copy never lands on the local
// disk by mistake. CreateLocal makes one when a region is created.
func OpenLocal(root string) (*Local, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("%w: local store path %q is not absolute", ErrInvalidURL, root)
	}
	root = filepath.Clean(root)
	fi, err := os.Stat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: directory %s does not exist (a file system not mounted?)", ErrMissing, root)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrInvalidURL, root)
	}
	return &Local{root: root, location: "file://" + filepath.ToSlash(root)}, nil
}

// CreateLocal makes the directory of a new local store, refusing where a
// missing mount would put the data on the wrong disk: it creates root only
// if its parent exists and is on another file system than / (a mounted
// NAS or disk: /mnt/nas1 mounted, /mnt/nas1/snapfs made). Anywhere else the
// directory must be made by hand first; the error says so. An existing
// directory is fine.
func CreateLocal(root string) error {
	if !filepath.IsAbs(root) {
		return fmt.Errorf("%w: local store path %q is not absolute", ErrInvalidURL, root)
	}
	root = filepath.Clean(root)
	if fi, err := os.Stat(root); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%w: %s is not a directory", ErrInvalidURL, root)
		}
		return nil
	}
	parent := filepath.Dir(root)
	pst, err := os.Stat(parent)
	if err != nil {
		return fmt.Errorf("%w: directory %s does not exist, nor its parent %s (a file system not mounted?); create it first", ErrMissing, root, parent)
	}
	rst, err := os.Stat("/")
	if err != nil {
		return fmt.Errorf("store: stat /: %w", err)
	}
	if sameDevice(pst, rst) {
		return fmt.Errorf("%w: directory %s does not exist, and %s is on the root file system (a file system not mounted?); create it first with mkdir if that is where the store belongs", ErrMissing, root, parent)
	}
	if err := os.Mkdir(root, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store: create %s: %w", root, err)
	}
	if err := vfs.Default.SyncDir(parent); err != nil {
		return fmt.Errorf("store: create %s: %w", root, err)
	}
	return nil
}

func sameDevice(a, b os.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Dev == sb.Dev
}

func (l *Local) path(name string) string { return filepath.Join(l.root, filepath.FromSlash(name)) }

func (l *Local) check(ctx context.Context, name string) error {
	if l.closed.Load() {
		return errClosed
	}
	if err := ValidName(name); err != nil {
		return err
	}
	return ctx.Err()
}

// Put implements Store. It writes through vfs.WriteFile: a temporary file
// in the target directory, fsynced, renamed over the name, the directory
// fsynced; objects of directMin bytes or more the same way with direct
// I/O (direct.go).
func (l *Local) Put(ctx context.Context, name string, data []byte) error {
	if err := l.check(ctx, name); err != nil {
		return err
	}
	p := l.path(name)
	if err := l.mkdir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("store: put %s: %w", name, err)
	}
	if len(data) >= directMin && !l.noDirect.Load() {
		err := vfs.WriteFileDirect(p, data, 0o644)
		if err == nil {
			return nil
		}
		if !errors.Is(err, vfs.ErrNoDirect) {
			return fmt.Errorf("store: put %s: %w", name, err)
		}
		l.noDirect.Store(true)
	}
	if err := vfs.WriteFile(vfs.Default, p, data, 0o644); err != nil {
		return fmt.Errorf("store: put %s: %w", name, err)
	}
	return nil
}

// mkdir makes object directory dir exist durably (vfs.MkdirAllSync: the
// parent of each directory made is synced, else a new directory, and the
// acknowledged object in it, may vanish in a crash). A directory made so
// once is only stat'ed afterwards (as os.MkdirAll did), not synced again.
func (l *Local) mkdir(dir string) error {
	if _, ok := l.dirs.Load(dir); ok {
		if _, err := os.Stat(dir); err == nil {
			return nil
		}
	}
	if err := vfs.MkdirAllSync(vfs.Default, dir, 0o755); err != nil {
		return err
	}
	l.dirs.Store(dir, struct{}{})
	return nil
}

// openFile opens an object for reading, mapping a missing file (or a
// directory, which is no object) to ErrNotFound.
func (l *Local) openFile(name string) (*os.File, int64, error) {
	f, err := os.Open(l.path(name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, 0, fmt.Errorf("%w: %s in %s", ErrNotFound, name, l.location)
		}
		return nil, 0, fmt.Errorf("store: open %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("store: stat %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, 0, fmt.Errorf("%w: %s in %s (not a file)", ErrNotFound, name, l.location)
	}
	return f, fi.Size(), nil
}

// Get implements Store.
func (l *Local) Get(ctx context.Context, name string, off, length int64) ([]byte, error) {
	f, _, end, err := l.openRange(ctx, name, off, length)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, end-off)
	if err := readFull(f, name, buf, off); err != nil {
		return nil, err
	}
	return buf, nil
}

// ReadInto implements ReaderInto: one open, one read per buffer.
func (l *Local) ReadInto(ctx context.Context, name string, off int64, bufs ...[]byte) (int64, error) {
	total := int64(0)
	for _, p := range bufs {
		total += int64(len(p))
	}
	f, size, _, err := l.openRange(ctx, name, off, total)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	for _, p := range bufs {
		if err := readFull(f, name, p, off); err != nil {
			return 0, err
		}
		off += int64(len(p))
	}
	return size, nil
}

// openRange opens object name for a read of length bytes from off (-1:
// to its end) and returns it, its size and the end of the range; bytes
// outside the object are ErrShortRead.
func (l *Local) openRange(ctx context.Context, name string, off, length int64) (*os.File, int64, int64, error) {
	if err := l.check(ctx, name); err != nil {
		return nil, 0, 0, err
	}
	f, size, err := l.openFile(name)
	if err != nil {
		return nil, 0, 0, err
	}
	end, err := checkRange(name, size, off, length)
	if err != nil {
		_ = f.Close()
		return nil, 0, 0, err
	}
	return f, size, end, nil
}

// readFull reads len(p) bytes of object name from off in f; an object
// that shrank since it was opened is ErrShortRead.
func readFull(f *os.File, name string, p []byte, off int64) error {
	if _, err := f.ReadAt(p, off); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: %s: object shrank while reading", ErrShortRead, name)
		}
		return fmt.Errorf("store: read %s: %w", name, err)
	}
	return nil
}

// Stat implements Store.
func (l *Local) Stat(ctx context.Context, name string) (int64, error) {
	fi, err := l.stat(ctx, name)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// stat returns object name's file info; a missing object (or a directory
// or other non-file) is ErrNotFound.
func (l *Local) stat(ctx context.Context, name string) (fs.FileInfo, error) {
	if err := l.check(ctx, name); err != nil {
		return nil, err
	}
	fi, err := os.Stat(l.path(name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, fmt.Errorf("%w: %s in %s", ErrNotFound, name, l.location)
		}
		return nil, fmt.Errorf("store: stat %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s in %s (not a file)", ErrNotFound, name, l.location)
	}
	return fi, nil
}

// List implements Store. It walks only the directory that the prefix
// names, collects the matches and sorts them, since a directory walk's
// order is not the lexical order of full names ("a/b" > "a-c").
func (l *Local) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	if l.closed.Load() {
		return errClosed
	}
	if err := validPrefix(prefix); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: list %q: %w", prefix, err)
	}
	type entry struct {
		name string
		size int64
	}
	var entries []entry
	start := l.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = l.path(prefix[:i])
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil // the prefix's directory does not exist, or vanished
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			// Skip directories that cannot hold a match.
			if p != start && !strings.HasPrefix(name+"/", prefix) && !strings.HasPrefix(prefix, name+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && isTemp(d.Name()) {
			sweepTemp(p, d) // a killed put's leftover (in any directory List walks)
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(name, prefix) || ValidName(name) != nil {
			return nil // symlinks, foreign files
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			return err
		}
		entries = append(entries, entry{name, fi.Size()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: list %q in %s: %w", prefix, l.location, err)
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("store: list %q: %w", prefix, err)
		}
		if err := fn(e.name, e.size); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements Store. Empty parent directories are left in place.
func (l *Local) Delete(ctx context.Context, name string) error {
	if err := l.check(ctx, name); err != nil {
		return err
	}
	p := l.path(name)
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("store: delete %s: %w", name, err)
	}
	if fi.IsDir() {
		return nil // a directory is no object: nothing to delete
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: delete %s: %w", name, err)
	}
	if err := vfs.Default.SyncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("store: delete %s: fsync dir: %w", name, err)
	}
	return nil
}

// Location implements Store.
func (l *Local) Location() string { return l.location }

// Close implements Store.
func (l *Local) Close() error {
	l.closed.Store(true)
	return nil
}
