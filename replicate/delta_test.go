package replicate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/replicate/store/s3test"
)

// deltaHost makes a host with disk vol1 (16 MiB of 64 KiB blocks: 16
// pieces of 4 KiB each), blocks 0-199 random, snapshot s1 synced to a
// fresh 4+2 region (1 MiB packs); then it rewrites one 4 KiB piece of
// each of blocks 0-40 and two of blocks 60-69 (deltas), and blocks 80-85
// whole (most pieces changed: full chunks), and takes s2.
func deltaHost(t *testing.T) (a *host, dirs, urls []string, key string) {
	t.Helper()
	a = newHost(t, replicate.Options{PackSize: 1 << 20}) // 16 blocks a pack: s1's first two hold only bases
	dirs, urls = storeDirs(t, testK+testM)
	key = keyFile(t, 9)
	deltaScenario(t, a, func() { addRegion(t, a, urls, key) })
	return a, dirs, urls, key
}

// deltaScenario writes deltaHost's s1, adds the region (add), syncs s1 and
// makes s2.
func deltaScenario(t *testing.T, a *host, add func()) {
	t.Helper()
	ctx := context.Background()
	if _, err := a.rs.CreateDisk("vol1", 16<<20, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 1, span(0, 200))
	snapshot(t, a, "s1", "vol1")
	add()
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{3, 4})
	piece := make([]byte, 4096)
	for b := int64(0); b <= 40; b++ {
		rng.Read(piece)
		writeAt(t, a, "vol1", b*bs+int64(rng.Uint64()%16)*4096, piece)
	}
	for b := int64(60); b < 70; b++ {
		for _, p := range []int64{1, 9} {
			rng.Read(piece)
			writeAt(t, a, "vol1", b*bs+p*4096, piece)
		}
	}
	writeBlocks(t, a, "vol1", 5, span(80, 86))
	snapshot(t, a, "s2", "vol1")
}

func readRemoteSnap(t *testing.T, h *host, snap string) ([]byte, error) {
	t.Helper()
	d, err := h.mgr.OpenRemoteDisk(context.Background(), "r1", snap, "vol1")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b := make([]byte, d.Size())
	_, err = d.ReadAt(b, 0)
	return b, err
}

// TestDeltaSyncRestorePrune: an incremental sync after 4 KiB rewrites
// stores deltas (51 blocks; the 6 rewritten whole go as full chunks) and
// writes about (k+m)/k × the changed bytes, not × the block size; the
// snapshot restores byte for byte eagerly and lazily, check --read-data is
// clean; after another host prunes the base snapshot s1 (its chunks are
// the deltas' bases; two of its packs hold nothing else s2 needs) s2
// still restores and reads byte for byte and check
// is clean.
func TestDeltaSyncRestorePrune(t *testing.T) {
	ctx := context.Background()
	a, _, urls, key := deltaHost(t)
	st, err := a.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	changed := int64(41*4096 + 10*2*4096 + 6*bs)
	ratio := float64(st.TotalWritten()) / float64(changed)
	t.Logf("incremental sync: %d deltas, %d bytes written for %d changed (%.2fx; (k+m)/k = %.2f)", st.Deltas, st.TotalWritten(), changed, ratio, float64(testK+testM)/testK)
	if st.Deltas != 51 || st.BlocksRead != 57 {
		t.Fatalf("sync: %+v: want 51 deltas of 57 blocks", st)
	}
	if ratio > 1.1*float64(testK+testM)/testK*1.15 { // manifest, indexes and shard headers on top
		t.Fatalf("incremental sync wrote %.2fx the changed bytes", ratio)
	}
	if n, _, err := a.mgr.DeltaChunks(ctx, "r1"); err != nil || n != 51 {
		t.Fatalf("region holds %d delta entries (%v), want 51", n, err)
	}
	want := readSnapshot(t, a, "s2", "vol1")
	b := newHost(t, replicate.Options{})
	addRegion(t, b, urls, key)
	verify := func(when string) {
		t.Helper()
		to := "v-" + when
		if _, err := b.mgr.Restore(ctx, "r1", "s2", "vol1", to, nil); err != nil {
			t.Fatalf("%s: restore: %v", when, err)
		}
		if !bytes.Equal(readDisk(t, b, to), want) {
			t.Fatalf("%s: restored s2 differs", when)
		}
		got, err := readRemoteSnap(t, b, "s2")
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: lazily read s2 differs (%v)", when, err)
		}
		rep, err := b.mgr.Check(ctx, "r1", true, nil)
		if err != nil || !rep.OK() || rep.DeltasChecked != 51 {
			t.Fatalf("%s: check: %+v %v", when, rep, err)
		}
	}
	verify("synced")
	// Another host's prune of s1: the bases stay.
	pst, err := b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prune: %+v", pst)
	if len(pst.Deleted) != 1 || !strings.HasPrefix(pst.Deleted[0], "s1@") {
		t.Fatalf("prune: %+v", pst)
	}
	verify("pruned")
	// And this host's prune, with its own cached chunk set.
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := readRemoteSnap(t, a, "s2"); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after a's prune: lazily read s2 differs (%v)", err)
	}
}

