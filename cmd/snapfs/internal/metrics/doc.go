// Package metrics is the daemon's Prometheus metrics (snapfs mount
// --metrics ADDR): what the daemon does, counted where it happens, and the
// store's state, read when scraped.
//
// Counted as it happens (by the daemon's wrappers and by hooks anyone can
// call on the process's *Metrics):
//   - FUSE I/O: snapfs_io_bytes_total, snapfs_io_ops_total and
//     snapfs_io_seconds (histogram) by op (read, write, flush) and kind
//     (disk, snapshot, image), from a wrapper of the fs.Backend (Backend).
//     A flush (fsync, or the close of a written disk) commits the disk's
//     write-back cache; snapfs_cache_flush_seconds is its latency.
//   - Region jobs: snapfs_region_job_* (running, bytes, blocks, last success
//     and failure time, by region and op) from the progress events and
//     results of sync, restore, check, repair (JobStarted, JobEvent,
//     JobDone).
//   - Policy runs: snapfs_policy_runs_total{policy,result} and
//     snapfs_policy_last_run_timestamp_seconds (PolicyRun). The policy
//     engine calls PolicyRun; until it is merged these stay empty.
//   - gc runs, background and snapfs gc: snapfs_gc_* (GCDone, from the
//     store's Options.OnGC).
//
// Read at scrape time from a Source (the daemon's service.Local): disks and
// open handles, snapshots per disk and the age of the newest, store bytes
// (segment, live, snapshot-exclusive, garbage = segment - live, index, free; the usage pass is
// cached for UsageEvery, or until the store's background recount of the
// exclusive and live figures is done when the last pass found them stale), the cleaner's progress, and
// per region the lag (age and size of the snapshots not yet available
// there, from this host's copy records: no store is contacted).
//
// The dependency is prometheus/client_golang, the reference client: its
// registry, collectors and text exposition are what Prometheus scrapes
// best; pprof stays behind its own flag (mount --pprof).
package metrics
