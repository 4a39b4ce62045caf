package rowstore

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dgraph-io/ristretto/v2/z"
	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/vfs"
	"golang.org/x/sys/unix"
)

// The store's guard against a full filesystem (see "Full filesystems" in the
// package doc): a preallocated reserve file that is given back when space
// runs out, so that deletes, gc, usage and shutdown keep working, and a floor
// of free space below which new disk writes are refused with ErrNoSpace
// before the reserve is ever touched.

const (
	reserveName = "reserve"
	// spaceRecheck is how many appended bytes, or how much time, may pass
	// before the free space is asked of the filesystem again.
	spaceRecheckBytes = 8 << 20
	spaceRecheckAfter = time.Second
)

// spaceGuard is the state of the reserve and the free-space estimate.
type spaceGuard struct {
	fs      vfs.FS
	dir     string
	file    string // the reserve file
	size    int64  // reserve size; 0: no reserve
	floor   int64  // free bytes new disk writes must leave
	disable bool   // no checks at all (Options.ReserveBytes < 0)

	mu       sync.Mutex
	armed    bool      // the reserve file exists at full size
	free     int64     // free bytes at the last statfs minus bytes appended since
	appended int64     // bytes appended since the last statfs
	checked  time.Time // time of the last statfs
	released int       // times the reserve was given back (for tests, logs)
	// rearmTried is when a write last tried to re-arm the reserve.
	rearmTried time.Time
}

// noSpaceError is the one message for a store that is out of space.
func (s *Store) noSpaceError(cause error) error {
	if cause != nil {
		return fmt.Errorf("%w on the store's filesystem (%s): delete snapshots or disks, then snapfs gc (%w)", ErrNoSpace, s.dir, cause)
	}
	return fmt.Errorf("%w on the store's filesystem (%s): delete snapshots or disks, then snapfs gc", ErrNoSpace, s.dir)
}

// isNoSpace reports whether err is an out-of-space error of any layer.
func isNoSpace(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrNoSpace) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	// Badger wraps some errors in text only.
	m := err.Error()
	return strings.Contains(m, "no space left on device") || strings.Contains(m, "disk quota exceeded")
}

// wrapNoSpace makes an out-of-space error of any layer wrap ErrNoSpace (with
// the one message); other errors are returned as they are.
func (s *Store) wrapNoSpace(err error) error {
	if err == nil || errors.Is(err, ErrNoSpace) || !isNoSpace(err) {
		return err
	}
	return s.noSpaceError(err)
}

// openSpace sizes the reserve from the filesystem and arms it if there is
// room; on a filesystem already below the floor it gives the reserve back at
// once, so that the index can open. Called by Open before the index opens.
// A filesystem without room for the reserve is no error (the store opens
// with the reserve released); an I/O error is.
func (s *Store) openSpace() error {
	g := &spaceGuard{fs: s.fs, dir: s.dir, file: path.Join(s.dir, reserveName)}
	s.space = g
	if s.opts.ReserveBytes < 0 {
		g.disable = true
		return nil
	}
	sp, err := s.fs.Statfs(s.dir)
	if err != nil {
		return fmt.Errorf("free space of the store: %w", err)
	}
	g.size = s.opts.ReserveBytes
	if g.size == 0 {
		g.size = min(max(sp.Total/32, 64<<20), 512<<20, sp.Total/8, max(sp.Free/8, 4<<20))
		if memoryBacked(s.fs, s.dir) {
			// On tmpfs (or the test FSes, which live in memory) a reserve
			// is memory taken from everyone: keep a token one.
			g.size = min(g.size, tmpfsReserve)
		}
	}
	g.floor = s.opts.MinFreeBytes
	if g.floor == 0 {
		mem := s.opts.IndexMemTableSize
		if mem == 0 {
			mem = index.DefaultMemTableSize
		}
		// A memtable's log file is twice its size, allocated when the
		// memtable starts; its flush writes a table of up to its size.
		g.floor = min(4*mem, max(sp.Total/8, 4<<20))
	}
	g.free, g.checked = sp.Free, time.Now()
	fi, err := s.fs.Stat(g.file)
	switch {
	case err == nil:
		g.armed = fi.Size() >= g.size
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("space reserve: %w", err)
	}
	if g.armed && sp.Free < g.floor {
		s.releaseReserve("the filesystem is full at open")
	}
	if !g.armed {
		// With twice the floor free before, what the index allocates at
		// open (a memtable log, a value-log file) leaves the floor.
		if _, err := s.rearm(); err != nil {
			return err
		}
	}
	registerSpaceHook(s)
	return nil
}

