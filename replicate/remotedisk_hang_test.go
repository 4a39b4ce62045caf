package replicate_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
)

// A store that accepts a read and never answers (an S3 endpoint that
// hangs: the HTTP client has no deadline of its own) costs a RemoteDisk
// one bounded wait: the range is rebuilt from the other shards and the
// store is passed over, instead of the read (a FUSE read of
// M/regions/...) hanging for as long as the store does. With every
// store hanging, reads fail with ErrUnavailable in bounded time.
func TestRemoteDiskHungStore(t *testing.T) {
	defer replicate.SetRemoteTimeouts(300*time.Millisecond, 2*time.Second)()
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
	hang := func(m store.Method, name string) time.Duration {
		if m == store.MethodGet && strings.HasPrefix(name, "packs/") {
			return time.Hour
		}
		return 0
	}
	b.faults[0].DelayMatching(hang)
	done := make(chan error, 1)
	go func() {
		start := time.Now()
		dst := make([]byte, bs)
		for blk := range int64(16) {
			if err := d.ReadBlock(ctx, blk, dst); err != nil {
				done <- err
				return
			}
			if !bytes.Equal(dst, img[blk*bs:(blk+1)*bs]) {
				done <- errors.New("block differs")
				return
			}
		}
		t.Logf("16 blocks read with store 0 hanging in %v", time.Since(start))
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("reads hang with one store hanging")
	}
	for _, f := range b.faults {
		f.DelayMatching(hang)
	}
	go func() { done <- d.ReadBlock(ctx, 3, make([]byte, bs)) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read with every store hanging returned data")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a read hangs with every store hanging")
	}
	for _, f := range b.faults {
		f.DelayMatching(nil)
	}
}

// An empty ReadAt inside the disk reads nothing: no fetch, no error even
// with every store down (io.ReaderAt: 0 <= n <= len(p)).
func TestRemoteDiskEmptyReadAt(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 8)
	writeBlocks(t, a.host, "v", 1, span(0, 8))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b.eachFault(func(f *store.Faults) { f.SetDown(true) })
	defer b.eachFault(func(f *store.Faults) { f.SetDown(false) })
	for _, off := range []int64{0, 3, bs + 5, 2 * bs} {
		if n, err := d.ReadAt(nil, off); n != 0 || err != nil {
			t.Errorf("ReadAt(nil, %d): %d, %v", off, n, err)
		}
	}
	if st := d.Stats(); st.BytesFetched != 0 || st.BlocksRead != 0 {
		t.Errorf("empty reads fetched: %+v", st)
	}
}
