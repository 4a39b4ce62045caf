package replicate_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// deadDeltaRegion is a region whose prune will leave a dead delta: host
// a's disk vol1 (200 blocks) in s1; s2 gives block 0 one new piece (X, a
// delta over s1's block 0, whose pack is pb) and rewrites block 100 whole
// (a full chunk in X's pack p2, needed for ever, so p2 stays); s3 gives
// block 0 another piece (Y, shipped whole: its old version is a delta)
// and rewrites blocks 1-47, so nothing of s1's first packs is needed once
// s1 and s2 are pruned (pruneBase). All three are synced.
type deadDeltaRegion struct {
	a          *host
	dirs, urls []string
	key        string
	x          []byte // s2's block 0
	p2, pb     string // X's pack, its base's pack
	sync       func() replicate.Stats
}

func newDeadDeltaRegion(t *testing.T, seed byte) *deadDeltaRegion {
	t.Helper()
	ctx := context.Background()
	dd := &deadDeltaRegion{a: newHost(t, replicate.Options{PackSize: 1 << 20}), key: keyFile(t, seed)}
	a := dd.a
	dd.dirs, dd.urls = storeDirs(t, testK+testM)
	if _, err := a.rs.CreateDisk("vol1", 16<<20, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 1, span(0, 200))
	snapshot(t, a, "s1", "vol1")
	addRegion(t, a, dd.urls, dd.key)
	dd.sync = func() replicate.Stats {
		t.Helper()
		st, err := a.mgr.Sync(ctx, "r1", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	dd.sync()
	piece := func(b, p int64, v byte) {
		t.Helper()
		writeAt(t, a, "vol1", b*bs+p*4096, bytes.Repeat([]byte{v}, 4096))
	}
	piece(0, 3, 0xa1)
	writeBlocks(t, a, "vol1", 3, []uint64{100})
	snapshot(t, a, "s2", "vol1")
	if st := dd.sync(); st.Deltas != 1 {
		t.Fatalf("s2: %d deltas, want 1", st.Deltas)
	}
	dd.x = readSnapshot(t, a, "s2", "vol1")[:bs]
	var err error
	dd.p2, dd.pb, err = a.mgr.PackOfBlock(ctx, "r1", "s2", "vol1", 0)
	if err != nil || dd.pb == "" {
		t.Fatalf("s2's block 0: pack %s base %q: %v", dd.p2, dd.pb, err)
	}
	if p, _, err := a.mgr.PackOfBlock(ctx, "r1", "s2", "vol1", 100); err != nil || p != dd.p2 {
		t.Fatalf("s2's block 100 in %s, its delta in %s (%v)", p, dd.p2, err)
	}
	piece(0, 7, 0xb2)
	writeBlocks(t, a, "vol1", 5, span(1, 48))
	snapshot(t, a, "s3", "vol1")
	dd.sync()
	return dd
}

// pruneBase prunes all but s3: X's base's pack goes, X's pack stays.
func (dd *deadDeltaRegion) pruneBase(t *testing.T) {
	t.Helper()
	if _, err := dd.a.mgr.Prune(context.Background(), "r1", replicate.PruneOptions{KeepLast: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dd.dirs[0], "packs", dd.pb)); !os.IsNotExist(err) {
		t.Fatalf("s1's pack of block 0 (%s) still there after the prune (%v): the test needs it gone", dd.pb, err)
	}
	if _, err := os.Stat(filepath.Join(dd.dirs[0], "packs", dd.p2)); err != nil {
		t.Fatalf("s2's pack (block 100 still needs it): %v", err)
	}
}

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
	dd := newDeadDeltaRegion(t, 12)
	dd.pruneBase(t)
	a, urls, key, x, sync := dd.a, dd.urls, dd.key, dd.x, dd.sync
	pieces := int64(bs / 4096)
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
