package browse

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/rowstore"
)

// Source names an immutable disk image whose files are browsed: disk Disk
// of snapshot Snapshot, or image Image. ID is the snapshot's or image's ID,
// so that a name deleted and made again is another source.
type Source struct {
	Snapshot string `json:"snapshot,omitempty"`
	Disk     string `json:"disk,omitempty"`
	Image    string `json:"image,omitempty"`
	ID       uint64 `json:"id"`
	// Region is set for a disk of a remote snapshot (M/regions/<r>/<s>/<d>):
	// Snapshot is its name in the mount, RemoteKey its host and id.
	Region    string `json:"region,omitempty"`
	RemoteKey string `json:"remote_key,omitempty"`
}

// Key identifies the source.
func (s Source) Key() string {
	if s.Region != "" {
		return "region/" + s.Region + "/" + s.RemoteKey + "/" + s.Disk
	}
	if s.Image != "" {
		return "image/" + s.Image + "/" + strconv.FormatUint(s.ID, 10)
	}
	return "snapshot/" + s.Snapshot + "/" + s.Disk + "/" + strconv.FormatUint(s.ID, 10)
}

func (s Source) String() string {
	if s.Region != "" {
		return "regions/" + s.Region + "/" + s.Snapshot + "/" + s.Disk
	}
	if s.Image != "" {
		return "image " + s.Image
	}
	return s.Snapshot + "/" + s.Disk
}

// Host is what the Manager needs from the daemon: throw-away writable
// clones of a source, reachable as a file (under the daemon's own mount,
// M/disks/<clone>), recorded before they exist so that a crash leaves them
// findable (service's scratch ledger), and never listed.
type Host interface {
	// Scratch makes a throw-away writable clone of src and returns its name
	// and the path of its disk file.
	Scratch(src Source) (name, file string, err error)
	// DropScratch deletes a scratch clone and its record.
	DropScratch(name string) error
}

// Options configure a Manager.
type Options struct {
	// Dir is the private directory the filesystems are mounted under (one
	// subdirectory per open source). It must not be inside the daemon's own
	// mount. Required.
	Dir string
	// MaxOpen is how many sources may be open at once; opening one more
	// releases the least recently used idle one. 0 means DefaultMaxOpen.
	MaxOpen int
	// Idle is how long a source stays open unused. 0 means DefaultIdle.
	Idle time.Duration
	// MountTimeout bounds one mount(2) (a hostile image must not hang the
	// caller). 0 means DefaultMountTimeout.
	MountTimeout time.Duration
	Logger       *slog.Logger
}

// Defaults of Options.
const (
	DefaultMaxOpen      = 8
	DefaultIdle         = 5 * time.Minute
	DefaultMountTimeout = 30 * time.Second
)

// Manager opens the filesystems inside snapshot disks and images on demand
// and keeps at most MaxOpen of them open. Safe for concurrent use.
type Manager struct {
	host Host
	opts Options
	log  *slog.Logger

	// opMu serializes opening and closing trees, so that the number of
	// trees in any state between "opening" and "closed" never exceeds
	// MaxOpen.
	opMu sync.Mutex

	mu      sync.Mutex
	open    map[string]*Tree
	layouts map[string]Layout  // probe results: sources are immutable
	failed  map[string]failure // sources that could not be opened, retried after failRetry
	seq     int
	closed  bool
	peak    int // most trees open at once (tests)

	stop chan struct{}
	done chan struct{}
}

