// Package service is the one implementation of what the snapfs commands do
// to a store, and the two ways to reach it.
//
// Service (service.go) lists every operation. Local runs them in-process
// over a *rowstore.Store; Client forwards them over the daemon's control
// socket; Handler serves any Service (the daemon's Local) on that socket.
// Open picks: the daemon's Client when <store>/control.sock answers, else a
// Local over the store opened here; a store locked by another process whose
// socket does not answer is ErrBusy (after a 3 s wait for a starting daemon).
//
// Wire format: "POST /v1/<Method>" with a JSON body, 200 and the JSON result,
// or an error status with {"code", "message"}; the codes (errors.go) map
// back to the same sentinels, so exit codes do not depend on the path.
//
// `snapfs status` is Service.StatusReport (status.go: ReportStatus, called
// with the outermost Service, the daemon's, whose Status adds the running
// jobs and the write-back cache); the command only formats it. The region
// lag it shows is the one the daemon's metrics export (Lag).
//
// Invariants: nothing is implemented in Client or Handler beyond
// (un)marshalling; Local's hooks (set by the daemon) keep the FUSE mount's
// caches in step and are never called from inside a FUSE request; snapshots
// and images are immutable, so their allocation is counted once per process.
//
// Scratch clones (of snapshot mount and of the .files directories) and the
// temporary snapshots of diff --files against now are recorded in a ledger
// (<store>/snapmounts/clones/, scratch.go) before they are made, are never
// listed (the temporary snapshots are, while the diff runs), and are
// removed at daemon start (CleanScratch) with the .files mounts
// (browse.Clean), loop devices and mounts a killed daemon left. snapshot
// mount runs in the daemon (snapmount.go); the .files manager belongs to
// the daemon's Local (local_files.go: EnableFiles, ReleaseFiles, DiffFiles).
//
// Access: the socket is 0600 in a 0700 store, and PeerCredListener (which
// the daemon wraps it in) closes every connection whose peer (SO_PEERCRED)
// is neither the daemon's uid nor root, whatever the modes. Keys of
// encrypted disks cross the socket only as key file paths (KeyRequest,
// CreateDiskRequest.KeyFile): the serving process reads the files.
//
// # Policies, consistency and quotas (issue 9)
//
// local_policy.go: policies are rowstore/policy records in the engine's
// catalog (rowstore.PutPolicy: logged, rebuilt by index rebuild). The
// scheduler's state per policy and disk (last scheduled instant taken,
// consecutive failures, last error, retry time, copies still to make)
// lives in <store>/policies/status.json: a cache; lost, a policy takes at
// most one extra snapshot per disk (a snapshot of the due name that exists
// counts as taken). RunPolicies(now) is the whole scheduler: for each due
// disk it evicts for the quota (own oldest automatic first), takes the
// snapshot with the policy's consistency (kind "automatic", the policy
// recorded in the snapshot), expires this policy's automatic snapshots by
// its retention (never manual ones, never another policy's), copies it to
// CopyTo (snapshot copy: explicit) and applies CopyRetain to this policy's
// copies there (replicate PruneOptions.Only, which leaves tombstones: sync
// never ships them again). A failed step is logged, recorded and retried
// after 1 min, doubling to 1 h. The daemon (daemon/scheduler.go) calls it
// every 30 s with the wall clock; tests call it with their own.
//
// local_freeze.go: CreateSnapshotWith runs pre-hook, FIFREEZE, snapshot,
// FITHAW, post-hook. The thaw is deferred and always runs; a freeze that
// does not complete within the timeout is undone by its goroutine when it
// does; hooks run in their own process group, killed whole at the timeout;
// the post-hook runs once the pre-hook started, with SNAPFS_RESULT. The
// consistency recorded is application (pre-hook succeeded), filesystem
// (frozen) or crash. Quotas come from <store>/policies/quota.json.
//
// local_lazy.go: Restore with Lazy opens the region's disk
// (replicate.RemoteDisk, range reads verified against chunk ids), refuses
// an encrypted one, creates the disk over a rowstore lazy layer
// (CreateLazyDisk) under a temporary name, writes its hold (local_hold.go,
// naming the final name), attaches the region's disk as its source and
// only then renames it: a disk under the name asked for always has its
// hold. A killed restore's temporary disk is deleted at the daemon's start
// with its hold released and its layer dropped (local_lazyclean.go); with
// Wait it streams "hydrate" progress events (start, blocks, done) as sync
// does.
// The source is reopened after a read fails as unavailable (at most every
// 5 s: a RemoteDisk keeps the stores it opened). SetDaemon re-attaches the
// source of every lazy layer in the background (retrying every 1 s to 1
// min while the region cannot be opened; until then reads of missing
// blocks fail with EIO); Close stops hydration before the region manager
// closes (the sources hold region locks). Without a daemon, hydration runs
// only while the command does; the next daemon resumes it.
package service
