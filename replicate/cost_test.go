package replicate_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"

	"bytes"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/replicate/store/s3test"
)

// TestIncrementalCost: after 1 % of a disk's blocks are rewritten, the next
// sync ships at most (k+m)/k × 1.1 × the changed bytes (measured from the
// stores) and reads no unchanged block.
func TestIncrementalCost(t *testing.T) {
	size := int64(1 << 30)
	if testing.Short() {
		size = 128 << 20
	}
	ctx := context.Background()
	a := newHost(t, replicate.Options{PackSize: 8 << 20})
	if _, err := a.rs.CreateDisk("vol1", size, bs); err != nil {
		t.Fatal(err)
	}
	nblocks := uint64(size / bs)
	writeBlocks(t, a, "vol1", 11, span(0, nblocks))
	snapshot(t, a, "s1", "vol1")
	dirs, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 5))
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	before := storeBytes(t, dirs)
	rng := rand.New(rand.NewPCG(1, 2))
	changed := map[uint64]bool{}
	for len(changed) < int(nblocks/100) {
		changed[rng.Uint64N(nblocks)] = true
	}
	var blocks []uint64
	for b := range changed {
		blocks = append(blocks, b)
	}
	writeBlocks(t, a, "vol1", 12, blocks)
	snapshot(t, a, "s2", "vol1")
	st, err := a.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	shipped := storeBytes(t, dirs) - before
	changedBytes := int64(len(blocks)) * bs
	limit := float64(testK+testM) / testK * 1.1 * float64(changedBytes)
	ratio := float64(shipped) / (float64(changedBytes) * float64(testK+testM) / testK)
	t.Logf("disk %d MiB, %d blocks changed (%d bytes): region grew %d bytes, limit %.0f; shipped/((k+m)/k × changed) = %.4f; stats %+v",
		size>>20, len(blocks), changedBytes, shipped, limit, ratio, st)
	if float64(shipped) > limit {
		t.Fatalf("shipped %d bytes > %.0f", shipped, limit)
	}
	if st.BlocksRead != int64(len(blocks)) || st.BlocksExamined != int64(len(blocks)) {
		t.Fatalf("read %d blocks, examined %d, changed %d", st.BlocksRead, st.BlocksExamined, len(blocks))
	}
	// Written = stores' growth + the copying markers, deleted at the end.
	if w := st.TotalWritten(); w < shipped || w > shipped+4096 {
		t.Fatalf("stats say %d bytes written, stores grew %d", w, shipped)
	}
}

// TestS3Region runs a region of six S3 stores (prefixes of buckets on one
// versitygw): sync, attach from another host, restore byte for byte, check.
func TestS3Region(t *testing.T) {
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
		urls = append(urls, fmt.Sprintf("s3://bucket%d/region/%s", i%3, url.PathEscape(fmt.Sprint("st", i))))
	}
	s3 := replicate.S3Options{Endpoint: endpoint, PathStyle: true, Insecure: true}
	key := keyFile(t, 6)
	a := sourceHost(t)
	a.mgr.Close()
	var err error
	if a.mgr, err = replicate.New(a.dir, a.rs, replicate.Options{PackSize: 4 << 20, OpenStore: open}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: key, S3: s3}); err != nil {
		t.Fatal(err)
	}
	st, err := a.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil || st.Snapshots != 3 {
		t.Fatalf("sync: %+v %v", st, err)
	}
	b := newHost(t, replicate.Options{OpenStore: open})
	info, err := b.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: key, S3: s3})
	if err != nil || !info.Attached {
		t.Fatalf("attach: %+v %v", info, err)
	}
	for _, s := range []string{"s1", "s3"} {
		if _, err := b.mgr.Restore(ctx, "r1", s, "vol1", "r-"+s, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readDisk(t, b, "r-"+s), readSnapshot(t, a, s, "vol1")) {
			t.Fatalf("restore %s over S3 differs", s)
		}
	}
	rep, err := b.mgr.Check(ctx, "r1", true, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %+v %v", rep, err)
	}
}
