package rowstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// TestCleanerListedReads: with the live map installed, the cleaner moves
// the live records of data-only segments by reading only what the map
// names (cleanread.go), not by scanning them: the disk reads back the same
// before and after a reopen, and the segments are gone. A live record
// whose bytes were flipped in such a segment is never copied: the listed
// read falls back to the scan, which reports it, and the segment is kept
// (the block reads as corrupt, as before the clean).
func TestCleanerListedReads(t *testing.T) {
	const bs, blocks = 4096, 128
	opts := testOptions()
	opts.SegmentSize = 64 << 10
	s, dir, h, rng, model := newCleanerDisk(t, opts, bs, blocks, 7)
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	buildLiveMap(t, s)
	overwriteRandom(t, h, rng, model, bs, blocks) // about 40 % of every segment dead
	h.Close()
	if err := s.advanceCheckpoint(); err != nil {
		t.Fatal(err)
	}
	read := func(s *Store, what string, corrupt int) {
		t.Helper()
		h, err := s.OpenDisk("d")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		got := make([]byte, bs)
		for b := 0; b < blocks; b++ {
			_, err := h.ReadAt(got, int64(b*bs))
			if b == corrupt {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s: block %d: %v, want ErrCorrupt", what, b, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: block %d: %v", what, b, err)
			}
			if !bytes.Equal(got, model[b*bs:(b+1)*bs]) {
				t.Fatalf("%s: block %d differs from what was written", what, b)
			}
		}
	}
	// The data-only segments below the checkpoint with something live and
	// something dead.
	usage := s.cleaner.lm.usage()
	var nums []ids.Segment
	sizes := map[ids.Segment]int64{}
	for _, si := range s.seg.Segments() {
		if si.Number < s.cpSegment.Load() && s.seg.DataOnly(si.Number) && usage[si.Number] > 0 && usage[si.Number] < si.Size-segment.FileHeaderSize {
			nums = append(nums, si.Number)
			sizes[si.Number] = si.Size
		}
	}
	if len(nums) < 3 {
		t.Fatalf("%d data-only segments to clean, want 3 or more", len(nums))
	}
	// The lists name exactly what the usage table counts, sorted.
	covered := map[ids.Segment]bool{}
	for _, n := range nums {
		covered[n] = true
	}
	all, _, ok := s.cleaner.lm.livePositions(covered)
	if !ok {
		t.Fatal("no live positions")
	}
	for _, n := range nums {
		var sum int64
		for i, p := range all[n] {
			sum += int64(p.len)
			if i > 0 && p.off <= all[n][i-1].off {
				t.Fatalf("segment %d: positions not sorted: %v", n, all[n])
			}
		}
		if sum != usage[n] {
			t.Fatalf("segment %d: listed %d live bytes, the usage table %d", n, sum, usage[n])
		}
	}
	// Flip a payload byte of a live record of the last one.
	bad := nums[len(nums)-1]
	nums = nums[:len(nums)-1]
	lists, _, ok := s.cleaner.lm.livePositions(map[ids.Segment]bool{bad: true})
	if !ok || len(lists[bad]) == 0 {
		t.Fatalf("no live positions in segment %d", bad)
	}
	victim := lists[bad][len(lists[bad])/2]
	corruptBlock := -1
	s.cleaner.lm.mu.Lock()
	for i := range s.cleaner.lm.m.shards {
		for _, e := range s.cleaner.lm.m.shards[i].slots {
			if e.len != 0 && ids.Segment(e.segment) == bad && e.offset == victim.off {
				corruptBlock = int(e.block)
			}
		}
	}
	s.cleaner.lm.mu.Unlock()
	if corruptBlock < 0 {
		t.Fatalf("no block names segment %d offset %d", bad, victim.off)
	}
	f, err := os.OpenFile(filepath.Join(dir, "segments", fmt.Sprintf("%016x.seg", uint64(bad))), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	one := []byte{0}
	at := int64(victim.off) + segment.HeaderSize + 100
	if _, err := f.ReadAt(one, at); err != nil {
		t.Fatal(err)
	}
	one[0] ^= 0xff
	if _, err := f.WriteAt(one, at); err != nil {
		t.Fatal(err)
	}
	f.Close()

	builds, scanned := s.cleaner.lists.builds, s.cleaner.lists.scanned
	moved, err := s.cleanSegments(nums, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.cleaner.lists.builds == builds || s.cleaner.lists.scanned != scanned {
		t.Fatalf("lists built %d times, %d segments scanned after a listed read; want a build and no scan",
			s.cleaner.lists.builds-builds, s.cleaner.lists.scanned-scanned)
	}
	for _, n := range nums {
		if moved[n] == 0 || moved[n] >= sizes[n] {
			t.Fatalf("moved %d bytes out of segment %d of %d", moved[n], n, sizes[n])
		}
	}
	have := segmentSet(s)
	for _, n := range nums {
		if have[n] {
			t.Fatalf("segment %d still there after it was cleaned", n)
		}
	}
	read(s, "after the listed clean", corruptBlock)

	if _, err := s.cleanSegments([]ids.Segment{bad}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if s.cleaner.lists.scanned != scanned+1 {
		t.Fatalf("%d segments scanned after a listed read met a corrupt record, want 1", s.cleaner.lists.scanned-scanned)
	}
	if !segmentSet(s)[bad] {
		t.Fatalf("segment %d with a corrupt live record removed", bad)
	}
	read(s, "after cleaning the corrupt segment", corruptBlock)
	s2 := reopenStore(t, s, dir, opts)
	defer s2.Close()
	read(s2, "after a reopen", corruptBlock)
}
