package rowstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"slices"
	"testing"
)

// TestCommitOverwriteEpochKeys: with the live map installed, a commit that
// replaces a version at the same layer, block and epoch writes its version
// key only (applyCommit, knownKeys); a version at a new epoch (after a
// snapshot) still writes its epoch key. Diffs between snapshots and the
// disk list exactly the blocks written between them, before and after a
// reopen, and a full check finds nothing wrong.
func TestCommitOverwriteEpochKeys(t *testing.T) {
	const bs, blocks = 4096, 16
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	if _, err := s.CreateDisk("d", blocks*bs, bs); err != nil {
		t.Fatal(err)
	}
	model := make([]byte, blocks*bs)
	n := byte(0)
	write := func(s *Store, bl ...int) {
		t.Helper()
		h, err := s.OpenDisk("d")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		for _, b := range bl {
			n++
			p := bytes.Repeat([]byte{n}, bs)
			copy(model[b*bs:], p)
			if _, err := h.WriteAt(p, int64(b*bs)); err != nil {
				t.Fatal(err)
			}
			if err := h.Sync(); err != nil { // one commit per write: each overwrite its own batch
				t.Fatal(err)
			}
		}
	}
	all := make([]int, blocks)
	for i := range all {
		all[i] = i
	}
	write(s, all...)
	buildLiveMap(t, s) // installs the live map
	if _, err := s.CreateSnapshot("s1", []string{"d"}, ""); err != nil {
		t.Fatal(err)
	}
	write(s, 3, 9, 3, 3) // 3 and 9 at a new epoch, then 3 again at it
	if _, err := s.CreateSnapshot("s2", []string{"d"}, ""); err != nil {
		t.Fatal(err)
	}
	write(s, 5, 5, 5)
	check := func(s *Store, what string) {
		t.Helper()
		diff := func(from *Point, to Point, want []int) {
			t.Helper()
			var got []int
			if _, err := s.Diff(from, to, func(c Change) error {
				got = append(got, int(c.Block))
				if to.Snapshot == "" && c.Digest != sha256.Sum256(model[c.Block*bs:(c.Block+1)*bs]) {
					t.Errorf("%s: block %d: digest differs from what was written", what, c.Block)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s: diff %v -> %v: blocks %v, want %v", what, from, to, got, want)
			}
		}
		diff(&Point{Snapshot: "s1", Disk: "d"}, Point{Snapshot: "s2", Disk: "d"}, []int{3, 9})
		diff(&Point{Snapshot: "s2", Disk: "d"}, Point{Disk: "d"}, []int{5})
		diff(&Point{Snapshot: "s1", Disk: "d"}, Point{Disk: "d"}, []int{3, 5, 9})
		rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) > 0 {
			t.Fatalf("%s: check: %+v", what, rep.Problems)
		}
		readDiskEquals(t, s, model, what)
	}
	check(s, "after the overwrites")
	s2 := reopenStore(t, s, dir, opts)
	defer s2.Close()
	check(s2, "after a reopen")
}
