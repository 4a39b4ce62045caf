package replicate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/rowstore"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// Retention is a region's own retention of this host's snapshots, kept in
// the region's local configuration. Prune applies it when it is given no
// other, and Sync copies no snapshot that it would remove at once (see
// retained), so sync and prune agree: a snapshot is shipped to a region
// once, and what the retention removed is never shipped again (the
// tombstones under pruned/ cover snapshots that aged out after they were
// copied).
type Retention struct {
	// KeepLast keeps the newest KeepLast snapshots of each disk set;
	// KeepWithin those younger than KeepWithin. Zero: not set.
	KeepLast   int           `json:"keep_last,omitempty"`
	KeepWithin time.Duration `json:"keep_within,omitempty"`
}

// IsZero reports whether no retention is set.
func (r Retention) IsZero() bool { return r.KeepLast <= 0 && r.KeepWithin <= 0 }

func (r Retention) validate() error {
	if r.KeepLast < 0 || r.KeepWithin < 0 {
		return fmt.Errorf("%w: negative retention (keep-last %d, keep-within %s)", ErrInvalid, r.KeepLast, r.KeepWithin)
	}
	return nil
}

// SetRetention sets (or with a zero Retention clears) the region's
// retention in its local configuration.
func (m *Manager) SetRetention(name string, ret Retention) (RegionConfig, error) {
	if err := validRegionName(name); err != nil {
		return RegionConfig{}, err
	}
	if err := ret.validate(); err != nil {
		return RegionConfig{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.loadConfig(name)
	if err != nil {
		return RegionConfig{}, err
	}
	c.Retention = ret
	if err := m.saveConfig(c); err != nil {
		return RegionConfig{}, err
	}
	m.log.Info("region retention set", "region", name, "keep_last", ret.KeepLast, "keep_within", ret.KeepWithin)
	return c, nil
}

// retained returns the snapshots of todo that the retention ret keeps:
// per disk set, the KeepLast newest of the local snapshots (a newer local
// snapshot is copied by the same sync, so an older one beyond KeepLast
// would be pruned at once) and those younger than KeepWithin at now. The
// order of todo is kept; skipped counts the others. A zero ret keeps all.
func retained(todo, local []rowstore.SnapshotInfo, ret Retention, now time.Time) (keep []rowstore.SnapshotInfo, skipped int) {
	if ret.IsZero() {
		return todo, 0
	}
	group := func(s rowstore.SnapshotInfo) string {
		var ds []string
		for _, d := range s.Disks {
			ds = append(ds, d.Name)
		}
		slices.Sort(ds)
		return fmt.Sprint(ds)
	}
	newest := slices.Clone(local)
	slices.SortStableFunc(newest, func(a, b rowstore.SnapshotInfo) int { return b.Created.Compare(a.Created) })
	rank := map[uint64]int{}
	seen := map[string]int{}
	for _, s := range newest {
		g := group(s)
		rank[s.ID] = seen[g]
		seen[g]++
	}
	for _, s := range todo {
		r, ok := rank[s.ID]
		if (ok && ret.KeepLast > 0 && r < ret.KeepLast) || (ret.KeepWithin > 0 && now.Sub(s.Created) <= ret.KeepWithin) {
			keep = append(keep, s)
			continue
		}
		skipped++
	}
	return keep, skipped
}

// prepareLocal checks a file:// store's directory before a region is
// created on it: it must exist (an unmounted file system must never turn
// into a directory on the root disk), unless create asks to make it.
func prepareLocal(root string, create bool) error {
	fi, err := os.Stat(root)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%w: %s is not a directory", store.ErrInvalidURL, root)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store %s: %w", root, err)
	}
	if !create {
		return fmt.Errorf("%w: directory %s does not exist (a file system not mounted?); create it, or pass --create to have region add make it", store.ErrMissing, root)
	}
	// Every directory made is synced into its parent (not only root's).
	if err := vfs.MkdirAllSync(vfs.Default, root, 0o755); err != nil {
		return fmt.Errorf("store: create %s: %w", root, err)
	}
	return nil
}

// holdsRegionObjects reports whether a store without its config object
// holds objects of a region (packs, indexes, manifests, markers,
// tombstones): then it is the region's store and lost its config. An
// empty one (an unmounted file system's mount point, an emptied bucket)
// is not, and nothing is written there. A listing error counts as empty.
func holdsRegionObjects(ctx context.Context, s store.Store) bool {
	found := false
	for _, dir := range []string{packDir, indexDir, snapDir, copyDir, prunedDir} {
		err := s.List(ctx, dir, func(string, int64) error { found = true; return errStopList })
		if found || (err != nil && !errors.Is(err, errStopList)) {
			break
		}
	}
	return found
}

var errStopList = errors.New("stop")

// StoreUsage is what one store of a region holds: its objects and their
// bytes (as the store reports them: file sizes, S3 object sizes), or why
// it could not be listed.
type StoreUsage struct {
	Store   int    `json:"store"`
	URL     string `json:"url"`
	Objects int64  `json:"objects"`
	Bytes   int64  `json:"bytes"`
	Error   string `json:"error,omitempty"`
}

// Usage lists every store of the region and sums its objects' sizes. A
// store that cannot be listed is reported with its error, not failed.
func (m *Manager) Usage(ctx context.Context, regionName string) ([]StoreUsage, error) {
	if err := validRegionName(regionName); err != nil {
		return nil, err
	}
	c, err := m.loadConfig(regionName)
	if err != nil {
		return nil, err
	}
	stores, errs := m.openStores(ctx, c)
	defer func() {
		for _, s := range stores {
			if s != nil {
				_ = s.Close()
			}
		}
	}()
	out := make([]StoreUsage, len(stores))
	_ = forEach(len(stores), func(i int) error {
		u := StoreUsage{Store: i, URL: store.Redact(c.Stores[i])}
		if stores[i] != nil {
			u.URL = stores[i].Location()
		}
		err := errs[i]
		if err == nil {
			err = stores[i].List(ctx, "", func(_ string, size int64) error {
				u.Objects++
				u.Bytes += max(size, 0)
				return nil
			})
		}
		if err != nil {
			u.Error = err.Error()
		}
		out[i] = u
		return nil
	})
	return out, nil
}
