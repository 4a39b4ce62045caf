package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/metrics"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
)

// statusReport is what `snapfs status` prints (type "status" with --json).
// Everything comes from the Service (the daemon's when one runs) and this
// host's records: no region store is contacted.
type statusReport struct {
	service.Status
	SnapshotMounts []statusMount        `json:"snapshot_mounts,omitempty"`
	OpenDisks      []statusOpenDisk     `json:"open_disks,omitempty"`
	Disks          []statusDisk         `json:"disks"`
	Regions        []metrics.RegionLag  `json:"regions,omitempty"`
	Policies       []json.RawMessage    `json:"policies,omitempty"`  // next policy runs: none until the policy engine is merged
	Hydration      []json.RawMessage    `json:"hydration,omitempty"` // lazy disks: none until lazy restore is merged
	Usage          *rowstore.StoreUsage `json:"usage,omitempty"`
}

type statusMount struct {
	Mountpoint string `json:"mountpoint"`
	Snapshot   string `json:"snapshot"`
	Disk       string `json:"disk"`
}

type statusOpenDisk struct {
	Name    string `json:"name"`
	Handles int    `json:"handles"`
	Dirty   int64  `json:"dirty_bytes"` // in the write-back cache
}

type statusDisk struct {
	Name         string    `json:"name"`
	Snapshots    int       `json:"snapshots"`
	LastSnapshot string    `json:"last_snapshot,omitempty"`
	LastTime     time.Time `json:"last_snapshot_time,omitzero"`
}

func statusCommand(st *state) *cli.Command {
	return &cli.Command{
		Name: "status",
		Usage: "the daemon's state: mounts, open disks, write-back cache, running jobs, last snapshot per disk, " +
			"region lag (from this host's records)",
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			dir, err := storeDir(c)
			if err != nil {
				return err
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				rep, err := status(ctx, svc, dir)
				if err != nil {
					return err
				}
				return printStatus(newPrinter(c, st), rep)
			})
		},
	}
}

func status(ctx context.Context, svc service.Service, dir string) (statusReport, error) {
	s, err := svc.Status(ctx)
	if err != nil {
		return statusReport{}, err
	}
	rep := statusReport{Status: s}
	disks, err := svc.ListDisks(ctx)
	if err != nil {
		return rep, err
	}
	snaps, err := svc.ListSnapshots(ctx, "")
	if err != nil {
		return rep, err
	}
	last := map[string]*statusDisk{}
	for _, d := range disks {
		sd := &statusDisk{Name: d.Name}
		last[d.Name] = sd
		if d.Open > 0 {
			od := statusOpenDisk{Name: d.Name, Handles: d.Open}
			if s.Cache != nil {
				od.Dirty = s.Cache.Disks[d.Name]
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
	}
	regions, err := svc.ListRegions(ctx)
	if err != nil {
		return rep, err
	}
	states := metrics.States(snaps)
	now := time.Now()
	for _, r := range regions {
		rep.Regions = append(rep.Regions, metrics.Lag(r.Name, states, now))
	}
	rep.SnapshotMounts = snapshotMounts(dir)
	return rep, nil
}

// snapshotMounts are the snapshot mounts recorded in the store.
func snapshotMounts(dir string) []statusMount {
	files, _ := filepath.Glob(filepath.Join(dir, service.SnapMountDir, "*.json"))
	var out []statusMount
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var m service.SnapMount
		if json.Unmarshal(b, &m) == nil && m.Mountpoint != "" {
			out = append(out, statusMount{m.Mountpoint, m.Snapshot, m.Disk})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Mountpoint < out[j].Mountpoint })
	return out
}

func printStatus(p *printer, r statusReport) error {
	if p.json {
		return p.object("status", r)
	}
	daemon := "not running (commands open the store directly)"
	if r.Daemon {
		daemon = fmt.Sprintf("pid %d, mounted at %s since %s", r.PID, r.Mountpoint, when(r.Started))
		if r.Metrics != "" {
			daemon += ", metrics at http://" + r.Metrics + "/metrics"
		}
	}
	kv := []string{"store", r.Store, "daemon", daemon}
	for _, m := range r.SnapshotMounts {
		kv = append(kv, "snapshot mount", fmt.Sprintf("%s (%s of snapshot %s)", m.Mountpoint, m.Disk, m.Snapshot))
	}
	if r.Cache != nil {
		kv = append(kv, "write-back cache", fmt.Sprintf("%s not yet in the log (up to %s per disk)", size(r.Cache.DirtyBytes), size(r.Cache.LimitPerDisk)))
	}
	var open []string
	for _, d := range r.OpenDisks {
		open = append(open, fmt.Sprintf("%s (%s, %s cached)", d.Name, plural(d.Handles, "handle"), size(d.Dirty)))
	}
	if len(open) == 0 {
		open = []string{"none"}
	}
	kv = append(kv, "open disks", strings.Join(open, ", "))
	if err := p.fields(kv...); err != nil {
		return err
	}
	if len(r.Jobs) > 0 {
		fmt.Fprintln(p.w)
		rows := [][]string{}
		for _, j := range r.Jobs {
			what := j.Snapshot
			if j.Disk != "" {
				what += "/" + j.Disk
			}
			prog := "-"
			if j.BlocksTotal > 0 {
				prog = fmt.Sprintf("%d/%d blocks (%d%%)", j.Blocks, j.BlocksTotal, j.Blocks*100/j.BlocksTotal)
			} else if j.Blocks > 0 {
				prog = strconv.FormatInt(j.Blocks, 10) + " blocks"
			}
			rows = append(rows, []string{j.Op, orDash(j.Region), orDash(what), prog, size(j.Bytes), ago(j.Started)})
		}
		if err := p.table([]string{"JOB", "REGION", "SNAPSHOT", "PROGRESS", "BYTES", "RUNNING FOR"}, rows); err != nil {
			return err
		}
	}
	fmt.Fprintln(p.w)
	rows := [][]string{}
	for _, d := range r.Disks {
		rows = append(rows, []string{d.Name, strconv.Itoa(d.Snapshots), orDash(d.LastSnapshot), agoOrDash(d.LastTime)})
	}
	if err := p.table([]string{"DISK", "SNAPSHOTS", "LAST SNAPSHOT", "AGE"}, rows); err != nil {
		return err
	}
	if len(r.Regions) > 0 {
		fmt.Fprintln(p.w)
		rows = rows[:0]
		for _, l := range r.Regions {
			lag := "up to date"
			if l.Snapshots > 0 {
				lag = (time.Duration(l.Seconds) * time.Second).String()
			}
			rows = append(rows, []string{l.Region, strconv.Itoa(l.Snapshots), lag, size(l.Bytes), orDash(l.Oldest)})
		}
		return p.table([]string{"REGION", "PENDING SNAPSHOTS", "LAG", "PENDING BYTES", "OLDEST PENDING"}, rows)
	}
	return nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func ago(t time.Time) string { return time.Since(t).Round(time.Second).String() }

func agoOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return ago(t) + " ago"
}
