package fs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapfs/snapfs/rowstore"
)

// memBackend is an in-memory Backend for the FUSE tests: a map of byte
// slices, snapshots and images as copies. The engine replaces it in the
// integration tests.
type memBackend struct {
	mu     sync.Mutex
	nextID uint64
	disks  map[string]*memDisk
	snaps  map[string]*memSnap
	images map[string]*memImage

	syncs   atomic.Int64
	punches atomic.Int64
	opens   atomic.Int64 // open handles now

	failSync  error // returned by Sync when set
	panicDisk bool  // Disk panics when set
}

type memDisk struct {
	id        uint64
	data      []byte
	blockSize int
	created   time.Time
	modified  time.Time
}

type memSnap struct {
	id      uint64
	created time.Time
	order   []string
	disks   map[string][]byte
	json    []byte
}

type memImage struct {
	id      uint64
	data    []byte
	created time.Time
}

func newMemBackend() *memBackend {
	return &memBackend{
		disks:  map[string]*memDisk{},
		snaps:  map[string]*memSnap{},
		images: map[string]*memImage{},
	}
}

var errClosedHandle = fmt.Errorf("handle closed: %w", rowstore.ErrClosed)

func (b *memBackend) id() uint64 { b.nextID++; return b.nextID }

func (b *memBackend) addDisk(name string, size int64) *memDisk {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	d := &memDisk{id: b.id(), data: make([]byte, size), blockSize: 4096, created: now, modified: now}
	b.disks[name] = d
	return d
}

// snapshot copies the named disks into a new snapshot.
func (b *memBackend) snapshot(name string, disks ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &memSnap{id: b.id(), created: time.Now(), disks: map[string][]byte{}}
	for _, d := range disks {
		s.disks[d] = bytes.Clone(b.disks[d].data)
		s.order = append(s.order, d)
	}
	s.json, _ = json.Marshal(map[string]any{"name": name, "id": s.id, "disks": disks})
	s.json = append(s.json, '\n')
	b.snaps[name] = s
}

func (b *memBackend) deleteSnapshot(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.snaps, name)
}

func (b *memBackend) addImage(name string, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.images[name] = &memImage{id: b.id(), data: bytes.Clone(data), created: time.Now()}
}

// diskData returns a copy of a disk's bytes.
func (b *memBackend) diskData(name string) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.disks[name].data)
}

func allocated(data []byte, bs int) int64 {
	var n int64
	zero := make([]byte, bs)
	for off := 0; off < len(data); off += bs {
		blk := data[off:min(off+bs, len(data))]
		if !bytes.Equal(blk, zero[:len(blk)]) {
			n += int64(bs)
		}
	}
	return n
}

func (b *memBackend) diskEntryLocked(name string, d *memDisk) DiskEntry {
	return DiskEntry{ID: d.id, Name: name, Size: int64(len(d.data)), Allocated: allocated(d.data, d.blockSize),
		BlockSize: d.blockSize, Created: d.created, Modified: d.modified}
}

