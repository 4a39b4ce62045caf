package service

import (
	"context"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// Service is every operation the snapfs commands perform on a store. Local
// implements it in-process over a *rowstore.Store; Client implements it over
// the daemon's control socket; the daemon serves a Local on that socket
// (Handler). A command never knows which one it has.
//
// Adding an operation (e.g. the region commands: sync, restore, region
// check/repair) takes four small steps, all in this package:
//  1. a method here, with request/response types below it when it needs
//     more than a name (types must round-trip through encoding/json);
//  2. its implementation on *Local (local.go): the only real one;
//  3. its one-line forwarding on *Client (client.go);
//  4. its entry in the methods table of the control API (server.go).
//
// Errors wrap the sentinels of package rowstore (or exitcode.ErrNoDaemon);
// across the socket they travel as a code and come back wrapping the same
// sentinel, so errors.Is and exit codes are the same on both paths.
type Service interface {
	// Status describes the store and whether a daemon serves it.
	Status(ctx context.Context) (Status, error)
	// StatusReport is what snapfs status shows (status.go): Status, open
	// disks, last snapshot per disk, snapshot mounts, region lag.
	StatusReport(ctx context.Context) (StatusReport, error)

	// Disks.
	CreateDisk(ctx context.Context, req CreateDiskRequest) (Disk, error)
	ListDisks(ctx context.Context) ([]Disk, error)
	GetDisk(ctx context.Context, name string) (Disk, error)
	ResizeDisk(ctx context.Context, name string, size int64) (Disk, error)
	DeleteDisk(ctx context.Context, name string, force bool) error
	RollbackDisk(ctx context.Context, name, snapshot string, force bool) (Disk, error)

	// Snapshots. ListSnapshots with disk != "" lists the snapshots holding
	// that disk. Diff compares disk in snapshot old with snapshot new (new ""
	// means the disk now).
	CreateSnapshot(ctx context.Context, name string, disks []string) (Snapshot, error)
	ListSnapshots(ctx context.Context, disk string) ([]Snapshot, error)
	GetSnapshot(ctx context.Context, name string) (Snapshot, error)
	DeleteSnapshot(ctx context.Context, name string) error
	Diff(ctx context.Context, req DiffRequest) (Diff, error)

	// Images.
	CreateImage(ctx context.Context, name, snapshot, disk string) (Image, error)
	ListImages(ctx context.Context) ([]Image, error)
	GetImage(ctx context.Context, name string) (Image, error)
	DeleteImage(ctx context.Context, name string) error

	// Space.
	Usage(ctx context.Context) (rowstore.Usage, error)
	// FreshUsage is Usage with the exclusive figures counted now if they
	// are stale (O(data); rowstore.Store.FreshUsage).
	FreshUsage(ctx context.Context) (rowstore.Usage, error)
	GC(ctx context.Context) (rowstore.GCStats, error)

	// DiffFiles lists the files created, deleted, modified and renamed in
	// the filesystem inside a disk between two snapshots (New "": the disk
	// now). It needs a daemon (the filesystems are mounted by its .files
	// manager): without one it fails with exitcode.ErrNoDaemon.
	DiffFiles(ctx context.Context, req FilesDiffRequest) (FilesDiff, error)
	// MountSnapshot mounts the filesystem inside a snapshot's disk
	// read-only through a scratch clone (snapshot mount), every step in the
	// daemon (snapmount.go); it needs a daemon (exitcode.ErrNoDaemon).
	// UmountSnapshot undoes it.
	MountSnapshot(ctx context.Context, req SnapMountRequest) (SnapMount, error)
	UmountSnapshot(ctx context.Context, mountpoint string) (SnapMount, error)

	// Regions (package replicate). Region configuration is local to the
	// store (<store>/regions); remote data is only touched by Sync, Restore,
	// RepairRegion and PruneRegion. Long jobs take a Progress (nil: none);
	// through the daemon its events stream back over the control socket.
	AddRegion(ctx context.Context, req AddRegionRequest) (AddedRegion, error)
	ListRegions(ctx context.Context) ([]Region, error)
	GetRegion(ctx context.Context, name string) (Region, error)
	RemoveRegion(ctx context.Context, name string) error
	// RemoteSnapshots lists the region's snapshots, oldest first, with
	// their state (copying, available, degraded).
	RemoteSnapshots(ctx context.Context, region string) ([]RemoteSnapshot, error)
	// Sync copies to the region every local snapshot of req.Disks (all when
	// empty) not there yet, or only req.Snapshot when set.
	Sync(ctx context.Context, req SyncRequest, progress Progress) (SyncStats, error)
	Restore(ctx context.Context, req RestoreRequest, progress Progress) (RestoreStats, error)
	// CheckRegion reports problems; it fails only when the check could not
	// run (a report with problems is not an error here: the CLI decides).
	CheckRegion(ctx context.Context, region string, readData bool, progress Progress) (CheckReport, error)
	RepairRegion(ctx context.Context, region string, progress Progress) (RepairReport, error)
	PruneRegion(ctx context.Context, req PruneRequest) (PruneStats, error)
	// UnlockRegion removes the region's stale locks (every lock with
	// Force) and the copying markers of dead syncs.
	UnlockRegion(ctx context.Context, req UnlockRequest) (UnlockStats, error)
	// SetRegionRetention sets (or with zero values clears) the region's
	// own retention: prune without options applies it and sync copies
	// nothing it would remove at once.
	SetRegionRetention(ctx context.Context, req RetentionRequest) (Region, error)
	// RepairRegionWith is RepairRegion with options: NewStores names empty
	// stores that replace lost ones (the only stores without a region
	// marker that repair writes to).
	RepairRegionWith(ctx context.Context, req RepairRequest, progress Progress) (RepairReport, error)

	// Automatic snapshot policies (rowstore/policy; local_policy.go). A
	// policy is stored in the engine's catalog; the daemon's scheduler runs
	// it. Deleting a policy keeps its snapshots (they are no longer expired).
	CreatePolicy(ctx context.Context, p Policy) (PolicyInfo, error)
	ApplyPolicy(ctx context.Context, name string, disks []string) (PolicyInfo, error)
	CancelPolicy(ctx context.Context, name string, disks []string) (PolicyInfo, error)
	ListPolicies(ctx context.Context) ([]PolicyInfo, error)
	GetPolicy(ctx context.Context, name string) (PolicyInfo, error)
	DeletePolicy(ctx context.Context, name string) error
	// CreateSnapshotWith takes a snapshot with consistency options: freeze
	// filesystems (FIFREEZE, always thawed), pre- and post-hooks with a
	// timeout; quotas apply (local_freeze.go).
	CreateSnapshotWith(ctx context.Context, req CreateSnapshotRequest) (Snapshot, error)
	// DeleteSnapshotPlan says what deleting a snapshot would free, deleting
	// nothing (snapshot delete --dry-run).
	DeleteSnapshotPlan(ctx context.Context, name string) (DeletePlan, error)
	// RegionUsage lists the bytes each store of each region holds (a store
	// that cannot be listed carries its error).
	RegionUsage(ctx context.Context) ([]RegionUsage, error)
	// Quotas returns the store's snapshot quotas; SetQuotas replaces them
	// (zero fields: the defaults).
	Quotas(ctx context.Context) (Quotas, error)
	SetQuotas(ctx context.Context, q Quotas) (Quotas, error)

	// Shutdown asks the daemon to flush everything, unmount and exit. It
	// returns once the mount is gone; the process exits right after. Without
	// a daemon it fails with exitcode.ErrNoDaemon.
	Shutdown(ctx context.Context) error

	// Close releases the service: a Local closes the store (committing every
	// write); a Client closes its connections.
	Close() error

	// CheckStore verifies the local store (snapfs check): superblock,
	// catalog, index and log, and with ReadData every stored block. A report
	// with problems is not an error here (the CLI decides the exit code).
	CheckStore(ctx context.Context, req CheckStoreRequest, progress Progress) (StoreCheckReport, error)
	// RepairFromRegion rewrites every corrupt or missing block of the local
	// store from a region's copy with the same digest (snapfs repair).
	RepairFromRegion(ctx context.Context, region string, progress Progress) (StoreRepairReport, error)

	// Encrypted disks (rowstore keys). Key files travel as absolute paths,
	// never as keys: the process that serves the store reads them (and
	// refuses one readable by group or others unless AllowInsecure).
	// UnlockDisk and LockDisk act on the daemon's memory: without a daemon
	// they fail with exitcode.ErrNoDaemon (a command's own process would
	// forget the key at exit). A disk's key is shared by its snapshots,
	// images and clones: they lock and unlock together.
	UnlockDisk(ctx context.Context, req KeyRequest) error
	LockDisk(ctx context.Context, name string) error
	// RekeyDisk wraps the disk's data key with the key of NewKeyFile
	// instead of KeyFile; no block is rewritten.
	RekeyDisk(ctx context.Context, req KeyRequest) error

	// ReleaseHolds removes by hand the holds (of lazily restored disks) of
	// a region's snapshot, e.g. of a host gone for good (local_hold.go).
	ReleaseHolds(ctx context.Context, req ReleaseHoldsRequest) ([]HoldInfo, error)
}

// ReleaseHoldsRequest selects the holds ReleaseHolds removes: those of
// Snapshot, of the snapshot's Host ("" any), held by Holder ("" any; host
// id or name).
type ReleaseHoldsRequest struct {
	Region   string `json:"region"`
	Snapshot string `json:"snapshot"`
	Host     string `json:"host,omitempty"`
	Holder   string `json:"holder,omitempty"`
	// Force releases holds whose holder holds a live lock on the region
	// too (replicate.Manager.ReleaseHoldsByHand).
	Force bool `json:"force,omitempty"`
}

// HoldInfo is a region hold.
type HoldInfo = replicate.HoldInfo

// KeyRequest names a disk and key files (paths, never keys).
type KeyRequest struct {
	Name          string `json:"name"`
	KeyFile       string `json:"key_file"`
	NewKeyFile    string `json:"new_key_file,omitempty"`
	AllowInsecure bool   `json:"allow_insecure_key_file,omitempty"`
}

// CheckStoreRequest configures CheckStore.
type CheckStoreRequest struct {
	ReadData    bool          `json:"read_data,omitempty"`
	MaxDuration time.Duration `json:"max_duration,omitempty"`
}

// Store check and repair reports are rowstore's.
type (
	StoreCheckReport  = rowstore.CheckReport
	StoreRepairReport = rowstore.RepairReport
)

// Status describes the store and its daemon.
type Status struct {
	Store      string    `json:"store"`
	Daemon     bool      `json:"daemon"`               // a daemon serves the store
	PID        int       `json:"pid,omitempty"`        // the daemon's process id
	Mountpoint string    `json:"mountpoint,omitempty"` // where the daemon mounted the namespace
	Started    time.Time `json:"started,omitzero"`
	// Jobs are the long jobs (sync, restore, checks, repairs, gc) the daemon
	// runs now; Metrics the address of its Prometheus metrics (mount
	// --metrics). These are filled in by the daemon only.
	Jobs    []Job  `json:"jobs,omitempty"`
	Metrics string `json:"metrics,omitempty"`
	// Cache is the write-back cache of the daemon's open disks.
	Cache *rowstore.CacheStats `json:"cache,omitempty"`
}

// Job is a long job running in the daemon, as of its last progress event.
type Job struct {
	Op          string    `json:"op"` // sync, restore, check, repair, store-check, store-repair, gc
	Region      string    `json:"region,omitempty"`
	Snapshot    string    `json:"snapshot,omitempty"`
	Disk        string    `json:"disk,omitempty"`
	Started     time.Time `json:"started"`
	Blocks      int64     `json:"blocks,omitempty"`
	BlocksTotal int64     `json:"blocks_total,omitempty"`
	Bytes       int64     `json:"bytes,omitempty"`
}

// Disk describes a disk.
type Disk = rowstore.DiskInfo

// Image describes an image.
type Image = rowstore.ImageInfo

// CreateDiskRequest creates a disk: empty (Size, BlockSize), or a clone of
// disk FromDisk of snapshot FromSnapshot, or from image FromImage.
type CreateDiskRequest = wire.CreateDiskRequest

// Snapshot describes a snapshot. It is also the content of
// M/snapshots/<name>/snapshot.json.
type Snapshot struct {
	ID      uint64         `json:"id"`
	Name    string         `json:"name"`
	Created time.Time      `json:"created"`
	Kind    string         `json:"kind"`
	State   string         `json:"state"` // the local copy: "available"
	Disks   []SnapshotDisk `json:"disks"`
	// Copies is the snapshot's state in every configured region, from this
	// host's record of its last sync, check, prune or region snapshots
	// listing (no store is contacted to answer). Absent without regions.
	Copies []SnapshotCopy `json:"copies,omitempty"`
	// Policy names the policy that took an automatic snapshot (Kind
	// "automatic"); Consistency is "crash", "filesystem" (frozen) or
	// "application" (pre-hook ran).
	Policy      string `json:"policy,omitempty"`
	Consistency string `json:"consistency"`
}

// SnapshotCopy is a snapshot's state in one region: "absent", "copying",
// "available" (in the region with all shards, as far as this host knows)
// or "degraded" (the last check found missing or corrupt shards it needs),
// as recorded at AsOf (zero: never recorded).
type SnapshotCopy struct {
	Region string          `json:"region"`
	State  replicate.State `json:"state"`
	AsOf   time.Time       `json:"as_of,omitzero"`
}

// SnapshotDisk is one disk of a snapshot.
type SnapshotDisk struct {
	Name      string `json:"name"`
	DiskID    uint64 `json:"disk_id"`
	Size      int64  `json:"size"`
	BlockSize int    `json:"block_size"`
	Allocated int64  `json:"allocated"`
	// Files is what <disk>.files shows: the filesystems found inside the
	// disk, or why there is none (Reason). Absent when it could not be read,
	// and in snapshot list and create (only info and snapshot.json probe the
	// disks: listings read no block).
	Files *browse.Layout `json:"files,omitempty"`
}

// DiffRequest names what to compare: Disk as of snapshot Old against Disk
// as of snapshot New, or the disk now when New is "". Old "" compares
// against an empty disk (every stored range).
type DiffRequest struct {
	Old  string `json:"old"`
	New  string `json:"new,omitempty"`
	Disk string `json:"disk"`
}

// Diff is the changed byte ranges between two points, in order, adjacent
// changed blocks merged. Zero ranges read as zeros in the newer point.
type Diff struct {
	Disk         string  `json:"disk"`
	Old          string  `json:"old"`
	New          string  `json:"new,omitempty"`
	BlockSize    int     `json:"block_size"`
	Size         int64   `json:"size"`          // size of the newer point
	ChangedBytes int64   `json:"changed_bytes"` // sum of the ranges' lengths
	Ranges       []Range `json:"ranges"`
}

// Range is a changed byte range.
type Range struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
	Zero   bool  `json:"zero,omitempty"`
}

