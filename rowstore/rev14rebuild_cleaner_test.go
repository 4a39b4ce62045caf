package rowstore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/rowstore/segment"
)

// TestRev14RebuildCleanerKeptCorruptSegment: a segment the cleaner keeps
// because it holds a corrupt record (segmentNeeded: here a block version a
// rebuild indexed from it, still read by disk d) must not be cleaned again
// and again. Fixture: a rebuilt store whose first segment holds a damaged
// generation-1 record of block 40; snapshot s1, its image and clone are
// deleted, so most of that segment is dead; GC runs three times. The first
// run moves the live records; every later run must find nothing to do.
// Before the fix (gc.go, pick skips kept segments) every run "cleaned" the segment again: it copies its two catalog
// records (seq 1 and 2, 362 bytes) into the cleaner stream once more,
// reports 261104 bytes freed and SegmentsCleaned 1, and the segment stays:
// the log grows by every pass, and the background cleaner, which sees that
// segment's dead bytes as garbage, is due again and again. (Cleaner code:
// cleaner*.go, gc.go; this test only shows the defect.)
func TestRev14RebuildCleanerKeptCorruptSegment(t *testing.T) {
	f := newRb14Fixture(t, false)
	recs := f.records(t, 1)
	var bad rb14Record
	for _, r := range recs {
		if r.seg == recs[0].seg && r.block == 40 {
			bad = r
		}
	}
	if bad.file == "" {
		t.Fatal("no generation-1 record of block 40 in the first segment")
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
	if err := s.DeleteImage("img"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDisk("c1", true); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSnapshot("s1"); err != nil {
		t.Fatal(err)
	}
	logBytes := func() (n int64) {
		for _, si := range s.seg.Segments() {
			n += si.Size
		}
		return n
	}
	if _, err := s.GC(); err != nil {
		t.Fatal(err)
	}
	after := logBytes()
	for i := 1; i < 3; i++ {
		st, err := s.GC()
		if err != nil {
			t.Fatal(err)
		}
		if st.SegmentsCleaned != 0 || st.BytesRelocated != 0 || st.BytesFreed != 0 || logBytes() != after {
			t.Errorf("gc run %d: %+v, log %d bytes (after the first run %d): the kept segment %d was cleaned again", i+1, st, logBytes(), after, bad.seg)
		}
	}
}