func (b *memBackend) Disks() ([]DiskEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []DiskEntry
	for name, d := range b.disks {
		out = append(out, b.diskEntryLocked(name, d))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (b *memBackend) Disk(name string) (DiskEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.panicDisk {
		panic("memBackend: injected panic")
	}
	d, ok := b.disks[name]
	if !ok {
		return DiskEntry{}, fmt.Errorf("disk %q: %w", name, rowstore.ErrNotFound)
	}
	return b.diskEntryLocked(name, d), nil
}

func (b *memBackend) OpenDisk(name string) (DiskHandle, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.disks[name]
	if !ok {
		return nil, fmt.Errorf("disk %q: %w", name, rowstore.ErrNotFound)
	}
	b.opens.Add(1)
	return &memDiskHandle{b: b, d: d}, nil
}

func (b *memBackend) ResizeDisk(name string, size int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.disks[name]
	if !ok {
		return fmt.Errorf("disk %q: %w", name, rowstore.ErrNotFound)
	}
	if size < int64(len(d.data)) {
		return fmt.Errorf("shrink disk %q: %w", name, rowstore.ErrInvalid)
	}
	d.data = append(d.data, make([]byte, size-int64(len(d.data)))...)
	return nil
}

func (b *memBackend) snapEntryLocked(name string, s *memSnap) SnapshotEntry {
	e := SnapshotEntry{ID: s.id, Name: name, Created: s.created, JSON: s.json}
	for _, d := range s.order {
		data := s.disks[d]
		e.Disks = append(e.Disks, SnapshotDisk{Name: d, Size: int64(len(data)), Allocated: allocated(data, 4096)})
	}
	return e
}

func (b *memBackend) Snapshots() ([]SnapshotEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []SnapshotEntry
	for name, s := range b.snaps {
		out = append(out, b.snapEntryLocked(name, s))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (b *memBackend) Snapshot(name string) (SnapshotEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.snaps[name]
	if !ok {
		return SnapshotEntry{}, fmt.Errorf("snapshot %q: %w", name, rowstore.ErrNotFound)
	}
	return b.snapEntryLocked(name, s), nil
}

func (b *memBackend) OpenSnapshotDisk(snap, disk string) (ReadHandle, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.snaps[snap]
	if !ok {
		return nil, fmt.Errorf("snapshot %q: %w", snap, rowstore.ErrNotFound)
	}
	data, ok := s.disks[disk]
	if !ok {
		return nil, fmt.Errorf("snapshot %q disk %q: %w", snap, disk, rowstore.ErrNotFound)
	}
	b.opens.Add(1)
	return &memReadHandle{b: b, data: data}, nil
}

func (b *memBackend) Images() ([]ImageEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []ImageEntry
	for name, im := range b.images {
		out = append(out, ImageEntry{ID: im.id, Name: name, Size: int64(len(im.data)), Allocated: allocated(im.data, 4096), Created: im.created})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (b *memBackend) Image(name string) (ImageEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	im, ok := b.images[name]
	if !ok {
		return ImageEntry{}, fmt.Errorf("image %q: %w", name, rowstore.ErrNotFound)
	}
	return ImageEntry{ID: im.id, Name: name, Size: int64(len(im.data)), Allocated: allocated(im.data, 4096), Created: im.created}, nil
}

func (b *memBackend) OpenImage(name string) (ReadHandle, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	im, ok := b.images[name]
	if !ok {
		return nil, fmt.Errorf("image %q: %w", name, rowstore.ErrNotFound)
	}
	b.opens.Add(1)
	return &memReadHandle{b: b, data: im.data}, nil
}

// memReadHandle reads an immutable byte slice.
type memReadHandle struct {
	b      *memBackend
	data   []byte
	closed atomic.Bool
}

func (h *memReadHandle) ReadAt(p []byte, off int64) (int, error) {
	if h.closed.Load() {
		return 0, errClosedHandle
	}
	if off >= int64(len(h.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *memReadHandle) Size() int64 { return int64(len(h.data)) }

func (h *memReadHandle) Close() error {
	if h.closed.Swap(true) {
		return errClosedHandle
	}
	h.b.opens.Add(-1)
	return nil
}

// memDiskHandle reads and writes a memDisk under the backend's lock.
type memDiskHandle struct {
	b      *memBackend
	d      *memDisk
	closed atomic.Bool
}

func (h *memDiskHandle) ReadAt(p []byte, off int64) (int, error) {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	if h.closed.Load() {
		return 0, errClosedHandle
	}
	if off >= int64(len(h.d.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.d.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *memDiskHandle) WriteAt(p []byte, off int64) (int, error) {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	if h.closed.Load() {
		return 0, errClosedHandle
	}
	if off < 0 || off+int64(len(p)) > int64(len(h.d.data)) {
		return 0, fmt.Errorf("write [%d,+%d) past size %d: %w", off, len(p), len(h.d.data), rowstore.ErrInvalid)
	}
	h.d.modified = time.Now()
	return copy(h.d.data[off:], p), nil
}

func (h *memDiskHandle) Size() int64 {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	return int64(len(h.d.data))
}

func (h *memDiskHandle) Sync() error {
	h.b.syncs.Add(1)
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	return h.b.failSync
}

func (h *memDiskHandle) PunchHole(off, length int64) error {
	h.b.punches.Add(1)
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	if off < 0 || length < 0 || off+length > int64(len(h.d.data)) {
		return fmt.Errorf("punch [%d,+%d): %w", off, length, rowstore.ErrInvalid)
	}
	clear(h.d.data[off : off+length])
	return nil
}

func (h *memDiskHandle) Allocated() int64 {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	return allocated(h.d.data, h.d.blockSize)
}

func (h *memDiskHandle) Close() error {
	if h.closed.Swap(true) {
		return errClosedHandle
	}
	h.b.opens.Add(-1)
	return nil
}