// tmpfsReserve is the default reserve on a memory-backed filesystem.
const tmpfsReserve = 4 << 20

// memoryBacked reports whether dir is on tmpfs or ramfs, or on an FS other
// than the operating system's (the fault and crash FSes of the tests).
func memoryBacked(fsys vfs.FS, dir string) bool {
	if fsys != vfs.Default {
		return true
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}

// refreshLocked asks the filesystem for its free space if the estimate is old.
func (g *spaceGuard) refreshLocked(force bool) error {
	if !force && g.appended < spaceRecheckBytes && time.Since(g.checked) < spaceRecheckAfter {
		return nil
	}
	sp, err := g.fs.Statfs(g.dir)
	if err != nil {
		return fmt.Errorf("free space of the store: %w", err)
	}
	g.free, g.appended, g.checked = sp.Free, 0, time.Now()
	return nil
}

// admit decides whether a new disk write of n bytes may go to the log: it
// must leave the floor free, and room for the reserve if the reserve is not
// armed. It never touches the reserve; a refused write is ErrNoSpace with
// the one message.
func (s *Store) admit(n int64) error {
	g := s.space
	if g == nil || g.disable {
		return nil
	}
	g.mu.Lock()
	if err := g.refreshLocked(false); err != nil {
		g.mu.Unlock()
		return err
	}
	need := g.floor
	if !g.armed {
		need += g.size
	}
	if g.free-n >= need+spaceRecheckBytes && (g.armed || time.Since(g.rearmTried) < spaceRecheckAfter) {
		g.mu.Unlock()
		return nil
	}
	if err := g.refreshLocked(true); err != nil {
		g.mu.Unlock()
		return err
	}
	ok := g.free-n >= need
	armed := g.armed
	g.mu.Unlock()
	if !armed {
		g.mu.Lock()
		g.rearmTried = time.Now()
		g.mu.Unlock()
		// A write is admitted only with the reserve armed: with the
		// reserve's size and the floor free (what admission needs while it
		// is released), it is armed again here. (A larger threshold would
		// let writes use up that space and leave the reserve released for
		// good.)
		if _, err := s.rearmWith(g.floor); err != nil {
			return err
		}
	}
	if ok {
		return nil
	}
	return s.noSpaceError(nil)
}

// appended counts bytes written to the log since the last statfs.
func (s *Store) appended(n int64) {
	s.cleaner.fg.Add(n)
	if g := s.space; g != nil && !g.disable {
		g.mu.Lock()
		g.free -= n
		g.appended += n
		g.mu.Unlock()
	}
}

// releaseReserve gives the reserve's space back to the filesystem. It
// reports whether there was a reserve to give back.
func (s *Store) releaseReserve(why string) bool {
	g := s.space
	if g == nil || g.disable {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.armed {
		return false
	}
	if err := g.fs.Remove(g.file); err != nil {
		s.log.Error("cannot release the space reserve", "err", err)
		return false
	}
	// The removal need not be durable: after a crash the reserve is back
	// and is given back again when needed.
	_ = g.fs.SyncDir(g.dir)
	g.armed = false
	g.released++
	_ = g.refreshLocked(true)
	s.log.Warn("space reserve released: the store's filesystem is full; delete snapshots or disks, then snapfs gc",
		"reason", why, "reserve_bytes", g.size, "free_bytes", g.free)
	return true
}

// rearm recreates the reserve if the filesystem has room for it and twice
// the floor (the hysteresis keeps a store near the floor from releasing and
// re-arming on every memtable the index starts: open, gc, the cleaner).
func (s *Store) rearm() (bool, error) {
	if s.space == nil {
		return false, nil
	}
	return s.rearmWith(2 * s.space.floor)
}

// rearmWith recreates the reserve if the filesystem has room for it and
// free bytes beyond it (before a write, the floor: a write is never
// admitted with the reserve released); it reports whether the reserve is
// armed afterwards. Lack of space is no error (the reserve stays released);
// another failure is.
func (s *Store) rearmWith(free int64) (bool, error) {
	g := s.space
	if g == nil || g.disable {
		return false, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.armed || g.size == 0 {
		return g.armed, nil
	}
	if err := g.refreshLocked(true); err != nil {
		return false, err
	}
	if g.free < g.size+free {
		return false, nil
	}
	err := writeReserve(g.fs, g.file, g.size)
	if err == nil {
		err = g.fs.SyncDir(g.dir)
	}
	if err != nil {
		g.fs.Remove(g.file)
		_ = g.refreshLocked(true)
		if isNoSpace(err) {
			return false, nil
		}
		return false, fmt.Errorf("create the space reserve: %w", err)
	}
	g.armed = true
	if err := g.refreshLocked(true); err != nil {
		return true, err
	}
	if g.released > 0 {
		s.log.Info("space reserve re-armed", "reserve_bytes", g.size, "free_bytes", g.free)
	}
	return true, nil
}

// writeReserve allocates size bytes to name and syncs it: fallocate where
// the file is an operating-system file (instant; the blocks are the
// filesystem's to give back when the file is removed), else written zeros
// (the crash FS of the tests). Never sparse.
func writeReserve(fsys vfs.FS, name string, size int64) error {
	f, err := fsys.Create(name)
	if err != nil {
		return err
	}
	if fd, ok := f.(interface{ Fd() uintptr }); ok {
		err := unix.Fallocate(int(fd.Fd()), 0, 0, size)
		if err == nil {
			if err := f.Sync(); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}
		if !errors.Is(err, unix.EOPNOTSUPP) {
			f.Close()
			return err
		}
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// makeRoom gives the reserve back when the free space is below the floor:
// maintenance (gc, deletes, shutdown) calls it before work that must append.
func (s *Store) makeRoom(why string) error {
	g := s.space
	if g == nil || g.disable {
		return nil
	}
	g.mu.Lock()
	err := g.refreshLocked(true)
	low := g.free < g.floor && g.armed
	g.mu.Unlock()
	if low {
		s.releaseReserve(why)
	}
	return err
}

// ReserveArmed reports whether the space reserve file is in place.
func (s *Store) ReserveArmed() bool {
	g := s.space
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.armed
}

// The Badger files are allocated by the patched ristretto (index/third_party/ristretto);
// when an allocation fails for lack of space it calls this hook, which gives
// back the reserve of the store the file belongs to.
var (
	hookOnce   sync.Once
	hookMu     sync.Mutex
	hookStores = map[*Store]bool{}
)

func registerSpaceHook(s *Store) {
	hookMu.Lock()
	hookStores[s] = true
	hookMu.Unlock()
	hookOnce.Do(func() {
		fn := func(p string) bool {
			hookMu.Lock()
			var mine []*Store
			for st := range hookStores {
				if strings.HasPrefix(filepath.Clean(p), filepath.Clean(st.dir)+string(filepath.Separator)) {
					mine = append(mine, st)
				}
			}
			hookMu.Unlock()
			freed := false
			for _, st := range mine {
				freed = st.releaseReserve("the index needs space") || freed
			}
			return freed
		}
		z.NoSpaceHook.Store(&fn)
	})
}

func unregisterSpaceHook(s *Store) {
	hookMu.Lock()
	delete(hookStores, s)
	hookMu.Unlock()
}

// allZero reports whether p holds only zeros (any length).
func allZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeroBlock))
		if !isZero(p[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}

// freeBytes is the free space of the store's filesystem now, if known.
func (s *Store) freeBytes() (int64, bool) {
	g := s.space
	if g == nil || g.disable {
		return 0, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.refreshLocked(true); err != nil {
		return 0, false
	}
	return g.free, true
}
