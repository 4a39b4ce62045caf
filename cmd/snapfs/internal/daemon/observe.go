package daemon

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/metrics"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// observed is the Service the daemon serves on its control socket: the
// Local, with its long jobs recorded for Status (snapfs status) and counted
// in the metrics (nil without --metrics). It adds no logic of its own.
type observed struct {
	service.Service
	dir         string // the store's
	m           *metrics.Metrics
	metricsAddr string
	cache       func() rowstore.CacheStats

	mu   sync.Mutex
	jobs map[int]*service.Job
	next int
}

func newObserved(l *service.Local, m *metrics.Metrics, addr string) *observed {
	return &observed{Service: l, dir: l.Dir(), m: m, metricsAddr: addr, cache: l.Store().CacheStats, jobs: map[int]*service.Job{}}
}

// start records a job; the returned progress updates it and forwards to
// progress; done ends it.
func (o *observed) start(op, region string, progress service.Progress) (service.Progress, func(error)) {
	o.mu.Lock()
	id := o.next
	o.next++
	j := &service.Job{Op: op, Region: region, Started: time.Now()}
	o.jobs[id] = j
	o.mu.Unlock()
	if region != "" {
		o.m.JobStarted(region, op)
	}
	p := func(e replicate.Event) {
		o.mu.Lock()
		if e.Snapshot != "" {
			j.Snapshot = e.Snapshot
		}
		if e.Disk != "" {
			j.Disk = e.Disk
		}
		if e.Blocks > 0 || e.BlocksTotal > 0 {
			j.Blocks, j.BlocksTotal = e.Blocks, e.BlocksTotal
		}
		if e.Bytes > 0 {
			j.Bytes = e.Bytes
		}
		o.mu.Unlock()
		if region != "" {
			o.m.JobEvent(e)
		}
		if progress != nil {
			progress(e)
		}
	}
	done := func(err error) {
		o.mu.Lock()
		delete(o.jobs, id)
		o.mu.Unlock()
		if region != "" {
			o.m.JobDone(region, op, time.Since(j.Started), err)
		}
	}
	return p, done
}

// Status implements Service: the Local's, with the running jobs.
func (o *observed) Status(ctx context.Context) (service.Status, error) {
	st, err := o.Service.Status(ctx)
	if err != nil {
		return st, err
	}
	o.mu.Lock()
	ids := make([]int, 0, len(o.jobs))
	for id := range o.jobs {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		st.Jobs = append(st.Jobs, *o.jobs[id])
	}
	o.mu.Unlock()
	st.Metrics = o.metricsAddr
	cs := o.cache()
	st.Cache = &cs
	return st, nil
}

// StatusReport implements Service: the report of the Local's data with this
// Status (running jobs, cache).
func (o *observed) StatusReport(ctx context.Context) (service.StatusReport, error) {
	return service.ReportStatus(ctx, o, o.dir)
}

func (o *observed) Sync(ctx context.Context, r service.SyncRequest, progress service.Progress) (service.SyncStats, error) {
	p, done := o.start("sync", r.Region, progress)
	st, err := o.Service.Sync(ctx, r, p)
	done(err)
	return st, err
}

func (o *observed) Restore(ctx context.Context, r service.RestoreRequest, progress service.Progress) (service.RestoreStats, error) {
	p, done := o.start("restore", r.Region, progress)
	st, err := o.Service.Restore(ctx, r, p)
	done(err)
	return st, err
}

func (o *observed) CheckRegion(ctx context.Context, region string, readData bool, progress service.Progress) (service.CheckReport, error) {
	p, done := o.start("check", region, progress)
	rep, err := o.Service.CheckRegion(ctx, region, readData, p)
	done(err)
	return rep, err
}

func (o *observed) RepairRegion(ctx context.Context, region string, progress service.Progress) (service.RepairReport, error) {
	p, done := o.start("repair", region, progress)
	rep, err := o.Service.RepairRegion(ctx, region, p)
	done(err)
	return rep, err
}

func (o *observed) CheckStore(ctx context.Context, r service.CheckStoreRequest, progress service.Progress) (service.StoreCheckReport, error) {
	p, done := o.start("store-check", "", progress)
	rep, err := o.Service.CheckStore(ctx, r, p)
	done(err)
	return rep, err
}

func (o *observed) RepairFromRegion(ctx context.Context, region string, progress service.Progress) (service.StoreRepairReport, error) {
	p, done := o.start("store-repair", "", progress)
	rep, err := o.Service.RepairFromRegion(ctx, region, p)
	done(err)
	return rep, err
}

func (o *observed) GC(ctx context.Context) (rowstore.GCStats, error) {
	_, done := o.start("gc", "", nil)
	st, err := o.Service.GC(ctx)
	done(err)
	return st, err // counted in the metrics by the store's OnGC
}

// source is what the metrics read from the store at scrape time.
type source struct{ l *service.Local }

func (s source) Disks() ([]rowstore.DiskInfo, error) {
	ds, err := s.l.Store().ListDisks()
	if err != nil {
		return nil, err
	}
	return s.l.HideScratch(ds), nil
}

func (s source) Snapshots() ([]metrics.SnapshotState, error) {
	snaps, err := s.l.ListSnapshots(context.Background(), "")
	if err != nil {
		return nil, err
	}
	return metrics.States(snaps), nil
}

func (s source) Usage() (rowstore.Usage, error) { return s.l.Store().Usage() }

func (s source) CleanerStats() rowstore.CleanerStats { return s.l.Store().CleanerStats() }

func (s source) CacheStats() rowstore.CacheStats { return s.l.Store().CacheStats() }

func (s source) Regions() ([]string, error) {
	rs, err := s.l.ListRegions(context.Background())
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(rs))
	for _, r := range rs {
		names = append(names, r.Name)
	}
	return names, nil
}
