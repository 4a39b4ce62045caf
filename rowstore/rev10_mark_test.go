package rowstore

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// TestRev10RebuildDropsCleanerMark: after `index rebuild` the new index has a
// checkpoint at the log's end (the foreground stream's records are "durable")
// but no cleaner mark, so a bad record in the cleaner stream's last segment is
// taken for a torn tail at the next Open and every copy after it -- copies the
// rebuilt index names, whose originals are gone -- is cut. Without the rebuild
// (mark present) the same damage is kept and reported, other blocks readable.
func TestRev10RebuildDropsCleanerMark(t *testing.T) {
	for _, rebuild := range []bool{false, true} {
		t.Run(fmt.Sprintf("rebuild=%v", rebuild), func(t *testing.T) {
			const bs = 4096
			rng := rand.New(rand.NewSource(1))
			dir := filepath.Join(t.TempDir(), "store")
			opts := testOptions()
			opts.SegmentSize = 32 << 10
			if err := Create(dir, opts); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateDisk("a", 64*bs, bs); err != nil {
				t.Fatal(err)
			}
			h, err := s.OpenDisk("a")
			if err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 64*bs)
			wr := func(b int) {
				p := make([]byte, bs)
				rng.Read(p)
				copy(data[b*bs:], p)
				if _, err := h.WriteAt(p, int64(b*bs)); err != nil {
					t.Fatal(err)
				}
			}
			for b := 0; b < 64; b++ {
				wr(b)
			}
			if err := h.Sync(); err != nil {
				t.Fatal(err)
			}
			for b := 32; b < 64; b++ {
				wr(b)
			}
			if err := h.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := s.advanceCheckpoint(); err != nil {
				t.Fatal(err)
			}
			// segments holding the live first-pass records of blocks 0..31
			segs := map[ids.Segment]bool{}
			if _, err := s.seg.Scan(segment.Pos{}, func(r *segment.Record, pos segment.Pos) error {
				for b := 0; b < 32; b++ {
					if r.Kind == segment.KindData && bytes.Equal(r.Payload, data[b*bs:(b+1)*bs]) {
						segs[pos.Segment] = true
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			var nums []ids.Segment
			for n := range segs {
				if n < s.cpSegment.Load() {
					nums = append(nums, n)
				}
			}
			if _, err := s.cleanSegments(nums, nil, nil); err != nil {
				t.Fatal(err)
			}
			cl := s.seg.CleanerActive()
			var copies []segment.Pos
			if _, err := s.seg.Scan(segment.Pos{}, func(r *segment.Record, pos segment.Pos) error {
				if pos.Segment == cl && r.Kind == segment.KindData {
					copies = append(copies, pos)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(copies) < 2 {
				t.Fatalf("%d copies in the cleaner's segment %d", len(copies), cl)
			}
			h.Close()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if rebuild {
				if _, err := Rebuild(dir, opts); err != nil {
					t.Fatal(err)
				}
			}
			// bit rot in the first copy's payload
			f, err := os.OpenFile(filepath.Join(dir, "segments", fmt.Sprintf("%016x.seg", cl)), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			b := []byte{0}
			off := copies[0].Offset + int64(copies[0].Length) - 10
			f.ReadAt(b, off)
			b[0] ^= 0xff
			f.WriteAt(b, off)
			f.Close()
			s2, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			h2, err := s2.OpenDisk("a")
			if err != nil {
				t.Fatal(err)
			}
			defer h2.Close()
			bad := 0
			for blk := 0; blk < 64; blk++ {
				p := make([]byte, bs)
				if _, err := h2.ReadAt(p, int64(blk*bs)); err != nil || !bytes.Equal(p, data[blk*bs:(blk+1)*bs]) {
					bad++
				}
			}
			if bad > 1 {
				t.Fatalf("%d blocks unreadable or wrong after one flipped byte (the cleaner segment %d was cut at its first copy)", bad, cl)
			}
		})
	}
}
