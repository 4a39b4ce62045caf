package rowstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
)

// storeSource is a LayerSource backed by a disk of a snapshot in another
// store (a real source, not a mock); fail makes it unreachable.
type storeSource struct {
	r      *Reader
	stored map[int64]bool
	fail   atomic.Bool
	reads  atomic.Int64
	closed atomic.Bool
	delay  time.Duration
}

var errTestUnreachable = errors.New("test source unreachable")

func newStoreSource(t *testing.T, s *Store, snapshot, disk string) *storeSource {
	t.Helper()
	r, err := s.OpenSnapshotDisk(snapshot, disk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	src := &storeSource{r: r, stored: map[int64]bool{}}
	n := blockCount(r.Size(), r.BlockSize())
	if err := s.visible(r.chain, 0, n, func(b ids.Block, v index.Version) error {
		if !v.Zero() {
			src.stored[int64(b)] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return src
}

func (src *storeSource) ReadBlock(ctx context.Context, b int64, dst []byte) error {
	if src.delay > 0 {
		time.Sleep(src.delay)
	}
	if src.fail.Load() {
		return errTestUnreachable
	}
	src.reads.Add(1)
	_, err := src.r.ReadAt(dst, b*int64(len(dst)))
	return err
}

func (src *storeSource) Stored(b int64) bool { return src.stored[b] }

func (src *storeSource) Close() error {
	src.closed.Store(true)
	return nil
}

const lazyBS = 16 << 10

// lazyFixture makes a source store with disk d (size blocks of lazyBS, random
// data in about 3/4 of them, one block overwritten with zeros) and snapshot
// s, and returns it with the disk's content.
func lazyFixture(t *testing.T, blocks int) (*Store, []byte) {
	t.Helper()
	a, _ := newTestStore(t, Options{})
	size := int64(blocks * lazyBS)
	if _, err := a.CreateDisk("d", size, lazyBS); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	rng := rand.New(rand.NewSource(1))
	for b := 0; b < blocks; b++ {
		if rng.Intn(4) != 0 {
			rng.Read(want[b*lazyBS : (b+1)*lazyBS])
		}
	}
	h, err := a.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	// A block written, then zeroed: a hole the source does not store.
	clear(want[lazyBS : 2*lazyBS])
	if _, err := h.WriteAt(want[lazyBS:2*lazyBS], lazyBS); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateSnapshot("s", []string{"d"}, "manual"); err != nil {
		t.Fatal(err)
	}
	return a, want
}

func lazyReadAll(t *testing.T, r interface {
	ReadAt([]byte, int64) (int, error)
}, size int64) []byte {
	t.Helper()
	got := make([]byte, size)
	if _, err := r.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	return got
}

func lazyLayerOf(t *testing.T, s *Store, disk string) uint64 {
	t.Helper()
	ls, err := s.ListLazy()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		for _, d := range l.Disks {
			if d == disk {
				return l.Layer
			}
		}
	}
	t.Fatalf("no lazy layer under disk %q: %+v", disk, ls)
	return 0
}

// TestLazyDisk: a lazily restored disk reads its origin's content at once
// (blocks fetched on demand), takes writes, can be snapshotted and cloned
// while it hydrates, resumes hydration after the store is reopened, and
// ends byte-identical to the origin plus the writes, with its lazy mark
// cleared and check clean.
func TestLazyDisk(t *testing.T) {
	const blocks = 256
	a, want := lazyFixture(t, blocks)
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
	origin := LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: size, BlockSize: lazyBS}
	start := time.Now()
	di, err := b.CreateLazyDisk("x", origin, int64(len(src.stored)))
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("CreateLazyDisk took %v", el)
	}
	if di.Size != size || di.BlockSize != lazyBS {
		t.Fatalf("disk info %+v", di)
	}
	// Before a source is attached, a block that is not local is an error,
	// never zeros.
	h, err := b.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, lazyBS)
	if _, err := h.ReadAt(buf, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("read with no source: %v", err)
	}
	layer := lazyLayerOf(t, b, "x")
	// Slow hydration (8 blocks a second): what follows happens while most
	// blocks are still missing.
	if err := b.AttachLazy(layer, src, HydrateOptions{Rate: 8 * lazyBS, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.AttachLazy(layer, src, HydrateOptions{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second attach: %v", err)
	}
	// Reads fetch on demand.
	off := int64(200 * lazyBS)
	if _, err := h.ReadAt(buf, off); err != nil || !bytes.Equal(buf, want[off:off+lazyBS]) {
		t.Fatalf("block 200: %v, equal %v", err, bytes.Equal(buf, want[off:off+lazyBS]))
	}
	// A partial read and a partial write of missing blocks.
	if _, err := h.ReadAt(buf[:100], 150*lazyBS+7); err != nil || !bytes.Equal(buf[:100], want[150*lazyBS+7:150*lazyBS+107]) {
		t.Fatalf("partial read: %v", err)
	}
	w := []byte("written while hydrating")
	for _, o := range []int64{100*lazyBS + 5, 3 * lazyBS, size - int64(len(w))} {
		if _, err := h.WriteAt(w, o); err != nil {
			t.Fatal(err)
		}
		copy(want[o:], w)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	st, ok, err := b.LazyStatusOf("x")
	if err != nil || !ok || !st.Attached || !st.Running || st.Total != int64(len(src.stored)) || st.Local >= st.Total {
		t.Fatalf("status while hydrating: %+v %v %v", st, ok, err)
	}
	// A snapshot and a clone of the hydrating disk.
	if _, err := b.CreateSnapshot("t", []string{"x"}, "manual"); err != nil {
		t.Fatal(err)
	}
	snapWant := append([]byte(nil), want...)
	// A diff (a sync) of it would take missing blocks for zeros: refused.
	if _, err := b.Diff(nil, Point{Snapshot: "t", Disk: "x"}, func(Change) error { return nil }); !errors.Is(err, ErrBusy) {
		t.Fatalf("diff of a hydrating snapshot: %v", err)
	}
	if _, err := b.CloneDisk("c", "t", "x"); err != nil {
		t.Fatal(err)
	}
	// Writes after the snapshot do not show in it.
	if _, err := h.WriteAt(w, 60*lazyBS); err != nil {
		t.Fatal(err)
	}
	copy(want[60*lazyBS:], w)
	// Reading all of it would fetch everything: the first 80 blocks.
	if got := lazyReadAll(t, h, 80*lazyBS); !bytes.Equal(got, want[:80*lazyBS]) {
		t.Fatal("disk differs from origin plus writes while hydrating")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	// GC while hydrating frees nothing that is needed.
	if _, err := b.GC(); err != nil {
		t.Fatal(err)
	}
	rep, err := b.Check(context.Background(), CheckOptions{ReadData: true})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check while hydrating: %v %+v", err, rep.Problems)
	}
	st, ok, err = b.LazyStatusOf("x")
	if err != nil || !ok || st.Local == st.Total {
		t.Fatalf("hydration was not bounded: %+v %v %v", st, ok, err)
	}
	// Restart: the store closes mid-hydration, opens again, and the source
	// is attached again (unbounded): hydration resumes from the index.
	stBefore, _, _ := b.LazyStatusOf("x")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	reads := src.reads.Load()
	b, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ls, err := b.ListLazy()
	if err != nil || len(ls) != 1 || ls[0].Layer != layer || ls[0].Origin.Snapshot != "s" {
		t.Fatalf("lazy layers after reopen: %+v %v", ls, err)
	}
	st, _, _ = b.LazyStatusOf("x")
	if st.Attached {
		t.Fatalf("attached before AttachLazy: %+v", st)
	}
	if err := b.AttachLazy(layer, src, HydrateOptions{}); err != nil {
		t.Fatal(err)
	}
	for st, _, _ = b.LazyStatusOf("x"); !st.Attached; st, _, _ = b.LazyStatusOf("x") {
		time.Sleep(time.Millisecond) // what is missing is worked out in the background
	}
	resumedFrom := st.Local
	if resumedFrom == 0 {
		t.Fatalf("nothing local after reopen: %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var last LazyStatus
	if err := b.WaitHydrated(ctx, "x", 20*time.Millisecond, func(s LazyStatus) { last = s }); err != nil {
		t.Fatalf("wait: %v (last %+v)", err, last)
	}
	// What was local before the close is not fetched again.
	if fetched := src.reads.Load() - reads; fetched > stBefore.Total-stBefore.Local {
		t.Errorf("resumed hydration fetched %d blocks; at most %d were missing", fetched, stBefore.Total-stBefore.Local)
	}
	if ls, err := b.ListLazy(); err != nil || len(ls) != 0 {
		t.Fatalf("lazy layers after hydration: %+v %v", ls, err)
	}
	if err := b.idx.View(func(t *index.Txn) error {
		l, err := t.Layer(ids.Layer(layer))
		if err == nil && l.Lazy != nil {
			err = errors.New("lazy mark not cleared")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The source is gone: everything reads from the store alone.
	src.fail.Store(true)
	check := func(name string) {
		t.Helper()
		for _, c := range []struct {
			open func() (interface {
				ReadAt([]byte, int64) (int, error)
				Close() error
			}, error)
			want []byte
			what string
		}{
			{func() (interface {
				ReadAt([]byte, int64) (int, error)
				Close() error
			}, error) {
				return b.OpenDisk("x")
			}, want, "disk x"},
			{func() (interface {
				ReadAt([]byte, int64) (int, error)
				Close() error
			}, error) {
				return b.OpenSnapshotDisk("t", "x")
			}, snapWant, "snapshot t"},
			{func() (interface {
				ReadAt([]byte, int64) (int, error)
				Close() error
			}, error) {
				return b.OpenDisk("c")
			}, snapWant, "clone c"},
		} {
			r, err := c.open()
			if err != nil {
				t.Fatal(err)
			}
			if got := lazyReadAll(t, r, size); !bytes.Equal(got, c.want) {
				t.Fatalf("%s: %s differs", name, c.what)
			}
			r.Close()
		}
	}
	check("hydrated")
	if _, err := b.Diff(nil, Point{Snapshot: "t", Disk: "x"}, func(Change) error { return nil }); err != nil {
		t.Fatalf("diff once hydrated: %v", err)
	}
	if _, err := b.GC(); err != nil {
		t.Fatal(err)
	}
	rep, err = b.Check(context.Background(), CheckOptions{ReadData: true})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check after hydration: %v %+v", err, rep.Problems)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	check("reopened")
}

// TestLazyUnavailable: while the source is unreachable, reads of missing
// blocks fail with ErrUnavailable (never zeros) and local blocks still
// read; hydration retries and completes once the source is back.
func TestLazyUnavailable(t *testing.T) {
	const blocks = 64
	a, want := lazyFixture(t, blocks)
	src := newStoreSource(t, a, "s", "d")
	size := int64(blocks * lazyBS)
	b, _ := newTestStore(t, Options{})
	if _, err := b.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: size, BlockSize: lazyBS}, int64(len(src.stored))); err != nil {
		t.Fatal(err)
	}
	src.fail.Store(true)
	if err := b.AttachLazy(lazyLayerOf(t, b, "x"), src, HydrateOptions{MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	h, err := b.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// Block 1 is a hole in the source: zeros without asking it.
	buf := bytes.Repeat([]byte{0xee}, lazyBS)
	if _, err := h.ReadAt(buf, lazyBS); err != nil || !bytes.Equal(buf, make([]byte, lazyBS)) {
		t.Fatalf("hole: %v", err)
	}
	var stored int64 = -1
	for b := range int64(blocks) {
		if src.stored[b] {
			stored = b
			break
		}
	}
	buf = bytes.Repeat([]byte{0xee}, lazyBS)
	n, err := h.ReadAt(buf, stored*lazyBS)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errTestUnreachable) || n != 0 {
		t.Fatalf("read of a missing block while unreachable: n %d, %v", n, err)
	}
	// The errno is EIO whatever the cause carries.
	var errno syscall.Errno
	if !errors.As(fmt.Errorf("x: %w", &os.PathError{Op: "open", Path: "p", Err: syscall.ENOENT}), &errno) || errno != syscall.ENOENT {
		t.Fatal("test setup")
	}
	err = fmt.Errorf("%w: %w", ErrUnavailable, &os.PathError{Op: "open", Path: "p", Err: syscall.ENOENT})
	if !errors.As(err, &errno) || errno != syscall.EIO {
		t.Fatalf("errno of an unavailable block: %v", errno)
	}
	// A write over a missing block's part needs its base: refused too, and
	// nothing is lost of what was written before.
	time.Sleep(100 * time.Millisecond) // hydration fails a few times meanwhile
	st, _, _ := b.LazyStatusOf("x")
	if st.LastError == "" || st.Local != 0 {
		t.Fatalf("status while unreachable: %+v", st)
	}
	src.fail.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.WaitHydrated(ctx, "x", 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	src.fail.Store(true)
	if got := lazyReadAll(t, h, size); !bytes.Equal(got, want) {
		t.Fatal("hydrated disk differs from its origin")
	}
}

// TestLazyDelete: deleting a hydrating disk stops hydration while a
// snapshot of it still reads through the layer (on demand); a disk cloned
// from that snapshot starts hydration again; once nothing reads through
// the layer, GC frees it and the source is closed.
func TestLazyDelete(t *testing.T) {
	const blocks = 128
	a, want := lazyFixture(t, blocks)
	src := newStoreSource(t, a, "s", "d")
	b, _ := newTestStore(t, Options{})
	lazyPoll = 50 * time.Millisecond
	t.Cleanup(func() { lazyPoll = time.Second })
	if _, err := b.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: blocks * lazyBS, BlockSize: lazyBS}, int64(len(src.stored))); err != nil {
		t.Fatal(err)
	}
	layer := lazyLayerOf(t, b, "x")
	if err := b.AttachLazy(layer, src, HydrateOptions{Rate: 16 * lazyBS}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSnapshot("t", []string{"x"}, "manual"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := b.DeleteDisk("x", false); err != nil {
		t.Fatal(err)
	}
	b.lazy.mu.RLock()
	ll := b.lazy.layers[ids.Layer(layer)]
	b.lazy.mu.RUnlock()
	// The rate (16 blocks/s) bounds the whole: the snapshot's on-demand
	// reads count toward it, so hydrating the 95 stored blocks takes
	// about 6 s however they were fetched.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 15 s (%+v)", what, ll.status())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("hydration stops once the disk is deleted", func() bool { return !ll.status().Running })
	reads := src.reads.Load()
	time.Sleep(300 * time.Millisecond)
	if r := src.reads.Load(); r != reads {
		t.Fatalf("source read %d more blocks after hydration stopped", r-reads)
	}
	// The snapshot still reads (missing blocks on demand).
	r, err := b.OpenSnapshotDisk("t", "x")
	if err != nil {
		t.Fatal(err)
	}
	if got := lazyReadAll(t, r, 40*lazyBS); !bytes.Equal(got, want[:40*lazyBS]) {
		t.Fatal("snapshot of the deleted lazy disk differs")
	}
	r.Close()
	// A clone of it hydrates again.
	if _, err := b.CloneDisk("c", "t", "x"); err != nil {
		t.Fatal(err)
	}
	waitFor("a clone hydrates it", ll.isDone)
	h, err := b.OpenDisk("c")
	if err != nil {
		t.Fatal(err)
	}
	src.fail.Store(true)
	if got := lazyReadAll(t, h, blocks*lazyBS); !bytes.Equal(got, want) {
		t.Fatal("clone of the snapshot of the deleted lazy disk differs")
	}
	h.Close()
	if err := b.DeleteDisk("c", false); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteSnapshot("t"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GC(); err != nil {
		t.Fatal(err)
	}
	if err := b.idx.View(func(t *index.Txn) error {
		_, err := t.Layer(ids.Layer(layer))
		if err == nil {
			return errors.New("lazy layer still there after GC")
		}
		n := 0
		t.ScanVersions(ids.Layer(layer), 0, ids.Block(blocks), func(ids.Block, ids.Epoch, index.Version) error { n++; return nil })
		if n > 0 {
			return errors.New("versions of the lazy layer left after GC")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor("the source is closed once GC removed the layer", src.closed.Load)
}

// TestLazyRebuild: an index rebuilt from the log alone keeps the lazy mark
// (the layer record, version 3, is in the catalog records) and the blocks
// hydrated so far; hydration then completes.
func TestLazyRebuild(t *testing.T) {
	const blocks = 96
	a, want := lazyFixture(t, blocks)
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
	if err := b.AttachLazy(layer, src, HydrateOptions{Rate: 8 * lazyBS, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	h, err := b.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	if got := lazyReadAll(t, h, 30*lazyBS); !bytes.Equal(got, want[:30*lazyBS]) {
		t.Fatal("read before the rebuild differs")
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
	if got := lazyLayerOf(t, b, "x"); got != layer {
		t.Fatalf("lazy layer after rebuild: %d, want %d", got, layer)
	}
	reads := src.reads.Load()
	if err := b.AttachLazy(layer, src, HydrateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.WaitHydrated(ctx, "x", 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if fetched := src.reads.Load() - reads; fetched >= int64(len(src.stored)) {
		t.Errorf("after the rebuild every block was fetched again (%d)", fetched)
	}
	h, err = b.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	src.fail.Store(true)
	if got := lazyReadAll(t, h, size); !bytes.Equal(got, want) {
		t.Fatal("disk hydrated after a rebuild differs from its origin")
	}
}

// TestLazyNearReadsFirst: hydration fetches the blocks after the newest
// read first (newest-needed first), before going on in block order.
func TestLazyNearReadsFirst(t *testing.T) {
	const blocks = 256
	a, _ := lazyFixture(t, blocks)
	src := newStoreSource(t, a, "s", "d")
	b, _ := newTestStore(t, Options{})
	if _, err := b.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: blocks * lazyBS, BlockSize: lazyBS}, int64(len(src.stored))); err != nil {
		t.Fatal(err)
	}
	layer := lazyLayerOf(t, b, "x")
	if err := b.AttachLazy(layer, src, HydrateOptions{Rate: 32 * lazyBS, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	h, err := b.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, lazyBS)
	if _, err := h.ReadAt(buf, 200*lazyBS); err != nil {
		t.Fatal(err)
	}
	b.lazy.mu.RLock()
	ll := b.lazy.layers[ids.Layer(layer)]
	b.lazy.mu.RUnlock()
	time.Sleep(600 * time.Millisecond)
	ll.mu.Lock()
	near, middle := 0, 0
	for blk := ids.Block(201); blk < 230; blk++ {
		if src.stored[int64(blk)] && !ll.needLocked(blk) {
			near++
		}
	}
	for blk := ids.Block(100); blk < 200; blk++ {
		if src.stored[int64(blk)] && !ll.needLocked(blk) {
			middle++
		}
	}
	ll.mu.Unlock()
	if near < 5 || middle > 0 {
		t.Fatalf("after a read of block 200: %d stored blocks after it local, %d of blocks 100-199", near, middle)
	}
}

// idleSource is a test source that counts the store's Idle calls
// (LayerIdler).
type idleSource struct {
	*storeSource
	idled atomic.Int32
}

func (s *idleSource) Idle() { s.idled.Add(1) }

// idleLazyDisk makes a store b holding lazy disk "x" (not attached) whose
// origin is disk d of snapshot s of a lazyFixture store of blocks blocks,
// read through src; layer is x's lazy layer.
func idleLazyDisk(t *testing.T, blocks int) (b *Store, src *idleSource, layer uint64) {
	t.Helper()
	a, _ := lazyFixture(t, blocks)
	src = &idleSource{storeSource: newStoreSource(t, a, "s", "d")}
	b, _ = newTestStore(t, Options{})
	if _, err := b.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: int64(blocks * lazyBS), BlockSize: lazyBS}, int64(len(src.stored))); err != nil {
		t.Fatal(err)
	}
	return b, src, lazyLayerOf(t, b, "x")
}

// TestLazyIdleWhenNoDiskUsesLayer: once the last disk reading through a
// lazy layer is deleted, hydration stops and tells its source it may let
// go of what it holds (a region's lock) — not before, while the disk is
// there.
func TestLazyIdleWhenNoDiskUsesLayer(t *testing.T) {
	const blocks = 64
	// Set before the stores exist: cleanups run last first, so the stores
	// (and their pollers) are closed before lazyPoll is put back.
	lazyPoll = 50 * time.Millisecond
	t.Cleanup(func() { lazyPoll = time.Second })
	b, src, layer := idleLazyDisk(t, blocks)
	if err := b.AttachLazy(layer, src, HydrateOptions{Rate: 4 * lazyBS}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // several polls with the disk there
	if n := src.idled.Load(); n != 0 {
		t.Fatalf("source told idle %d times while disk x still reads through its layer", n)
	}
	if err := b.DeleteDisk("x", false); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); src.idled.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("hydration stopped for lack of disks but never told its source it is idle")
		}
	}
}
