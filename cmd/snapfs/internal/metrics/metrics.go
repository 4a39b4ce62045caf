package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// Source is what a scrape reads: the store's state.
type Source interface {
	Disks() ([]rowstore.DiskInfo, error)
	Snapshots() ([]SnapshotState, error)
	Usage() (rowstore.Usage, error)
	CleanerStats() rowstore.CleanerStats
	CacheStats() rowstore.CacheStats
	Regions() ([]string, error)
}

// SnapshotState is a local snapshot with its state in each region.
type SnapshotState = service.SnapshotState

// UsageEvery is how long a usage pass (a scan of the index) serves scrapes.
const UsageEvery = time.Minute

// Metrics are the daemon's metrics. The zero value is not usable; a nil
// *Metrics ignores every call (no --metrics).
type Metrics struct {
	reg *prometheus.Registry
	src Source
	log *slog.Logger

	ioBytes    *prometheus.CounterVec
	ioOps      *prometheus.CounterVec
	ioSeconds  *prometheus.HistogramVec
	ioErrors   *prometheus.CounterVec
	flushSecs  prometheus.Histogram
	jobRunning *prometheus.GaugeVec
	jobBytes   *prometheus.CounterVec
	jobBlocks  *prometheus.CounterVec
	jobDone    *prometheus.CounterVec
	jobLastOK  *prometheus.GaugeVec
	jobLastErr *prometheus.GaugeVec
	jobSecs    *prometheus.HistogramVec
	policyRuns *prometheus.CounterVec
	policyLast *prometheus.GaugeVec
	gcRuns     *prometheus.CounterVec
	gcFreed    prometheus.Counter
	gcMoved    prometheus.Counter
	gcLast     prometheus.Gauge

	mu        sync.Mutex
	usage     rowstore.Usage
	usageAt   time.Time
	usageErr  error
	lastBytes map[string]int64 // job key -> bytes reported so far (events carry totals)
	lastBlks  map[string]int64
}

// New makes the metrics of a daemon reading src at scrape time.
func New(src Source, log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{reg: prometheus.NewRegistry(), src: src, log: log,
		lastBytes: map[string]int64{}, lastBlks: map[string]int64{}}
	lat := prometheus.ExponentialBuckets(50e-6, 4, 10) // 50µs .. 13s
	m.ioBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapfs_io_bytes_total", Help: "Bytes read and written through the mount."}, []string{"op", "kind"})
	m.ioOps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapfs_io_ops_total", Help: "Read, write and flush requests served by the mount."}, []string{"op", "kind"})
	m.ioErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapfs_io_errors_total", Help: "Requests of the mount that failed."}, []string{"op", "kind"})
	m.ioSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "snapfs_io_seconds", Help: "Latency of the mount's reads, writes and flushes in the engine.", Buckets: lat}, []string{"op", "kind"})
	m.flushSecs = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "snapfs_cache_flush_seconds", Help: "Latency of committing a disk's write-back cache (fsync, close).", Buckets: lat})
	m.jobRunning = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "snapfs_region_job_running", Help: "Region jobs running now."}, []string{"region", "op"})
	m.jobBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapfs_region_job_bytes_total", Help: "Bytes moved by region jobs (sync: read from the store; restore: restored)."}, []string{"region", "op"})
	m.jobBlocks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapfs_region_job_blocks_total", Help: "Blocks (check: objects) done by region jobs."}, []string{"region", "op"})
	m.jobDone = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapfs_region_jobs_total", Help: "Region jobs finished, by result (ok, error)."}, []string{"region", "op", "result"})
	m.jobLastOK = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "snapfs_region_job_last_success_timestamp_seconds", Help: "When a region job last succeeded (Unix time)."}, []string{"region", "op"})
	m.jobLastErr = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "snapfs_region_job_last_failure_timestamp_seconds", Help: "When a region job last failed (Unix time)."}, []string{"region", "op"})
	m.jobSecs = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "snapfs_region_job_seconds", Help: "Duration of region jobs.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}, []string{"region", "op"})
	m.policyRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapfs_policy_runs_total", Help: "Snapshot policy runs, by result (ok, error)."}, []string{"policy", "result"})
	m.policyLast = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "snapfs_policy_last_run_timestamp_seconds", Help: "When a snapshot policy last ran (Unix time)."}, []string{"policy", "result"})
	m.gcRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapfs_gc_runs_total", Help: "Garbage collections (background and snapfs gc), by result (ok, error)."}, []string{"result"})
	m.gcFreed = prometheus.NewCounter(prometheus.CounterOpts{Name: "snapfs_gc_freed_bytes_total", Help: "Bytes freed by garbage collections."})
	m.gcMoved = prometheus.NewCounter(prometheus.CounterOpts{Name: "snapfs_gc_relocated_bytes_total", Help: "Live bytes garbage collections relocated to clean segments."})
	m.gcLast = prometheus.NewGauge(prometheus.GaugeOpts{Name: "snapfs_gc_last_run_timestamp_seconds", Help: "When a garbage collection last finished (Unix time)."})
	m.reg.MustRegister(m.ioBytes, m.ioOps, m.ioErrors, m.ioSeconds, m.flushSecs, m.jobRunning, m.jobBytes, m.jobBlocks,
		m.jobDone, m.jobLastOK, m.jobLastErr, m.jobSecs, m.policyRuns, m.policyLast, m.gcRuns, m.gcFreed, m.gcMoved, m.gcLast,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &state{m})
	return m
}

