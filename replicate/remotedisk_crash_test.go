package replicate_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The state a kill -9 during cache inserts leaves: a temporary file
// half written, a block file cut short (and one of full length but other
// bytes, as a crash before the data reached the disk can leave). The
// reopened cache removes the temporary file and counts none of it as
// good; every block read over it is verified and right.
func TestRemoteDiskBlockCacheCrash(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 8)
	writeBlocks(t, a.host, "v", 1, span(0, 8))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	img := readSnapshot(t, a.host, "s1", "v")
	c, err := b.mgr.OpenBlockCache(64 * bs)
	if err != nil {
		t.Fatal(err)
	}
	d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
	if err != nil {
		t.Fatal(err)
	}
	d.SetCache(c)
	readRemote(t, d, img)
	d.Close()
	root := filepath.Join(b.dir, "regions", "r1.cache", "blocks")
	ents, err := os.ReadDir(root)
	if err != nil || len(ents) != 8 {
		t.Fatalf("%d cached blocks, %v", len(ents), err)
	}
	short := filepath.Join(root, ents[0].Name())
	if err := os.Truncate(short, bs/2); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(root, ents[1].Name())
	if err := os.WriteFile(other, bytes.Repeat([]byte{0xEE}, bs), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, ents[2].Name()+".tmp0badc0de")
	if err := os.WriteFile(tmp, []byte("half a bl"), 0o600); err != nil {
		t.Fatal(err)
	}
	c2, err := b.mgr.OpenBlockCache(64 * bs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("a crash's temporary file is kept: %v", err)
	}
	d2, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	d2.SetCache(c2)
	readRemote(t, d2, img)
	if st := d2.Stats(); st.CacheHits != 6 {
		t.Fatalf("stats %+v: want the 6 good blocks from the cache, 2 fetched", st)
	}
	// The two bad ones were replaced by good copies.
	d3, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
	if err != nil {
		t.Fatal(err)
	}
	defer d3.Close()
	d3.SetCache(c2)
	readRemote(t, d3, img)
	if st := d3.Stats(); st.CacheHits != 8 || st.BytesFetched != 0 {
		t.Fatalf("stats %+v: want every block from the cache", st)
	}
	if c2.Size() != 8*bs {
		t.Fatalf("cache counts %d bytes, holds 8 blocks of %d", c2.Size(), bs)
	}
}
