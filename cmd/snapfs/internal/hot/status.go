package hot

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
)

func status() *cli.Command {
	return &cli.Command{
		Name: "status",
		Usage: "the daemon's state: mounts, open disks, write-back cache, running jobs, lazily restored disks still hydrating, last snapshot per disk, " +
			"region lag (from this host's records)",
	}
}

func statusOp(c *cli.Context) (Op, error) {
	if _, err := Args(c); err != nil {
		return Op{}, err
	}
	return Op{Method: "StatusReport", ReadOnly: true, Req: struct{}{}, Print: printStatus}, nil
}

// statusReport is what the text of `snapfs status` shows of
// service.StatusReport (its JSON; --json prints all of it).
type statusReport struct {
	Store          string    `json:"store"`
	Daemon         bool      `json:"daemon"`
	PID            int       `json:"pid"`
	Mountpoint     string    `json:"mountpoint"`
	Started        time.Time `json:"started"`
	Metrics        string    `json:"metrics"`
	SnapshotMounts []struct {
		Mountpoint string `json:"mountpoint"`
		Snapshot   string `json:"snapshot"`
		Disk       string `json:"disk"`
	} `json:"snapshot_mounts"`
	Cache *struct {
		DirtyBytes   int64 `json:"dirty_bytes"`
		LimitPerDisk int64 `json:"limit_per_disk"`
	} `json:"cache"`
	OpenDisks []struct {
		Name    string `json:"name"`
		Handles int    `json:"handles"`
		Dirty   int64  `json:"dirty_bytes"`
	} `json:"open_disks"`
	Jobs []struct {
		Op          string    `json:"op"`
		Region      string    `json:"region"`
		Snapshot    string    `json:"snapshot"`
		Disk        string    `json:"disk"`
		Started     time.Time `json:"started"`
		Blocks      int64     `json:"blocks"`
		BlocksTotal int64     `json:"blocks_total"`
		Bytes       int64     `json:"bytes"`
	} `json:"jobs"`
	Hydration []struct {
		Disk   string `json:"disk"`
		Origin struct {
			Region   string `json:"region"`
			Snapshot string `json:"snapshot"`
			Disk     string `json:"disk"`
		} `json:"origin"`
		Attached  bool    `json:"attached"`
		Running   bool    `json:"running"`
		Total     int64   `json:"blocks_total"`
		Local     int64   `json:"blocks_local"`
		Fetched   int64   `json:"bytes_fetched"`
		Rate      float64 `json:"rate"`
		ETA       int64   `json:"eta_ns"`
		LastError string  `json:"last_error"`
	} `json:"hydration"`
	Disks []struct {
		Name         string    `json:"name"`
		Snapshots    int       `json:"snapshots"`
		LastSnapshot string    `json:"last_snapshot"`
		LastTime     time.Time `json:"last_snapshot_time"`
	} `json:"disks"`
	Regions []struct {
		Region    string  `json:"region"`
		Snapshots int     `json:"pending_snapshots"`
		Seconds   float64 `json:"lag_seconds"`
		Bytes     int64   `json:"lag_bytes"`
		Oldest    string  `json:"oldest_pending"`
	} `json:"regions"`
}