// Registry is the registry the metrics are in (tests, more collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Serve serves /metrics on ln until ctx ends.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		m.log.Warn("metrics server stopped", "err", err)
	}
}

// IO counts one request of the mount: op read, write or flush; kind disk,
// snapshot or image.
func (m *Metrics) IO(op, kind string, n int, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.ioOps.WithLabelValues(op, kind).Inc()
	if n > 0 {
		m.ioBytes.WithLabelValues(op, kind).Add(float64(n))
	}
	m.ioSeconds.WithLabelValues(op, kind).Observe(d.Seconds())
	if op == "flush" {
		m.flushSecs.Observe(d.Seconds())
	}
	if err != nil {
		m.ioErrors.WithLabelValues(op, kind).Inc()
	}
}

// JobStarted marks a region job (op sync, restore, check, repair) running.
func (m *Metrics) JobStarted(region, op string) {
	if m == nil {
		return
	}
	m.jobRunning.WithLabelValues(region, op).Inc()
}

// JobEvent counts the progress of a running job.
func (m *Metrics) JobEvent(e replicate.Event) {
	if m == nil || e.Region == "" {
		return
	}
	key := e.Op + "\x00" + e.Region + "\x00" + e.Snapshot + "\x00" + e.Disk
	m.mu.Lock()
	db := e.Bytes - m.lastBytes[key]
	dk := e.Blocks - m.lastBlks[key]
	if e.Bytes > 0 {
		m.lastBytes[key] = e.Bytes
	}
	if e.Blocks > 0 {
		m.lastBlks[key] = e.Blocks
	}
	m.mu.Unlock()
	if db > 0 {
		m.jobBytes.WithLabelValues(e.Region, e.Op).Add(float64(db))
	}
	if dk > 0 {
		m.jobBlocks.WithLabelValues(e.Region, e.Op).Add(float64(dk))
	}
}

// JobDone marks a region job finished, with its result.
func (m *Metrics) JobDone(region, op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.jobRunning.WithLabelValues(region, op).Dec()
	m.jobSecs.WithLabelValues(region, op).Observe(d.Seconds())
	now := float64(time.Now().UnixNano()) / 1e9
	if err != nil {
		m.jobDone.WithLabelValues(region, op, "error").Inc()
		m.jobLastErr.WithLabelValues(region, op).Set(now)
	} else {
		m.jobDone.WithLabelValues(region, op, "ok").Inc()
		m.jobLastOK.WithLabelValues(region, op).Set(now)
	}
	// Forget this job's totals (only its own: other regions' jobs run on).
	prefix := op + "\x00" + region + "\x00"
	m.mu.Lock()
	for k := range m.lastBytes {
		if strings.HasPrefix(k, prefix) {
			delete(m.lastBytes, k)
		}
	}
	for k := range m.lastBlks {
		if strings.HasPrefix(k, prefix) {
			delete(m.lastBlks, k)
		}
	}
	m.mu.Unlock()
}

// PolicyRun counts a run of snapshot policy name (the policy engine calls it).
func (m *Metrics) PolicyRun(policy string, err error) {
	if m == nil {
		return
	}
	res := "ok"
	if err != nil {
		res = "error"
	}
	m.policyRuns.WithLabelValues(policy, res).Inc()
	m.policyLast.WithLabelValues(policy, res).SetToCurrentTime()
}

// GCDone counts a garbage collection (background or snapfs gc): the
// store's Options.OnGC.
func (m *Metrics) GCDone(st rowstore.GCStats, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.gcRuns.WithLabelValues("error").Inc()
		return
	}
	m.gcRuns.WithLabelValues("ok").Inc()
	m.gcFreed.Add(float64(st.BytesFreed))
	m.gcMoved.Add(float64(st.BytesRelocated))
	m.gcLast.SetToCurrentTime()
}

// state collects the store's state at scrape time.
type state struct{ m *Metrics }

