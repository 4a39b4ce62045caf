package replicate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
)

// BlockSource gives a region's blocks by digest, verified, from any k
// shards, fetching a pack once for neighbouring blocks.
func TestBlockSource(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 32)
	writeBlocks(t, a.host, "v", 1, span(0, 20))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	img := readSnapshot(t, a.host, "s1", "v")
	b.faults[0].SetDown(true) // any k shards
	src, done, err := b.mgr.BlockSource(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	gets := func() int {
		n := 0
		for _, f := range b.faults {
			n += f.Calls(store.MethodGet)
		}
		return n
	}
	before := gets()
	dst := make([]byte, bs)
	for blk := range 20 {
		want := img[blk*bs : (blk+1)*bs]
		found, err := src.FetchBlock(ctx, sha256.Sum256(want), dst)
		if err != nil || !found || !bytes.Equal(dst, want) {
			t.Fatalf("block %d: found %v err %v equal %v", blk, found, err, bytes.Equal(dst, want))
		}
	}
	if n := gets() - before; n > 2 {
		t.Errorf("20 blocks of one pack took %d shard reads, want 2 (k): the last pack is cached", n)
	}
	if found, err := src.FetchBlock(ctx, sha256.Sum256([]byte("no such block")), dst); found || err != nil {
		t.Fatalf("unknown digest: %v %v", found, err)
	}
	// While the source is open, prune (exclusive) waits.
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1}); err == nil {
		t.Fatal("prune ran while a block source held the region")
	}
	done()
	done()
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1}); err != nil {
		t.Fatal(err)
	}
	_ = dirs
}
