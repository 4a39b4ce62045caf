package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

type fakeSource struct {
	usageCalls int
	stale      bool // Usage's exclusive and live figures are being recounted
}

func (f *fakeSource) Disks() ([]rowstore.DiskInfo, error) {
	return []rowstore.DiskInfo{{Name: "d", Size: 1 << 20, Allocated: 4096, Open: 1}}, nil
}

func (f *fakeSource) Snapshots() ([]SnapshotState, error) {
	now := time.Now()
	return []SnapshotState{
		{Name: "s1", Created: now.Add(-time.Hour), Disks: []string{"d"}, Allocated: 100, Copies: map[string]replicate.State{"dr": replicate.StateAvailable}},
		{Name: "s2", Created: now.Add(-time.Minute), Disks: []string{"d"}, Allocated: 200, Copies: map[string]replicate.State{"dr": replicate.StateCopying}},
	}, nil
}

func (f *fakeSource) Usage() (rowstore.Usage, error) {
	f.usageCalls++
	return rowstore.Usage{Store: rowstore.StoreUsage{SegmentBytes: 1000, LiveBytes: 600, ExclusiveStale: f.stale},
		Snapshots: []rowstore.ItemUsage{{Name: "s1", Exclusive: 30}, {Name: "s2", Exclusive: 12}}}, nil
}
func (f *fakeSource) CleanerStats() rowstore.CleanerStats { return rowstore.CleanerStats{Rounds: 2} }
func (f *fakeSource) CacheStats() rowstore.CacheStats {
	return rowstore.CacheStats{DirtyBytes: 10, Disks: map[string]int64{"d": 10}, LimitPerDisk: 32 << 20}
}
func (f *fakeSource) Regions() ([]string, error) { return []string{"dr"}, nil }

// TestUsageStaleAskedAgain: a usage pass whose figures were stale (the
// store's recount under way) serves no further scrape; a current one serves
// them for UsageEvery (CI once saw live bytes 0 right after a snapshot).
func TestUsageStaleAskedAgain(t *testing.T) {
	src := &fakeSource{stale: true}
	m := New(src, nil)
	now := time.Now()
	for i := 0; i < 3; i++ {
		if _, _, err := m.storeUsage(now); err != nil {
			t.Fatal(err)
		}
	}
	if src.usageCalls != 3 {
		t.Fatalf("%d usage passes for 3 scrapes while stale, want 3", src.usageCalls)
	}
	src.stale = false
	for i := 0; i < 3; i++ {
		m.storeUsage(now.Add(time.Second))
	}
	if src.usageCalls != 4 {
		t.Errorf("%d usage passes after the recount, want 4 (one, then cached)", src.usageCalls)
	}
}

// TestMetrics: counters move with the calls, the state is read at scrape
// time, the usage pass is cached, a nil *Metrics ignores every call.
func TestMetrics(t *testing.T) {
	src := &fakeSource{}
	m := New(src, nil)
	m.IO("write", "disk", 4096, time.Millisecond, nil)
	m.IO("read", "snapshot", 100, time.Millisecond, errors.New("x"))
	m.IO("flush", "disk", 0, time.Millisecond, nil)
	m.JobStarted("dr", "sync")
	m.JobEvent(replicate.Event{Op: "sync", Region: "dr", Snapshot: "s2", Disk: "d", Blocks: 5, Bytes: 500})
	m.JobEvent(replicate.Event{Op: "sync", Region: "dr", Snapshot: "s2", Disk: "d", Blocks: 8, Bytes: 800})
	m.JobStarted("r2", "sync")
	m.JobEvent(replicate.Event{Op: "sync", Region: "r2", Snapshot: "s2", Disk: "d", Blocks: 1, Bytes: 100})
	m.JobDone("dr", "sync", time.Second, nil)
	m.JobEvent(replicate.Event{Op: "sync", Region: "r2", Snapshot: "s2", Disk: "d", Blocks: 2, Bytes: 150})
	m.JobDone("r2", "sync", time.Second, errors.New("x"))
	if got := testutil.ToFloat64(m.jobBytes.WithLabelValues("r2", "sync")); got != 150 {
		t.Errorf("r2 job bytes %v: another region's job end must not reset its totals", got)
	}
	m.PolicyRun("hourly", nil)
	m.GCDone(rowstore.GCStats{BytesFreed: 42}, nil)
	m.GCDone(rowstore.GCStats{}, errors.New("full"))
	if got := testutil.ToFloat64(m.ioBytes.WithLabelValues("write", "disk")); got != 4096 {
		t.Errorf("write bytes %v", got)
	}
	if got := testutil.ToFloat64(m.ioErrors.WithLabelValues("read", "snapshot")); got != 1 {
		t.Errorf("read errors %v", got)
	}
	if got := testutil.ToFloat64(m.jobBytes.WithLabelValues("dr", "sync")); got != 800 {
		t.Errorf("job bytes %v (events carry totals)", got)
	}
	if got := testutil.ToFloat64(m.jobRunning.WithLabelValues("dr", "sync")); got != 0 {
		t.Errorf("running %v", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { m.Serve(ctx, ln); close(served) }()
	for i := 0; i < 2; i++ {
		resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		text, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`snapfs_snapshots{disk="d"} 2`, `snapfs_store_bytes{kind="garbage"} 400`, `snapfs_store_bytes{kind="snapshot_exclusive"} 42`, `snapfs_region_pending_snapshots{region="dr"} 1`,
			`snapfs_region_lag_bytes{region="dr"} 200`, `snapfs_cache_dirty_bytes{disk="d"} 10`, `snapfs_policy_runs_total{policy="hourly",result="ok"} 1`,
			`snapfs_gc_freed_bytes_total 42`, `snapfs_gc_runs_total{result="error"} 1`, `snapfs_disk_open_handles{disk="d"} 1`,
		} {
			if !strings.Contains(string(text), want) {
				t.Errorf("scrape lacks %q", want)
			}
		}
	}
	if src.usageCalls != 1 {
		t.Errorf("usage pass made %d times for 2 scrapes within %v", src.usageCalls, UsageEvery)
	}
	var nilM *Metrics
	nilM.IO("read", "disk", 1, 0, nil)
	nilM.JobStarted("r", "sync")
	nilM.JobEvent(replicate.Event{Region: "r"})
	nilM.JobDone("r", "sync", 0, nil)
	nilM.PolicyRun("p", nil)
	nilM.GCDone(rowstore.GCStats{}, nil)
	cancel()
	<-served // Serve returns when its context ends
}

func TestLag(t *testing.T) {
	now := time.Now()
	snaps := []SnapshotState{
		{Name: "a", Created: now.Add(-2 * time.Hour), Allocated: 1, Copies: map[string]replicate.State{"r": replicate.StateDegraded}},
		{Name: "b", Created: now.Add(-time.Hour), Allocated: 10, Copies: map[string]replicate.State{}},
		{Name: "c", Created: now.Add(-time.Minute), Allocated: 100, Copies: map[string]replicate.State{"r": replicate.StateCopying}},
	}
	l := Lag("r", snaps, now)
	if l.Snapshots != 2 || l.Bytes != 110 || l.Oldest != "b" || l.Seconds < 3599 || l.Seconds > 3601 {
		t.Errorf("lag %+v", l)
	}
	if l := Lag("r", nil, now); l.Snapshots != 0 || l.Seconds != 0 {
		t.Errorf("no snapshots: %+v", l)
	}
}
