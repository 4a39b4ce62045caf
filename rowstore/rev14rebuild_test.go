package rowstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/rowstore/segment"
)

// TestRev14RebuildEpochFlip: a record whose header's epoch field is
// damaged (the CRC covers header and payload together, so the header
// still "looks intact") must not be indexed at the epoch it names when
// that contradicts the block's other versions: block b of disk d is
// written as generation 1 (epoch E1, snapshot s1), 2 (E2, snapshot s2) and
// 3 (E3, the live disk); the generation-3 record's epoch field is made
// E1. On main the rebuild indexed it as the newest version of epoch E1,
// so snapshot s1, whose generation-1 record is intact, read the block as
// corrupt (and the live disk read generation 2 silently). A version at a
// lower epoch with a higher sequence number than one at a higher epoch
// cannot have been written: the record must be reported unattributed, and
// every snapshot must read its own data.
func TestRev14RebuildEpochFlip(t *testing.T) {
	const bs, blocks = 4096, 16
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	h := createWrittenDisk(t, s, "d", blocks*bs, bs, blocks)
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	for g, snap := range []string{"s1", "s2"} {
		if _, err := s.CreateSnapshot(snap, []string{"d"}, ""); err != nil {
			t.Fatal(err)
		}
		for b := 0; b < blocks; b++ {
			if _, err := h.WriteAt(blockData(bs, b, g+2), int64(b*bs)); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	f := &rb14Fixture{dir: dir, opts: opts, bs: bs}
	const victim = blocks / 2
	find := func(g int) rb14Record {
		for _, r := range f.records(t, g) {
			if r.block == victim {
				return r
			}
		}
		t.Fatalf("no generation-%d record of block %d", g, victim)
		return rb14Record{}
	}
	epochOf := func(r rb14Record) (uint64, *os.File) {
		fh, err := os.OpenFile(r.file, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		var e [8]byte
		if _, err := fh.ReadAt(e[:], r.off+24); err != nil {
			t.Fatal(err)
		}
		return binary.LittleEndian.Uint64(e[:]), fh
	}
	e1, f1 := epochOf(find(1))
	f1.Close()
	r3 := find(3)
	e3, f3 := epochOf(r3)
	if e3 <= e1+1 {
		t.Fatalf("epochs %d and %d: want two snapshots between them", e1, e3)
	}
	var e [8]byte
	binary.LittleEndian.PutUint64(e[:], e1)
	if _, err := f3.WriteAt(e[:], r3.off+24); err != nil {
		t.Fatal(err)
	}
	f3.Close()
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	rep, err := Rebuild(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generation-3 record of block %d at segment %d offset %d: epoch %d made %d; report %+v", victim, r3.seg, r3.off, e3, e1, rep)
	if rep.Whole() || rep.CorruptBlocks != 0 || len(rep.Unattributed) != 1 || rep.Unattributed[0].Segment != r3.seg || rep.Unattributed[0].Offset != r3.off {
		t.Errorf("report: whole %v, %d corrupt blocks, unattributed %+v; want the damaged record unattributed", rep.Whole(), rep.CorruptBlocks, rep.Unattributed)
	}
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, bs)
	for g, snap := range []string{"s1", "s2"} {
		r, err := s.OpenSnapshotDisk(snap, "d")
		if err != nil {
			t.Fatal(err)
		}
		for b := 0; b < blocks; b++ {
			if _, err := r.ReadAt(buf, int64(b*bs)); err != nil {
				if b == victim && errors.Is(err, ErrCorrupt) {
					t.Errorf("snapshot %s block %d: %v (its own record is intact: a damaged record of another epoch shadows it)", snap, b, err)
					continue
				}
				t.Errorf("snapshot %s block %d: %v", snap, b, err)
			} else if want := blockData(bs, b, g+1); !bytes.Equal(buf, want) {
				t.Errorf("snapshot %s block %d reads %.12q, want %.12q", snap, b, buf, want)
			}
		}
	}
}

// digestSource is a BlockSource that serves one block for any digest and
// counts what it is asked.
type digestSource struct {
	block []byte
	asked [][32]byte
}

func (d *digestSource) FetchBlock(_ context.Context, digest [32]byte, dst []byte) (bool, error) {
	d.asked = append(d.asked, digest)
	copy(dst, d.block)
	return true, nil
}

// TestRev14RebuildRepairUnknownDigest: a block a rebuild indexed from a
// corrupt record has no known digest; repair must list it as unrepaired
// saying so, never ask a source for the all-zero digest (on main it did,
// and reported "the source has another digest" or "the source has no block
// with this digest", which sends the operator to look for a region copy
// that no check can accept), and must leave the block reading as corrupt.
func TestRev14RebuildRepairUnknownDigest(t *testing.T) {
	f := newRb14Fixture(t, false)
	bad, ok := rb14Middle(false, true)(f.records(t, 2))
	if !ok {
		t.Fatal("no record to damage")
	}
	rb14Flip(t, bad.file, bad.off+segment.HeaderSize+100)
	if err := os.RemoveAll(filepath.Join(f.dir, "index")); err != nil {
		t.Fatal(err)
	}
	rep, err := Rebuild(f.dir, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.CorruptBlocks != 1 {
		t.Fatalf("report %+v: want one corrupt block", rep)
	}
	s, err := Open(f.dir, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	src := &digestSource{block: blockData(f.bs, bad.block, 2)}
	rrep, err := s.Repair(context.Background(), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range src.asked {
		if d == ([32]byte{}) {
			t.Errorf("repair asked the source for the all-zero digest")
		}
	}
	found := false
	for _, p := range rrep.Unrepaired {
		t.Logf("unrepaired: %+v", p)
		if p.Block == int64(bad.block) && strings.Contains(p.Message, "digest is unknown") {
			found = true
		}
	}
	if !found || rrep.Repaired != 0 {
		t.Errorf("repair: %d repaired, unrepaired %+v; want block %d unrepaired, its digest unknown", rrep.Repaired, rrep.Unrepaired, bad.block)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, f.bs)
	if _, err := h.ReadAt(buf, int64(bad.block*f.bs)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("block %d after repair: %v, want ErrCorrupt", bad.block, err)
	}
}

// TestRev14RebuildStreamFailsOnCorruptBlock: what a region sync reads of a
// disk whose rebuilt index holds a corrupt block version (digest unknown):
// StreamDiff must fail with ErrCorrupt naming the block, and never hand
// the block's bytes (zeros, or its previous version) to Data.
func TestRev14RebuildStreamFailsOnCorruptBlock(t *testing.T) {
	f := newRb14Fixture(t, false)
	bad, ok := rb14Middle(false, true)(f.records(t, 2))
	if !ok {
		t.Fatal("no record to damage")
	}
	rb14Flip(t, bad.file, bad.off+segment.HeaderSize+100)
	if err := os.RemoveAll(filepath.Join(f.dir, "index")); err != nil {
		t.Fatal(err)
	}
	if rep, err := Rebuild(f.dir, f.opts); err != nil || rep.CorruptBlocks != 1 {
		t.Fatalf("rebuild: %+v, %v; want one corrupt block", rep, err)
	}
	s, err := Open(f.dir, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateSnapshot("s2", []string{"d"}, ""); err != nil {
		t.Fatal(err)
	}
	for _, from := range []*Point{nil, {Snapshot: "s1", Disk: "d"}} {
		_, err := s.StreamDiff(context.Background(), from, Point{Snapshot: "s2", Disk: "d"}, StreamOptions{
			Visit: func(Change) (bool, error) { return true, nil },
			Data: func(b *BlockBatch) error {
				defer b.Release()
				for i, blk := range b.Blocks {
					if int(blk) == bad.block {
						t.Errorf("from %v: block %d handed to Data (%.12q, digest %x)", from, blk, b.Data[i], b.Digests[i][:4])
					}
				}
				return nil
			},
		})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "block "+strconv.Itoa(bad.block)) {
			t.Errorf("from %v: StreamDiff: %v; want ErrCorrupt naming block %d", from, err, bad.block)
		}
	}
}
