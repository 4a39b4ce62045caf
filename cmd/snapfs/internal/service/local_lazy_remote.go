package service

import (
	"context"

	"github.com/snapfs/snapfs/replicate"
)

// openRemoteDisk opens disk of a region's snapshot as a lazy layer's
// source, the snapshot of identity want only when set (a variable so tests
// can wrap it).
var openRemoteDisk = func(ctx context.Context, m *replicate.Manager, region, host, snapshot, disk string, want *replicate.RemoteIdentity) (remoteDisk, error) {
	var rd *replicate.RemoteDisk
	var err error
	if want != nil {
		rd, err = m.OpenRemoteDiskAs(ctx, region, host, snapshot, disk, *want)
	} else {
		rd, err = m.OpenRemoteDiskOf(ctx, region, host, snapshot, disk)
	}
	if err != nil {
		return nil, err
	}
	return rd, nil
}
