package rowstore

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// gateSource is a lazy source whose batch read waits until a direct read
// of a block began, and whose direct reads fail once it is closed (as a
// region disk closed when hydration ended).
type gateSource struct {
	data   map[int64][]byte
	gate   chan struct{} // closed by the first direct read
	closed chan struct{}
	g, c   sync.Once
}

func (s *gateSource) Stored(b int64) bool { _, ok := s.data[b]; return ok }

func (s *gateSource) ReadBlock(ctx context.Context, b int64, dst []byte) error {
	s.g.Do(func() { close(s.gate) })
	select {
	case <-s.closed:
		return errors.New("source closed")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *gateSource) ReadBlocks(ctx context.Context, blocks []int64, dsts [][]byte) []error {
	<-s.gate
	errs := make([]error, len(blocks))
	for i, b := range blocks {
		copy(dsts[i], s.data[b])
	}
	return errs
}

func (s *gateSource) Close() error { s.c.Do(func() { close(s.closed) }); return nil }

// TestLazyReadDirectAfterSourceClosed: a read of a block a hydration batch
// is fetching reads it itself after batchReadWait; when the batch ends
// hydration meanwhile and the source is closed, that direct read fails,
// and the read returns the batch's block, not EIO (torture-regions.sh: a
// lazy restore of a small disk read whole right away saw EIO).
func TestLazyReadDirectAfterSourceClosed(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	src := &gateSource{data: map[int64][]byte{0: bytes.Repeat([]byte{1}, lazyBS), 1: bytes.Repeat([]byte{2}, lazyBS)},
		gate: make(chan struct{}), closed: make(chan struct{})}
	if _, err := s.CreateLazyDisk("x", LazyOrigin{Region: "r", Snapshot: "s", Disk: "d", Size: 2 * lazyBS, BlockSize: lazyBS}, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.AttachLazy(lazyLayerOf(t, s, "x"), src, HydrateOptions{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	time.Sleep(100 * time.Millisecond) // the batch of blocks 0 and 1 is claimed, waiting at the gate
	buf := make([]byte, lazyBS)
	if _, err := h.ReadAt(buf, 0); err != nil {
		t.Fatalf("read of block 0 while hydration ends: %v", err)
	}
	if !bytes.Equal(buf, src.data[0]) {
		t.Fatal("block 0 read wrong data")
	}
}
