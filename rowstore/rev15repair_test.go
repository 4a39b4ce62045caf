package rowstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rev15TruthSource is a snapshot source that gives block b of a snapshot
// as the snapshot really held it (the generation written last before it
// was taken): what a region's honest copy of each snapshot holds.
type rev15TruthSource struct {
	bs  int
	gen map[string]int // snapshot name -> generation of every block it holds
}

func (s *rev15TruthSource) FetchBlock(context.Context, [32]byte, []byte) (bool, error) {
	return false, nil
}

func (s *rev15TruthSource) SnapshotBlock(_ context.Context, snap SnapshotInfo, _ string, b int64, dst []byte) (bool, error) {
	g, ok := s.gen[snap.Name]
	if !ok {
		return false, nil
	}
	copy(dst, blockData(s.bs, int(b), g))
	return true, nil
}

// TestRev15RepairEpochFlip: a flip in the epoch field of a data record's
// header is not caught by its header checks (segment.BadRecord.HeaderOK),
// and an index rebuild that finds no contradiction indexes the record at
// the wrong, lower epoch: snapshot b, taken before the record was written,
// now resolves its block to it as well as snapshot c, taken after. Both
// read as corrupt. The region's copies of b and c hold different blocks
// (b's the older generation, c's the newer), so whichever copy repair took,
// one of b, c and the disk's head would read another block's content
// without an error: an acknowledged write silently undone, or a snapshot
// silently changed. Repair must take a copy only when it is what the
// damaged record held (its CRC, which covers header and payload, says so),
// and here leave the block unrepaired, saying why. Before the fix repair
// wrote snapshot b's copy into the version: c and the head read generation
// 1 instead of 2.
func TestRev15RepairEpochFlip(t *testing.T) {
	t.Run("plain", func(t *testing.T) { rev15EpochFlip(t, false) })
	t.Run("encrypted", func(t *testing.T) { rev15EpochFlip(t, true) })
}

