package rowstore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/rowstore/segment"
)

// TestLead14DiffCorruptVersionsDiffer: two different versions of a block,
// both damaged in the log and indexed by a rebuild with no digest (zero),
// compared as unchanged by their equal (zero) digests, so a diff from s1 to
// the disk left the block out and an incremental sync would have given the
// region's copy s1's content without a word (rev14rebuild's report). A
// version with no digest is unchanged only when it is the same version.
func TestLead14DiffCorruptVersionsDiffer(t *testing.T) {
	f := newRb14Fixture(t, false)
	const block = 8 // written in generation 1 (s1) and 2 (the disk now)
	for _, g := range []int{1, 2} {
		found := false
		for _, r := range f.records(t, g) {
			if r.block == block {
				rb14Flip(t, r.file, r.off+segment.HeaderSize+100)
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("no generation-%d record of block %d", g, block)
		}
	}
	if err := os.RemoveAll(filepath.Join(f.dir, "index")); err != nil {
		t.Fatal(err)
	}
	if rep, err := Rebuild(f.dir, f.opts); err != nil || rep.CorruptBlocks != 2 {
		t.Fatalf("rebuild: %+v, %v; want two corrupt blocks", rep, err)
	}
	s, err := Open(f.dir, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seen := false
	if _, err := s.Diff(&Point{Snapshot: "s1", Disk: "d"}, Point{Disk: "d"}, func(c Change) error {
		seen = seen || c.Block == block
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !seen {
		t.Errorf("diff s1 → d now left out block %d, whose two versions (both corrupt, digests unknown) differ", block)
	}
}
