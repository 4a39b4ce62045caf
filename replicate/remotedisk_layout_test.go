package replicate_test

import (
	"context"
	"os"
	"strings"
	"testing"
)

// A 5+2 region: shards of odd size, so chunk records start and end at
// every kind of place relative to the shard boundaries, and the last
// records sit in the last data shard next to the table and the padding.
// Mixed content (random blocks, compressible blocks) makes records of
// many lengths. Every block reads back exact by ranges, healthy and with
// each data shard in turn missing (its ranges rebuilt from parity), and
// with two data shards missing at once.
func TestRemoteDiskRangesEveryBoundary(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 5, 2, "a", "b")
	a, b := hs[0], hs[1]
	const n = 37
	mkDisk(t, a.host, "v", n)
	writeBlocks(t, a.host, "v", 1, span(0, n))
	blk := make([]byte, bs)
	for i := int64(0); i < n; i += 3 { // every third block compressible, of its own length
		clear(blk)
		for j := 0; j < int(i)*331%bs; j++ {
			blk[j] = byte(j*7 + int(i))
		}
		writeAt(t, a.host, "v", i*bs, blk)
	}
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	img := readSnapshot(t, a.host, "s1", "v")
	read := func(what string) {
		t.Helper()
		d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		readRemote(t, d, img)
		if st := d.Stats(); st.PacksFetched != 0 {
			t.Fatalf("%s: whole packs fetched: %+v", what, st)
		}
	}
	read("healthy")
	away := func(shards ...int) func() {
		var moved []string
		for _, s := range shards {
			for _, f := range packFiles(t, dirs[s]) {
				if err := os.Rename(f, f+".away"); err != nil {
					t.Fatal(err)
				}
				moved = append(moved, f)
			}
		}
		return func() {
			for _, f := range moved {
				if err := os.Rename(f+".away", strings.TrimSuffix(f, ".away")); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for s := range 5 {
		back := away(s)
		read("data shard missing")
		back()
	}
	back := away(1, 4)
	read("two data shards missing")
	back()
}
