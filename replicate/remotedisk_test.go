package replicate_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/replicate/store/s3test"
)

// A second host with nothing local reads a remote snapshot's disk block by
// block: every block equals the snapshot's, holes read as zeros, and
// prune waits while the disk is open.
func TestRemoteDiskReads(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 48)
	writeBlocks(t, a.host, "v", 1, span(0, 20))
	writeBlocks(t, a.host, "v", 2, span(30, 40))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	img := readSnapshot(t, a.host, "s1", "v")
	d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
	if err != nil {
		t.Fatal(err)
	}
	if d.Size() != int64(len(img)) || d.BlockSize() != bs || d.Blocks() != 48 {
		t.Fatalf("size %d block size %d blocks %d", d.Size(), d.BlockSize(), d.Blocks())
	}
	if !d.Stored(0) || d.Stored(25) || !d.Stored(35) || d.Stored(47) {
		t.Fatal("Stored disagrees with the written blocks")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 48)
	for blk := range int64(48) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]byte, bs)
			for i := range dst {
				dst[i] = 0xAA // a hole must be cleared
			}
			if err := d.ReadBlock(ctx, blk, dst); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(dst, img[blk*bs:(blk+1)*bs]) {
				errs <- errors.New("block differs")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := d.Stats()
	if st.BlocksRead != 48 || st.BytesFetched == 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := d.ReadBlock(ctx, 48, make([]byte, bs)); err == nil {
		t.Fatal("block beyond the disk read")
	}
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1}); err == nil {
		t.Fatal("prune ran while a remote disk held the region")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.ReadBlock(ctx, 0, make([]byte, bs)); err == nil {
		t.Fatal("read after close")
	}
	if _, err := b.mgr.OpenRemoteDisk(ctx, "r1", "nope", "v"); !errors.Is(err, replicate.ErrNotFound) {
		t.Fatalf("unknown snapshot: %v", err)
	}
	if _, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "nope"); !errors.Is(err, replicate.ErrNotFound) {
		t.Fatalf("unknown disk: %v", err)
	}
}

// With every store down, reads fail with ErrUnavailable (never zeros or
// wrong data) and succeed again once the stores return.
func TestRemoteDiskStoresDown(t *testing.T) {
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
	// One store down: after its first failure it is passed over (its
	// ranges rebuilt from the others), not asked again for every block.
	b.faults[0].SetDown(true)
	before := b.faults[0].Calls(store.MethodGet)
	readRemote(t, d, img)
	if n := b.faults[0].Calls(store.MethodGet) - before; n > 1 {
		t.Fatalf("a store that is down was asked %d times", n)
	}
	b.faults[0].SetDown(false)
	for _, f := range b.faults {
		f.SetDown(true)
	}
	dst := make([]byte, bs)
	if err := d.ReadBlock(ctx, 3, dst); !errors.Is(err, replicate.ErrUnavailable) {
		t.Fatalf("read with every store down: %v", err)
	}
	for _, f := range b.faults {
		f.SetDown(false)
	}
	if err := d.ReadBlock(ctx, 3, dst); err != nil || !bytes.Equal(dst, img[3*bs:4*bs]) {
		t.Fatalf("read after the stores returned: %v", err)
	}
}

// readRemote reads every block of d and compares with img.
func readRemote(t *testing.T, d *replicate.RemoteDisk, img []byte) {
	t.Helper()
	dst := make([]byte, d.BlockSize())
	for b := range d.Blocks() {
		if err := d.ReadBlock(context.Background(), b, dst); err != nil {
			t.Fatalf("block %d: %v", b, err)
		}
		end := min(int64(len(img)), (b+1)*int64(len(dst)))
		if !bytes.Equal(dst[:end-b*int64(len(dst))], img[b*int64(len(dst)):end]) {
			t.Fatalf("block %d differs", b)
		}
	}
}

func packFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(dir, "packs", e.Name()))
	}
	return out
}