// Progress receives the events of a long region job (sync, restore, check,
// repair). It may be called from several goroutines at once.
type Progress func(replicate.Event)

// Region types are replicate's: they round-trip through encoding/json.
type (
	Region         = replicate.RegionConfig
	AddedRegion    = replicate.RegionInfo
	RemoteSnapshot = replicate.RemoteSnapshot
	SyncStats      = replicate.Stats
	RestoreStats   = replicate.RestoreStats
	CheckReport    = replicate.Report
	RepairReport   = replicate.RepairReport
	PruneStats     = replicate.PruneStats
	UnlockStats    = replicate.UnlockStats
)

// AddRegionRequest configures a region (replicate.RegionConfig without the
// fields AddRegion fills in). KeyFile must be absolute: the daemon does not
// share the command's working directory.
type AddRegionRequest struct {
	Name    string              `json:"name"`
	K       int                 `json:"data"`
	M       int                 `json:"parity"`
	Stores  []string            `json:"stores"`
	KeyFile string              `json:"key_file"`
	S3      replicate.S3Options `json:"s3"`
	// InsecureKeyFile accepts a key file group or others may read.
	InsecureKeyFile bool `json:"insecure_key_file,omitempty"`
	// Retention is the region's own retention (optional); Create makes
	// file:// store directories that do not exist.
	Retention replicate.Retention `json:"retention,omitzero"`
	Create    bool                `json:"create,omitempty"`
}

