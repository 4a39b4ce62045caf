package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// remoteState is what the mount's M/regions/ tree needs of the regions:
// short-lived listings of each region's snapshots, the disks open for
// reading (shared by every open of one disk, closed with the last), and
// the block cache they fill (<store>/regions/<r>.cache/blocks, bounded:
// mount --region-cache).
type remoteState struct {
	mu       sync.Mutex
	cacheMax int64
	cache    *replicate.BlockCache
	lists    map[string]remoteList
	disks    map[string]*sharedRemote
	overlays map[string]*remoteOverlay // scratch clones of remote disks, by name
}

type remoteList struct {
	at    time.Time
	snaps []RemoteView
}

// RemoteListTTL is how long a region's listing is reused by the mount
// (a listing reads every manifest of the region from the stores).
const RemoteListTTL = 10 * time.Second

// RemoteView is a snapshot of a region as the mount shows it.
type RemoteView struct {
	// Name is the directory's name: the snapshot's name, or name@host when
	// several hosts' snapshots in the region share the name.
	Name     string
	Snapshot string // the snapshot's own name
	HostID   string
	Host     string
	ID       uint64
	Created  time.Time
	Disks    []replicate.RemoteDiskInfo
}

// Key identifies the snapshot (its host and id).
func (v RemoteView) Key() string { return v.HostID + "/" + strconv.FormatUint(v.ID, 10) }

// SetRegionCache bounds the mount's cache of remote blocks (<= 0: the
// default, replicate.DefaultBlockCache). Call it before serving.
func (l *Local) SetRegionCache(max int64) {
	l.rem.mu.Lock()
	l.rem.cacheMax = max
	l.rem.mu.Unlock()
}

// RegionCache is the block cache of remote disks, opened on first use.
func (l *Local) RegionCache() (*replicate.BlockCache, error) {
	l.rem.mu.Lock()
	defer l.rem.mu.Unlock()
	if l.rem.cache != nil {
		return l.rem.cache, nil
	}
	m, err := l.manager()
	if err != nil {
		return nil, err
	}
	c, err := m.OpenBlockCache(l.rem.cacheMax)
	if err != nil {
		return nil, err
	}
	l.rem.cache = c
	return c, nil
}

// RemoteRegions lists the configured regions (for M/regions/).
func (l *Local) RemoteRegions() ([]string, error) { return l.regionNames() }

// RemoteViews lists the available snapshots of region (read from its
// manifests, reused for RemoteListTTL; no pack is read).
func (l *Local) RemoteViews(ctx context.Context, region string) ([]RemoteView, error) {
	l.rem.mu.Lock()
	if c, ok := l.rem.lists[region]; ok && time.Since(c.at) < RemoteListTTL {
		l.rem.mu.Unlock()
		return c.snaps, nil
	}
	l.rem.mu.Unlock()
	m, err := l.manager()
	if err != nil {
		return nil, err
	}
	rs, err := m.ListRemote(ctx, region)
	if err != nil {
		return nil, err
	}
	count := map[string]int{}
	for _, r := range rs {
		if r.State == replicate.StateAvailable || r.State == replicate.StateDegraded {
			count[r.Name]++
		}
	}
	out := make([]RemoteView, 0, len(rs))
	for _, r := range rs {
		if r.State != replicate.StateAvailable && r.State != replicate.StateDegraded {
			continue // copying: no manifest yet
		}
		name := r.Name
		if count[r.Name] > 1 {
			name = r.Name + "@" + r.HostID
		}
		out = append(out, RemoteView{Name: name, Snapshot: r.Name, HostID: r.HostID, Host: r.Host, ID: r.ID, Created: r.Created, Disks: r.Disks})
	}
	l.rem.mu.Lock()
	if l.rem.lists == nil {
		l.rem.lists = map[string]remoteList{}
	}
	l.rem.lists[region] = remoteList{at: time.Now(), snaps: out}
	l.rem.mu.Unlock()
	return out, nil
}

// sharedRemote is a remote disk open for reading, shared by its opens.
type sharedRemote struct {
	d      *replicate.RemoteDisk
	refs   int
	closed bool // by closeRemote (Local.Close): the last Close does nothing
}

// RemoteReader reads a remote disk (M/regions/<r>/<s>/<d>): ReadAt is
// the RemoteDisk's (verified blocks, through the block cache; errors wrap
// replicate.ErrUnavailable, EIO at the mount).
type RemoteReader struct {
	l    *Local
	key  string
	s    *sharedRemote // the shared open this one counts in
	d    *replicate.RemoteDisk
	once sync.Once
}

// ReadAt implements io.ReaderAt.
func (r *RemoteReader) ReadAt(p []byte, off int64) (int, error) { return r.d.ReadAt(p, off) }

// Size is the disk's size.
func (r *RemoteReader) Size() int64 { return r.d.Size() }

// BlockSize is the disk's block size.
func (r *RemoteReader) BlockSize() int { return r.d.BlockSize() }

