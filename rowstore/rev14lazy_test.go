package rowstore

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// TestRev14lazyZeroWriteOverNotLocal: zeros written over a block of a lazy
// disk that is not local yet must read back as zeros, during hydration and
// after it; a write of data over such a block must not count it twice in
// the disk's allocation; nor a hole punched over one read the origin's
// data.
func TestRev14lazyZeroWriteOverNotLocal(t *testing.T) {
	const blocks = 64
	a, want := lazyFixture(t, blocks)
	src := newStoreSource(t, a, "s", "d")
	b, _ := newTestStore(t, Options{})
	size := int64(blocks * lazyBS)
	if _, err := b.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: size, BlockSize: lazyBS}, int64(len(src.stored))); err != nil {
		t.Fatal(err)
	}
	layer := lazyLayerOf(t, b, "x")
	// Six blocks the origin stores, from its end: three written over
	// before a source is attached, three after.
	var sb []int64
	for i := int64(blocks - 1); i >= 0 && len(sb) < 6; i-- {
		if src.stored[i] {
			sb = append(sb, i)
		}
	}
	h, err := b.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	wantAlloc := int64(len(src.stored)) * lazyBS
	alloc := func() int64 {
		t.Helper()
		di, err := b.GetDisk("x")
		if err != nil {
			t.Fatal(err)
		}
		return di.Allocated
	}
	// Zeros, data and a hole over three blocks not local.
	overwrite := func(zb, db, pb int64) {
		t.Helper()
		if _, err := h.WriteAt(make([]byte, lazyBS), zb*lazyBS); err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt(bytes.Repeat([]byte{9}, lazyBS), db*lazyBS); err != nil {
			t.Fatal(err)
		}
		if err := h.PunchHole(pb*lazyBS, lazyBS); err != nil {
			t.Fatal(err)
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
		clear(want[zb*lazyBS : (zb+1)*lazyBS])
		copy(want[db*lazyBS:(db+1)*lazyBS], bytes.Repeat([]byte{9}, lazyBS))
		clear(want[pb*lazyBS : (pb+1)*lazyBS])
		wantAlloc -= 2 * lazyBS
	}
	zeros := func(when string, bs ...int64) {
		t.Helper()
		got := make([]byte, lazyBS)
		for _, x := range bs {
			if _, err := h.ReadAt(got, x*lazyBS); err != nil {
				t.Fatal(err)
			}
			if !isZero(got) {
				t.Errorf("%s: block %d, zeroed or punched while not local, reads the origin's data", when, x)
			}
		}
	}
	// No source attached: what the origin stores is not known; the count
	// may be high until the attach recounts, never below what is shown.
	overwrite(sb[0], sb[1], sb[2])
	if got := alloc(); got < wantAlloc {
		t.Errorf("before attach: allocated %d blocks, below the %d shown", got/lazyBS, wantAlloc/lazyBS)
	}
	if err := b.AttachLazy(layer, src, HydrateOptions{NoHydrate: true}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); alloc() != wantAlloc; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("attached: allocated %d blocks, want %d", alloc()/lazyBS, wantAlloc/lazyBS)
		}
	}
	zeros("attached", sb[0], sb[2])
	// A source attached: the count is exact at once.
	overwrite(sb[3], sb[4], sb[5])
	if got := alloc(); got != wantAlloc {
		t.Errorf("written while attached: allocated %d blocks, want %d", got/lazyBS, wantAlloc/lazyBS)
	}
	zeros("attached", sb[3], sb[5])
	b.StopLazy()
	if err := b.AttachLazy(layer, src, HydrateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.WaitHydrated(ctx, "x", 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if g := lazyReadAll(t, h, size); !bytes.Equal(g, want) {
		t.Errorf("hydrated disk differs from the origin plus the writes")
	}
	if got := alloc(); got != wantAlloc {
		t.Errorf("hydrated: allocated %d blocks, want %d", got/lazyBS, wantAlloc/lazyBS)
	}
	if err := b.verifyAccounting(); err != nil {
		t.Errorf("accounting: %v", err)
	}
}

// TestRev14lazyEncryptedCopyOfLazySnapshot: an encrypted copy of a
// snapshot taken of a lazy disk still hydrating holds the snapshot's
// content, blocks not local yet included (they were left out: zeros).
func TestRev14lazyEncryptedCopyOfLazySnapshot(t *testing.T) {
	const blocks = 32
	a, want := lazyFixture(t, blocks)
	src := newStoreSource(t, a, "s", "d")
	b, _ := newTestStore(t, Options{})
	size := int64(blocks * lazyBS)
	if _, err := b.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: size, BlockSize: lazyBS}, int64(len(src.stored))); err != nil {
		t.Fatal(err)
	}
	layer := lazyLayerOf(t, b, "x")
	if err := b.AttachLazy(layer, src, HydrateOptions{NoHydrate: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSnapshot("ls", []string{"x"}, "manual"); err != nil {
		t.Fatal(err)
	}
	_, key := writeKeyFile(t, "k", "the right passphrase", 0o600)
	if _, err := b.CopyToEncryptedDisk("enc", "ls", "x", key); err != nil {
		t.Fatal(err)
	}
	h, err := b.OpenDisk("enc")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got := lazyReadAll(t, h, size); !bytes.Equal(got, want) {
		n := 0
		for i := 0; i < blocks; i++ {
			if !bytes.Equal(got[i*lazyBS:(i+1)*lazyBS], want[i*lazyBS:(i+1)*lazyBS]) {
				n++
			}
		}
		t.Errorf("encrypted copy of a lazy disk's snapshot differs from it in %d of %d blocks", n, blocks)
	}
}

// TestRev14lazyPartialWriteOverNotLocal: a write of part of a block not
// local yet keeps the rest of the origin's block, with a source attached
// and without (a sync then fails and the write stays cached for the next).
func TestRev14lazyPartialWriteOverNotLocal(t *testing.T) {
	const blocks = 16
	a, want := lazyFixture(t, blocks)
	src := newStoreSource(t, a, "s", "d")
	b, _ := newTestStore(t, Options{})
	size := int64(blocks * lazyBS)
	if _, err := b.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: size, BlockSize: lazyBS}, int64(len(src.stored))); err != nil {
		t.Fatal(err)
	}
	layer := lazyLayerOf(t, b, "x")
	var sb []int64
	for i := int64(blocks - 1); i >= 0 && len(sb) < 2; i-- {
		if src.stored[i] {
			sb = append(sb, i)
		}
	}
	h, err := b.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// Without a source the write is cached; completing the block needs
	// the origin's: a sync fails, and the write is kept for the next one.
	if _, err := h.WriteAt(bytes.Repeat([]byte{5}, 512), sb[0]*lazyBS+1024); err != nil {
		t.Fatal(err)
	}
	copy(want[sb[0]*lazyBS+1024:], bytes.Repeat([]byte{5}, 512))
	if err := h.Sync(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("sync of a partial block not local, no source attached: %v, want ErrUnavailable", err)
	}
	if err := b.AttachLazy(layer, src, HydrateOptions{NoHydrate: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(bytes.Repeat([]byte{5}, 512), sb[1]*lazyBS+1024); err != nil {
		t.Fatal(err)
	}
	copy(want[sb[1]*lazyBS+1024:], bytes.Repeat([]byte{5}, 512))
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := lazyReadAll(t, h, size); !bytes.Equal(got, want) {
		for i := int64(0); i < blocks; i++ {
			g, w := got[i*lazyBS:(i+1)*lazyBS], want[i*lazyBS:(i+1)*lazyBS]
			if !bytes.Equal(g, w) {
				first, last := -1, -1
				for k := range g {
					if g[k] != w[k] {
						if first < 0 {
							first = k
						}
						last = k
					}
				}
				t.Errorf("block %d (partial writes at %v) differs from the origin plus the partial write in bytes %d-%d (got %d want %d)", i, sb, first, last, g[first], w[first])
			}
		}
	}
}

// TestRev14lazyZeroWriteAfterHydrated: zeros written over a block the
// disk read before it was hydrated (its block map then said "no version")
// read back as zeros once the disk is whole.
func TestRev14lazyZeroWriteAfterHydrated(t *testing.T) {
	const blocks = 16
	a, want := lazyFixture(t, blocks)
	src := newStoreSource(t, a, "s", "d")
	b, _ := newTestStore(t, Options{})
	size := int64(blocks * lazyBS)
	if _, err := b.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: size, BlockSize: lazyBS}, int64(len(src.stored))); err != nil {
		t.Fatal(err)
	}
	layer := lazyLayerOf(t, b, "x")
	if err := b.AttachLazy(layer, src, HydrateOptions{NoHydrate: true}); err != nil {
		t.Fatal(err)
	}
	h, err := b.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got := lazyReadAll(t, h, size); !bytes.Equal(got, want) {
		t.Fatal("lazy disk differs from its origin")
	}
	b.StopLazy()
	if err := b.AttachLazy(layer, src, HydrateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.WaitHydrated(ctx, "x", 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	for x := int64(0); x < blocks; x++ {
		if !src.stored[x] {
			continue
		}
		if _, err := h.WriteAt(make([]byte, lazyBS), x*lazyBS); err != nil {
			t.Fatal(err)
		}
		clear(want[x*lazyBS : (x+1)*lazyBS])
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := lazyReadAll(t, h, size); !bytes.Equal(got, want) {
		t.Errorf("zeros written over hydrated blocks do not read back as zeros")
	}
	if err := b.verifyAccounting(); err != nil {
		t.Errorf("accounting: %v", err)
	}
}
