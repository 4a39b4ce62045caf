package replicate_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
)

// ReadBlocks reads many blocks with few range reads (one per data shard
// per run of close records), and returns exactly what ReadBlock would:
// holes as zeros, a block out of range as an error, the same block twice,
// every block right with a data shard missing or corrupt (those blocks
// are read alone, rebuilt), and errors (never bytes) with every store down.
func TestRemoteDiskReadBlocks(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	const n = 48
	mkDisk(t, a.host, "v", n)
	writeBlocks(t, a.host, "v", 1, span(0, 20))
	writeBlocks(t, a.host, "v", 2, span(30, 44))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	img := readSnapshot(t, a.host, "s1", "v")
	var blocks []int64
	for i := range int64(n) {
		blocks = append(blocks, i)
	}
	blocks = append(blocks, 5, -1, n) // a block twice; two outside the disk
	read := func(d *replicate.RemoteDisk) []error {
		dsts := make([][]byte, len(blocks))
		for i := range dsts {
			dsts[i] = bytes.Repeat([]byte{0xAA}, bs)
		}
		errs := d.ReadBlocks(ctx, blocks, dsts)
		for i, blk := range blocks {
			if blk < 0 || blk >= n {
				if errs[i] == nil {
					t.Fatalf("block %d outside the disk read", blk)
				}
				continue
			}
			if errs[i] == nil && !bytes.Equal(dsts[i], img[blk*bs:(blk+1)*bs]) {
				t.Fatalf("block %d differs", blk)
			}
		}
		return errs[:len(errs)-2]
	}
	open := func() *replicate.RemoteDisk {
		d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	d := open()
	for i, err := range read(d) {
		if err != nil {
			t.Fatalf("block %d: %v", blocks[i], err)
		}
	}
	st := d.Stats()
	t.Logf("ReadBlocks of %d blocks (34 stored): %+v", len(blocks)-2, st)
	if st.RangesRead > 4 || st.PacksFetched != 0 || st.BytesFetched > 36*bs {
		t.Fatalf("batched read: %+v", st)
	}

	// Shard 0 missing: the batches fail, the blocks are read alone.
	for _, f := range packFiles(t, dirs[0]) {
		if err := os.Rename(f, f+".away"); err != nil {
			t.Fatal(err)
		}
	}
	for i, err := range read(open()) {
		if err != nil {
			t.Fatalf("shard 0 missing: block %d: %v", blocks[i], err)
		}
	}
	for _, f := range packFiles(t, dirs[0]) {
		if err := os.Rename(f, f[:len(f)-len(".away")]); err != nil {
			t.Fatal(err)
		}
	}
	// Shard 1 corrupt: records fail their tags, read alone and rebuilt.
	for _, f := range packFiles(t, dirs[1]) {
		flipEvery(t, f, 64, 4096)
	}
	for i, err := range read(open()) {
		if err != nil {
			t.Fatalf("shard 1 corrupt: block %d: %v", blocks[i], err)
		}
	}
	// Every store down: stored blocks fail, holes read as zeros.
	d = open()
	b.eachFault(func(f *store.Faults) { f.SetDown(true) })
	defer b.eachFault(func(f *store.Faults) { f.SetDown(false) })
	for i, err := range read(d) {
		stored := d.Stored(blocks[i])
		if stored && !errors.Is(err, replicate.ErrUnavailable) || !stored && err != nil {
			t.Fatalf("every store down: block %d (stored %v): %v", blocks[i], stored, err)
		}
	}
}
