package replicate_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// perBlock hides a RemoteDisk's ReadBlocks: hydration then fetches block
// by block (as before batches), for an A/B in one process.
type perBlock struct{ rd *replicate.RemoteDisk }

func (p perBlock) ReadBlock(ctx context.Context, b int64, dst []byte) error {
	return p.rd.ReadBlock(ctx, b, dst)
}
func (p perBlock) Stored(b int64) bool         { return p.rd.Stored(b) }
func (p perBlock) EachStored(fn func(b int64)) { p.rd.EachStored(fn) }

// BenchmarkLazyHydrate: hydration of a 4+2 file:// region's 32 MiB disk
// (16 KiB blocks of random data) into a lazy disk, batched (ReadBlocks)
// against block by block, with the eager restore of the same disk,
// interleaved round by round; it reports each one's MB/s and range reads.
//
//	go test -run '^$' -bench BenchmarkLazyHydrate -benchtime 1x ./replicate/
func BenchmarkLazyHydrate(b *testing.B) {
	const blockSize, blocks = 16 << 10, 2048
	ctx := context.Background()
	a := newHost(b, replicate.Options{})
	if _, err := a.rs.CreateDisk("v", blocks*blockSize, blockSize); err != nil {
		b.Fatal(err)
	}
	d, err := a.rs.OpenDisk("v")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, blocks*blockSize)
	rand.NewChaCha8([32]byte{7}).Read(buf)
	if _, err := d.WriteAt(buf, 0); err != nil {
		b.Fatal(err)
	}
	d.Close()
	snapshot(b, a, "s1", "v")
	_, urls := storeDirs(b, testK+testM)
	key := keyFile(b, 3)
	addRegion(b, a, urls, key)
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		b.Fatal(err)
	}
	h := newHost(b, replicate.Options{})
	addRegion(b, h, urls, key)
	type fig struct {
		el     time.Duration
		ranges int64
	}
	hydrate := func(name string, batch bool) fig {
		rd, err := h.mgr.OpenRemoteDisk(ctx, "r1", "s1", "v")
		if err != nil {
			b.Fatal(err)
		}
		var src rowstore.LayerSource = rd
		if !batch {
			src = perBlock{rd}
		}
		if _, err := h.rs.CreateLazyDisk(name, rowstore.LazyOrigin{Region: "r1", Snapshot: "s1", Disk: "v", Size: rd.Size(), BlockSize: rd.BlockSize()}, rd.StoredBlocks()); err != nil {
			b.Fatal(err)
		}
		ls, err := h.rs.ListLazy()
		if err != nil {
			b.Fatal(err)
		}
		var layer uint64
		for _, l := range ls {
			if len(l.Disks) == 1 && l.Disks[0] == name {
				layer = l.Layer
			}
		}
		t0 := time.Now()
		if err := h.rs.AttachLazy(layer, src, rowstore.HydrateOptions{}); err != nil {
			b.Fatal(err)
		}
		if err := h.rs.WaitHydrated(ctx, name, 5*time.Millisecond, nil); err != nil {
			b.Fatal(err)
		}
		return fig{time.Since(t0), rd.Stats().RangesRead}
	}
	mbps := func(el time.Duration) float64 { return float64(blocks*blockSize) / el.Seconds() / 1e6 }
	var sumB, sumP, sumE time.Duration
	for r := 0; r < max(b.N, 3); r++ {
		fb := hydrate(fmt.Sprintf("batch%d", r), true)
		fp := hydrate(fmt.Sprintf("block%d", r), false)
		t0 := time.Now()
		if _, err := h.mgr.RestoreFrom(ctx, "r1", "", "s1", "v", fmt.Sprintf("eager%d", r), nil); err != nil {
			b.Fatal(err)
		}
		fe := time.Since(t0)
		sumB, sumP, sumE = sumB+fb.el, sumP+fp.el, sumE+fe
		b.Logf("round %d: batched %.1f MB/s (%d range reads), block by block %.1f MB/s (%d range reads), eager restore %.1f MB/s",
			r, mbps(fb.el), fb.ranges, mbps(fp.el), fp.ranges, mbps(fe))
	}
	b.ReportMetric(float64(sumP)/float64(sumB), "batched/per-block")
	b.ReportMetric(float64(sumE)/float64(sumB), "batched/eager")
}
