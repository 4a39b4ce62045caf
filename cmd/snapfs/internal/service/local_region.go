package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
	"github.com/snapfs/snapfs/rowstore/policy"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// regionState is the region half of a Local: one replicate.Manager for the
// process (made on first use, closed by Close) and this host's record of
// which snapshots are in which region.
//
// The record (<store>/copies/<region>.json) is rewritten from the region's
// listing after every sync, check, repair, prune, region add and region
// snapshots, and marks a snapshot "copying" as soon as a sync starts on it.
// Only the process that holds the store writes it, so the in-memory copy is
// authoritative: snapshot info and snapshot.json read it without touching a
// store.
type regionState struct {
	once   sync.Once
	mgr    *replicate.Manager
	mgrErr error

	mu      sync.Mutex
	names   []string                // configured regions; nil: not loaded
	records map[string]*copyRecords // by region
	// syncing: the regions a sync of this process runs to, closed when it
	// ends (syncTurn): two syncs of one host to one region (a policy's
	// copy beside the hourly job, two commands) run one after the other,
	// the second finding the first's copies there, instead of both
	// shipping every snapshot (twice the bytes; one copy's packs garbage).
	syncing map[string]chan struct{}
}

// errSyncBusy: another sync of this process runs to the region and the
// caller asked not to wait for it (a policy's copy: see copyPending).
var errSyncBusy = errors.New("another sync to the region is running")