func printStatus(p *Printer, raw json.RawMessage) error {
	if p.JSON {
		return p.Object("status", raw)
	}
	var r statusReport
	if err := decode("StatusReport", raw, &r); err != nil {
		return err
	}
	daemon := "not running (commands open the store directly)"
	if r.Daemon {
		daemon = fmt.Sprintf("pid %d, mounted at %s since %s", r.PID, r.Mountpoint, When(r.Started))
		if r.Metrics != "" {
			daemon += ", metrics at http://" + r.Metrics + "/metrics"
		}
	}
	kv := []string{"store", r.Store, "daemon", daemon}
	for _, m := range r.SnapshotMounts {
		kv = append(kv, "snapshot mount", fmt.Sprintf("%s (%s of snapshot %s)", m.Mountpoint, m.Disk, m.Snapshot))
	}
	if r.Cache != nil {
		kv = append(kv, "write-back cache", fmt.Sprintf("%s not yet in the log (up to %s per disk)", Size(r.Cache.DirtyBytes), Size(r.Cache.LimitPerDisk)))
	}
	var open []string
	for _, d := range r.OpenDisks {
		open = append(open, fmt.Sprintf("%s (%s, %s cached)", d.Name, plural(d.Handles, "handle"), Size(d.Dirty)))
	}
	if len(open) == 0 {
		open = []string{"none"}
	}
	kv = append(kv, "open disks", strings.Join(open, ", "))
	if err := p.Fields(kv...); err != nil {
		return err
	}
	if len(r.Jobs) > 0 {
		fmt.Fprintln(p.W)
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
			rows = append(rows, []string{j.Op, OrDash(j.Region), OrDash(what), prog, Size(j.Bytes), ago(j.Started)})
		}
		if err := p.Table([]string{"JOB", "REGION", "SNAPSHOT", "PROGRESS", "BYTES", "RUNNING FOR"}, rows); err != nil {
			return err
		}
	}
	if len(r.Hydration) > 0 {
		// Lazily restored disks not yet whole: the background job of
		// restore --lazy (disk info DISK has the details).
		fmt.Fprintln(p.W)
		rows := [][]string{}
		for _, h := range r.Hydration {
			prog := "not known yet"
			if h.Attached || h.Total > 0 {
				prog = fmt.Sprintf("%d/%d blocks", h.Local, h.Total)
				if h.Total > 0 {
					prog += fmt.Sprintf(" (%d%%)", h.Local*100/h.Total)
				}
			}
			state := "hydrating"
			switch {
			case !r.Daemon:
				state = "waiting for a daemon (snapfs mount)"
			case !h.Attached:
				state = "waiting for the region"
			case !h.Running:
				state = "not hydrating"
			case h.Rate > 0:
				state = fmt.Sprintf("%s/s, ETA %s", Size(int64(h.Rate)), time.Duration(h.ETA).Round(time.Second))
			}
			if h.LastError != "" {
				state += "; last error: " + h.LastError
			}
			rows = append(rows, []string{h.Disk, h.Origin.Region, h.Origin.Snapshot + "/" + h.Origin.Disk, prog, Size(h.Fetched), state})
		}
		if err := p.Table([]string{"HYDRATING", "REGION", "FROM", "PROGRESS", "FETCHED", "STATE"}, rows); err != nil {
			return err
		}
	}
	fmt.Fprintln(p.W)
	rows := [][]string{}
	for _, d := range r.Disks {
		rows = append(rows, []string{d.Name, strconv.Itoa(d.Snapshots), OrDash(d.LastSnapshot), agoOrDash(d.LastTime)})
	}
	if err := p.Table([]string{"DISK", "SNAPSHOTS", "LAST SNAPSHOT", "AGE"}, rows); err != nil {
		return err
	}
	if len(r.Regions) > 0 {
		fmt.Fprintln(p.W)
		rows = rows[:0]
		for _, l := range r.Regions {
			lag := "up to date"
			if l.Snapshots > 0 {
				lag = (time.Duration(l.Seconds) * time.Second).String()
			}
			rows = append(rows, []string{l.Region, strconv.Itoa(l.Snapshots), lag, Size(l.Bytes), OrDash(l.Oldest)})
		}
		return p.Table([]string{"REGION", "PENDING SNAPSHOTS", "LAG", "PENDING BYTES", "OLDEST PENDING"}, rows)
	}
	return nil
}

// Table prints rows under a header, aligned (text mode).
func (p *Printer) Table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(p.W, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// Fields prints "key: value" lines (text mode).
func (p *Printer) Fields(kv ...string) error {
	tw := tabwriter.NewWriter(p.W, 0, 4, 1, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[i], kv[i+1])
	}
	return tw.Flush()
}

// When is a time as listings print it: local time to the second, "-" for
// none.
func When(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// OrDash is s, or "-" when empty.
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
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
