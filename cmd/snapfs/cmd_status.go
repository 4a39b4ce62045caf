package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
)

func statusCommand(st *state) *cli.Command {
	return &cli.Command{
		Name: "status",
		Usage: "the daemon's state: mounts, open disks, write-back cache, running jobs, last snapshot per disk, " +
			"region lag (from this host's records)",
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				rep, err := svc.StatusReport(ctx)
				if err != nil {
					return err
				}
				return printStatus(newPrinter(c, st), rep)
			})
		},
	}
}

func printStatus(p *printer, r service.StatusReport) error {
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
