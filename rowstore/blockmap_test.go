package rowstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync/atomic"
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

// TestBlockMapNewDisk: a new disk's block map is known-empty, so its first
// writes (whole blocks, and partial ones read-modify-written at write-back)
// and its reads of blocks never written ask the index nothing; everything
// written reads back, after a snapshot and a punched hole too. Writing into
// more chunks than the map keeps drops one: its blocks are asked of the
// index again, never taken for zeros. A rollback (a new head layer with a
// parent) and a reopen (the head holds versions) end known-emptiness.
// Before the map knew new disks, every first write of a block was an index
// lookup (BenchmarkRandWrite4K: 0.96 a write).
func TestBlockMapNewDisk(t *testing.T) {
	var lookups atomic.Int64
	testHookIndexLookup = func(n int) { lookups.Add(int64(n)) }
	defer func() { testHookIndexLookup = nil }()
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	const bs = 4096
	const chunkBytes = bmChunk * bs
	size := int64(bmMaxChunks+8) * chunkBytes // more chunks than the map keeps
	if _, err := s.CreateDisk("vol", size, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("vol")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(11))
	model := map[int64][]byte{} // block -> content; absent: zeros
	block := func(b int64) []byte {
		if c, ok := model[b]; ok {
			return c
		}
		return make([]byte, bs)
	}
	write := func(off int64, p []byte) {
		t.Helper()
		if _, err := h.WriteAt(p, off); err != nil {
			t.Fatalf("write %d at %d: %v", len(p), off, err)
		}
		for n := 0; n < len(p); {
			b, in := (off+int64(n))/bs, int((off+int64(n))%bs)
			c := bytes.Clone(block(b))
			m := copy(c[in:], p[n:])
			model[b] = c
			n += m
		}
	}
	verify := func(what string, h *Disk, model map[int64][]byte, unwritten int) {
		t.Helper()
		buf := make([]byte, bs)
		for b, want := range model {
			if _, err := h.ReadAt(buf, b*bs); err != nil || !bytes.Equal(buf, want) {
				t.Fatalf("%s: block %d: %v, equal %v", what, b, err, bytes.Equal(buf, want))
			}
		}
		for i := 0; i < unwritten; i++ {
			b := rng.Int63n(64 * bmChunk)
			if _, ok := model[b]; ok {
				continue
			}
			if _, err := h.ReadAt(buf, b*bs); err != nil || !bytes.Equal(buf, make([]byte, bs)) {
				t.Fatalf("%s: block %d never written: %v, zeros %v", what, b, err, bytes.Equal(buf, make([]byte, bs)))
			}
		}
	}
	// Whole blocks, runs of blocks and partial writes in the first 64
	// chunks; reads of blocks never written.
	for i := 0; i < 300; i++ {
		b := rng.Int63n(64 * bmChunk)
		switch i % 3 {
		case 0:
			write(b*bs, blockData(bs, int(b), i))
		case 1:
			write(b*bs, bytes.Repeat(blockData(bs, int(b), i), 3))
		default:
			write(b*bs+int64(rng.Intn(bs)), []byte(fmt.Sprintf("partial write %d", i)))
		}
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	verify("new disk", h, model, 200)
	if n := lookups.Load(); n != 0 {
		t.Fatalf("a new disk's writes and reads looked up %d blocks in the index; want none", n)
	}
	// A snapshot (the head keeps its layer), a hole, more writes.
	if _, err := s.CreateSnapshot("s1", []string{"vol"}, "manual"); err != nil {
		t.Fatal(err)
	}
	snap := map[int64][]byte{}
	for b, c := range model {
		snap[b] = c
	}
	var some int64
	for b := range model {
		some = b
		break
	}
	if err := h.PunchHole(some*bs, bs); err != nil {
		t.Fatal(err)
	}
	delete(model, some)
	for i := 0; i < 100; i++ {
		b := rng.Int63n(64 * bmChunk)
		write(b*bs, blockData(bs, int(b), 1000+i))
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	verify("after a snapshot", h, model, 100)
	if n := lookups.Load(); n != 0 {
		t.Fatalf("after a snapshot: %d blocks looked up in the index; want none", n)
	}
	// One block in every chunk: the map drops chunks, and with them the
	// knowledge that absent chunks hold nothing.
	for c := int64(0); c < bmMaxChunks+8; c++ {
		b := c*bmChunk + rng.Int63n(bmChunk)
		write(b*bs, blockData(bs, int(b), 2000))
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	h.d.mu.Lock()
	empty, chunks := h.d.bmap.empty, len(h.d.bmap.chunks)
	h.d.mu.Unlock()
	if empty || chunks > bmMaxChunks {
		t.Fatalf("after writes in %d chunks: known-empty %v, %d chunks kept (at most %d)", bmMaxChunks+8, empty, chunks, bmMaxChunks)
	}
	verify("after chunks were dropped", h, model, 100)
	if lookups.Load() == 0 {
		t.Fatal("blocks of dropped chunks were not asked of the index")
	}
	// Rollback: a new head layer with a parent.
	h = rollbackAndOpen(t, s, h, "vol", "s1")
	verify("after rollback", h, snap, 100)
	h.d.mu.Lock()
	empty = h.d.bmap.empty
	h.d.mu.Unlock()
	if empty {
		t.Fatal("the rolled-back head (a layer with a parent) is known-empty")
	}
	write(0, blockData(bs, 0, 3000))
	snap[0] = model[0]
	h.Close()
	// Reopened: the head holds versions, nothing is known-empty.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if h, err = s.OpenDisk("vol"); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	verify("after reopen", h, snap, 100)
	h.d.mu.Lock()
	empty = h.d.bmap.empty
	h.d.mu.Unlock()
	if empty {
		t.Fatal("a disk whose head holds versions is known-empty after reopen")
	}
}