// TestDeltaCorruptFailsRead: when a delta's base or the delta itself
// cannot be read (its pack damaged on every store), restoring or lazily
// reading the snapshot fails with an error, never with wrong bytes (the
// buffer is cleared), check says the snapshot is lost, and the blocks
// outside the damaged packs still read.
func TestDeltaCorruptFailsRead(t *testing.T) {
	for _, damage := range []string{"base", "delta"} {
		t.Run(damage, func(t *testing.T) {
			ctx := context.Background()
			a, dirs, urls, key := deltaHost(t)
			list := func() map[string]bool {
				es, err := os.ReadDir(filepath.Join(dirs[0], "packs"))
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]bool{}
				for _, e := range es {
					out[e.Name()] = true
				}
				return out
			}
			before := list()
			if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
				t.Fatal(err)
			}
			hit := before // s1's packs: the bases
			if damage == "delta" {
				hit = list()
				for p := range before {
					delete(hit, p) // s2's packs: the deltas
				}
			}
			for _, d := range dirs {
				for name := range hit {
					flipEvery(t, filepath.Join(d, "packs", name), 200, 512)
				}
			}
			b := newHost(t, replicate.Options{})
			addRegion(t, b, urls, key)
			if _, err := b.mgr.Restore(ctx, "r1", "s2", "vol1", "v", nil); err == nil {
				t.Fatal("restore over damaged packs succeeded")
			}
			if slices.Contains(diskNames(t, b), "v") {
				t.Fatal("a failed restore left its disk")
			}
			d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s2", "vol1")
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			buf := bytes.Repeat([]byte{1}, bs)
			if err := d.ReadBlock(ctx, 10, buf); !errors.Is(err, replicate.ErrUnavailable) {
				t.Fatalf("a delta over a damaged %s read: %v", damage, err)
			}
			if !bytes.Equal(buf, make([]byte, bs)) {
				t.Fatal("a failed read left bytes in the buffer")
			}
			rep, err := b.mgr.Check(ctx, "r1", true, nil)
			if err != nil || rep.OK() || !slices.ContainsFunc(rep.Lost, func(s string) bool { return strings.HasPrefix(s, "s2@") }) {
				t.Fatalf("check over damaged packs: %+v %v", rep, err)
			}
			want := readSnapshot(t, a, "s2", "vol1")
			ok := int64(82) // a full chunk of s2's pack
			if damage == "delta" {
				ok = 150 // s1's, unchanged
			}
			if err := d.ReadBlock(ctx, ok, buf); err != nil || !bytes.Equal(buf, want[ok*bs:(ok+1)*bs]) {
				t.Fatalf("block %d outside the damaged packs: %v", ok, err)
			}
		})
	}
}

