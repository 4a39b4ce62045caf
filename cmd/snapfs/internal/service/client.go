package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"

	"github.com/snapfs/snapfs/rowstore"
)

// Client is the Service of a daemon, over its control socket. The
// transport is package wire's (shared with the front binary); Client turns
// its error answers into RemoteError, which wraps the code's sentinel.
type Client struct {
	sock string
	wc   *wire.Client
}

// NewClient returns a client of the control socket at sock. It does not
// connect until the first call.
func NewClient(sock string) *Client {
	return &Client{sock: sock, wc: wire.NewClient(sock)}
}

// post sends a request; it returns the response when its status is 200
// (close its body), or the error it carries.
func (c *Client) post(ctx context.Context, method string, req any) (*wire.Response, error) {
	res, err := c.wc.Post(ctx, method, req)
	return res, FromWire(err)
}

// FromWire is err with a daemon's error answer (*wire.Error) turned into a
// RemoteError, which wraps the sentinel of its code; other errors are
// returned as they are.
func FromWire(err error) error {
	var we *wire.Error
	if errors.As(err, &we) {
		return &RemoteError{Code: we.Code, Message: we.Message}
	}
	return err
}

func (c *Client) call(ctx context.Context, method string, req, resp any) error {
	data, err := c.wc.Call(ctx, method, req)
	if err != nil {
		return FromWire(err)
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("%w: daemon at %s: bad answer to %s: %v", rowstore.ErrIncompatible, c.sock, method, err)
	}
	return nil
}

func get[T any](c *Client, ctx context.Context, method string, req any) (T, error) {
	var v T
	err := c.call(ctx, method, req, &v)
	return v, err
}

// Status implements Service.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return get[Status](c, ctx, "Status", empty{})
}

// StatusReport implements Service.
func (c *Client) StatusReport(ctx context.Context) (StatusReport, error) {
	return get[StatusReport](c, ctx, "StatusReport", empty{})
}

// CreateDisk implements Service.
func (c *Client) CreateDisk(ctx context.Context, r CreateDiskRequest) (Disk, error) {
	return get[Disk](c, ctx, "CreateDisk", r)
}

// ListDisks implements Service.
func (c *Client) ListDisks(ctx context.Context) ([]Disk, error) {
	return get[[]Disk](c, ctx, "ListDisks", empty{})
}

// GetDisk implements Service.
func (c *Client) GetDisk(ctx context.Context, name string) (Disk, error) {
	return get[Disk](c, ctx, "GetDisk", nameReq{name})
}

// ResizeDisk implements Service.
func (c *Client) ResizeDisk(ctx context.Context, name string, size int64) (Disk, error) {
	return get[Disk](c, ctx, "ResizeDisk", resizeReq{name, size})
}

// DeleteDisk implements Service.
func (c *Client) DeleteDisk(ctx context.Context, name string, force bool) error {
	return c.call(ctx, "DeleteDisk", forceReq{name, force}, nil)
}

// RollbackDisk implements Service.
func (c *Client) RollbackDisk(ctx context.Context, name, snapshot string, force bool) (Disk, error) {
	return get[Disk](c, ctx, "RollbackDisk", rollbackReq{Name: name, Snapshot: snapshot, Force: force})
}

// CreateSnapshot implements Service.
func (c *Client) CreateSnapshot(ctx context.Context, name string, disks []string) (Snapshot, error) {
	return get[Snapshot](c, ctx, "CreateSnapshot", snapshotReq{name, disks})
}

// ListSnapshots implements Service.
func (c *Client) ListSnapshots(ctx context.Context, disk string) ([]Snapshot, error) {
	return get[[]Snapshot](c, ctx, "ListSnapshots", listSnapshotsReq{Disk: disk})
}

// GetSnapshot implements Service.
func (c *Client) GetSnapshot(ctx context.Context, name string) (Snapshot, error) {
	return get[Snapshot](c, ctx, "GetSnapshot", nameReq{name})
}

// DeleteSnapshot implements Service.
func (c *Client) DeleteSnapshot(ctx context.Context, name string) error {
	return c.call(ctx, "DeleteSnapshot", nameReq{name}, nil)
}

// Diff implements Service.
func (c *Client) Diff(ctx context.Context, r DiffRequest) (Diff, error) {
	return get[Diff](c, ctx, "Diff", r)
}

// CreateImage implements Service.
func (c *Client) CreateImage(ctx context.Context, name, snapshot, disk string) (Image, error) {
	return get[Image](c, ctx, "CreateImage", imageReq{Name: name, Snapshot: snapshot, Disk: disk})
}

// ListImages implements Service.
func (c *Client) ListImages(ctx context.Context) ([]Image, error) {
	return get[[]Image](c, ctx, "ListImages", empty{})
}

