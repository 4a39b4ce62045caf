package rowstore

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/rowstore/ids"
)

// What a lazily restored disk's status says (lazy14): the last error is
// one a reader or hydration still meets, the rate and ETA are measured,
// and a disk with every block local is declared whole at once.

func lazy14Layer(t *testing.T, s *Store, layer uint64) *lazyLayer {
	t.Helper()
	s.lazy.mu.RLock()
	defer s.lazy.mu.RUnlock()
	return s.lazy.layers[ids.Layer(layer)]
}

func lazy14Status(t *testing.T, s *Store, disk string) (LazyStatus, bool) {
	t.Helper()
	st, ok, err := s.LazyStatusOf(disk)
	if err != nil {
		t.Fatal(err)
	}
	return st, ok
}

// TestLazy14DirectReadErrorNotShown: a read of a block a hydration batch
// is fetching reads it directly after 10 ms; when that direct read fails
// and the batch then serves the block, the reader got its data and no
// error: disk info must not show one (it did, until a later failure
// replaced it).
func TestLazy14DirectReadErrorNotShown(t *testing.T) {
	const blocks = 256
	src := &batchSource{sparseSource: sparseSource{bs: lazyBS, stored: map[int64]bool{}}, failBlock: 5, failTimes: 1, slow: time.Second}
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
	ll := lazy14Layer(t, s, layer)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		ll.mu.Lock()
		c := ll.inflight[5]
		ll.mu.Unlock()
		if c != nil && c.batch {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no hydration batch holds block 5")
		}
	}
	h, err := s.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, lazyBS)
	if _, err := h.ReadAt(buf, 5*lazyBS); err != nil {
		t.Fatalf("read of block 5: %v", err)
	}
	src.mu.Lock()
	left := src.failTimes
	src.mu.Unlock()
	if left != 0 {
		t.Fatal("the read did not read block 5 directly (the test's premise)")
	}
	if st, ok := lazy14Status(t, s, "x"); ok && st.LastError != "" {
		t.Errorf("a direct read's error the batch then made good is shown: %q", st.LastError)
	}
	src.mu.Lock()
	src.slow = 0
	src.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.WaitHydrated(ctx, "x", 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
}

// TestLazy14LastErrorClearedWhenServed: a read that failed shows its
// error; once the same block is read, the error is no longer shown.
func TestLazy14LastErrorClearedWhenServed(t *testing.T) {
	const blocks = 32
	src := &batchSource{sparseSource: sparseSource{bs: lazyBS, stored: map[int64]bool{}}, failBlock: 7, failTimes: 1}
	for b := int64(0); b < blocks; b++ {
		src.stored[b] = true
	}
	s, _ := newTestStore(t, Options{})
	if _, err := s.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: blocks * lazyBS, BlockSize: lazyBS}, blocks); err != nil {
		t.Fatal(err)
	}
	if err := s.AttachLazy(lazyLayerOf(t, s, "x"), src, HydrateOptions{NoHydrate: true}); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, lazyBS)
	if _, err := h.ReadAt(buf, 7*lazyBS); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("first read of block 7: %v, want ErrUnavailable", err)
	}
	if st, _ := lazy14Status(t, s, "x"); st.LastError == "" {
		t.Fatal("the failed read's error is not shown")
	}
	if _, err := h.ReadAt(buf, 7*lazyBS); err != nil {
		t.Fatalf("second read of block 7: %v", err)
	}
	if st, _ := lazy14Status(t, s, "x"); st.LastError != "" {
		t.Errorf("block 7 was read since, yet the error is still shown: %q", st.LastError)
	}
}

// flakySource fails every read while fail is set.
type flakySource struct {
	sparseSource
	fail atomic.Bool
}

func (s *flakySource) ReadBlock(ctx context.Context, b int64, dst []byte) error {
	if s.fail.Load() {
		return errTestUnreachable
	}
	return s.sparseSource.ReadBlock(ctx, b, dst)
}