// NewManager returns a Manager; Close releases everything it opened.
func NewManager(host Host, opts Options) *Manager {
	if opts.MaxOpen <= 0 {
		opts.MaxOpen = DefaultMaxOpen
	}
	if opts.Idle <= 0 {
		opts.Idle = DefaultIdle
	}
	if opts.MountTimeout <= 0 {
		opts.MountTimeout = DefaultMountTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{host: host, opts: opts, log: log.With("component", "files"), open: map[string]*Tree{},
		layouts: map[string]Layout{}, failed: map[string]failure{}, stop: make(chan struct{}), done: make(chan struct{})}
	go m.janitor()
	return m
}

// Options returns the options in effect (defaults filled in).
func (m *Manager) Options() Options { return m.opts }

// Layout probes src through open (which opens the source read-only), once
// per source.
func (m *Manager) Layout(src Source, open func() (ReaderAtSize, error)) (Layout, error) {
	key := src.Key()
	m.mu.Lock()
	l, ok := m.layouts[key]
	m.mu.Unlock()
	if ok {
		return l, nil
	}
	r, err := open()
	if err != nil {
		return Layout{}, err
	}
	l = Probe(r, r.Size())
	if err := r.Close(); err != nil {
		return Layout{}, err
	}
	m.mu.Lock()
	if len(m.layouts) > 4096 {
		clear(m.layouts)
	}
	m.layouts[key] = l
	m.mu.Unlock()
	return l, nil
}

// ReaderAtSize reads a disk image.
type ReaderAtSize interface {
	ReadAt(p []byte, off int64) (int, error)
	Size() int64
	Close() error
}

// Tree is one open source: its scratch clone, loop device and the mounts
// of its filesystems. A caller holds it (Acquire) while it uses a path
// inside it and releases it after (Release).
type Tree struct {
	m      *Manager
	key    string
	src    Source
	layout Layout
	dir    string
	clone  string
	loops  []string          // one loop device per filesystem
	mounts map[string]string // part name -> mountpoint
	broken map[string]error  // part name -> why it could not be mounted

	// under Manager.mu
	pins  int
	last  time.Time
	files map[*os.File]struct{}
}

// Dir is the directory where part (a Part.Name) is mounted. A partition
// that could not be mounted is an error wrapping rowstore.ErrCorrupt (EIO);
// the other partitions of the disk are still shown.
func (t *Tree) Dir(part string) (string, error) {
	if err := t.broken[part]; err != nil {
		return "", err
	}
	d, ok := t.mounts[part]
	if !ok {
		return "", fmt.Errorf("%w: %s has no partition %q", rowstore.ErrNotFound, t.src, part)
	}
	return d, nil
}

// Loops are the loop devices of the tree, one per filesystem.
func (t *Tree) Loops() []string { return t.loops }

// Release ends one Acquire.
func (t *Tree) Release() {
	t.m.mu.Lock()
	t.pins--
	t.last = time.Now()
	t.m.mu.Unlock()
}

// Track registers a file opened inside the tree: it is closed when the
// tree is released for good (umount, daemon exit), so that nothing keeps
// the mount busy.
func (t *Tree) Track(f *os.File) {
	t.m.mu.Lock()
	t.files[f] = struct{}{}
	t.m.mu.Unlock()
}

// Untrack removes f from the tracked files (the caller closes it).
func (t *Tree) Untrack(f *os.File) {
	t.m.mu.Lock()
	delete(t.files, f)
	t.m.mu.Unlock()
}

// failRetry is how long a source that could not be opened answers with
// the same error before it is tried again: a corrupt filesystem walked by
// find must not be cloned and mounted once per file.
const failRetry = 30 * time.Second

type failure struct {
	err error
	at  time.Time
}

// ErrTooMany is returned by Acquire when MaxOpen sources are open and all
// in use.
var ErrTooMany = fmt.Errorf("%w: the maximum number of open .files filesystems are all in use", rowstore.ErrBusy)

// busyWait is how long Acquire waits for one of MaxOpen trees in use to
// become free before it fails with ErrTooMany (uses are short: one FUSE
// operation, or an open file).
const busyWait = 10 * time.Second

// Acquire returns src's tree, opening it (scratch clone, loop device,
// mounts) when it is not open. The caller must Release it. When MaxOpen
// trees are open and all in use, it waits up to busyWait for one to be
// released, then fails with ErrTooMany.
func (m *Manager) Acquire(src Source, layout Layout) (*Tree, error) {
	deadline := time.Now().Add(busyWait)
	for {
		t, err := m.acquireOnce(src, layout)
		if !errors.Is(err, ErrTooMany) || time.Now().After(deadline) {
			return t, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (m *Manager) acquireOnce(src Source, layout Layout) (*Tree, error) {
	if !layout.Browsable() {
		return nil, fmt.Errorf("%w: %s has no filesystem to browse: %s", rowstore.ErrNotFound, src, layout.Reason)
	}
	key := src.Key()
	if t := m.pin(key); t != nil {
		return t, nil
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if t := m.pin(key); t != nil {
		return t, nil
	}
	m.mu.Lock()
	f, failed := m.failed[key]
	m.mu.Unlock()
	if failed && time.Since(f.at) < failRetry {
		return nil, f.err
	}
	m.mu.Lock()
	for !m.closed && len(m.open) >= m.opts.MaxOpen {
		var victim *Tree
		for _, t := range m.open {
			if t.pins == 0 && (victim == nil || t.last.Before(victim.last)) {
				victim = t
			}
		}
		if victim == nil {
			m.mu.Unlock()
			return nil, ErrTooMany
		}
		delete(m.open, victim.key)
		m.mu.Unlock()
		m.log.Info("releasing the least recently used filesystem", "source", victim.src.String())
		victim.close()
		m.mu.Lock()
	}
	if m.closed {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: the daemon is shutting down", rowstore.ErrClosed)
	}
	m.seq++
	dir := filepath.Join(m.opts.Dir, strconv.Itoa(m.seq))
	m.mu.Unlock()

	start := time.Now()
	t, err := m.openTree(src, layout, dir)
	if err != nil {
		m.log.Warn("cannot open the filesystem of a disk", "source", src.String(), "err", err)
		if errors.Is(err, rowstore.ErrCorrupt) {
			m.mu.Lock()
			if len(m.failed) > 1024 {
				clear(m.failed)
			}
			m.failed[key] = failure{err: err, at: time.Now()}
			m.mu.Unlock()
		}
		return nil, err
	}
	t.key, t.pins, t.last = key, 1, time.Now()
	m.mu.Lock()
	m.open[key] = t
	m.peak = max(m.peak, len(m.open))
	m.mu.Unlock()
	m.log.Info("opened the filesystem of a disk", "source", src.String(), "loops", t.loops, "clone", t.clone,
		"parts", len(layout.Parts), "took", time.Since(start).Round(time.Millisecond))
	return t, nil
}

func (m *Manager) pin(key string) *Tree {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.open[key]
	if t != nil {
		t.pins++
		t.last = time.Now()
	}
	return t
}

// Open is the number of open sources now, and the most open at once.
func (m *Manager) Open() (now, peak int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.open), m.peak
}

// janitor releases sources idle for longer than Options.Idle.
func (m *Manager) janitor() {
	defer close(m.done)
	tick := min(max(m.opts.Idle/4, 50*time.Millisecond), 10*time.Second)
	tk := time.NewTicker(tick)
	defer tk.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-tk.C:
			m.ReleaseIdle(m.opts.Idle)
		}
	}
}

// ReleaseIdle closes every source unused for at least idle.
func (m *Manager) ReleaseIdle(idle time.Duration) {
	m.release("releasing an idle filesystem", func(t *Tree) bool { return time.Since(t.last) >= idle })
}

// ReleaseUnusedAll closes every source nothing uses now, logging why
// (disk lock: their scratch clones share the key being forgotten).
func (m *Manager) ReleaseUnusedAll(why string) {
	m.release(why, func(*Tree) bool { return true })
}

// ReleaseUnused closes every source nothing uses now for which gone
// reports true (a snapshot or image deleted: the service calls it after a
// delete, so the scratch clone of a deleted snapshot's filesystem does not
// keep its blocks from gc until the idle timeout; trial 8). gone is called
// with the manager's lock held: it must not call back into the manager.
func (m *Manager) ReleaseUnused(gone func(Source) bool) {
	m.release("releasing the filesystem of a deleted snapshot or image", func(t *Tree) bool { return gone(t.src) })
}

// release closes every unpinned source for which victim reports true
// (called with the manager's lock held), logging why.
func (m *Manager) release(why string, victim func(*Tree) bool) {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.mu.Lock()
	var victims []*Tree
	for k, t := range m.open {
		if t.pins == 0 && victim(t) {
			victims = append(victims, t)
			delete(m.open, k)
		}
	}
	m.mu.Unlock()
	for _, t := range victims {
		m.log.Info(why, "source", t.src.String())
		t.close()
	}
}

// ReleaseAll closes every open source, in use or not (files open inside
// them are closed: reads on them fail). The daemon calls it before it
// unmounts; later accesses open them again.
func (m *Manager) ReleaseAll() {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.mu.Lock()
	victims := make([]*Tree, 0, len(m.open))
	for k, t := range m.open {
		victims = append(victims, t)
		delete(m.open, k)
	}
	m.mu.Unlock()
	for _, t := range victims {
		t.close()
	}
}

// Close releases everything and stops the idle timer; Acquire fails after.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	close(m.stop)
	<-m.done
	m.ReleaseAll()
	return nil
}

// openTree makes the scratch clone, attaches it to a loop device (with
// partition scanning when it has a partition table) and mounts every
// filesystem read-only. On error it undoes what it did.
func (m *Manager) openTree(src Source, layout Layout, dir string) (_ *Tree, err error) {
	t := &Tree{m: m, src: src, layout: layout, dir: dir, mounts: map[string]string{}, broken: map[string]error{}, files: map[*os.File]struct{}{}}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	name, file, err := m.host.Scratch(src)
	if err != nil {
		return nil, fmt.Errorf("files: scratch clone of %s: %w", src, err)
	}
	t.clone = name
	for _, p := range layout.Parts {
		sub := "fs"
		if p.Name != "" {
			sub = p.Name
		}
		mp := filepath.Join(dir, sub)
		if err := os.Mkdir(mp, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("files: %w", err)
		}
		loop, err := MountImage(file, p, mp, m.opts.MountTimeout)
		if err != nil {
			_ = os.Remove(mp)
			if errors.Is(err, syscall.ENOKEY) {
				// An encrypted disk whose key was locked: not corruption,
				// and not remembered (it opens once unlocked).
				return nil, fmt.Errorf("%w: %s: its disk's key is locked (snapfs disk unlock): %v", rowstore.ErrLocked, src, err)
			}
			// %v, not %w: the errno of mount(2) (EINVAL for a bad
			// geometry) is not what a reader of the directory gets: EIO.
			err = fmt.Errorf("%w: %s %s: %v", rowstore.ErrCorrupt, src, partLabel(p), err)
			if len(layout.Parts) == 1 {
				return nil, err
			}
			m.log.Warn("cannot mount a partition; the others are shown", "err", err)
			t.broken[p.Name] = err
			continue
		}
		t.loops = append(t.loops, loop)
		t.mounts[p.Name] = mp
	}
	return t, nil
}

func partLabel(p Part) string {
	if p.Name == "" {
		return "(" + p.FSType + ")"
	}
	return p.Name + " (" + p.FSType + ")"
}

// close closes tracked files, unmounts, detaches the loop device and
// drops the clone. Problems are logged: what cannot be undone now is
// undone at the next daemon start (Clean and the scratch ledger).
func (t *Tree) close() {
	m := t.m
	m.mu.Lock()
	files := t.files
	t.files = map[*os.File]struct{}{}
	m.mu.Unlock()
	for f := range files {
		_ = f.Close()
	}
	// t.mounts is not changed: a holder may still read it (Dir) while
	// ReleaseAll closes a tree in use; its paths then lead nowhere.
	for _, mp := range t.mounts {
		if err := unmount(mp); err != nil {
			m.log.Warn("unmount", "mountpoint", mp, "err", err)
		}
		_ = os.Remove(mp)
	}
	for _, loop := range t.loops {
		if err := detachLoop(loop, t.clone); err != nil {
			m.log.Warn("detach loop device", "loop", loop, "err", err)
		}
	}
	if t.clone != "" {
		if err := m.host.DropScratch(t.clone); err != nil {
			m.log.Warn("drop scratch clone (removed at the next daemon start)", "clone", t.clone, "err", err)
		}
	}
	_ = os.Remove(t.dir)
}
