package replicate_test

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Several readers of two remote disks of one snapshot share a block cache
// much smaller than what they read: unaligned ReadAt calls of any length
// race on puts, hits and evictions of the same blocks; every byte
// returned is the snapshot's and the cache stays within its bound.
func TestRemoteDiskConcurrentCacheChurn(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 32)
	writeBlocks(t, a.host, "v", 1, span(0, 24))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	img := readSnapshot(t, a.host, "s1", "v")
	c, err := b.mgr.OpenBlockCache(3 * bs)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		d.SetCache(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := mrand.New(mrand.NewPCG(uint64(g), 7))
			for range 40 {
				off := rnd.Int64N(int64(len(img)))
				n := 1 + rnd.IntN(3*bs)
				buf := make([]byte, n)
				got, err := d.ReadAt(buf, off)
				want := img[off:min(off+int64(n), int64(len(img)))]
				if got != len(want) || (err != nil && off+int64(n) <= int64(len(img))) {
					errs <- fmt.Errorf("ReadAt(%d, %d): %d, %v", n, off, got, err)
					return
				}
				if !bytes.Equal(buf[:got], want) {
					errs <- fmt.Errorf("ReadAt(%d, %d): wrong bytes", n, off)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c.Size() > 3*bs {
		t.Fatalf("cache holds %d bytes, bound %d", c.Size(), 3*bs)
	}
	var onDisk int64
	ents, _ := os.ReadDir(filepath.Join(b.dir, "regions", "r1.cache", "blocks"))
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			onDisk += fi.Size()
		}
	}
	if onDisk > 3*bs {
		t.Fatalf("cache files hold %d bytes on disk, bound %d", onDisk, 3*bs)
	}
}