// TestOldDecoderFailsClosed: a snapfs that meets an index of a newer
// version than it knows (as a version 2 snapfs meets a version 3 index:
// checked by hand with main b9e3661 on testdata/region-v3, whose prune,
// restore and lazy open fail with "unsupported version: index version 3")
// fails every operation that needs the region's indexes with
// ErrUnsupportedVersion: its prune deletes no pack (so never a base whose
// delta it cannot see), restore and lazy reads give no bytes.
func TestOldDecoderFailsClosed(t *testing.T) {
	ctx := context.Background()
	a, dirs, urls, key := deltaHost(t)
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	_, packs, err := a.mgr.DeltaChunks(ctx, "r1")
	if err != nil || len(packs) == 0 {
		t.Fatalf("no pack with deltas (%v)", err)
	}
	for _, p := range packs {
		if err := a.mgr.SetIndexVersion(ctx, "r1", p, format.IndexVersion+1); err != nil {
			t.Fatal(err)
		}
	}
	before, err := os.ReadDir(filepath.Join(dirs[0], "packs"))
	if err != nil {
		t.Fatal(err)
	}
	b := newHost(t, replicate.Options{})
	addRegion(t, b, urls, key)
	if _, err := b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true}); !errors.Is(err, format.ErrUnsupportedVersion) {
		t.Fatalf("prune over a newer index: %v", err)
	}
	after, _ := os.ReadDir(filepath.Join(dirs[0], "packs"))
	if len(after) != len(before) {
		t.Fatalf("prune over a newer index deleted packs: %d -> %d", len(before), len(after))
	}
	if _, err := b.mgr.Restore(ctx, "r1", "s2", "vol1", "v", nil); !errors.Is(err, format.ErrUnsupportedVersion) {
		t.Fatalf("restore over a newer index: %v", err)
	}
	if _, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s2", "vol1"); !errors.Is(err, format.ErrUnsupportedVersion) {
		t.Fatalf("lazy open over a newer index: %v", err)
	}
}

