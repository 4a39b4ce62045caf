package service

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

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
	d    *replicate.RemoteDisk
	refs int
}

// RemoteReader reads a remote disk (M/regions/<r>/<s>/<d>): ReadAt is
// the RemoteDisk's (verified blocks, through the block cache; errors wrap
// replicate.ErrUnavailable, EIO at the mount).
type RemoteReader struct {
	l    *Local
	key  string
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
		s := l.rem.disks[r.key]
		s.refs--
		last := s.refs == 0
		if last {
			delete(l.rem.disks, r.key)
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
		return &RemoteReader{l: l, key: key, d: s.d}, nil
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
	d.SetCache(cache)
	l.rem.mu.Lock()
	defer l.rem.mu.Unlock()
	if l.rem.disks == nil {
		l.rem.disks = map[string]*sharedRemote{}
	}
	if s, ok := l.rem.disks[key]; ok { // opened meanwhile: use that one
		s.refs++
		go d.Close()
		return &RemoteReader{l: l, key: key, d: s.d}, nil
	}
	l.rem.disks[key] = &sharedRemote{d: d, refs: 1}
	return &RemoteReader{l: l, key: key, d: d}, nil
}

// closeRemote closes the remote disks still open (at Close).
func (l *Local) closeRemote() {
	l.rem.mu.Lock()
	disks := l.rem.disks
	l.rem.disks = nil
	l.rem.mu.Unlock()
	for _, s := range disks {
		_ = s.d.Close()
	}
}