// descSet is the descriptors of the state read at scrape time, made on first
// use: not in the init of every process of the binary (each CLI command).
type descSet struct {
	descDisks, descDiskSize, descDiskAlloc, descDiskOpen, descSnaps, descSnapAge, descSnapOldest *prometheus.Desc
	descStoreBytes, descSegments, descUsageAge                                                   *prometheus.Desc
	descCleanRounds, descCleanMoved, descCleanFreed, descCleanThrottl                            *prometheus.Desc
	descLagSeconds, descLagBytes, descLagSnaps, descCacheDirty, descCacheLimit, descScrapeErr    *prometheus.Desc
}

var descs = sync.OnceValue(func() *descSet {
	return &descSet{
		descDisks:        prometheus.NewDesc("snapfs_disks", "Disks in the store.", nil, nil),
		descDiskSize:     prometheus.NewDesc("snapfs_disk_size_bytes", "Logical size of a disk.", []string{"disk"}, nil),
		descDiskAlloc:    prometheus.NewDesc("snapfs_disk_allocated_bytes", "Stored blocks a disk shows.", []string{"disk"}, nil),
		descDiskOpen:     prometheus.NewDesc("snapfs_disk_open_handles", "Open handles of a disk.", []string{"disk"}, nil),
		descSnaps:        prometheus.NewDesc("snapfs_snapshots", "Snapshots holding a disk.", []string{"disk"}, nil),
		descSnapAge:      prometheus.NewDesc("snapfs_snapshot_newest_age_seconds", "Age of the newest snapshot holding a disk.", []string{"disk"}, nil),
		descSnapOldest:   prometheus.NewDesc("snapfs_snapshot_oldest_age_seconds", "Age of the oldest snapshot holding a disk.", []string{"disk"}, nil),
		descStoreBytes:   prometheus.NewDesc("snapfs_store_bytes", "Store space by kind: segment (files on disk), live (blocks something can see), snapshot_exclusive (held only by snapshots: what deleting them frees), garbage (segment - live), index, free (of the filesystem).", []string{"kind"}, nil),
		descSegments:     prometheus.NewDesc("snapfs_store_segments", "Segment files.", nil, nil),
		descUsageAge:     prometheus.NewDesc("snapfs_store_usage_age_seconds", "Age of the usage pass the store bytes come from.", nil, nil),
		descCleanRounds:  prometheus.NewDesc("snapfs_cleaner_rounds_total", "Segment cleaner rounds.", nil, nil),
		descCleanMoved:   prometheus.NewDesc("snapfs_cleaner_relocated_bytes_total", "Live bytes the cleaner relocated.", nil, nil),
		descCleanFreed:   prometheus.NewDesc("snapfs_cleaner_freed_bytes_total", "Bytes the cleaner freed.", nil, nil),
		descCleanThrottl: prometheus.NewDesc("snapfs_cleaner_throttled_seconds_total", "Time writers waited for the cleaner.", nil, nil),
		descLagSeconds:   prometheus.NewDesc("snapfs_region_lag_seconds", "Age of the oldest local snapshot not yet available in the region (0: none).", []string{"region"}, nil),
		descLagBytes:     prometheus.NewDesc("snapfs_region_lag_bytes", "Allocated bytes of the local snapshots not yet available in the region (an upper bound of what sync ships).", []string{"region"}, nil),
		descLagSnaps:     prometheus.NewDesc("snapfs_region_pending_snapshots", "Local snapshots not yet available in the region.", []string{"region"}, nil),
		descCacheDirty:   prometheus.NewDesc("snapfs_cache_dirty_bytes", "Bytes in the write-back cache not yet in the log, by disk.", []string{"disk"}, nil),
		descCacheLimit:   prometheus.NewDesc("snapfs_cache_limit_bytes", "Bound of each disk's write-back cache.", nil, nil),
		descScrapeErr:    prometheus.NewDesc("snapfs_scrape_errors", "Parts of the store's state the scrape could not read.", []string{"part"}, nil),
	}
})

func (s *state) Describe(ch chan<- *prometheus.Desc) {
	ds := descs()
	for _, d := range []*prometheus.Desc{ds.descDisks, ds.descDiskSize, ds.descDiskAlloc, ds.descDiskOpen, ds.descSnaps, ds.descSnapAge,
		ds.descSnapOldest, ds.descStoreBytes, ds.descSegments, ds.descUsageAge, ds.descCleanRounds, ds.descCleanMoved, ds.descCleanFreed,
		ds.descCleanThrottl, ds.descCacheDirty, ds.descCacheLimit, ds.descLagSeconds, ds.descLagBytes, ds.descLagSnaps, ds.descScrapeErr} {
		ch <- d
	}
}