// GetImage implements Service.
func (c *Client) GetImage(ctx context.Context, name string) (Image, error) {
	return get[Image](c, ctx, "GetImage", nameReq{name})
}

// DeleteImage implements Service.
func (c *Client) DeleteImage(ctx context.Context, name string) error {
	return c.call(ctx, "DeleteImage", nameReq{name}, nil)
}

// Usage implements Service.
func (c *Client) Usage(ctx context.Context) (rowstore.Usage, error) {
	return get[rowstore.Usage](c, ctx, "Usage", empty{})
}

// FreshUsage implements Service.
func (c *Client) FreshUsage(ctx context.Context) (rowstore.Usage, error) {
	return get[rowstore.Usage](c, ctx, "FreshUsage", empty{})
}

// GC implements Service.
func (c *Client) GC(ctx context.Context) (rowstore.GCStats, error) {
	return get[rowstore.GCStats](c, ctx, "GC", empty{})
}

// DiffFiles implements Service.
func (c *Client) DiffFiles(ctx context.Context, r FilesDiffRequest) (FilesDiff, error) {
	return get[FilesDiff](c, ctx, "DiffFiles", r)
}

// MountSnapshot implements Service.
func (c *Client) MountSnapshot(ctx context.Context, r SnapMountRequest) (SnapMount, error) {
	return get[SnapMount](c, ctx, "MountSnapshot", r)
}

// UmountSnapshot implements Service.
func (c *Client) UmountSnapshot(ctx context.Context, mountpoint string) (SnapMount, error) {
	return get[SnapMount](c, ctx, "UmountSnapshot", umountReq{mountpoint})
}

// Shutdown implements Service.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.call(ctx, "Shutdown", empty{}, nil)
}

// Close implements Service.
func (c *Client) Close() error {
	c.wc.Close()
	return nil
}

// AddRegion implements Service.
func (c *Client) AddRegion(ctx context.Context, r AddRegionRequest) (AddedRegion, error) {
	return get[AddedRegion](c, ctx, "AddRegion", r)
}

// ListRegions implements Service.
func (c *Client) ListRegions(ctx context.Context) ([]Region, error) {
	return get[[]Region](c, ctx, "ListRegions", empty{})
}

// GetRegion implements Service.
func (c *Client) GetRegion(ctx context.Context, name string) (Region, error) {
	return get[Region](c, ctx, "GetRegion", nameReq{name})
}

// RemoveRegion implements Service.
func (c *Client) RemoveRegion(ctx context.Context, name string) error {
	return c.call(ctx, "RemoveRegion", nameReq{name}, nil)
}

// RemoteSnapshots implements Service.
func (c *Client) RemoteSnapshots(ctx context.Context, region string) ([]RemoteSnapshot, error) {
	return get[[]RemoteSnapshot](c, ctx, "RemoteSnapshots", nameReq{region})
}

// Sync implements Service.
func (c *Client) Sync(ctx context.Context, r SyncRequest, progress Progress) (SyncStats, error) {
	return stream[SyncStats](c, ctx, "Sync", r, progress)
}

// Restore implements Service.
func (c *Client) Restore(ctx context.Context, r RestoreRequest, progress Progress) (RestoreStats, error) {
	return stream[RestoreStats](c, ctx, "Restore", r, progress)
}

// CheckRegion implements Service.
func (c *Client) CheckRegion(ctx context.Context, region string, readData bool, progress Progress) (CheckReport, error) {
	return stream[CheckReport](c, ctx, "CheckRegion", checkReq{region, readData}, progress)
}

// RepairRegion implements Service.
func (c *Client) RepairRegion(ctx context.Context, region string, progress Progress) (RepairReport, error) {
	return stream[RepairReport](c, ctx, "RepairRegion", nameReq{region}, progress)
}

// PruneRegion implements Service.
func (c *Client) PruneRegion(ctx context.Context, r PruneRequest) (PruneStats, error) {
	return stream[PruneStats](c, ctx, "PruneRegion", r, nil)
}

// CheckStore implements Service.
func (c *Client) CheckStore(ctx context.Context, r CheckStoreRequest, progress Progress) (StoreCheckReport, error) {
	return stream[StoreCheckReport](c, ctx, "CheckStore", r, progress)
}

// RepairFromRegion implements Service.
func (c *Client) RepairFromRegion(ctx context.Context, region string, progress Progress) (StoreRepairReport, error) {
	return stream[StoreRepairReport](c, ctx, "RepairFromRegion", nameReq{region}, progress)
}

// UnlockRegion implements Service.
func (c *Client) UnlockRegion(ctx context.Context, r UnlockRequest) (UnlockStats, error) {
	return stream[UnlockStats](c, ctx, "UnlockRegion", r, nil)
}

// SetRegionRetention implements Service.
func (c *Client) SetRegionRetention(ctx context.Context, r RetentionRequest) (Region, error) {
	return get[Region](c, ctx, "SetRegionRetention", r)
}

