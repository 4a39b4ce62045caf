package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/snapfs/snapfs/rowstore"
)

// Client is the Service of a daemon, over its control socket.
type Client struct {
	sock string
	hc   *http.Client
}

// NewClient returns a client of the control socket at sock. It does not
// connect until the first call.
func NewClient(sock string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: 2 * time.Second}
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{sock: sock, hc: &http.Client{Transport: tr}}
}

func (c *Client) call(ctx context.Context, method string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("control %s: %w", method, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://snapfs/v1/"+method, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("control %s: %w", method, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	res, err := c.hc.Do(hr)
	if err != nil {
		return fmt.Errorf("daemon at %s: %w", c.sock, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("daemon at %s: read answer to %s: %w", c.sock, method, err)
	}
	if res.StatusCode != http.StatusOK {
		var we wireError
		if json.Unmarshal(data, &we) != nil || we.Message == "" {
			return fmt.Errorf("daemon at %s: %s: %s", c.sock, method, res.Status)
		}
		return &RemoteError{Code: we.Code, Message: we.Message}
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
	return get[Disk](c, ctx, "RollbackDisk", rollbackReq{name, snapshot, force})
}

// CreateSnapshot implements Service.
func (c *Client) CreateSnapshot(ctx context.Context, name string, disks []string) (Snapshot, error) {
	return get[Snapshot](c, ctx, "CreateSnapshot", snapshotReq{name, disks})
}

// ListSnapshots implements Service.
func (c *Client) ListSnapshots(ctx context.Context, disk string) ([]Snapshot, error) {
	return get[[]Snapshot](c, ctx, "ListSnapshots", listSnapshotsReq{disk})
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
	return get[Image](c, ctx, "CreateImage", imageReq{name, snapshot, disk})
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

// GC implements Service.
func (c *Client) GC(ctx context.Context) (rowstore.GCStats, error) {
	return get[rowstore.GCStats](c, ctx, "GC", empty{})
}

// CreateScratchClone implements Service.
func (c *Client) CreateScratchClone(ctx context.Context, snapshot, disk string) (Disk, error) {
	return get[Disk](c, ctx, "CreateScratchClone", scratchReq{snapshot, disk})
}

// Shutdown implements Service.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.call(ctx, "Shutdown", empty{}, nil)
}

// Close implements Service.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}