func (s *state) Collect(ch chan<- prometheus.Metric) {
	ds := descs()
	m := s.m
	now := time.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	fail := func(part string, err error) {
		m.log.Warn("metrics: read "+part, "err", err)
		gauge(ds.descScrapeErr, 1, part)
	}
	disks, err := m.src.Disks()
	if err != nil {
		fail("disks", err)
	}
	gauge(ds.descDisks, float64(len(disks)))
	for _, d := range disks {
		gauge(ds.descDiskSize, float64(d.Size), d.Name)
		gauge(ds.descDiskAlloc, float64(d.Allocated), d.Name)
		gauge(ds.descDiskOpen, float64(d.Open), d.Name)
	}
	snaps, err := m.src.Snapshots()
	if err != nil {
		fail("snapshots", err)
	}
	type perDisk struct {
		n              int
		newest, oldest time.Time
	}
	pd := map[string]*perDisk{}
	for _, d := range disks {
		pd[d.Name] = &perDisk{}
	}
	for _, sn := range snaps {
		for _, d := range sn.Disks {
			p := pd[d]
			if p == nil {
				continue // a deleted disk's snapshot
			}
			p.n++
			if sn.Created.After(p.newest) {
				p.newest = sn.Created
			}
			if p.oldest.IsZero() || sn.Created.Before(p.oldest) {
				p.oldest = sn.Created
			}
		}
	}
	for name, p := range pd {
		gauge(ds.descSnaps, float64(p.n), name)
		if p.n > 0 {
			gauge(ds.descSnapAge, now.Sub(p.newest).Seconds(), name)
			gauge(ds.descSnapOldest, now.Sub(p.oldest).Seconds(), name)
		}
	}
	if full, at, err := m.storeUsage(now); err != nil {
		fail("usage", err)
	} else {
		u := full.Store
		var snapExcl int64
		for _, sn := range full.Snapshots {
			snapExcl += sn.Exclusive
		}
		gauge(ds.descStoreBytes, float64(snapExcl), "snapshot_exclusive")
		gauge(ds.descStoreBytes, float64(u.SegmentBytes), "segment")
		gauge(ds.descStoreBytes, float64(u.LiveBytes), "live")
		gauge(ds.descStoreBytes, float64(max(u.SegmentBytes-u.LiveBytes, 0)), "garbage")
		gauge(ds.descStoreBytes, float64(u.IndexBytes), "index")
		gauge(ds.descStoreBytes, float64(u.FreeBytes), "free")
		gauge(ds.descSegments, float64(u.Segments))
		gauge(ds.descUsageAge, now.Sub(at).Seconds())
	}
	cs := m.src.CleanerStats()
	counter(ds.descCleanRounds, float64(cs.Rounds))
	counter(ds.descCleanMoved, float64(cs.BytesRelocated))
	counter(ds.descCleanFreed, float64(cs.BytesFreed))
	counter(ds.descCleanThrottl, cs.Throttled.Seconds())
	cache := m.src.CacheStats()
	gauge(ds.descCacheLimit, float64(cache.LimitPerDisk))
	for _, d := range disks {
		gauge(ds.descCacheDirty, float64(cache.Disks[d.Name]), d.Name)
	}
	regions, err := m.src.Regions()
	if err != nil {
		fail("regions", err)
	}
	for _, r := range regions {
		lag := Lag(r, snaps, now)
		gauge(ds.descLagSeconds, lag.Seconds, r)
		gauge(ds.descLagBytes, float64(lag.Bytes), r)
		gauge(ds.descLagSnaps, float64(lag.Snapshots), r)
	}
}

// storeUsage is the last usage pass, made again when older than UsageEvery
// or when its exclusive and live figures were stale (a recount was under
// way in the store: the next scrape shows its result, not a minute later).
func (m *Metrics) storeUsage(now time.Time) (rowstore.Usage, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.usageAt.IsZero() || now.Sub(m.usageAt) >= UsageEvery || m.usage.Store.ExclusiveStale {
		m.usage, m.usageErr = m.src.Usage()
		m.usageAt = now
	}
	return m.usage, m.usageAt, m.usageErr
}

// RegionLag is how far a region is behind the local snapshots (service's:
// snapfs status shows the same figures).
type RegionLag = service.RegionLag

// Lag is region's lag behind snaps (from this host's copy records).
func Lag(region string, snaps []SnapshotState, now time.Time) RegionLag {
	return service.Lag(region, snaps, now)
}

// States are snaps (as the Service lists them) as the metrics read them.
func States(snaps []service.Snapshot) []SnapshotState { return service.SnapshotStates(snaps) }
