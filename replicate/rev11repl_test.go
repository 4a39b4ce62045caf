package replicate_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// TestRev11ReplKeptSetLocatesLiveDelta (review of trial 11's delta
// chunks): a Manager that loaded the region before (a daemon, or any host
// that ran a check, a restore or a sync) reuses its kept chunk set and
// adds the indexes listed since. When a chunk that has only a dead copy
// (a delta whose base's pack prune deleted, in a pack kept for its other
// chunks) is shipped again as a delta over a base that is itself new (an
// earlier snapshot of the same sync run), the reader must locate the new
// copy whatever order the two new indexes are added in. On main 39e6ec0
// the kept-set path added them in map order and never settled: when the
// delta's index came before its base's, the chunk stayed located at the
// dead copy, and restore and lazy reads of the new snapshot failed
// ("its base chunk ... is in no pack") while a fresh host restored it.
func TestRev11ReplKeptSetLocatesLiveDelta(t *testing.T) {
	ctx := context.Background()
	a := newHost(t, replicate.Options{PackSize: 1 << 20})
	dirs, urls := storeDirs(t, testK+testM)
	key := keyFile(t, 12)
	if _, err := a.rs.CreateDisk("vol1", 16<<20, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 1, span(0, 200))
	snapshot(t, a, "s1", "vol1")
	addRegion(t, a, urls, key)
	sync := func() replicate.Stats {
		t.Helper()
		st, err := a.mgr.Sync(ctx, "r1", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	sync()
	piece := func(b, p int64, v byte) {
		t.Helper()
		writeAt(t, a, "vol1", b*bs+p*4096, bytes.Repeat([]byte{v}, 4096))
	}
	pieces := int64(bs / 4096)
	// s2: block 0 gets one new piece (X, a delta over s1's block 0),
	// block 100 is rewritten whole (a full chunk in X's pack, needed for
	// ever, so the pack stays).
	piece(0, 3, 0xa1)
	writeBlocks(t, a, "vol1", 3, []uint64{100})
	snapshot(t, a, "s2", "vol1")
	if st := sync(); st.Deltas != 1 {
		t.Fatalf("s2: %d deltas, want 1", st.Deltas)
	}
	x := readSnapshot(t, a, "s2", "vol1")[:bs]
	_, pb, err := a.mgr.PackOfBlock(ctx, "r1", "s2", "vol1", 0)
	if err != nil || pb == "" {
		t.Fatalf("s2's block 0: base pack %q: %v", pb, err)
	}
	// s3: block 0 gets another piece (Y, shipped whole: its old version
	// is a delta), blocks 1-47 whole: s1's first packs are not needed
	// once s1 and s2 are pruned.
	piece(0, 7, 0xb2)
	writeBlocks(t, a, "vol1", 5, span(1, 48))
	snapshot(t, a, "s3", "vol1")
	sync()
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "packs", pb)); !os.IsNotExist(err) {
		t.Fatalf("s1's pack of block 0 (%s) still there after the prune (%v): the test needs it gone", pb, err)
	}
	// Hosts that load the region now keep its chunk set: X is located
	// at its dead copy (the only one).
	var hosts []*host
	for range 8 {
		b := newHost(t, replicate.Options{})
		addRegion(t, b, urls, key)
		if _, _, err := b.mgr.PackOfBlock(ctx, "r1", "s3", "vol1", 0); err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, b)
	}
	// s4: block 0 is X with half of its pieces changed (not piece 7):
	// more than half differ from Y, so it is shipped whole (B2). s5:
	// block 0 back to X: half of its pieces differ from B2, a delta over
	// B2. Both in one sync run: two new packs, the delta's and its base's.
	b2 := bytes.Clone(x)
	changed := int64(0)
	for p := int64(0); changed < pieces/2; p++ {
		if p == 7 {
			continue
		}
		for i := range int64(4096) {
			b2[p*4096+i] ^= 0x5c
		}
		changed++
	}
	writeAt(t, a, "vol1", 0, b2)
	snapshot(t, a, "s4", "vol1")
	writeAt(t, a, "vol1", 0, x)
	snapshot(t, a, "s5", "vol1")
	if st := sync(); st.Deltas != 1 || st.Snapshots != 2 {
		t.Fatalf("s4, s5: %d deltas in %d snapshots, want 1 in 2", st.Deltas, st.Snapshots)
	}
	want := readSnapshot(t, a, "s5", "vol1")
	if !bytes.Equal(want[:bs], x) {
		t.Fatal("s5's block 0 is not X")
	}
	if _, pb5, err := a.mgr.PackOfBlock(ctx, "r1", "s5", "vol1", 0); err != nil || pb5 == "" {
		t.Fatalf("s5's block 0 on the syncing host: base pack %q: %v", pb5, err)
	}
	for i, b := range hosts {
		if i%2 == 0 {
			if rep, err := b.mgr.Check(ctx, "r1", false, nil); err != nil || !rep.OK() {
				t.Fatalf("host %d (kept set): check: lost %v, %+v %v", i, rep.Lost, rep.Problems, err)
			}
		}
		if _, err := b.mgr.Restore(ctx, "r1", "s5", "vol1", "v", nil); err != nil {
			t.Fatalf("host %d (kept set): restore s5: %v", i, err)
		}
		if !bytes.Equal(readDisk(t, b, "v"), want) {
			t.Fatalf("host %d: restored s5 differs", i)
		}
		if got, err := readRemoteSnap(t, b, "s5"); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("host %d: lazily read s5 differs (%v)", i, err)
		}
	}
	rep, err := a.mgr.Check(ctx, "r1", true, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("check --read-data: %+v %v", rep, err)
	}
}