// TestDeltaS3: deltas over a region of six S3 stores (versitygw): the
// incremental sync stores 51 deltas, another host restores and lazily
// reads s2 byte for byte, check --read-data rebuilds every delta, and
// after its prune of s1 the restore is still whole.
func TestDeltaS3(t *testing.T) {
	endpoint, access, secret := s3test.Start(t)
	ctx := context.Background()
	open := func(ctx context.Context, i int, u string, o store.Options) (store.Store, error) {
		o.AccessKey, o.SecretKey = access, secret
		s, err := store.Open(ctx, u, o)
		if err != nil {
			return nil, err
		}
		return store.Wrap(s, store.WrapOptions{Retry: store.DefaultRetry()}), nil
	}
	var urls []string
	for i := range testK + testM {
		urls = append(urls, fmt.Sprintf("s3://bucket%d/delta/st%d", i%3, i))
	}
	s3 := replicate.S3Options{Endpoint: endpoint, PathStyle: true, Insecure: true}
	key := keyFile(t, 6)
	cfg := replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: key, S3: s3}
	a := newHost(t, replicate.Options{PackSize: 1 << 20, OpenStore: open})
	deltaScenario(t, a, func() {
		if _, err := a.mgr.AddRegion(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	})
	st, err := a.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil || st.Deltas != 51 {
		t.Fatalf("sync: %+v %v", st, err)
	}
	want := readSnapshot(t, a, "s2", "vol1")
	b := newHost(t, replicate.Options{OpenStore: open})
	if _, err := b.mgr.AddRegion(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for _, when := range []string{"synced", "pruned"} {
		if _, err := b.mgr.Restore(ctx, "r1", "s2", "vol1", "v-"+when, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readDisk(t, b, "v-"+when), want) {
			t.Fatalf("%s: restore over S3 differs", when)
		}
		if got, err := readRemoteSnap(t, b, "s2"); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: lazy read over S3 differs (%v)", when, err)
		}
		rep, err := b.mgr.Check(ctx, "r1", true, nil)
		if err != nil || !rep.OK() || rep.DeltasChecked != 51 {
			t.Fatalf("%s: check: %+v %v", when, rep, err)
		}
		if when == "synced" {
			if _, err := b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestDeltaRepair: with a shard of every pack lost (store 0's packs
// deleted: the deltas' packs and their bases'), s2 restores (degraded) and
// check says degraded; repair rebuilds them, check is clean, and s2
// restores and reads lazily byte for byte.
func TestDeltaRepair(t *testing.T) {
	ctx := context.Background()
	a, dirs, urls, key := deltaHost(t)
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dirs[0], "packs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dirs[0], "packs"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := readSnapshot(t, a, "s2", "vol1")
	b := newHost(t, replicate.Options{})
	addRegion(t, b, urls, key)
	if got, err := readRemoteSnap(t, b, "s2"); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("degraded lazy read of s2 differs (%v)", err)
	}
	rep, err := b.mgr.Check(ctx, "r1", true, nil)
	if err != nil || rep.Verdict != "degraded" || len(rep.Degraded) != 2 {
		t.Fatalf("check: %+v %v", rep, err)
	}
	rr, err := b.mgr.Repair(ctx, "r1", nil)
	if err != nil || len(rr.Failed) > 0 {
		t.Fatalf("repair: %+v %v", rr, err)
	}
	rep, err = b.mgr.Check(ctx, "r1", true, nil)
	if err != nil || !rep.OK() || rep.DeltasChecked != 51 {
		t.Fatalf("check after repair: %+v %v", rep, err)
	}
	if _, err := b.mgr.Restore(ctx, "r1", "s2", "vol1", "v", nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readDisk(t, b, "v"), want) {
		t.Fatal("restore after repair differs")
	}
}

// TestDeltaFullMapAtMaxDepth: the sync that writes a full block map (its
// parent is at format.MaxDepth) still stores its changed blocks as deltas
// over the parent's, and every snapshot restores byte for byte. (Each
// sync changes a block not changed before: a block whose old version is
// a delta goes whole, see "Delta chunks".)
func TestDeltaFullMapAtMaxDepth(t *testing.T) {
	ctx := context.Background()
	a := newHost(t, replicate.Options{})
	if _, err := a.rs.CreateDisk("vol1", 32*bs, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 1, span(0, 32))
	snapshot(t, a, "s0", "vol1")
	_, urls := storeDirs(t, testK+testM)
	key := keyFile(t, 3)
	addRegion(t, a, urls, key)
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	piece := bytes.Repeat([]byte{1}, 4096)
	for i := 1; i <= format.MaxDepth+1; i++ {
		piece[0] = byte(i)
		writeAt(t, a, "vol1", int64(i)*bs+int64(i%16)*4096, piece) // a block whose old version is a full chunk
		name := fmt.Sprintf("s%d", i)
		snapshot(t, a, name, "vol1")
		st, err := a.mgr.Sync(ctx, "r1", nil, nil)
		if err != nil || st.Snapshots != 1 || st.Deltas != 1 {
			t.Fatalf("sync %s: %+v %v", name, st, err)
		}
	}
	remote, err := a.mgr.ListRemote(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	full := 0
	for _, r := range remote {
		if r.Name != "s0" && !r.Disks[0].Delta {
			full++
		}
	}
	if full == 0 {
		t.Fatal("no snapshot after s0 was written with a full map")
	}
	b := newHost(t, replicate.Options{})
	addRegion(t, b, urls, key)
	for i := 0; i <= format.MaxDepth+1; i++ {
		name := fmt.Sprintf("s%d", i)
		if _, err := b.mgr.Restore(ctx, "r1", name, "vol1", "v"+name, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readDisk(t, b, "v"+name), readSnapshot(t, a, name, "vol1")) {
			t.Fatalf("restore of %s differs", name)
		}
	}
}

// TestDeltaBlockSourceFailedReadClearsDst: a local repair that asks the
// region for a block stored as a delta whose pack is damaged on every
// store (its base reads) gets an error and no bytes: before readChunk,
// BlockSource left the base's bytes in dst (the old version of the
// block, taken for data by a caller that ignored the error).
func TestDeltaBlockSourceFailedReadClearsDst(t *testing.T) {
	ctx := context.Background()
	a, dirs, urls, key := deltaHost(t)
	before, err := os.ReadDir(filepath.Join(dirs[0], "packs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	old := map[string]bool{}
	for _, e := range before {
		old[e.Name()] = true
	}
	for _, d := range dirs {
		es, err := os.ReadDir(filepath.Join(d, "packs"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if old[e.Name()] {
				continue // s1's packs: the bases
			}
			flipEvery(t, filepath.Join(d, "packs", e.Name()), 200, 512)
		}
	}
	want := readSnapshot(t, a, "s2", "vol1")
	b := newHost(t, replicate.Options{})
	addRegion(t, b, urls, key)
	src, done, err := b.mgr.BlockSource(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	dst := bytes.Repeat([]byte{1}, bs)
	found, err := src.FetchBlock(ctx, sha256.Sum256(want[10*bs:11*bs]), dst) // block 10: a delta
	if err == nil || found {
		t.Fatalf("a delta in a damaged pack fetched: %v %v", found, err)
	}
	if !bytes.Equal(dst, make([]byte, bs)) {
		t.Fatalf("a failed fetch (%v) left bytes in dst (the base's: %v)", err, bytes.Equal(dst, readSnapshot(t, a, "s1", "vol1")[10*bs:11*bs]))
	}
	// A block of s1's packs still reads.
	if found, err := src.FetchBlock(ctx, sha256.Sum256(want[150*bs:151*bs]), dst); err != nil || !found || !bytes.Equal(dst, want[150*bs:151*bs]) {
		t.Fatalf("block 150: %v %v", found, err)
	}
}