// RepairRegionWith implements Service.
func (c *Client) RepairRegionWith(ctx context.Context, r RepairRequest, progress Progress) (RepairReport, error) {
	return stream[RepairReport](c, ctx, "RepairRegionWith", r, progress)
}

// CreatePolicy implements Service.
func (c *Client) CreatePolicy(ctx context.Context, p Policy) (PolicyInfo, error) {
	return get[PolicyInfo](c, ctx, "CreatePolicy", p)
}

// ApplyPolicy implements Service.
func (c *Client) ApplyPolicy(ctx context.Context, name string, disks []string) (PolicyInfo, error) {
	return get[PolicyInfo](c, ctx, "ApplyPolicy", policyDisksReq{name, disks})
}

// CancelPolicy implements Service.
func (c *Client) CancelPolicy(ctx context.Context, name string, disks []string) (PolicyInfo, error) {
	return get[PolicyInfo](c, ctx, "CancelPolicy", policyDisksReq{name, disks})
}

// ListPolicies implements Service.
func (c *Client) ListPolicies(ctx context.Context) ([]PolicyInfo, error) {
	return get[[]PolicyInfo](c, ctx, "ListPolicies", empty{})
}

// GetPolicy implements Service.
func (c *Client) GetPolicy(ctx context.Context, name string) (PolicyInfo, error) {
	return get[PolicyInfo](c, ctx, "GetPolicy", nameReq{name})
}

// DeletePolicy implements Service.
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	_, err := get[struct{}](c, ctx, "DeletePolicy", nameReq{name})
	return err
}

// CreateSnapshotWith implements Service.
func (c *Client) CreateSnapshotWith(ctx context.Context, r CreateSnapshotRequest) (Snapshot, error) {
	return get[Snapshot](c, ctx, "CreateSnapshotWith", r)
}

// DeleteSnapshotPlan implements Service.
func (c *Client) DeleteSnapshotPlan(ctx context.Context, name string) (DeletePlan, error) {
	return get[DeletePlan](c, ctx, "DeleteSnapshotPlan", nameReq{name})
}

// RegionUsage implements Service.
func (c *Client) RegionUsage(ctx context.Context) ([]RegionUsage, error) {
	return stream[[]RegionUsage](c, ctx, "RegionUsage", empty{}, nil)
}

// Quotas implements Service.
func (c *Client) Quotas(ctx context.Context) (Quotas, error) {
	return get[Quotas](c, ctx, "Quotas", empty{})
}

// SetQuotas implements Service.
func (c *Client) SetQuotas(ctx context.Context, q Quotas) (Quotas, error) {
	return get[Quotas](c, ctx, "SetQuotas", q)
}

// stream calls a streaming method: the answer is JSON lines, each a
// streamLine: events (passed to progress), then one result or error. The
// call has no deadline (a restore may take hours); cancelling ctx closes
// the connection, which cancels the job in the daemon.
func stream[T any](c *Client, ctx context.Context, method string, req any, progress Progress) (T, error) {
	var zero T
	res, err := c.post(ctx, method, req)
	if err != nil {
		return zero, err
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var line streamLine
		if err := dec.Decode(&line); err != nil {
			if ctx.Err() != nil {
				return zero, ctx.Err()
			}
			return zero, fmt.Errorf("daemon at %s: %s: answer ended early (daemon stopped?): %w", c.sock, method, err)
		}
		switch {
		case line.Event != nil:
			if progress != nil {
				progress(*line.Event)
			}
		case line.Error != nil:
			var v T
			if len(line.Result) > 0 {
				_ = json.Unmarshal(line.Result, &v)
			}
			return v, &RemoteError{Code: line.Error.Code, Message: line.Error.Message}
		case line.Result != nil:
			var v T
			if err := json.Unmarshal(line.Result, &v); err != nil {
				return zero, fmt.Errorf("%w: daemon at %s: bad answer to %s: %v", rowstore.ErrIncompatible, c.sock, method, err)
			}
			return v, nil
		}
	}
}

// UnlockDisk implements Service.
func (c *Client) UnlockDisk(ctx context.Context, r KeyRequest) error {
	return c.call(ctx, "UnlockDisk", r, nil)
}

// LockDisk implements Service.
func (c *Client) LockDisk(ctx context.Context, name string) error {
	return c.call(ctx, "LockDisk", nameReq{name}, nil)
}

// RekeyDisk implements Service.
func (c *Client) RekeyDisk(ctx context.Context, r KeyRequest) error {
	return c.call(ctx, "RekeyDisk", r, nil)
}

// ReleaseHolds implements Service.
func (c *Client) ReleaseHolds(ctx context.Context, r ReleaseHoldsRequest) ([]HoldInfo, error) {
	return stream[[]HoldInfo](c, ctx, "ReleaseHolds", r, nil)
}