// Stats are the shared disk's counters.
func (r *RemoteReader) Stats() replicate.RemoteStats { return r.d.Stats() }

// Close ends this open; the disk (and its region lock) is closed with the
// last one.
func (r *RemoteReader) Close() error {
	var err error
	r.once.Do(func() {
		l := r.l
		l.rem.mu.Lock()
		s := r.s
		s.refs--
		last := s.refs == 0 && !s.closed
		if last {
			s.closed = true
			if l.rem.disks[r.key] == s {
				delete(l.rem.disks, r.key)
			}
		}
		l.rem.mu.Unlock()
		if last {
			err = s.d.Close()
		}
	})
	return err
}

// OpenRemoteDisk opens disk of the snapshot named name (a RemoteView
// name) of region for reading, sharing one RemoteDisk (and one region
// lock, which keeps prune and repair out while it is open) between opens.
func (l *Local) OpenRemoteDisk(ctx context.Context, region, name, disk string) (*RemoteReader, error) {
	snaps, err := l.RemoteViews(ctx, region)
	if err != nil {
		return nil, err
	}
	var v *RemoteView
	for i := range snaps {
		if snaps[i].Name == name {
			v = &snaps[i]
		}
	}
	if v == nil {
		return nil, fmt.Errorf("%w: snapshot %q in region %q", rowstore.ErrNotFound, name, region)
	}
	key := region + "\x00" + v.Key() + "\x00" + disk
	l.rem.mu.Lock()
	if s, ok := l.rem.disks[key]; ok {
		s.refs++
		l.rem.mu.Unlock()
		return &RemoteReader{l: l, key: key, s: s, d: s.d}, nil
	}
	l.rem.mu.Unlock()
	m, err := l.manager()
	if err != nil {
		return nil, err
	}
	cache, err := l.RegionCache()
	if err != nil {
		return nil, err
	}
	d, err := m.OpenRemoteDiskOf(ctx, region, v.HostID, v.Snapshot, disk)
	if err != nil {
		return nil, err
	}
	if d.Encrypted() {
		// As restore never makes it a plain disk, the mount never shows
		// its bytes in the clear.
		_ = d.Close()
		return nil, fmt.Errorf("%w: disk %q of remote snapshot %q was encrypted on its host: restore it into an encrypted disk (restore --encrypt) to read it", rowstore.ErrLocked, disk, name)
	}
	d.SetCache(cache)
	l.rem.mu.Lock()
	defer l.rem.mu.Unlock()
	if l.rem.disks == nil {
		l.rem.disks = map[string]*sharedRemote{}
	}
	if s, ok := l.rem.disks[key]; ok { // opened meanwhile: use that one
		s.refs++
		go d.Close()
		return &RemoteReader{l: l, key: key, s: s, d: s.d}, nil
	}
	s := &sharedRemote{d: d, refs: 1}
	l.rem.disks[key] = s
	return &RemoteReader{l: l, key: key, s: s, d: d}, nil
}

// closeRemote closes the remote disks still open (at Close).
func (l *Local) closeRemote() {
	l.rem.mu.Lock()
	disks := l.rem.disks
	l.rem.disks = nil
	for _, s := range disks {
		s.closed = true
	}
	l.rem.mu.Unlock()
	for _, s := range disks {
		_ = s.d.Close()
	}
}

// A .files directory of a remote disk (M/regions/<r>/<s>/<d>.files) is
// opened as a local one is (browse: a writable scratch clone on a loop
// device, mounted read-only, so a journal is replayed into the clone and
// the snapshot is never written), but the clone is an overlay: an empty
// local disk that holds only what was written to it (journal replay),
// in front of the remote disk. Reads of blocks not written come from the
// region (RemoteDisk: verified, through the block cache); the first
// write to a block copies it from the region and writes it whole. The
// record of written blocks lives in memory, as long as the clone: a
// clone is never reused (the daemon drops it with its tree, and a crash
// leaves it to the scratch ledger's cleanup at the next start).
type remoteOverlay struct {
	r       *RemoteReader
	bs      int64
	mu      sync.Mutex
	written map[int64]bool
}

// remoteScratch makes the overlay clone of a remote disk (see above).
func (l *Local) remoteScratch(src browse.Source) (Disk, error) {
	r, err := l.OpenRemoteDisk(context.Background(), src.Region, src.Snapshot, src.Disk)
	if err != nil {
		return Disk{}, err
	}
	what := strings.NewReplacer("@", "-", "/", "-").Replace("region-" + src.Region + "-" + src.Snapshot + "-" + src.Disk)
	l.mu.Lock()
	l.scratch++
	name := fmt.Sprintf("%s%s-%d", ScratchPrefix, what, l.scratch)
	if len(name) > rowstore.MaxNameLen {
		name = fmt.Sprintf("%sregion-%d", ScratchPrefix, l.scratch)
	}
	l.mu.Unlock()
	if _, err := l.store.GetDisk(name); err == nil {
		_ = r.Close()
		return Disk{}, fmt.Errorf("%w: scratch clone name %s is taken", rowstore.ErrExists, name)
	}
	if err := l.recordScratchEntry(scratchEntry{Clone: name, Snapshot: src.Snapshot, Disk: src.Disk, Mountpoint: l.mountpoint}); err != nil {
		_ = r.Close()
		return Disk{}, err
	}
	d, err := l.store.CreateDisk(name, r.Size(), r.BlockSize())
	if err != nil {
		_ = ForgetScratch(l.dir, name)
		_ = r.Close()
		return Disk{}, err
	}
	l.rem.mu.Lock()
	if l.rem.overlays == nil {
		l.rem.overlays = map[string]*remoteOverlay{}
	}
	l.rem.overlays[name] = &remoteOverlay{r: r, bs: int64(r.BlockSize()), written: map[int64]bool{}}
	l.rem.mu.Unlock()
	return d, nil
}

