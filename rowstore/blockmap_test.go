package rowstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
)

// blockData is the content of block b at generation g.
func blockData(bs, b, g int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("b%05d g%03d|", b, g)), bs/12+1)[:bs]
}

// TestBlockMapAfterCleaning reads blocks (so the disk's block map holds their
// places), lets GC relocate them and remove their segments, and reads them
// again: the stale places are read again through the index, never an error,
// never other data. Partial reads and read-modify-writes go the same way.
func TestBlockMapAfterCleaning(t *testing.T) {
	opts := testOptions()
	s, _ := newTestStore(t, opts)
	const bs, n = 4096, 256
	if _, err := s.CreateDisk("vol", n*bs, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("vol")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	want := make([]byte, n*bs)
	for b := 0; b < n; b++ {
		copy(want[b*bs:], blockData(bs, b, 0))
	}
	if _, err := h.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, n*bs)
	if _, err := h.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("first read: %v, equal %v", err, bytes.Equal(got, want))
	}
	before := map[ids.Segment]bool{}
	for _, si := range s.seg.Segments() {
		before[si.Number] = true
	}
	// Overwrite three blocks of four: the first segments become 1/4 live.
	for b := 0; b < n; b++ {
		if b%4 == 0 {
			continue
		}
		copy(want[b*bs:], blockData(bs, b, 1))
		if _, err := h.WriteAt(want[b*bs:(b+1)*bs], int64(b*bs)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(); err != nil {
		t.Fatal(err)
	}
	after := map[ids.Segment]bool{}
	for _, si := range s.seg.Segments() {
		after[si.Number] = true
	}
	// The test is only worth something if cached places went stale.
	stale := 0
	h.d.mu.Lock()
	for b := ids.Block(0); b < n; b += 4 {
		if v, found, ok := h.d.bmGetLocked(b); ok && found && before[v.Segment] && !after[v.Segment] {
			stale++
		}
	}
	h.d.mu.Unlock()
	if stale == 0 {
		t.Fatal("GC removed no segment the block map points into; the test needs a different shape")
	}
	// One read of everything: the entries follow their records (same
	// sequence number, new place), so that the next read or write of
	// these blocks needs no index lookup.
	if _, err := h.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read after GC: %v, equal %v", err, bytes.Equal(got, want))
	}
	followed := 0
	h.d.mu.Lock()
	for b := ids.Block(0); b < n; b += 4 {
		if v, found, ok := h.d.bmGetLocked(b); ok && found && after[v.Segment] {
			followed++
		}
	}
	h.d.mu.Unlock()
	if followed != n/4 {
		t.Fatalf("%d of %d blocks (%d places stale) are known to the block map at their new place after a read; want all", followed, n/4, stale)
	}
	for _, size := range []int{n * bs, bs, 1000} {
		for off := 0; off+size <= n*bs; off += size * 3 {
			buf := make([]byte, size)
			if _, err := h.ReadAt(buf, int64(off)); err != nil {
				t.Fatalf("read %d at %d after GC (%d stale places): %v", size, off, stale, err)
			}
			if !bytes.Equal(buf, want[off:off+size]) {
				t.Fatalf("read %d at %d after GC: wrong data", size, off)
			}
		}
	}
	// A read-modify-write of a block whose place went stale.
	h.d.mu.Lock()
	for b := ids.Block(0); b < n; b += 4 {
		v, found, _ := h.d.bmGetLocked(b)
		if found && !after[v.Segment] {
			t.Fatalf("block %d: a failed read left its stale place in the block map", b)
		}
	}
	h.d.mu.Unlock()
	if _, err := s.GC(); err != nil {
		t.Fatal(err)
	}
	copy(want[8*bs+100:], "partial")
	if _, err := h.WriteAt([]byte("partial"), 8*bs+100); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read after a read-modify-write: %v, equal %v", err, bytes.Equal(got, want))
	}
}

// TestBlockMapCorrupt: a block whose record is damaged after its place was
// cached still reads as ErrCorrupt (the read through the index finds the
// same bad record), whole or in part, and a read-modify-write of it fails.
func TestBlockMapCorrupt(t *testing.T) {
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	const bs = 4096
	if _, err := s.CreateDisk("vol", 16*bs, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("vol")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for b := 0; b < 4; b++ {
		if _, err := h.WriteAt(bytes.Repeat([]byte{byte('A' + b)}, bs), int64(b*bs)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4*bs)
	if _, err := h.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	// Flip a byte of block C in place (the log keeps its file open).
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
	flipped := false
	for _, name := range segs {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, bytes.Repeat([]byte{'C'}, 64)); i >= 0 {
			f, err := os.OpenFile(name, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.WriteAt([]byte{'C' ^ 0xff}, int64(i+10))
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			flipped = true
			break
		}
	}
	if !flipped {
		t.Fatal("block C not found in any segment")
	}
	for _, r := range []struct{ off, n int }{{0, 4 * bs}, {2 * bs, bs}, {2*bs + 5, 10}} {
		if _, err := h.ReadAt(make([]byte, r.n), int64(r.off)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("read %d at %d over the corrupt block: %v, want ErrCorrupt", r.n, r.off, err)
		}
	}
	if _, err := h.ReadAt(buf[:bs], 3*bs); err != nil || buf[0] != 'D' {
		t.Fatalf("read of a good block: %v", err)
	}
	if _, err := h.WriteAt([]byte("x"), 2*bs+7); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read-modify-write of the corrupt block: %v, want ErrCorrupt", err)
	}
}

// TestBlockMapBounded: the block map of a disk never holds more than
// bmMaxChunks chunks, whatever blocks are entered, and forgets everything
// when the head layer changes (rollback).
func TestBlockMapBounded(t *testing.T) {
	d := &diskState{chain: []link{{layer: 7, epoch: 1}}}
	v := index.Version{Segment: 3, Offset: 4096, Length: 4144, Seq: 9}
	for i := ids.Block(0); i < 3*bmMaxChunks; i++ {
		d.bmSetLocked(i*bmChunk+i%bmChunk, v)
		if n := len(d.bmap.chunks); n > bmMaxChunks {
			t.Fatalf("after %d blocks: %d chunks, at most %d", i+1, n, bmMaxChunks)
		}
	}
	last := ids.Block(3*bmMaxChunks-1)*bmChunk + (3*bmMaxChunks-1)%bmChunk
	if got, found, ok := d.bmGetLocked(last); !ok || !found || got != v {
		t.Fatalf("last block entered: %+v %v %v", got, found, ok)
	}
	d.bmPutLocked(last+1, index.Version{}, false)
	if _, found, ok := d.bmGetLocked(last + 1); !ok || found {
		t.Fatalf("a block with no version: found %v ok %v", found, ok)
	}
	big := index.Version{Segment: 1 << 33, Offset: 48, Length: 100, Seq: 1}
	d.bmSetLocked(last, big)
	if _, _, ok := d.bmGetLocked(last); ok {
		t.Fatal("a place that does not fit the entry was cached")
	}
	d.chain = []link{{layer: 8, epoch: 1}}
	if _, _, ok := d.bmGetLocked(last + 1); ok || len(d.bmap.chunks) != 0 {
		t.Fatal("the map kept entries of another head layer")
	}
}