func rev15EpochFlip(t *testing.T, encrypted bool) {
	ctx := context.Background()
	const bs, n, victim = 4096, 8, 5
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	var h *Disk
	if encrypted {
		_, key := writeKeyFile(t, "k", "correct horse battery staple\n", 0o600)
		opts.Keys = []*Key{key}
		if _, err := s.CreateEncryptedDisk("d", n*bs, bs, key); err != nil {
			t.Fatal(err)
		}
		var err error
		if h, err = s.OpenDisk("d"); err != nil {
			t.Fatal(err)
		}
		for b := 0; b < n; b++ {
			if _, err := h.WriteAt(blockData(bs, b, 1), int64(b*bs)); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		h = createWrittenDisk(t, s, "d", n*bs, bs, n) // generation 1 at epoch 1
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} { // epochs 1 and 2
		if _, err := s.CreateSnapshot(name, []string{"d"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []int{victim, victim + 1} { // generation 2 at epoch 3 (block 6: a valid record after it)
		if _, err := h.WriteAt(blockData(bs, b, 2), int64(b*bs)); err != nil {
			t.Fatal(err)
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateSnapshot("c", []string{"d"}, ""); err != nil { // epoch 3
		t.Fatal(err)
	}
	v, found, err := s.lookup(h.d.chain, victim) // the generation-2 record (sealed: not found by its bytes)
	if err != nil || !found {
		t.Fatalf("version of block %d: %v %v", victim, found, err)
	}
	h.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	file := ""
	files, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 24 && binary.LittleEndian.Uint64(b[16:]) == uint64(v.Segment) {
			file = f
		}
	}
	if file == "" {
		t.Fatalf("no file of segment %d", v.Segment)
	}
	fh, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var e [8]byte
	if _, err := fh.ReadAt(e[:], v.Offset+24); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(e[:]); got != 3 {
		t.Fatalf("the generation-2 record names epoch %d, want 3", got)
	}
	e[0] = 2 // one bit: 3 -> 2
	if _, err := fh.WriteAt(e[:], v.Offset+24); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	rb, err := Rebuild(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rb.CorruptBlocks != 1 {
		t.Fatalf("rebuild: %d corrupt blocks, want the damaged record indexed (at epoch 2); report %+v", rb.CorruptBlocks, rb)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	src := &rev15TruthSource{bs: bs, gen: map[string]int{"a": 1, "b": 1, "c": 2}}
	rep, err := s.Repair(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repaired %d, unrepaired %+v", rep.Repaired, rep.Unrepaired)

	// What each reads of the victim block: its own content, or an error;
	// never another's.
	read := func(what string, open func() (interface {
		ReadAt([]byte, int64) (int, error)
		Close() error
	}, error), gen int) bool {
		r, err := open()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got := make([]byte, bs)
		if _, err := r.ReadAt(got, victim*bs); err != nil {
			return false // still damaged: an error, not data
		}
		if !bytes.Equal(got, blockData(bs, victim, gen)) {
			t.Errorf("%s reads %q of block %d after repair, want generation %d or an error", what, got[:12], victim, gen)
		}
		return true
	}
	for name, gen := range src.gen {
		read("snapshot "+name, func() (interface {
			ReadAt([]byte, int64) (int, error)
			Close() error
		}, error) {
			return s.OpenSnapshotDisk(name, "d")
		}, gen)
	}
	read("disk d", func() (interface {
		ReadAt([]byte, int64) (int, error)
		Close() error
	}, error) {
		return s.OpenDisk("d")
	}, 2)
	if rep.Repaired != 0 {
		t.Errorf("repaired %d, want 0: no copy is what the damaged record held", rep.Repaired)
	}
	found = false
	for _, p := range rep.Unrepaired {
		if p.Kind == "data" && p.Block == victim {
			found = true
			if !strings.Contains(p.Message, "checksum") {
				t.Errorf("unrepaired block %d: %q does not say the copies do not match the damaged record's checksum", victim, p.Message)
			}
		}
	}
	if !found {
		t.Errorf("block %d not among the unrepaired: %+v", victim, rep.Unrepaired)
	}
}

// rev15HookSource gives every snapshot's block as generation 1 and runs
// hook before answering the n-th ask (1-based).
type rev15HookSource struct {
	bs   int
	n    int
	asks int
	hook func()
}

func (s *rev15HookSource) FetchBlock(context.Context, [32]byte, []byte) (bool, error) {
	return false, nil
}

func (s *rev15HookSource) SnapshotBlock(_ context.Context, _ SnapshotInfo, _ string, b int64, dst []byte) (bool, error) {
	s.asks++
	if s.asks == s.n && s.hook != nil {
		s.hook()
	}
	copy(dst, blockData(s.bs, int(b), 1))
	return true, nil
}

// TestRev15RepairCleanerMeanwhile: repair appends the copy it fetched for
// one damaged version, then fetches the next (a region: seconds to
// minutes) before it points the index at what it appended. Meanwhile the
// foreground writes on, the log rotates, a commit moves the checkpoint past
// the copy's segment, and a GC round finds that segment mostly dead: the
// copy, which no index entry points at yet, is dead to it, and the segment
// is removed. Repair must not then point the version at a removed segment
// (reads of the repaired block would fail, and check would report it lost):
// every block it says it repaired reads back, and check is clean. Before
// the fix the version of block 2 was pointed into the removed segment.
func TestRev15RepairCleanerMeanwhile(t *testing.T) {
	ctx := context.Background()
	const bs, n = 4096, 8
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	h := createWrittenDisk(t, s, "d", n*bs, bs, n)
	for b := n; b < 2*n; b++ { // the blocks after: the damaged ones are not a torn tail
		if _, err := h.WriteAt(blockData(bs, b%n, 1), int64((b%n)*bs)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if _, err := s.CreateSnapshot("a", []string{"d"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDisk("e", 64*bs, bs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Damage the last records of blocks 2 and 5 (the ones the index holds).
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
	for _, blk := range []int{2, 5} {
		want := blockData(bs, blk, 1)
		done := false
		for _, p := range segs {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if i := bytes.LastIndex(b, want); i >= 0 {
				b[i+100] ^= 0x5a
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
				done = true
				break
			}
		}
		if !done {
			t.Fatalf("no record of block %d", blk)
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	rb, err := Rebuild(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rb.CorruptBlocks != 2 {
		t.Fatalf("rebuild: %d corrupt blocks, want 2; %+v", rb.CorruptBlocks, rb)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var gcs []GCStats
	src := &rev15HookSource{bs: bs, n: 2, hook: func() {
		// Between the first copy's append and the index: the foreground
		// rewrites one block of disk e over and over (the segments fill
		// with dead records and rotate), commits, and GC runs.
		e, err := s.OpenDisk("e")
		if err != nil {
			t.Error(err)
			return
		}
		defer e.Close()
		for i := 0; i < int(2*opts.SegmentSize)/bs; i++ {
			if _, err := e.WriteAt(blockData(bs, 0, 100+i), 0); err != nil {
				t.Error(err)
				return
			}
			if err := e.Sync(); err != nil {
				t.Error(err)
				return
			}
		}
		st, err := s.GC()
		if err != nil {
			t.Error(err)
		}
		gcs = append(gcs, st)
	}}
	rep, err := s.Repair(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repaired %d, unrepaired %+v; gc %+v", rep.Repaired, rep.Unrepaired, gcs)
	if src.asks < 2 {
		t.Fatalf("the source was asked %d times, want 2", src.asks)
	}
	r, err := s.OpenSnapshotDisk("a", "d")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, blk := range []int{2, 5} {
		got := make([]byte, bs)
		if _, err := r.ReadAt(got, int64(blk*bs)); err != nil || !bytes.Equal(got, blockData(bs, blk, 1)) {
			t.Errorf("block %d after repair (repaired %d): %v", blk, rep.Repaired, err)
		}
	}
	chk, err := s.Check(ctx, CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(chk.Problems) != 0 {
		t.Errorf("check after repair: %+v", chk.Problems)
	}
}