// dropRemoteScratch forgets the overlay of a clone being deleted.
func (l *Local) dropRemoteScratch(name string) {
	l.rem.mu.Lock()
	o := l.rem.overlays[name]
	delete(l.rem.overlays, name)
	l.rem.mu.Unlock()
	if o != nil {
		_ = o.r.Close()
	}
}

// OpenRemoteScratch opens the overlay clone called name for the mount's
// M/disks/<name> (ok false: name is no such clone).
func (l *Local) OpenRemoteScratch(name string) (_ *OverlayHandle, ok bool, _ error) {
	l.rem.mu.Lock()
	o := l.rem.overlays[name]
	l.rem.mu.Unlock()
	if o == nil {
		return nil, false, nil
	}
	h, err := l.store.OpenDisk(name)
	if err != nil {
		return nil, true, err
	}
	return &OverlayHandle{o: o, h: h}, true, nil
}

// OverlayHandle reads and writes an overlay clone (see remoteOverlay).
type OverlayHandle struct {
	o *remoteOverlay
	h *rowstore.Disk
}

// Size is the clone's size.
func (h *OverlayHandle) Size() int64 { return h.h.Size() }

// Allocated is the bytes written to the clone.
func (h *OverlayHandle) Allocated() int64 { return h.h.Allocated() }

// Sync makes the clone's writes durable.
func (h *OverlayHandle) Sync() error { return h.h.Sync() }

// Close closes this open of the clone.
func (h *OverlayHandle) Close() error { return h.h.Close() }

// ReadAt reads written blocks from the clone and the others from the
// region.
func (h *OverlayHandle) ReadAt(p []byte, off int64) (int, error) {
	size := h.h.Size()
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := len(p)
	var eof error
	if int64(n) > size-off {
		n, eof = int(size-off), io.EOF
	}
	bs := h.o.bs
	for pos := off; pos < off+int64(n); {
		b := pos / bs
		end := min((b+1)*bs, off+int64(n))
		h.o.mu.Lock()
		w := h.o.written[b]
		h.o.mu.Unlock()
		// Runs of blocks from the same side are read with one call.
		for end < off+int64(n) {
			h.o.mu.Lock()
			same := h.o.written[end/bs] == w
			h.o.mu.Unlock()
			if !same {
				break
			}
			end = min(end+bs, off+int64(n))
		}
		seg := p[pos-off : end-off]
		var err error
		if w {
			_, err = h.h.ReadAt(seg, pos)
		} else {
			_, err = h.o.r.ReadAt(seg, pos)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		pos = end
	}
	return n, eof
}

// WriteAt writes to the clone; a block's first write brings the rest of
// it from the region.
func (h *OverlayHandle) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > h.h.Size() {
		return h.h.WriteAt(p, off) // its error: past the end
	}
	h.o.mu.Lock()
	defer h.o.mu.Unlock()
	bs := h.o.bs
	var buf []byte
	for pos := off; pos < off+int64(len(p)); {
		b := pos / bs
		start := b * bs
		end := min(start+bs, off+int64(len(p)))
		seg := p[pos-off : end-off]
		if !h.o.written[b] && (pos != start || end != start+bs) {
			if buf == nil {
				buf = make([]byte, bs)
			}
			full := buf[:min(bs, h.h.Size()-start)]
			if _, err := h.o.r.ReadAt(full, start); err != nil && !errors.Is(err, io.EOF) {
				return int(pos - off), err
			}
			copy(full[pos-start:], seg)
			if _, err := h.h.WriteAt(full, start); err != nil {
				return int(pos - off), err
			}
		} else if _, err := h.h.WriteAt(seg, pos); err != nil {
			return int(pos - off), err
		}
		h.o.written[b] = true
		pos = end
	}
	return len(p), nil
}

// PunchHole makes the range read as zeros (written as zeros: a hole in
// the clone would show the region's data again).
func (h *OverlayHandle) PunchHole(off, length int64) error {
	const chunk = 1 << 20
	zeros := make([]byte, min(length, chunk))
	for length > 0 {
		n := min(length, chunk)
		if _, err := h.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
		length -= n
	}
	return nil
}