// flipEvery damages the file at path: every step-th byte from from on is
// flipped (XOR 0x5a).
func flipEvery(t *testing.T, path string, from, step int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < len(raw); i += step {
		raw[i] ^= 0x5a
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A block is fetched alone: the byte range of its chunk in one data
// shard (bytes fetched per byte read near 1 for incompressible blocks),
// read with a missing data shard (the range rebuilt from the others) and
// with a corrupt one (the range fails its tag and is rebuilt), always the
// snapshot's bytes.
func TestRemoteDiskRanges(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 64)
	writeBlocks(t, a.host, "v", 1, span(0, 64))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	img := readSnapshot(t, a.host, "s1", "v")

	open := func() *replicate.RemoteDisk {
		d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	d := open()
	// One random block first: one range, about one block fetched.
	dst := make([]byte, bs)
	if err := d.ReadBlock(ctx, 37, dst); err != nil || !bytes.Equal(dst, img[37*bs:38*bs]) {
		t.Fatalf("block 37: %v", err)
	}
	if st := d.Stats(); st.PacksFetched != 0 || st.BytesFetched > bs+1024 {
		t.Fatalf("one block fetched %d bytes (%d packs)", st.BytesFetched, st.PacksFetched)
	}
	readRemote(t, d, img)
	st := d.Stats()
	ratio := float64(st.BytesFetched) / float64(st.BytesRead)
	t.Logf("sequential read of %d blocks of %d bytes: %d bytes fetched, %.4f per byte read, %d ranges", st.BlocksRead, bs, st.BytesFetched, ratio, st.RangesRead)
	if st.PacksFetched != 0 || ratio > 1.01 {
		t.Fatalf("healthy read: %+v (%.3f per byte read)", st, ratio)
	}

	// Shard 0 gone: its ranges are rebuilt from shards 1 and 2.
	for _, f := range packFiles(t, dirs[0]) {
		if err := os.Rename(f, f+".away"); err != nil {
			t.Fatal(err)
		}
	}
	d = open()
	readRemote(t, d, img)
	st = d.Stats()
	t.Logf("shard 0 missing: %+v", st)
	if st.PacksFetched != 0 || st.Degraded == 0 || float64(st.BytesFetched)/float64(st.BytesRead) > 2.1 {
		t.Fatalf("reads with a data shard missing: %+v", st)
	}
	for _, f := range packFiles(t, dirs[0]) {
		if err := os.Rename(f, strings.TrimSuffix(f, ".away")); err != nil {
			t.Fatal(err)
		}
	}

	// Shard 1 corrupt throughout its payload: every range of it fails
	// its tag and is rebuilt from shards 0 and 2.
	for _, f := range packFiles(t, dirs[1]) {
		flipEvery(t, f, 64, 512)
	}
	d = open()
	readRemote(t, d, img)
	st = d.Stats()
	t.Logf("shard 1 corrupt: %+v", st)
	if st.Degraded == 0 || st.PacksFetched != 0 {
		t.Fatalf("reads with a corrupt data shard: %+v", st)
	}
	// Two shards bad of 2+1: no block is returned.
	for _, f := range packFiles(t, dirs[0]) {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	d = open()
	if err := d.ReadBlock(ctx, 5, dst); !errors.Is(err, replicate.ErrUnavailable) {
		t.Fatalf("read with two of three shards bad: %v", err)
	}
}

// A region written before pack version 2 (testdata/region-v1) reads
// through RemoteDisk (whole packs), byte for byte.
func TestRemoteDiskFixtureV1(t *testing.T) {
	ctx := context.Background()
	raw, err := os.ReadFile(filepath.Join(fixtureDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp fixtureExpect
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(tmpDir(t), "fixture")
	copyTree(t, fixtureDir, root)
	if err := os.Chmod(filepath.Join(root, "key"), 0o600); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for i := range exp.K + exp.M {
		urls = append(urls, "file://"+filepath.Join(root, "stores", "s"+string(rune('0'+i))))
	}
	h := newHost(t, replicate.Options{})
	if _, err := h.mgr.AddRegion(ctx, replicate.RegionConfig{Name: exp.Region, K: exp.K, M: exp.M, Stores: urls, KeyFile: filepath.Join(root, "key")}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for snap, disks := range exp.Disks {
		for disk, sum := range disks {
			d, err := h.mgr.OpenRemoteDisk(ctx, exp.Region, snap, disk)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, d.BlockSize())
			hh := sha256.New()
			for b := range d.Blocks() {
				if err := d.ReadBlock(ctx, b, buf); err != nil {
					t.Fatalf("%s/%s block %d: %v", snap, disk, b, err)
				}
				hh.Write(buf[:min(int64(len(buf)), d.Size()-b*int64(len(buf)))])
			}
			if got := hex.EncodeToString(hh.Sum(nil)); got != sum {
				t.Errorf("%s/%s: sha256 %s, want %s", snap, disk, got, sum)
			}
			if st := d.Stats(); d.StoredBlocks() > 0 && st.PacksFetched == 0 {
				t.Errorf("%s/%s: version 1 packs read without fetching packs: %+v", snap, disk, st)
			}
			d.Close()
			n++
		}
	}
	if n == 0 {
		t.Fatal("fixture has no disks")
	}
}

// The block cache keeps what a remote disk fetched: a second disk over
// the same snapshot reads it without the stores, a damaged cached block
// is fetched again (never returned), and the cache stays within its
// bound, also when opened again.
func TestRemoteDiskBlockCache(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 32)
	writeBlocks(t, a.host, "v", 1, span(0, 32))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	img := readSnapshot(t, a.host, "s1", "v")
	c, err := b.mgr.OpenBlockCache(20 * bs)
	if err != nil {
		t.Fatal(err)
	}
	open := func() *replicate.RemoteDisk {
		d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
		if err != nil {
			t.Fatal(err)
		}
		d.SetCache(c)
		t.Cleanup(func() { d.Close() })
		return d
	}
	d := open()
	buf := make([]byte, 10*bs)
	if n, err := d.ReadAt(buf, 3*bs); err != nil || n != len(buf) || !bytes.Equal(buf, img[3*bs:13*bs]) {
		t.Fatalf("ReadAt: %d %v", n, err)
	}
	d2 := open()
	if n, err := d2.ReadAt(buf[:5*bs+7], 3*bs+100); err != nil || n != 5*bs+7 || !bytes.Equal(buf[:n], img[3*bs+100:3*bs+100+n]) {
		t.Fatalf("ReadAt from the cache: %d %v", n, err)
	}
	if st := d2.Stats(); st.BytesFetched != 0 || st.CacheHits != 6 {
		t.Fatalf("second disk fetched from the stores: %+v", st)
	}
	// Damage every cached block: they are fetched again, right.
	root := filepath.Join(b.dir, "regions", "r1.cache", "blocks")
	ents, err := os.ReadDir(root)
	if err != nil || len(ents) != 10 {
		t.Fatalf("%d cached blocks, %v", len(ents), err)
	}
	for _, e := range ents {
		if err := os.WriteFile(filepath.Join(root, e.Name()), make([]byte, bs), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d3 := open()
	if _, err := d3.ReadAt(buf, 3*bs); err != nil || !bytes.Equal(buf, img[3*bs:13*bs]) {
		t.Fatalf("read over damaged cache: %v", err)
	}
	if st := d3.Stats(); st.CacheHits != 0 || st.BytesFetched == 0 {
		t.Fatalf("damaged cache used: %+v", st)
	}
	// Bounded: read all 32 blocks through a 20-block cache.
	readRemote(t, d3, img)
	if c.Size() > 20*bs {
		t.Fatalf("cache holds %d bytes, bound %d", c.Size(), 20*bs)
	}
	c2, err := b.mgr.OpenBlockCache(8 * bs)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Size() != 8*bs {
		t.Fatalf("reopened cache: %d bytes, want the bound %d", c2.Size(), 8*bs)
	}
	// Past the end: io.EOF with what there is.
	if n, err := d3.ReadAt(buf[:bs], d3.Size()-10); n != 10 || err == nil {
		t.Fatalf("read at the end: %d %v", n, err)
	}
}

// Compressible blocks (zstd chunks) read many at a time with ReadAt come
// back exact: a block's decompression never writes into the caller's
// next block (found by the FUSE test: ext4 metadata read 32 KiB at a
// time came back wrong on the first, uncached read).
func TestRemoteDiskCompressibleReadAt(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 64)
	blk := make([]byte, bs)
	for i := range int64(64) {
		clear(blk) // mostly zeros, as file system metadata: compressible, distinct per block
		for j := 0; j < int(i)*97%bs; j += 1000 {
			blk[j] = byte(i + 1)
		}
		blk[bs-1] = byte(i + 1)
		writeAt(t, a.host, "v", i*bs, blk)
	}
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
	buf := make([]byte, 8*bs)
	for off := int64(0); off < d.Size(); off += int64(len(buf)) {
		if _, err := d.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, img[off:off+int64(len(buf))]) {
			t.Fatalf("ReadAt at %d differs", off)
		}
	}
	if st := d.Stats(); st.BytesFetched >= st.BytesRead/2 {
		t.Fatalf("compressible blocks fetched %d bytes for %d read: not compressed?", st.BytesFetched, st.BytesRead)
	}
}

// Over a real S3 server (versitygw, 4+2 prefixes of 3 buckets): a remote
// disk reads by range requests, healthy and with a data shard's store down
// (rebuilt from other shards' ranges) or sending corrupt bytes (the
// range fails its tag and is rebuilt), fails with ErrUnavailable while
// every store is down and reads again when they return. It logs bytes
// fetched per byte read for 4 KiB random reads and a sequential read of
// a disk of 16 KiB blocks (the default) holding random data.
func TestRemoteDiskS3(t *testing.T) {
	endpoint, access, secret := s3test.Start(t)
	ctx := context.Background()
	faults := make([]*store.Faults, testK+testM)
	for i := range faults {
		faults[i] = store.NewFaults()
	}
	open := func(fs []*store.Faults) func(ctx context.Context, i int, u string, o store.Options) (store.Store, error) {
		return func(ctx context.Context, i int, u string, o store.Options) (store.Store, error) {
			o.AccessKey, o.SecretKey = access, secret
			s, err := store.Open(ctx, u, o)
			if err != nil {
				return nil, err
			}
			w := store.WrapOptions{}
			if fs != nil {
				w.Faults = fs[i]
			}
			return store.Wrap(s, w), nil
		}
	}
	var urls []string
	for i := range testK + testM {
		urls = append(urls, fmt.Sprintf("s3://bucket%d/remote/st%d", i%3, i))
	}
	s3 := replicate.S3Options{Endpoint: endpoint, PathStyle: true, Insecure: true}
	key := keyFile(t, 7)
	a := newHost(t, replicate.Options{PackSize: 4 << 20, OpenStore: open(nil)})
	const dbs = 16 << 10
	if _, err := a.rs.CreateDisk("v", 32<<20, dbs); err != nil {
		t.Fatal(err)
	}
	d0, err := a.rs.OpenDisk("v")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 16<<20)
	rand.Read(data)
	if _, err := d0.WriteAt(data, 8<<20); err != nil {
		t.Fatal(err)
	}
	d0.Sync()
	d0.Close()
	snapshot(t, a, "s1", "v")
	if _, err := a.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: key, S3: s3}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	img := readSnapshot(t, a, "s1", "v")
	b := newHost(t, replicate.Options{OpenStore: open(faults)})
	if _, err := b.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: key, S3: s3}); err != nil {
		t.Fatal(err)
	}
	openDisk := func() *replicate.RemoteDisk {
		d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	check := func(d *replicate.RemoteDisk, off int64, n int) {
		t.Helper()
		buf := make([]byte, n)
		if _, err := d.ReadAt(buf, off); err != nil {
			t.Fatalf("read %d+%d: %v", off, n, err)
		}
		if !bytes.Equal(buf, img[off:off+int64(n)]) {
			t.Fatalf("read %d+%d differs", off, n)
		}
	}
	// 4 KiB random reads inside the data.
	d := openDisk()
	rng := mrand.New(mrand.NewPCG(1, 2))
	const reads = 300
	for range reads {
		check(d, 8<<20+int64(rng.IntN(4096))*4096, 4096)
	}
	st := d.Stats()
	t.Logf("S3: %d random 4 KiB reads, block size 16 KiB: %d bytes fetched, %.3f per byte read, %d range reads, %d packs", reads, st.BytesFetched, float64(st.BytesFetched)/float64(reads*4096), st.RangesRead, st.PacksFetched)
	if st.PacksFetched != 0 || st.BytesFetched > reads*(dbs+64) {
		t.Fatalf("random reads: %+v", st)
	}
	// Sequential, the whole disk.
	d = openDisk()
	for off := int64(0); off < d.Size(); off += 1 << 20 {
		check(d, off, 1<<20)
	}
	st = d.Stats()
	t.Logf("S3: sequential read of 32 MiB (16 MiB stored): %d bytes fetched, %.4f per byte of stored data read, %.4f per byte read", st.BytesFetched, float64(st.BytesFetched)/float64(len(data)), float64(st.BytesFetched)/float64(d.Size()))
	if st.PacksFetched != 0 || float64(st.BytesFetched) > 1.01*float64(len(data)) {
		t.Fatalf("sequential read: %+v", st)
	}
	// A data shard's store down: ranges rebuilt from the others.
	faults[0].SetDown(true)
	d = openDisk()
	for off := int64(8 << 20); off < 24<<20; off += 1 << 20 {
		check(d, off, 1<<20)
	}
	st = d.Stats()
	t.Logf("S3, store 0 down: %+v (%.3f per byte read)", st, float64(st.BytesFetched)/float64(len(data)))
	if st.Degraded == 0 || st.PacksFetched != 0 {
		t.Fatalf("store 0 down: %+v", st)
	}
	faults[0].SetDown(false)
	// A data shard's store corrupting what it sends.
	faults[1].CorruptGets(func(name string) bool { return strings.HasPrefix(name, "packs/") })
	d = openDisk()
	for off := int64(8 << 20); off < 24<<20; off += 1 << 20 {
		check(d, off, 1<<20)
	}
	if st := d.Stats(); st.Degraded == 0 {
		t.Fatalf("corrupt store: %+v", st)
	}
	faults[1].CorruptGets(nil)
	// Every store down, then back.
	for _, f := range faults {
		f.SetDown(true)
	}
	buf := make([]byte, 4096)
	if _, err := d.ReadAt(buf, 9<<20+4096); !errors.Is(err, replicate.ErrUnavailable) {
		t.Fatalf("every store down: %v", err)
	}
	for _, f := range faults {
		f.SetDown(false)
	}
	check(d, 9<<20+4096, 4096)
}

// A remote disk whose lock lease ran out during a long outage (its
// refreshes failed) takes the lock again at the next read once the stores
// are back, and reads.
func TestRemoteDiskRelock(t *testing.T) {
	ctx := context.Background()
	_, urls := storeDirs(t, 3)
	key := keyFile(t, 8)
	a := newHost(t, replicate.Options{})
	if _, err := a.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: 2, M: 1, Stores: urls, KeyFile: key}); err != nil {
		t.Fatal(err)
	}
	mkDisk(t, a, "v", 8)
	writeBlocks(t, a, "v", 1, span(0, 8))
	snapshot(t, a, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	img := readSnapshot(t, a, "s1", "v")
	b := newFleetHost(t, "b", 3, replicate.Options{LockStale: 400 * time.Millisecond, LockRefresh: 50 * time.Millisecond})
	if _, err := b.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: 2, M: 1, Stores: urls, KeyFile: key}); err != nil {
		t.Fatal(err)
	}
	d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b.eachFault(func(f *store.Faults) { f.SetDown(true) })
	time.Sleep(time.Second) // refreshes fail past the lease (LockStale/2)
	dst := make([]byte, bs)
	if err := d.ReadBlock(ctx, 2, dst); !errors.Is(err, replicate.ErrUnavailable) {
		t.Fatalf("read during the outage: %v", err)
	}
	b.eachFault(func(f *store.Faults) { f.SetDown(false) })
	if err := d.ReadBlock(ctx, 2, dst); err != nil || !bytes.Equal(dst, img[2*bs:3*bs]) {
		t.Fatalf("read after the outage: %v", err)
	}
}