// RepairRequest is a repair with options (replicate.RepairOptions).
type RepairRequest struct {
	Region    string `json:"region"`
	NewStores []int  `json:"new_stores,omitempty"`
}

// RetentionRequest sets a region's retention.
type RetentionRequest struct {
	Region string `json:"region"`
	replicate.Retention
}

// SyncRequest names what Sync copies: Snapshot alone, or every snapshot
// holding one of Disks (every snapshot when both are empty).
type SyncRequest struct {
	Region   string   `json:"region"`
	Disks    []string `json:"disks,omitempty"`
	Snapshot string   `json:"snapshot,omitempty"`
}

// RestoreRequest builds local disk To from disk Disk of remote snapshot
// Snapshot (of Host: a host id, host name or "unknown"; empty: this
// host's, or the only one of that name).
type RestoreRequest struct {
	Region   string `json:"region"`
	Snapshot string `json:"snapshot"`
	Disk     string `json:"disk"`
	To       string `json:"to"`
	Host     string `json:"host,omitempty"`
	// KeyFile (a path) makes the restored disk encrypted with a new data
	// key it wraps (restore --encrypt).
	KeyFile              string `json:"key_file,omitempty"`
	AllowInsecureKeyFile bool   `json:"allow_insecure_key_file,omitempty"`
	// Lazy makes To usable at once: blocks come from the region on demand
	// and hydrate in the background within Rate bytes/s (0: unbounded);
	// Wait returns once every block is local (local_lazy.go).
	Lazy bool  `json:"lazy,omitempty"`
	Rate int64 `json:"rate,omitempty"`
	Wait bool  `json:"wait,omitempty"`
}

