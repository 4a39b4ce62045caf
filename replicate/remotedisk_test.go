package replicate_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// A second host with nothing local reads a remote snapshot's disk block by
// block: every block equals the snapshot's, holes read as zeros, and
// prune waits while the disk is open.
func TestRemoteDiskReads(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 48)
	writeBlocks(t, a.host, "v", 1, span(0, 20))
	writeBlocks(t, a.host, "v", 2, span(30, 40))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	img := readSnapshot(t, a.host, "s1", "v")
	d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
	if err != nil {
		t.Fatal(err)
	}
	if d.Size() != int64(len(img)) || d.BlockSize() != bs || d.Blocks() != 48 {
		t.Fatalf("size %d block size %d blocks %d", d.Size(), d.BlockSize(), d.Blocks())
	}
	if !d.Stored(0) || d.Stored(25) || !d.Stored(35) || d.Stored(47) {
		t.Fatal("Stored disagrees with the written blocks")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 48)
	for blk := range int64(48) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]byte, bs)
			for i := range dst {
				dst[i] = 0xAA // a hole must be cleared
			}
			if err := d.ReadBlock(ctx, blk, dst); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(dst, img[blk*bs:(blk+1)*bs]) {
				errs <- errors.New("block differs")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := d.Stats()
	if st.BlocksRead != 48 || st.BytesFetched == 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := d.ReadBlock(ctx, 48, make([]byte, bs)); err == nil {
		t.Fatal("block beyond the disk read")
	}
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1}); err == nil {
		t.Fatal("prune ran while a remote disk held the region")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.ReadBlock(ctx, 0, make([]byte, bs)); err == nil {
		t.Fatal("read after close")
	}
	if _, err := b.mgr.OpenRemoteDisk(ctx, "r1", "nope", "v"); !errors.Is(err, replicate.ErrNotFound) {
		t.Fatalf("unknown snapshot: %v", err)
	}
	if _, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "nope"); !errors.Is(err, replicate.ErrNotFound) {
		t.Fatalf("unknown disk: %v", err)
	}
}

// With every store down, reads fail with ErrUnavailable (never zeros or
// wrong data) and succeed again once the stores return.
func TestRemoteDiskStoresDown(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 16)
	writeBlocks(t, a.host, "v", 1, span(0, 16))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	img := readSnapshot(t, a.host, "s1", "v")
	d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, f := range b.faults {
		f.SetDown(true)
	}
	dst := make([]byte, bs)
	if err := d.ReadBlock(ctx, 3, dst); !errors.Is(err, replicate.ErrUnavailable) {
		t.Fatalf("read with every store down: %v", err)
	}
	for _, f := range b.faults {
		f.SetDown(false)
	}
	if err := d.ReadBlock(ctx, 3, dst); err != nil || !bytes.Equal(dst, img[3*bs:4*bs]) {
		t.Fatalf("read after the stores returned: %v", err)
	}
}