// TestLazy14WholeAtOnce: when reads fetch the last missing blocks while
// hydration waits out a retry's backoff, the disk is declared whole (its
// lazy mark cleared, disk info says nothing more of hydration) at once,
// not when the backoff ends.
func TestLazy14WholeAtOnce(t *testing.T) {
	const blocks = 64
	src := &flakySource{sparseSource: sparseSource{bs: lazyBS, stored: map[int64]bool{}}}
	for b := int64(0); b < blocks; b++ {
		src.stored[b] = true
	}
	src.fail.Store(true)
	s, _ := newTestStore(t, Options{})
	if _, err := s.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: blocks * lazyBS, BlockSize: lazyBS}, blocks); err != nil {
		t.Fatal(err)
	}
	// Fails at 0 s and 1 s, then waits 2 s.
	if err := s.AttachLazy(lazyLayerOf(t, s, "x"), src, HydrateOptions{Workers: 1, MinBackoff: time.Second}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1300 * time.Millisecond)
	src.fail.Store(false)
	h, err := s.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lazyReadAll(t, h, blocks*lazyBS)
	// Every block is local now: a read keeps what it fetched before it
	// returns.
	local := time.Now()
	for deadline := local.Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st, ok := lazy14Status(t, s, "x")
		if !ok {
			break
		}
		if st.Attached && st.Local != st.Total {
			t.Fatalf("not every block local after reading them all: %+v", st)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not whole after 30 s: %+v", st)
		}
	}
	d := time.Since(local)
	t.Logf("declared whole %v after every block was local", d.Round(time.Millisecond))
	if d > 500*time.Millisecond {
		t.Errorf("every block local %v before the disk was declared whole", d.Round(time.Millisecond))
	}
}

// TestLazy14RateMeasured: during a hydration's first seconds under --rate,
// the rate shown (when one is) is the rate blocks become local, not the
// token bucket's first burst over a few milliseconds, and the ETA is the
// missing bytes at that rate.
func TestLazy14RateMeasured(t *testing.T) {
	const blocks = 160
	const limit = 256 << 10
	src := &sparseSource{bs: lazyBS, stored: map[int64]bool{}}
	for b := int64(0); b < blocks; b++ {
		src.stored[b] = true
	}
	s, _ := newTestStore(t, Options{})
	if _, err := s.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: blocks * lazyBS, BlockSize: lazyBS}, blocks); err != nil {
		t.Fatal(err)
	}
	if err := s.AttachLazy(lazyLayerOf(t, s, "x"), src, HydrateOptions{Rate: limit}); err != nil {
		t.Fatal(err)
	}
	shown, start := 0, time.Now()
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		st, ok := lazy14Status(t, s, "x")
		if !ok {
			t.Fatal("hydrated already (the test's premise: 10 s at the bound)")
		}
		if st.Rate == 0 {
			if st.ETA != 0 {
				t.Errorf("ETA %v without a rate", st.ETA)
			}
			continue
		}
		shown++
		t.Logf("%.1f s: rate %.0f B/s (bound %d), ETA %v, %d of %d local", time.Since(start).Seconds(), st.Rate, limit, st.ETA.Round(time.Millisecond), st.Local, st.Total)
		if st.Rate < 0.5*limit || st.Rate > 1.5*limit {
			t.Errorf("rate %.0f B/s shown with the bound %d B/s (%d of %d blocks local)", st.Rate, limit, st.Local, st.Total)
		}
		want := float64((st.Total-st.Local)*lazyBS) / st.Rate
		if got := st.ETA.Seconds(); got < want-0.01 || got > want+0.01 {
			t.Errorf("ETA %v, want %.2f s (missing bytes at the rate)", st.ETA, want)
		}
	}
	if shown == 0 {
		t.Error("no rate shown in 2.5 s of hydration")
	}
}

// TestLazy14AllocatedAfterRebuild: a lazy disk's allocation is the blocks
// it shows, local yet or not: after an index rebuild (whose count saw only
// the blocks local then) and a write over a block not local yet, the
// disk shows, once its source is attached again and it is whole, exactly
// the blocks its origin stores plus that write's (it stayed at what was
// local at the rebuild).
func TestLazy14AllocatedAfterRebuild(t *testing.T) {
	const blocks = 96
	a, _ := lazyFixture(t, blocks)
	src := newStoreSource(t, a, "s", "d")
	size := int64(blocks * lazyBS)
	dir := filepath.Join(fastTempDir(t), "b")
	if err := Create(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: size, BlockSize: lazyBS}, int64(len(src.stored))); err != nil {
		t.Fatal(err)
	}
	layer := lazyLayerOf(t, b, "x")
	if err := b.AttachLazy(layer, src, HydrateOptions{Rate: lazyBS, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	h, err := b.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	lazyReadAll(t, h, 20*lazyBS)
	// A write over the last block, not local yet: stored by the source
	// or not, the disk shows it allocated.
	want := int64(len(src.stored))
	if !src.stored[blocks-1] {
		want++
	}
	if _, err := h.WriteAt(bytes.Repeat([]byte{7}, lazyBS), (blocks-1)*lazyBS); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Rebuild(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	b, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.AttachLazy(layer, src, HydrateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.WaitHydrated(ctx, "x", 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	di, err := b.GetDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	if di.Allocated != want*lazyBS {
		t.Errorf("hydrated disk allocates %d blocks, want %d (the origin's stored blocks and the write)", di.Allocated/lazyBS, want)
	}
	if err := b.verifyAccounting(); err != nil {
		t.Errorf("accounting after hydration: %v", err)
	}
}
