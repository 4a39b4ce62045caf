package service

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// StatusReport is what `snapfs status` prints (type "status" with --json):
// the daemon's state, its open disks, the last snapshot per disk, the
// snapshot mounts and each region's lag. Everything comes from the store and
// this host's records: no region store is contacted.
type StatusReport struct {
	Status
	SnapshotMounts []StatusMount         `json:"snapshot_mounts,omitempty"`
	OpenDisks      []StatusOpenDisk      `json:"open_disks,omitempty"`
	Disks          []StatusDisk          `json:"disks"`
	Regions        []RegionLag           `json:"regions,omitempty"`
	Policies       []json.RawMessage     `json:"policies,omitempty"`  // next policy runs: none until the policy engine reports them
	Hydration      []rowstore.LazyStatus `json:"hydration,omitempty"` // lazily restored disks not yet whole
	Usage          *rowstore.StoreUsage  `json:"usage,omitempty"`
}

// StatusMount is a snapshot mount (snapshot mount) recorded in the store.
type StatusMount struct {
	Mountpoint string `json:"mountpoint"`
	Snapshot   string `json:"snapshot"`
	Disk       string `json:"disk"`
}

// StatusOpenDisk is a disk open in the daemon.
type StatusOpenDisk struct {
	Name    string `json:"name"`
	Handles int    `json:"handles"`
	Dirty   int64  `json:"dirty_bytes"` // in the write-back cache
}

// StatusDisk is a disk's snapshots in the status report.
type StatusDisk struct {
	Name         string    `json:"name"`
	Snapshots    int       `json:"snapshots"`
	LastSnapshot string    `json:"last_snapshot,omitempty"`
	LastTime     time.Time `json:"last_snapshot_time,omitzero"`
}

// RegionLag is how far a region is behind the local snapshots.
type RegionLag struct {
	Region    string  `json:"region"`
	Snapshots int     `json:"pending_snapshots"` // local snapshots not available there
	Seconds   float64 `json:"lag_seconds"`       // age of the oldest of them (0: none)
	Bytes     int64   `json:"lag_bytes"`         // their allocated bytes (an upper bound of what sync ships)
	Oldest    string  `json:"oldest_pending,omitempty"`
}

// SnapshotState is a local snapshot with its state in each region: what
// the region lag is computed from (here and in the daemon's metrics).
type SnapshotState struct {
	Name      string
	Created   time.Time
	Disks     []string
	Allocated int64                      // bytes of its disks' stored blocks
	Copies    map[string]replicate.State // by region
}

// SnapshotStates are snaps (as the Service lists them) as the lag reads them.
func SnapshotStates(snaps []Snapshot) []SnapshotState {
	out := make([]SnapshotState, 0, len(snaps))
	for _, sn := range snaps {
		st := SnapshotState{Name: sn.Name, Created: sn.Created, Copies: map[string]replicate.State{}}
		for _, d := range sn.Disks {
			st.Disks = append(st.Disks, d.Name)
			st.Allocated += d.Allocated
		}
		for _, c := range sn.Copies {
			st.Copies[c.Region] = c.State
		}
		out = append(out, st)
	}
	return out
}

// Lag is region's lag behind snaps (from this host's copy records).
func Lag(region string, snaps []SnapshotState, now time.Time) RegionLag {
	l := RegionLag{Region: region}
	var oldest time.Time
	for _, s := range snaps {
		switch s.Copies[region] {
		case replicate.StateAvailable, replicate.StateDegraded:
			continue
		case replicate.StatePruned, replicate.StateExpired:
			continue // never shipped (again): not pending
		}
		l.Snapshots++
		l.Bytes += s.Allocated
		if oldest.IsZero() || s.Created.Before(oldest) {
			oldest, l.Oldest = s.Created, s.Name
		}
	}
	if !oldest.IsZero() {
		l.Seconds = now.Sub(oldest).Seconds()
	}
	return l
}

// StatusReport implements Service.
func (l *Local) StatusReport(ctx context.Context) (StatusReport, error) {
	return ReportStatus(ctx, l, l.dir)
}

// ReportStatus assembles the status report of the store in dir from s, the
// outermost Service of the process (the daemon's adds its running jobs and
// write-back cache to Status): the one implementation behind
// Service.StatusReport.
func ReportStatus(ctx context.Context, s Service, dir string) (StatusReport, error) {
	st, err := s.Status(ctx)
	if err != nil {
		return StatusReport{}, err
	}
	rep := StatusReport{Status: st}
	disks, err := s.ListDisks(ctx)
	if err != nil {
		return rep, err
	}
	snaps, err := s.ListSnapshots(ctx, "")
	if err != nil {
		return rep, err
	}
	last := map[string]*StatusDisk{}
	for _, d := range disks {
		sd := &StatusDisk{Name: d.Name}
		last[d.Name] = sd
		if d.Open > 0 {
			od := StatusOpenDisk{Name: d.Name, Handles: d.Open}
			if st.Cache != nil {
				od.Dirty = st.Cache.Disks[d.Name]
			}
			rep.OpenDisks = append(rep.OpenDisks, od)
		}
	}
	for _, sn := range snaps {
		for _, d := range sn.Disks {
			if sd := last[d.Name]; sd != nil {
				sd.Snapshots++
				if !sn.Created.Before(sd.LastTime) {
					sd.LastSnapshot, sd.LastTime = sn.Name, sn.Created
				}
			}
		}
	}
	for _, d := range disks {
		rep.Disks = append(rep.Disks, *last[d.Name])
		if h := d.Hydration; h != nil && !h.Done {
			rep.Hydration = append(rep.Hydration, *h)
		}
	}
	regions, err := s.ListRegions(ctx)
	if err != nil {
		return rep, err
	}
	states := SnapshotStates(snaps)
	now := time.Now()
	for _, r := range regions {
		rep.Regions = append(rep.Regions, Lag(r.Name, states, now))
	}
	rep.SnapshotMounts = snapshotMounts(dir)
	return rep, nil
}

// snapshotMounts are the snapshot mounts recorded in the store in dir.
func snapshotMounts(dir string) []StatusMount {
	var out []StatusMount
	for _, f := range snapMountFiles(dir) {
		if f.err == nil && f.rec.Mountpoint != "" {
			out = append(out, StatusMount{f.rec.Mountpoint, f.rec.Snapshot, f.rec.Disk})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Mountpoint < out[j].Mountpoint })
	return out
}