// syncTurn waits until no other sync of this process runs to region and
// returns the function that ends this one's turn. Without wait it fails
// with errSyncBusy instead of waiting.
func (l *Local) syncTurn(ctx context.Context, region string, wait bool) (func(), error) {
	for {
		l.reg.mu.Lock()
		ch, busy := l.reg.syncing[region]
		if !busy {
			if l.reg.syncing == nil {
				l.reg.syncing = map[string]chan struct{}{}
			}
			mine := make(chan struct{})
			l.reg.syncing[region] = mine
			l.reg.mu.Unlock()
			return func() {
				l.reg.mu.Lock()
				delete(l.reg.syncing, region)
				l.reg.mu.Unlock()
				close(mine)
			}, nil
		}
		l.reg.mu.Unlock()
		if !wait {
			return nil, fmt.Errorf("region %q: %w", region, errSyncBusy)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// copyRecords is one region's record.
type copyRecords struct {
	// Version of the record's format (1). The record is a cache of the
	// regions' listings: one that does not parse, or is of another version,
	// is dropped and rebuilt by the next region command.
	Version   int                   `json:"version"`
	AsOf      time.Time             `json:"as_of"`
	Snapshots map[string]copyRecord `json:"snapshots"`
}

type copyRecord struct {
	ID      uint64          `json:"id"`
	Created time.Time       `json:"created"`
	State   replicate.State `json:"state"`
	AsOf    time.Time       `json:"as_of"`
}

// manager is the process's replicate.Manager.
func (l *Local) manager() (*replicate.Manager, error) {
	l.reg.once.Do(func() {
		l.reg.mgr, l.reg.mgrErr = replicate.New(l.dir, l.store, replicate.Options{Logger: l.log})
	})
	return l.reg.mgr, l.reg.mgrErr
}

func (l *Local) closeRegions() error {
	if l.reg.mgr != nil {
		return l.reg.mgr.Close()
	}
	return nil
}

func (l *Local) copiesPath(region string) string {
	return filepath.Join(l.dir, "copies", region+".json")
}

// regionNames lists the configured regions (cached; Add and Remove reset it).
func (l *Local) regionNames() ([]string, error) {
	l.reg.mu.Lock()
	names := l.reg.names
	l.reg.mu.Unlock()
	if names != nil {
		return names, nil
	}
	m, err := l.manager()
	if err != nil {
		return nil, err
	}
	cs, err := m.ListRegions()
	if err != nil {
		return nil, err
	}
	names = []string{}
	for _, c := range cs {
		names = append(names, c.Name)
	}
	l.reg.mu.Lock()
	l.reg.names = names
	l.reg.mu.Unlock()
	return names, nil
}

// recordLocked returns region's record, loading it once. l.reg.mu is held.
func (l *Local) recordLocked(region string) *copyRecords {
	if l.reg.records == nil {
		l.reg.records = map[string]*copyRecords{}
	}
	if r, ok := l.reg.records[region]; ok {
		return r
	}
	r := &copyRecords{Snapshots: map[string]copyRecord{}}
	if b, err := os.ReadFile(l.copiesPath(region)); err == nil {
		if json.Unmarshal(b, r) != nil || r.Snapshots == nil || r.Version != 1 {
			r = &copyRecords{Snapshots: map[string]copyRecord{}}
		}
	}
	l.reg.records[region] = r
	return r
}

// saveRecordLocked writes region's record (best effort: it is a cache that
// the next listing rebuilds). l.reg.mu is held.
func (l *Local) saveRecordLocked(region string, r *copyRecords) {
	r.Version = 1
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	path := l.copiesPath(region)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		l.log.Warn("region copies record", "region", region, "err", err)
		return
	}
	if err := vfs.WriteFile(vfs.Default, path, b, 0o600); err != nil {
		l.log.Warn("region copies record", "region", region, "err", err)
	}
}

// recordRemote replaces region's record with a listing of the region.
func (l *Local) recordRemote(region string, remote []RemoteSnapshot) {
	now := time.Now().UTC()
	r := &copyRecords{Version: 1, AsOf: now, Snapshots: map[string]copyRecord{}}
	// A manifest unreadable on every store is listed by its name id
	// (lost): whose snapshot it is cannot be told, so a copy of ours that
	// the listing lacks may be that one, lost, not pruned (the next sync
	// ships it again): not marked pruned then
	// (TestRev15trialLostCopyNotMarkedPruned).
	unnamed := slices.ContainsFunc(remote, func(s RemoteSnapshot) bool { return s.State == replicate.StateLost && s.Name == s.NameID })
	for _, s := range remote {
		if !s.Mine && s.HostID != "unknown" {
			continue // another host's snapshot of the same name is not ours
		}
		if old, ok := r.Snapshots[s.Name]; ok && old.State != replicate.StateCopying && !s.Mine {
			continue // ours (this host's) wins over a copy made before hosts existed
		}
		r.Snapshots[s.Name] = copyRecord{ID: s.ID, Created: s.Created, State: s.State, AsOf: now}
	}
	l.reg.mu.Lock()
	// A copy of ours the region held (available, degraded) and lists no
	// more was removed by a prune (this host's or another's: only prune
	// removes a manifest, a damaged one is listed lost): pruned, which
	// the region lag leaves out, as sync never ships it again. Pruned and
	// expired marks stand until the snapshot is listed again (snapshot
	// copy, or a sync after the retention changed).
	for name, old := range l.recordLocked(region).Snapshots {
		if _, listed := r.Snapshots[name]; listed {
			continue
		}
		switch old.State {
		case replicate.StateAvailable, replicate.StateDegraded:
			if unnamed {
				continue
			}
			old.State = replicate.StatePruned
		case replicate.StatePruned, replicate.StateExpired:
		default:
			continue
		}
		old.AsOf = now
		r.Snapshots[name] = old
	}
	if l.reg.records == nil {
		l.reg.records = map[string]*copyRecords{}
	}
	l.reg.records[region] = r
	l.saveRecordLocked(region, r)
	l.reg.mu.Unlock()
	l.namesChanged() // after l.reg.mu is released: FUSE lookups need it
}

// refresh re-lists region and records it; errors only leave the old record.
func (l *Local) refresh(ctx context.Context, m *replicate.Manager, region string) {
	remote, err := m.ListRemote(ctx, region)
	if err != nil {
		l.log.Debug("region listing for the copies record failed", "region", region, "err", err)
		return
	}
	l.recordRemote(region, remote)
}

// markNotShipped records the snapshots a sync of region left out for
// good (st.PrunedSnapshots: pruned from the region; st.ExpiredSnapshots:
// the region's retention would remove them at once) unless the record
// holds them as in the region.
func (l *Local) markNotShipped(region string, st replicate.Stats) {
	if len(st.PrunedSnapshots)+len(st.ExpiredSnapshots) == 0 {
		return
	}
	now := time.Now().UTC()
	l.reg.mu.Lock()
	defer l.reg.mu.Unlock()
	r := l.recordLocked(region)
	for state, names := range map[replicate.State][]string{replicate.StatePruned: st.PrunedSnapshots, replicate.StateExpired: st.ExpiredSnapshots} {
		for _, name := range names {
			si, err := l.store.GetSnapshot(name)
			if err != nil {
				continue
			}
			if c, ok := r.Snapshots[name]; ok && c.ID == si.ID && (c.State == replicate.StateAvailable || c.State == replicate.StateDegraded) {
				continue
			}
			r.Snapshots[name] = copyRecord{ID: si.ID, Created: si.Created, State: state, AsOf: now}
		}
	}
	l.saveRecordLocked(region, r)
}

// markCopying records that a sync started copying snapshot to region.
func (l *Local) markCopying(region, snapshot string) {
	si, err := l.store.GetSnapshot(snapshot)
	if err != nil {
		return
	}
	l.reg.mu.Lock()
	defer l.reg.mu.Unlock()
	r := l.recordLocked(region)
	if c, ok := r.Snapshots[snapshot]; ok && c.ID == si.ID && c.State == replicate.StateCopying {
		return
	}
	r.Snapshots[snapshot] = copyRecord{ID: si.ID, Created: si.Created, State: replicate.StateCopying, AsOf: time.Now().UTC()}
	l.saveRecordLocked(region, r)
}

// copies is what the record says of si in every configured region.
func (l *Local) copies(si rowstore.SnapshotInfo) []SnapshotCopy {
	names, err := l.regionNames()
	if err != nil || len(names) == 0 {
		return nil
	}
	out := make([]SnapshotCopy, 0, len(names))
	l.reg.mu.Lock()
	defer l.reg.mu.Unlock()
	for _, region := range names {
		r := l.recordLocked(region)
		c := SnapshotCopy{Region: region, State: replicate.StateAbsent, AsOf: r.AsOf}
		if rec, ok := r.Snapshots[si.Name]; ok && rec.ID == si.ID && rec.Created.Equal(si.Created) {
			c.State, c.AsOf = rec.State, rec.AsOf
		}
		out = append(out, c)
	}
	return out
}

func progressOf(p Progress) replicate.Progress {
	if p == nil {
		return replicate.NoProgress{}
	}
	return replicate.ProgressFunc(p)
}

// AddRegion implements Service.
func (l *Local) AddRegion(ctx context.Context, r AddRegionRequest) (AddedRegion, error) {
	m, err := l.manager()
	if err != nil {
		return AddedRegion{}, err
	}
	if !filepath.IsAbs(r.KeyFile) {
		return AddedRegion{}, fmt.Errorf("%w: key file %q: want an absolute path", replicate.ErrInvalid, r.KeyFile)
	}
	info, err := m.AddRegion(ctx, replicate.RegionConfig{Name: r.Name, K: r.K, M: r.M, Stores: r.Stores, KeyFile: r.KeyFile, S3: r.S3, InsecureKeyFile: r.InsecureKeyFile, Retention: r.Retention, Create: r.Create})
	if err != nil {
		return AddedRegion{}, err
	}
	l.reg.mu.Lock()
	l.reg.names = nil
	l.reg.mu.Unlock()
	if info.Attached {
		l.refresh(ctx, m, r.Name)
	} else {
		l.recordRemote(r.Name, nil)
	}
	return info, nil
}

// ListRegions implements Service.
func (l *Local) ListRegions(context.Context) ([]Region, error) {
	m, err := l.manager()
	if err != nil {
		return nil, err
	}
	rs, err := m.ListRegions()
	if rs == nil {
		rs = []Region{}
	}
	return rs, err
}

// GetRegion implements Service.
func (l *Local) GetRegion(_ context.Context, name string) (Region, error) {
	m, err := l.manager()
	if err != nil {
		return Region{}, err
	}
	return m.RegionInfo(name)
}

// RemoveRegion implements Service.
func (l *Local) RemoveRegion(_ context.Context, name string) error {
	m, err := l.manager()
	if err != nil {
		return err
	}
	if err := l.lazyUsers(name); err != nil {
		return err
	}
	if err := l.policyUsers(name); err != nil {
		return err
	}
	if err := m.RemoveRegion(name); err != nil {
		return err
	}
	l.reg.mu.Lock()
	l.reg.names = nil
	delete(l.reg.records, name)
	if err := os.Remove(l.copiesPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		l.log.Warn("region copies record", "region", name, "err", err)
	}
	l.reg.mu.Unlock()
	l.namesChanged()
	return nil
}

// RemoteSnapshots implements Service.
func (l *Local) RemoteSnapshots(ctx context.Context, region string) ([]RemoteSnapshot, error) {
	m, err := l.manager()
	if err != nil {
		return nil, err
	}
	rs, err := m.ListRemote(ctx, region)
	if err != nil {
		return nil, err
	}
	l.recordRemote(region, rs)
	l.markHeld(ctx, m, region, rs) // local_hold.go
	if rs == nil {
		rs = []RemoteSnapshot{}
	}
	return rs, nil
}

// Sync implements Service.
func (l *Local) Sync(ctx context.Context, r SyncRequest, progress Progress) (SyncStats, error) {
	return l.sync(ctx, r, progress, true)
}

// sync is Sync; without wait it fails with errSyncBusy instead of waiting
// for another sync of this process to the region (syncTurn).
func (l *Local) sync(ctx context.Context, r SyncRequest, progress Progress, wait bool) (SyncStats, error) {
	m, err := l.manager()
	if err != nil {
		return SyncStats{}, err
	}
	if r.Snapshot != "" && len(r.Disks) > 0 {
		return SyncStats{}, fmt.Errorf("%w: sync takes a snapshot or disks, not both", rowstore.ErrInvalid)
	}
	if _, err := m.RegionInfo(r.Region); err != nil {
		return SyncStats{}, err
	}
	for _, d := range r.Disks {
		if _, err := l.store.GetDisk(d); err != nil {
			return SyncStats{}, err
		}
	}
	done, err := l.syncTurn(ctx, r.Region, wait)
	if err != nil {
		return SyncStats{}, err
	}
	defer done()
	inner := progressOf(progress)
	p := replicate.ProgressFunc(func(e replicate.Event) {
		if e.Type == replicate.EventSnapshot && e.Snapshot != "" {
			l.markCopying(r.Region, e.Snapshot)
		}
		inner.Event(e)
	})
	var st SyncStats
	if r.Snapshot != "" {
		st, err = m.CopySnapshot(ctx, r.Region, r.Snapshot, p)
	} else {
		st, err = m.Sync(ctx, r.Region, r.Disks, p)
	}
	if !errors.Is(err, replicate.ErrUnavailable) {
		// (A listing of a region whose stores did not answer would wait
		// for them again, as long: a hung S3 service doubled the job's time.)
		l.refresh(context.WithoutCancel(ctx), m, r.Region)
	}
	l.markNotShipped(r.Region, st)
	if err == nil || errors.Is(err, replicate.ErrExists) {
		// (ErrExists: only snapshots whose name the region holds from an
		// older snapshot of this host were left out; the rest is done.)
		// A hold of this host that holds nothing any more can come back
		// (a stale store, then repair): the holder's sync, the hourly
		// job, releases it (TestRtrial10SyncReleasesOwnDeadHolds).
		_ = l.releaseHolds(context.WithoutCancel(ctx), r.Region) // logged
	}
	return st, err
}

// Restore implements Service.
func (l *Local) Restore(ctx context.Context, r RestoreRequest, progress Progress) (RestoreStats, error) {
	if r.Lazy {
		return l.restoreLazy(ctx, r, progress) // local_lazy.go
	}
	if r.Rate != 0 || r.Wait {
		return RestoreStats{}, fmt.Errorf("%w: --rate and --wait go with --lazy", rowstore.ErrInvalid)
	}
	m, err := l.manager()
	if err != nil {
		return RestoreStats{}, err
	}
	var key *rowstore.Key
	if r.KeyFile != "" {
		if key, err = rowstore.LoadKeyFile(r.KeyFile, r.AllowInsecureKeyFile); err != nil {
			return RestoreStats{}, err
		}
	}
	st, err := m.RestoreEncrypted(ctx, r.Region, r.Host, r.Snapshot, r.Disk, r.To, key, progressOf(progress))
	l.namesChanged() // the new disk, or the temporary one gone
	return st, err
}

// CheckRegion implements Service.
func (l *Local) CheckRegion(ctx context.Context, region string, readData bool, progress Progress) (CheckReport, error) {
	m, err := l.manager()
	if err != nil {
		return CheckReport{}, err
	}
	rep, err := m.Check(ctx, region, readData, progressOf(progress))
	if err == nil {
		l.refresh(ctx, m, region)
	}
	if rep.Problems == nil {
		rep.Problems = []replicate.Problem{}
	}
	return rep, err
}

// RepairRegion implements Service.
func (l *Local) RepairRegion(ctx context.Context, region string, progress Progress) (RepairReport, error) {
	return l.RepairRegionWith(ctx, RepairRequest{Region: region}, progress)
}

// RepairRegionWith implements Service.
func (l *Local) RepairRegionWith(ctx context.Context, r RepairRequest, progress Progress) (RepairReport, error) {
	m, err := l.manager()
	if err != nil {
		return RepairReport{}, err
	}
	region := r.Region
	rep, err := m.RepairWith(ctx, region, replicate.RepairOptions{NewStores: r.NewStores}, progressOf(progress))
	l.refresh(context.WithoutCancel(ctx), m, region)
	if rep.Repaired == nil {
		rep.Repaired = []replicate.Problem{}
	}
	return rep, err
}

// PruneRegion implements Service.
func (l *Local) PruneRegion(ctx context.Context, r PruneRequest) (PruneStats, error) {
	m, err := l.manager()
	if err != nil {
		return PruneStats{}, err
	}
	if r.KeepLast < 0 || r.KeepWithin < 0 {
		return PruneStats{}, fmt.Errorf("%w: negative keep-last or keep-within", rowstore.ErrInvalid)
	}
	st, err := m.Prune(ctx, r.Region, replicate.PruneOptions{KeepLast: r.KeepLast, KeepWithin: r.KeepWithin, Hosts: r.Hosts, AllHosts: r.AllHosts, DryRun: r.DryRun})
	if !r.DryRun {
		l.refresh(context.WithoutCancel(ctx), m, r.Region)
	}
	if errors.Is(err, replicate.ErrLocked) {
		if note := l.lazyReadersNote(r.Region); note != "" {
			err = fmt.Errorf("%w; %s", err, note)
		}
	}
	if st.Deleted == nil {
		st.Deleted = []string{}
	}
	return st, err
}

// UnlockRegion implements Service.
func (l *Local) UnlockRegion(ctx context.Context, r UnlockRequest) (UnlockStats, error) {
	m, err := l.manager()
	if err != nil {
		return UnlockStats{}, err
	}
	st, err := m.Unlock(ctx, r.Region, r.Force)
	l.refresh(context.WithoutCancel(ctx), m, r.Region)
	return st, err
}

// CleanRegionLeftovers removes what a killed region operation of this host
// left in the local store (a restore's temporary disk). The daemon calls
// it at start, before the mount serves, so such a disk is never listed.
func (l *Local) CleanRegionLeftovers() {
	l.store.CleanTempDisks()
}

// RemoveDeadRegionLocks removes, in every configured region, the locks of
// this host whose processes no longer run (a daemon killed mid-sync left
// its lock; at daemon start). A store without regions is left alone.
func (l *Local) RemoveDeadRegionLocks(ctx context.Context) {
	if !l.hasRegions() { // local_hold.go
		return
	}
	m, err := l.manager()
	if err != nil {
		l.log.Warn("dead region locks not looked for", "err", err)
		return
	}
	m.RemoveDeadLocks(ctx)
}

// SetRegionRetention implements Service.
func (l *Local) SetRegionRetention(ctx context.Context, r RetentionRequest) (Region, error) {
	m, err := l.manager()
	if err != nil {
		return Region{}, err
	}
	return m.SetRetention(r.Region, r.Retention)
}

// RegionUsage is one region's bytes per store.
type RegionUsage struct {
	Region string                 `json:"region"`
	Stores []replicate.StoreUsage `json:"stores"`
}

// RegionUsage implements Service.
func (l *Local) RegionUsage(ctx context.Context) ([]RegionUsage, error) {
	m, err := l.manager()
	if err != nil {
		return nil, err
	}
	rs, err := m.ListRegions()
	if err != nil {
		return nil, err
	}
	out := []RegionUsage{}
	for _, r := range rs {
		su, err := m.Usage(ctx, r.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, RegionUsage{Region: r.Name, Stores: su})
	}
	return out, nil
}

// lazyUsers refuses (ErrBusy) to forget a region that lazily restored
// disks still hydrate from, or that snapshots and images of a deleted
// lazy disk still read (LazyLayer.Readers): their blocks not yet local are
// read from it, and a daemon started without its configuration could
// never attach them again (every such read EIO, for good). A layer
// nothing reads any more (GC has not collected it yet) does not count.
func (l *Local) lazyUsers(region string) error {
	ls, err := l.lazyReading(region)
	if err != nil || len(ls) == 0 {
		return err
	}
	users := make([]string, len(ls))
	for i, x := range ls {
		users[i] = lazyReader(x)
	}
	return fmt.Errorf("%w: region %q: lazily restored disks, or snapshots or images of them, still read from it (%s): wait until the disks are whole (disk info, or restore --lazy --wait) or delete them, and delete such snapshots and images (or make a disk of one and let it hydrate), then remove the region",
		rowstore.ErrBusy, region, strings.Join(users, "; "))
}

// lazyReading lists this host's lazy layers restored from region that a
// disk, snapshot or image still reads (stillRead).
func (l *Local) lazyReading(region string) ([]rowstore.LazyLayer, error) {
	ls, err := l.store.ListLazy()
	if err != nil {
		return nil, err
	}
	var out []rowstore.LazyLayer
	for _, x := range ls {
		if x.Origin.Region == region && stillRead(x) {
			out = append(out, x)
		}
	}
	return out, nil
}

// lazyReader says what reads lazy layer x and from which region snapshot.
func lazyReader(x rowstore.LazyLayer) string {
	from := fmt.Sprintf("snapshot %s disk %s", x.Origin.Snapshot, x.Origin.Disk)
	if len(x.Disks) > 0 {
		return fmt.Sprintf("lazy disk %s reads %s", strings.Join(x.Disks, ", "), from)
	}
	return fmt.Sprintf("%d snapshot(s) or image(s) of a deleted lazy disk read %s", x.Readers, from)
}

// policyUsers refuses to remove a region a policy copies its snapshots to:
// every later run of the policy would fail on the missing region (ErrBusy,
// naming the policies).
func (l *Local) policyUsers(region string) error {
	rs, err := l.store.ListPolicies()
	if err != nil {
		return err
	}
	var users []string
	for _, r := range rs {
		p, err := policy.Decode(r.Spec)
		if err != nil {
			return fmt.Errorf("%w: policy %q: %w", rowstore.ErrCorrupt, r.Name, err)
		}
		if p.CopyTo == region {
			users = append(users, r.Name)
		}
	}
	if len(users) == 0 {
		return nil
	}
	return fmt.Errorf("%w: region %q: policies copy their snapshots to it (%s): delete them, or create them again without --copy-to %s, then remove the region",
		rowstore.ErrBusy, region, strings.Join(users, ", "), region)
}

// lazyReadersNote names this host's lazily restored disks that still read
// region (their region disks hold its shared lock, so a prune here waits
// for them): each disk, or the snapshots and images of a deleted one, and
// the region snapshot it reads. "" when there are none.
func (l *Local) lazyReadersNote(region string) string {
	ls, err := l.lazyReading(region)
	if err != nil {
		return ""
	}
	var parts []string
	for _, x := range ls {
		if len(x.Disks) > 0 {
			parts = append(parts, fmt.Sprintf("%s: wait for its hydration (snapfs disk info %s) or delete it", lazyReader(x), x.Disks[0]))
		} else {
			parts = append(parts, lazyReader(x)+": the region is let go 30 s after their last read")
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "on this host " + strings.Join(parts, "; ")
}
