package rowstore

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/rowstore/ids"
)

// sparseSource is a LayerSource of a huge sparse origin: few stored
// blocks (a real map, as a region's block map is), every stored block's
// content derived from its number.
type sparseSource struct {
	bs     int
	stored map[int64]bool
	delay  time.Duration
}

func (s *sparseSource) block(b int64, dst []byte) {
	for i := range dst {
		dst[i] = byte(b*7 + int64(i)%251 + 1)
	}
}

func (s *sparseSource) ReadBlock(ctx context.Context, b int64, dst []byte) error {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.block(b, dst)
	return ctx.Err()
}

func (s *sparseSource) Stored(b int64) bool { return s.stored[b] }

func (s *sparseSource) EachStored(fn func(b int64)) {
	for b := range s.stored {
		fn(b)
	}
}

// TestLazyCreateFlat: creating and attaching a lazy disk of 32 GiB (sparse)
// and reading its first stored block takes well under a second, also
// while another lazy disk of the store hydrates; what is missing comes
// from the source's list of stored blocks, not a pass over every block.
func TestLazyCreateFlat(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	// A hydrating disk: 2048 stored blocks, fetched slowly.
	busy := &sparseSource{bs: lazyBS, stored: map[int64]bool{}, delay: time.Millisecond}
	for b := int64(0); b < 2048; b++ {
		busy.stored[b] = true
	}
	if _, err := s.CreateLazyDisk("busy", LazyOrigin{Region: "r", Snapshot: "s", Disk: "busy", Size: 4096 * lazyBS, BlockSize: lazyBS}, 2048); err != nil {
		t.Fatal(err)
	}
	if err := s.AttachLazy(lazyLayerOf(t, s, "busy"), busy, HydrateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	const size = 32 << 30
	src := &sparseSource{bs: lazyBS, stored: map[int64]bool{}}
	for b := int64(0); b < size/lazyBS; b += size / lazyBS / 64 {
		src.stored[b+3] = true
	}
	t0 := time.Now()
	if _, err := s.CreateLazyDisk("big", LazyOrigin{Region: "r", Snapshot: "s", Disk: "big", Size: size, BlockSize: lazyBS}, int64(len(src.stored))); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	if err := s.AttachLazy(lazyLayerOf(t, s, "big"), src, HydrateOptions{NoHydrate: true}); err != nil {
		t.Fatal(err)
	}
	t2 := time.Now()
	h, err := s.OpenDisk("big")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	got, want := make([]byte, lazyBS), make([]byte, lazyBS)
	if _, err := h.ReadAt(got, 3*lazyBS); err != nil {
		t.Fatal(err)
	}
	t3 := time.Now()
	src.block(3, want)
	if !bytes.Equal(got, want) {
		t.Fatal("block 3 differs from the source's")
	}
	t.Logf("32 GiB lazy disk: create %v, attach %v, first read %v (total %v)", t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t3.Sub(t0))
	if d := t3.Sub(t0); d > time.Second {
		t.Fatalf("create, attach and first read of a 32 GiB lazy disk took %v", d)
	}
}

// batchSource is sparseSource that reads batches (a BatchSource), counting
// them, and fails block failBlock the first failTimes times it is read.
type batchSource struct {
	sparseSource
	mu        sync.Mutex
	batches   int
	maxBatch  int
	failBlock int64
	failTimes int
	slow      time.Duration // each ReadBlocks call sleeps this long first
}

func (s *batchSource) ReadBlocks(ctx context.Context, blocks []int64, dsts [][]byte) []error {
	s.mu.Lock()
	s.batches++
	s.maxBatch = max(s.maxBatch, len(blocks))
	slow := s.slow
	s.mu.Unlock()
	time.Sleep(slow)
	errs := make([]error, len(blocks))
	for i, b := range blocks {
		errs[i] = s.ReadBlock(ctx, b, dsts[i])
	}
	return errs
}

func (s *batchSource) ReadBlock(ctx context.Context, b int64, dst []byte) error {
	s.mu.Lock()
	fail := b == s.failBlock && s.failTimes > 0
	if fail {
		s.failTimes--
	}
	s.mu.Unlock()
	if fail {
		return errTestUnreachable
	}
	return s.sparseSource.ReadBlock(ctx, b, dst)
}

// TestLazyHydrateBatches: hydration fetches neighbouring blocks in batches
// through a BatchSource (far fewer calls than blocks), retries a block
// whose fetch failed, and ends with every block local and equal to the
// source's (zeros where it stores nothing), the lazy mark cleared.
func TestLazyHydrateBatches(t *testing.T) {
	const blocks = 600
	src := &batchSource{sparseSource: sparseSource{bs: lazyBS, stored: map[int64]bool{}}, failBlock: 17, failTimes: 2}
	for b := int64(0); b < blocks; b++ {
		if b%5 != 4 {
			src.stored[b] = true
		}
	}
	s, _ := newTestStore(t, Options{})
	if _, err := s.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: blocks * lazyBS, BlockSize: lazyBS}, int64(len(src.stored))); err != nil {
		t.Fatal(err)
	}
	if err := s.AttachLazy(lazyLayerOf(t, s, "x"), src, HydrateOptions{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.WaitHydrated(ctx, "x", 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	batches, maxBatch, left := src.batches, src.maxBatch, src.failTimes
	src.mu.Unlock()
	t.Logf("%d stored blocks hydrated in %d batches (largest %d)", len(src.stored), batches, maxBatch)
	if left != 0 || batches > len(src.stored)/8 || maxBatch < 16 {
		t.Fatalf("%d stored blocks: %d batches, largest %d, %d failures left to inject", len(src.stored), batches, maxBatch, left)
	}
	h, err := s.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	got := lazyReadAll(t, h, blocks*lazyBS)
	want := make([]byte, lazyBS)
	for b := int64(0); b < blocks; b++ {
		clear(want)
		if src.stored[b] {
			src.block(b, want)
		}
		if !bytes.Equal(got[b*lazyBS:(b+1)*lazyBS], want) {
			t.Fatalf("block %d differs from the source's", b)
		}
	}
	if _, ok, err := s.LazyStatusOf("x"); err != nil || ok {
		t.Fatalf("lazy status after hydration: ok %v, err %v", ok, err)
	}
}

// TestLazyReadDuringBatch: a read of a block that a slow hydration batch is
// fetching does not wait for the batch: it reads the block from the source
// itself, and gets the origin's data.
func TestLazyReadDuringBatch(t *testing.T) {
	const blocks = 256
	src := &batchSource{sparseSource: sparseSource{bs: lazyBS, stored: map[int64]bool{}}, failBlock: -1, slow: 2 * time.Second}
	for b := int64(0); b < blocks; b++ {
		src.stored[b] = true
	}
	s, _ := newTestStore(t, Options{})
	if _, err := s.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: blocks * lazyBS, BlockSize: lazyBS}, blocks); err != nil {
		t.Fatal(err)
	}
	layer := lazyLayerOf(t, s, "x")
	if err := s.AttachLazy(layer, src, HydrateOptions{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	s.lazy.mu.RLock()
	ll := s.lazy.layers[ids.Layer(layer)]
	s.lazy.mu.RUnlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ll.mu.Lock()
		c := ll.inflight[5]
		ll.mu.Unlock()
		if c != nil && c.batch {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no hydration batch holds block 5")
		}
		time.Sleep(time.Millisecond)
	}
	h, err := s.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	got, want := make([]byte, lazyBS), make([]byte, lazyBS)
	start := time.Now()
	if _, err := h.ReadAt(got, 5*lazyBS); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	src.block(5, want)
	if !bytes.Equal(got, want) {
		t.Fatal("block 5 differs from the source's")
	}
	if el > time.Second {
		t.Fatalf("a read of a block in a hydration batch took %v (the batch takes 2 s)", el)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src.mu.Lock()
	src.slow = 0
	src.mu.Unlock()
	if err := s.WaitHydrated(ctx, "x", 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
}

// TestLazyDeleteStopsAtOnce: deleting the only disk that reads through a
// hydrating lazy layer stops its hydration at once (well before the
// watcher's next poll): nothing more is fetched for nobody.
func TestLazyDeleteStopsAtOnce(t *testing.T) {
	old := lazyPoll
	t.Cleanup(func() { lazyPoll = old }) // after the store's cleanup (its goroutines read it)
	lazyPoll = 10 * time.Second
	const blocks = 4096
	src := &batchSource{sparseSource: sparseSource{bs: lazyBS, stored: map[int64]bool{}, delay: time.Millisecond}, failBlock: -1}
	for b := int64(0); b < blocks; b++ {
		src.stored[b] = true
	}
	s, _ := newTestStore(t, Options{})
	if _, err := s.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: blocks * lazyBS, BlockSize: lazyBS}, blocks); err != nil {
		t.Fatal(err)
	}
	layer := lazyLayerOf(t, s, "x")
	if err := s.AttachLazy(layer, src, HydrateOptions{Rate: 64 * lazyBS}); err != nil {
		t.Fatal(err)
	}
	s.lazy.mu.RLock()
	ll := s.lazy.layers[ids.Layer(layer)]
	s.lazy.mu.RUnlock()
	deadline := time.Now().Add(10 * time.Second)
	for st := ll.status(); !st.Running; st = ll.status() {
		if time.Now().After(deadline) {
			t.Fatal("hydration does not start")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.DeleteDisk("x", false); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for ll.status().Running {
		if time.Since(start) > 3*time.Second {
			t.Fatal("hydration still runs 3 s after its only disk was deleted")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("hydration stopped %v after the delete", time.Since(start))
}

// TestLazyReadNotBoundByRate: --rate bounds background hydration only. With
// a rate so small the limiter holds no token for hours, and every
// hydration worker waiting for it, a read of every block of the disk
// returns (each block fetched by the read itself, at once), the limiter
// still has no token, and the read's fetches count toward the rate (the
// bucket's debt grew by them). Seen before: a worker claimed a block, then
// waited for its tokens, and a read of that block waited with it.
func TestLazyReadNotBoundByRate(t *testing.T) {
	const blocks = 64
	src := &batchSource{sparseSource: sparseSource{bs: lazyBS, stored: map[int64]bool{}}, failBlock: -1}
	for b := int64(0); b < blocks; b++ {
		src.stored[b] = true
	}
	s, _ := newTestStore(t, Options{})
	if _, err := s.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: blocks * lazyBS, BlockSize: lazyBS}, blocks); err != nil {
		t.Fatal(err)
	}
	layer := lazyLayerOf(t, s, "x")
	// 1 byte/s: the burst is one block, the next block's tokens come in 4.5 h.
	const workers = 4
	if err := s.AttachLazy(layer, src, HydrateOptions{Rate: 1, Workers: workers}); err != nil {
		t.Fatal(err)
	}
	s.lazy.mu.RLock()
	ll := s.lazy.layers[ids.Layer(layer)]
	s.lazy.mu.RUnlock()
	// Hydration took the one block of the burst; then every worker has
	// reserved a block's tokens and waits for them: workers+1 blocks'
	// reservations from a bucket that held one (and earns 1 byte a second).
	deadline := time.Now().Add(10 * time.Second)
	for ll.bucket.available() > -(workers-0.5)*lazyBS {
		if time.Now().After(deadline) {
			t.Fatalf("hydration workers are not all waiting for the limiter: %v tokens", ll.bucket.available())
		}
		time.Sleep(time.Millisecond)
	}
	before := ll.bucket.available()
	ll.mu.Lock()
	claimed := len(ll.inflight)
	ll.mu.Unlock()
	if claimed != 0 {
		t.Fatalf("%d blocks claimed by hydration workers waiting for the limiter", claimed)
	}
	h, err := s.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	got := make([]byte, blocks*lazyBS)
	done := make(chan error, 1)
	go func() {
		_, err := h.ReadAt(got, 0)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // bound by the rate: 4.5 h a block
		t.Fatal("a read of the lazy disk waits for the hydration rate")
	}
	after := ll.bucket.available()
	if after >= 0 {
		t.Fatalf("the limiter holds %v tokens after the read: it was not the one waiting", after)
	}
	want := make([]byte, lazyBS)
	for b := int64(0); b < blocks; b++ {
		src.block(b, want)
		if !bytes.Equal(got[b*lazyBS:(b+1)*lazyBS], want) {
			t.Fatalf("block %d differs from the source's", b)
		}
	}
	ll.mu.Lock()
	hydrated, missing := ll.hydrated, ll.missing
	ll.mu.Unlock()
	if hydrated != lazyBS || missing != 0 {
		t.Fatalf("after the read: hydration fetched %d bytes (want one block), %d blocks missing", hydrated, missing)
	}
	// The blocks the read fetched (all but hydration's one) count toward the rate.
	if spent := before - after; spent < (blocks-1)*lazyBS-1 {
		t.Fatalf("the read's fetches took %v bytes' tokens; want %d", spent, (blocks-1)*lazyBS)
	}
}
