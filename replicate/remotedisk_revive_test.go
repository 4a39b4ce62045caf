package replicate_test

import (
	"bytes"
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
)

// A store that could not be opened when the remote disk was (a file://
// directory not there yet: a file system not mounted) is opened again
// once it is back: with another store then gone, reads still have k
// stores. Before, the disk kept the store unusable until it was closed.
func TestRemoteDiskStoreReturns(t *testing.T) {
	defer replicate.SetStoreRetry(100 * time.Millisecond)()
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 8)
	writeBlocks(t, a.host, "v", 1, span(0, 8))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	img := readSnapshot(t, a.host, "s1", "v")
	if err := os.Rename(dirs[0], dirs[0]+".away"); err != nil {
		t.Fatal(err)
	}
	d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	readRemote(t, d, img) // from stores 1 and 2
	if err := os.Rename(dirs[0]+".away", dirs[0]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	// Concurrent reads: one of them opens the store again while the
	// others read (go test -race).
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]byte, bs)
			if err := d.ReadBlock(ctx, int64(g), dst); err != nil || !bytes.Equal(dst, img[g*bs:(g+1)*bs]) {
				t.Errorf("block %d: %v", g, err)
			}
		}()
	}
	wg.Wait()
	if err := os.Rename(dirs[1], dirs[1]+".away"); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(dirs[1]+".away", dirs[1]) //nolint:errcheck // cleanup
	readRemote(t, d, img)                     // from stores 0 and 2
}
