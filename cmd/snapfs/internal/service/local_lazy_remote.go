package service

import (
	"context"

	"github.com/snapfs/snapfs/replicate"
)

// openRemoteDisk opens disk of a region's snapshot as a lazy layer's
// source (a variable so tests can wrap it).
var openRemoteDisk = func(ctx context.Context, m *replicate.Manager, region, host, snapshot, disk string) (remoteDisk, error) {
	rd, err := m.OpenRemoteDiskOf(ctx, region, host, snapshot, disk)
	if err != nil {
		return nil, err
	}
	return rd, nil
}
