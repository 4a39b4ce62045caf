package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// fakeRegionDisk is a region's disk that counts its open copies (each
// stands for a shared region lock held).
type fakeRegionDisk struct {
	open   *atomic.Int64
	closed atomic.Bool
}

func (d *fakeRegionDisk) ReadBlock(_ context.Context, b int64, dst []byte) error {
	if d.closed.Load() {
		return errors.New("closed")
	}
	for i := range dst {
		dst[i] = byte(b)
	}
	return nil
}

func (d *fakeRegionDisk) ReadBlocks(ctx context.Context, bs []int64, dsts [][]byte) []error {
	errs := make([]error, len(bs))
	for i, b := range bs {
		errs[i] = d.ReadBlock(ctx, b, dsts[i])
	}
	return errs
}
func (d *fakeRegionDisk) Stored(int64) bool           { return true }
func (d *fakeRegionDisk) EachStored(fn func(b int64)) { fn(0); fn(1) }
func (d *fakeRegionDisk) Size() int64                 { return 8192 }
func (d *fakeRegionDisk) BlockSize() int              { return 4096 }
func (d *fakeRegionDisk) StoredBlocks() int64         { return 2 }
func (d *fakeRegionDisk) Encrypted() bool             { return false }
func (d *fakeRegionDisk) Close() error {
	if !d.closed.Swap(true) {
		d.open.Add(-1)
	}
	return nil
}

// openedSource is a lazy layer's source whose region disk is open; open
// counts the region disks open.
func openedSource(t *testing.T, open *atomic.Int64) *reopening {
	opener := func(context.Context) (remoteDisk, error) {
		open.Add(1)
		return &fakeRegionDisk{open: open}, nil
	}
	rd, _ := opener(t.Context())
	return &reopening{open: opener, log: slog.New(slog.NewTextHandler(io.Discard, nil)), rd: rd}
}

// TestLazyParkedSourceReleasesAndReopens: parking a lazy layer's source
// (disk delete left nothing reading through it) closes its region disk
// at once (its lock goes) while its metadata still answers; a later read
// through the layer opens it again and reads right; Close after park
// closes nothing twice.
func TestLazyParkedSourceReleasesAndReopens(t *testing.T) {
	open := new(atomic.Int64)
	r := openedSource(t, open)
	if !r.park() || open.Load() != 0 {
		t.Fatalf("park: %d region disks still open", open.Load())
	}
	if r.park() {
		t.Error("a second park closed again")
	}
	if r.Size() != 8192 || r.StoredBlocks() != 2 || !r.Stored(1) {
		t.Error("a parked source's metadata no longer answers")
	}
	dst := make([]byte, 4096)
	if err := r.ReadBlock(t.Context(), 1, dst); err != nil || dst[0] != 1 || open.Load() != 1 {
		t.Fatalf("read after park: %v, data %d, %d open", err, dst[0], open.Load())
	}
	r.park()
	errs := r.ReadBlocks(t.Context(), []int64{0, 1}, [][]byte{make([]byte, 4096), dst})
	if errs[0] != nil || errs[1] != nil || open.Load() != 1 {
		t.Fatalf("batch read after park: %v, %d open", errs, open.Load())
	}
	r.park()
	if err := r.Close(); err != nil || open.Load() != 0 {
		t.Fatalf("close after park: %v, %d open", err, open.Load())
	}
	if err := r.ReadBlock(t.Context(), 1, dst); err == nil || open.Load() != 0 {
		t.Errorf("a closed source read (%v) or opened its region disk again (%d open)", err, open.Load())
	}
}

// TestLazySourceClosedSignals: the hold's watcher wakes on the source's
// Close (the store closes it when hydration ends), not on a park, and a
// watcher that starts after the Close does not wait.
func TestLazySourceClosedSignals(t *testing.T) {
	open := new(atomic.Int64)
	r := openedSource(t, open)
	c := r.closedC()
	r.park()
	select {
	case <-c:
		t.Fatal("a park signalled the source closed")
	default:
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for i, c := range []<-chan struct{}{c, r.closedC()} {
		select {
		case <-c:
		case <-time.After(5 * time.Second):
			t.Fatalf("watcher %d not woken by Close", i)
		}
	}
	if err := r.Close(); err != nil { // a second Close (the store's, after the service's) is harmless
		t.Fatal(err)
	}
}
