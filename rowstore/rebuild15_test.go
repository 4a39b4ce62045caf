package rowstore

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// Tests of a damaged record header at the store level (scan15): whatever
// one header field of one record says, the rebuild (and the replay at
// open) scans every other record, and the damaged one is indexed as its
// block's corrupt version: it reads as corrupt, never as its previous
// version, and check names it.

// rb15Damage edits the header of the record at off in the segment file b;
// next is the offset of a later record of the same segment (two records
// on), mid the offset of the record after it.
type rb15Damage struct {
	name string
	edit func(b []byte, off, next, mid int64)
}

func rb15SetLen(b []byte, off, end int64) {
	binary.LittleEndian.PutUint32(b[off+40:], uint32(end-off-segment.HeaderSize))
}

var rb15Damages = []rb15Damage{
	{"length to a later record", func(b []byte, off, next, _ int64) { rb15SetLen(b, off, next) }},
	{"length to the segment end", func(b []byte, off, _, _ int64) { rb15SetLen(b, off, int64(len(b))) }},
	{"length mid-record", func(b []byte, off, _, mid int64) { rb15SetLen(b, off, mid+100) }},
	{"length past the file", func(b []byte, off, _, _ int64) { rb15SetLen(b, off, int64(len(b))+4096) }},
	{"version up", func(b []byte, off, _, _ int64) { b[off+4] = 7 }},
	{"kind", func(b []byte, off, _, _ int64) { b[off+5] = 9 }},
	{"magic", func(b []byte, off, _, _ int64) { b[off+2] ^= 0x10 }},
}

// rb15Pick picks a record of generation gen (as rb14Middle), and the
// offsets of the records one and two after it in its segment.
func rb15Pick(t *testing.T, f *rb14Fixture, cleaner, last bool, gen int) (bad rb14Record, mid, next int64) {
	t.Helper()
	recs := f.records(t, gen)
	bad, ok := rb14Middle(cleaner, last)(recs)
	if !ok {
		t.Fatalf("no record to damage among %d of generation %d", len(recs), gen)
	}
	var after []int64
	for _, r := range recs {
		if r.seg == bad.seg && r.off > bad.off {
			after = append(after, r.off)
		}
	}
	if len(after) < 2 {
		t.Fatalf("fewer than 2 records after the one picked in segment %d", bad.seg)
	}
	return bad, after[0], after[1]
}

func rb15Edit(t *testing.T, file string, f func(b []byte)) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f(b)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRebuild15HeaderDamage damages one header field of one block record
// (in the foreground's last segment, an older one, the cleaner stream's
// last), removes the index and rebuilds: the rebuild finds one corrupt
// record, attributes it (CorruptBlocks 1, nothing unattributed, no tail
// cut), every other block of every disk, snapshot, image and clone reads
// its data, the damaged block reads as corrupt and check names it. On
// main: a version byte damaged upward stopped the rebuild ("newer
// format"); a length naming a later record or the segment's end skipped
// the records between (their blocks read their previous version, or the
// last segment was cut); the other damages left the record unattributed
// (its block read its previous version).
func TestRebuild15HeaderDamage(t *testing.T) {
	for _, d := range rb15Damages {
		for _, where := range []struct {
			name          string
			cleaner, last bool
			gen           int
		}{{"last", false, true, 2}, {"older", false, false, 1}, {"cleaner", true, true, 1}} {
			t.Run(d.name+"/"+where.name, func(t *testing.T) {
				f := newRb14Fixture(t, where.cleaner)
				bad, mid, next := rb15Pick(t, f, where.cleaner, where.last, where.gen)
				rb15Edit(t, bad.file, func(b []byte) { d.edit(b, bad.off, next, mid) })
				if err := os.RemoveAll(filepath.Join(f.dir, "index")); err != nil {
					t.Fatal(err)
				}
				rep, err := Rebuild(f.dir, f.opts)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Corrupt != 1 || rep.CorruptBlocks != 1 || len(rep.Unattributed) != 0 || len(rep.TornTails) != 0 {
					t.Fatalf("rebuild report %+v: want 1 corrupt segment, 1 corrupt block, nothing unattributed, no torn tail", rep)
				}
				f.verify(t, f.opts, bad, where.gen, false)
			})
		}
	}
}

