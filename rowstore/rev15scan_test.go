package rowstore

import (
	"bytes"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
)

// TestRev15ScanDropKeepsMissed: repair's last step (dropBadSegments)
// removes a segment holding bad records once their live records are
// moved, and what it moves is what its walk of the segment meets. With two
// damages the resync may skip a valid record (segment package doc,
// "Corruption": a length damaged together with the payload of the same
// record, so it cannot be proven, and a damage in a record after it): here
// a record whose length names the middle of the record two on, its
// payload damaged too, and that record's payload damaged. The walk skips
// the record between, which is live; removing the segment would lose its
// block for good (its index version pointing into a removed segment). The
// guard (versionsMissed) finds a committed version still pointing into the
// segment at a record that is not one of the walk's bad records, and keeps
// the segment. On main the segment was removed and that block's read
// failed.
func TestRev15ScanDropKeepsMissed(t *testing.T) {
	f := newRb15BehindFixture(t, true)
	s, err := Open(f.dir, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	bad, mid, next := rb15Pick(t, &f.rb14Fixture, false, true, 2)
	var midBlock, nextBlock = -1, -1
	for _, r := range f.records(t, 2) {
		if r.seg == bad.seg && r.off == mid {
			midBlock = r.block
		}
		if r.seg == bad.seg && r.off == next {
			nextBlock = r.block
		}
	}
	if midBlock < 0 || nextBlock < 0 {
		t.Fatalf("records at %d, %d not found", mid, next)
	}
	rb15Edit(t, bad.file, func(b []byte) {
		rb15SetLen(b, bad.off, next+100)
		b[bad.off+60] ^= 0x01
		b[next+60] ^= 0x01
	})
	s, err = Open(f.dir, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	removed, err := s.dropBadSegments([]ids.Segment{bad.seg})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 {
		t.Errorf("removed %v although block %d's live record (at %d) was not moved", removed, midBlock, mid)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, f.bs)
	for b := 0; b < rb14Blocks; b++ {
		if b == bad.block || b == nextBlock {
			continue // bad records: repair would have rewritten them first
		}
		if _, err := h.ReadAt(buf, int64(b*f.bs)); err != nil {
			t.Errorf("block %d: %v", b, err)
		} else if want := rb14Want(f.bs, b, false); !bytes.Equal(buf, want) {
			t.Errorf("block %d reads %.12q, want %.12q", b, buf, want)
		}
	}
}