// PruneRequest keeps the KeepLast newest remote snapshots and those younger
// than KeepWithin; at least one must be positive.
type PruneRequest struct {
	Region     string        `json:"region"`
	KeepLast   int           `json:"keep_last,omitempty"`
	KeepWithin time.Duration `json:"keep_within,omitempty"`
	// Hosts and AllHosts choose whose snapshots (default: this host's);
	// see replicate.PruneOptions.
	Hosts    []string `json:"hosts,omitempty"`
	AllHosts bool     `json:"all_hosts,omitempty"`
	// DryRun: say what prune would delete, change nothing
	// (replicate.PruneOptions.DryRun).
	DryRun bool `json:"dry_run,omitempty"`
}

// UnlockRequest removes a region's stale locks, or every lock with Force.
type UnlockRequest struct {
	Region string `json:"region"`
	Force  bool   `json:"force,omitempty"`
}

// FilesDiffRequest names what DiffFiles compares: the filesystem Part (""
// for the disk's only filesystem, "p1", "p2"... for a partition) of Disk
// as of snapshot Old and as of snapshot New, or the disk now when New is "".
type FilesDiffRequest struct {
	Old  string `json:"old"`
	New  string `json:"new,omitempty"`
	Disk string `json:"disk"`
	Part string `json:"part,omitempty"`
}

// FilesDiff is the file-level difference, changes sorted by path.
type FilesDiff struct {
	Disk     string          `json:"disk"`
	Old      string          `json:"old"`
	New      string          `json:"new,omitempty"`
	Part     string          `json:"part,omitempty"`
	Changes  []browse.Change `json:"changes"`
	OldFiles int             `json:"old_files"` // entries walked in the old tree
	NewFiles int             `json:"new_files"`
	// ChangedBytes is what the engine's block diff says changed in the
	// disk; when it is 0 no tree is walked (OldFiles and NewFiles are 0).
	ChangedBytes int64         `json:"changed_bytes"`
	Took         time.Duration `json:"took_ns"`
}