// TestReplay15HeaderDamage: the index is behind the log (a copy of it
// taken before generation 2 was written, put back: what a crash between
// the log's sync and the index's checkpoint leaves), and one header field
// of a generation 2 record past the checkpoint is damaged, in an older
// segment or in the last one (which Open recovers as a tail: a proven
// damage is not a torn write, so it is kept): Open replays past it, every
// other block reads its newest data, the damaged block reads as corrupt
// and check names it. On main a version byte damaged upward made Open
// fail; a length naming a later record skipped the records between (their
// blocks read generation 1); in the last segment every damage cut the
// records after it as a torn tail (generation 2 lost).
func TestReplay15HeaderDamage(t *testing.T) {
	for _, d := range rb15Damages {
		for _, last := range []bool{false, true} {
			name := d.name + "/older segment"
			if last {
				name = d.name + "/last segment"
			}
			t.Run(name, func(t *testing.T) { testReplay15(t, d, last) })
		}
	}
}

func testReplay15(t *testing.T, d rb15Damage, last bool) {
	f := newRb15BehindFixture(t, !last)
	bad, mid, next := rb15Pick(t, &f.rb14Fixture, false, true, 2)
	if bad.seg != f.gen2Seg {
		t.Fatalf("picked segment %d, generation 2 is in %d", bad.seg, f.gen2Seg)
	}
	rb15Edit(t, bad.file, func(b []byte) { d.edit(b, bad.off, next, mid) })
	f.verify(t, f.opts, bad, 2, false)
}

// rb15BehindFixture is rb14Fixture's store (without the cleaner) whose
// generation 2 records are in a segment of their own (with later, a
// segment holding records after it: generation 2's is not the last), and
// whose index is the copy taken before generation 2 was written.
type rb15BehindFixture struct {
	rb14Fixture
	gen2Seg ids.Segment
}

func newRb15BehindFixture(t *testing.T, later bool) *rb15BehindFixture {
	t.Helper()
	const bs = 4096
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	h := createWrittenDisk(t, s, "d", rb14Blocks*bs, bs, rb14Blocks)
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSnapshot("s1", []string{"d"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateImage("img", "s1", "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloneDisk("c1", "s1", "d"); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	idx, old := filepath.Join(dir, "index"), filepath.Join(dir, "index.behind")
	if err := os.CopyFS(old, os.DirFS(idx)); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts) // starts a new segment: generation 2's
	if err != nil {
		t.Fatal(err)
	}
	h, err = s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < rb14Blocks/2; b++ {
		if _, err := h.WriteAt(blockData(bs, b, 2), int64(b*bs)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A later session, so that generation 2's segment is not the last.
	if later {
		if s, err = Open(dir, opts); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateSnapshot("s2", []string{"d"}, ""); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSnapshot("s2"); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(idx); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(old, idx); err != nil {
		t.Fatal(err)
	}
	f := &rb15BehindFixture{rb14Fixture: rb14Fixture{dir: dir, opts: opts, bs: bs}}
	recs := f.records(t, 2)
	if len(recs) != rb14Blocks/2 || recs[0].seg != recs[len(recs)-1].seg {
		t.Fatalf("generation 2: %d records, not in one segment", len(recs))
	}
	f.gen2Seg = recs[0].seg
	return f
}

// TestDrop15DamagedLength: repair's last step (dropBadSegments, once every
// bad block was repaired) relocates the live records of a segment holding
// a bad record and removes the segment, walking it with check's segment
// scan. A bad record whose length was damaged to name a later record must
// not make that walk skip the live records between: on main it went on
// at the boundary the bad header named (check.go's own resync, header
// first), so those records were not relocated, the segment was removed,
// and their blocks' index versions pointed into a removed segment (reads
// failed: acknowledged data lost).
func TestDrop15DamagedLength(t *testing.T) {
	f := newRb15BehindFixture(t, true)
	// The index is behind: put it up to date first (Open replays).
	s, err := Open(f.dir, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	bad, _, next := rb15Pick(t, &f.rb14Fixture, false, true, 2)
	rb15Edit(t, bad.file, func(b []byte) { rb15SetLen(b, bad.off, next) })
	s, err = Open(f.dir, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	removed, err := s.dropBadSegments([]ids.Segment{bad.seg})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != bad.seg {
		t.Fatalf("removed %v, want segment %d", removed, bad.seg)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, f.bs)
	for b := 0; b < rb14Blocks; b++ {
		if b == bad.block {
			continue // its record was bad: repair would have rewritten it first
		}
		if _, err := h.ReadAt(buf, int64(b*f.bs)); err != nil {
			t.Errorf("block %d: %v", b, err)
		} else if want := rb14Want(f.bs, b, false); !bytes.Equal(buf, want) {
			t.Errorf("block %d reads %.12q, want %.12q", b, buf, want)
		}
	}
}
