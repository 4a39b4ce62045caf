package service

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
)

// slowRegionDisk is a fakeRegionDisk whose reads wait for release.
type slowRegionDisk struct {
	*fakeRegionDisk
	started chan struct{}
	release chan struct{}
}

func (d *slowRegionDisk) ReadBlock(ctx context.Context, b int64, dst []byte) error {
	d.started <- struct{}{}
	<-d.release
	return d.fakeRegionDisk.ReadBlock(ctx, b, dst)
}

// TestLazyIdleSourceParksAgain: once the store said nothing reads through
// the layer (Idle), a read through a snapshot of it opens the region disk
// again, and the disk is closed again (its shared lock released) after
// parkAfter without reads — before, it stayed open until the daemon
// stopped, keeping other hosts' prune out. A park never closes the disk
// under a read in flight.
func TestLazyIdleSourceParksAgain(t *testing.T) {
	const parkAfter = 100 * time.Millisecond
	open := new(atomic.Int64)
	r := openedSource(t, open)
	r.parkAfter = parkAfter
	r.Idle()
	if open.Load() != 0 {
		t.Fatalf("Idle left %d region disks open", open.Load())
	}
	dst := make([]byte, 4096)
	if err := r.ReadBlock(t.Context(), 1, dst); err != nil || dst[0] != 1 || open.Load() != 1 {
		t.Fatalf("read after Idle: %v, data %d, %d open", err, dst[0], open.Load())
	}
	waitOpen := func(want int64, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for open.Load() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d region disks open, want %d", what, open.Load(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitOpen(0, "no read for parkAfter")

	// A read in flight when Idle comes (and past parkAfter) keeps the disk.
	slow := &slowRegionDisk{&fakeRegionDisk{open: open}, make(chan struct{}), make(chan struct{})}
	r.open = func(context.Context) (remoteDisk, error) {
		open.Add(1)
		return slow, nil
	}
	errc := make(chan error, 1)
	go func() { errc <- r.ReadBlock(t.Context(), 0, make([]byte, 4096)) }()
	<-slow.started
	r.Idle()
	time.Sleep(3 * parkAfter)
	if open.Load() != 1 {
		t.Fatalf("the region disk was closed under a read in flight (%d open)", open.Load())
	}
	close(slow.release)
	if err := <-errc; err != nil {
		t.Fatalf("the read in flight failed: %v", err)
	}
	waitOpen(0, "after the read in flight ended")
	if err := r.Close(); err != nil || open.Load() != 0 {
		t.Fatalf("close: %v, %d open", err, open.Load())
	}
}

// TestLazyParkedReadWaitsForLock: while a source is parked (its shared
// lock released, so another host's prune or repair can run), a read
// through a snapshot of the layer finds the region locked exclusively:
// it waits and reads once the lock is gone, instead of failing EIO at
// once. Fails on main ("region is locked" returned to the read).
func TestLazyParkedReadWaitsForLock(t *testing.T) {
	open := new(atomic.Int64)
	r := openedSource(t, open)
	if !r.park() {
		t.Fatal("park")
	}
	locked := new(atomic.Int64)
	r.open = func(context.Context) (remoteDisk, error) {
		if locked.Add(1) <= 3 {
			return nil, fmt.Errorf("%w: prune on region %q must wait", replicate.ErrLocked, "dr")
		}
		open.Add(1)
		return &fakeRegionDisk{open: open}, nil
	}
	dst := make([]byte, 4096)
	if err := r.ReadBlock(t.Context(), 1, dst); err != nil || dst[0] != 1 {
		t.Fatalf("read of a parked source while the region is locked for a moment: %v", err)
	}
	if err := r.Close(); err != nil || open.Load() != 0 {
		t.Fatalf("close: %v, %d open", err, open.Load())
	}
	// Locked for longer than the wait: the read fails, unavailable.
	old := unparkLockWait
	unparkLockWait = 200 * time.Millisecond
	t.Cleanup(func() { unparkLockWait = old })
	r = openedSource(t, open)
	r.park()
	r.open = func(context.Context) (remoteDisk, error) {
		return nil, fmt.Errorf("%w: busy", replicate.ErrLocked)
	}
	if err := r.ReadBlock(t.Context(), 1, dst); !errors.Is(err, replicate.ErrUnavailable) {
		t.Fatalf("read while the region stays locked: %v (want unavailable)", err)
	}
}
