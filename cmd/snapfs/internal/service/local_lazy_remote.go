package service

import (
	"context"
	"fmt"

	"github.com/snapfs/snapfs/replicate"
)

// openRemoteDisk opens disk of a region's snapshot as a lazy layer's
// source. Until replicate's RemoteDisk is in this tree, lazy restores are
// refused as unavailable.
var openRemoteDisk = func(ctx context.Context, m *replicate.Manager, region, host, snapshot, disk string) (remoteDisk, error) {
	return nil, fmt.Errorf("%w: this build cannot read a region's disk on demand", replicate.ErrUnavailable)
}
