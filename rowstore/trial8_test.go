package rowstore

// Trial 8: an operator's adversarial trial of the local store. Each test is
// one finding: what a user saw, as a test that fails while the defect is
// there.

import (
	"testing"
)

// trial8Write writes blocks [from, to) of disk name with a non-zero pattern.
func trial8Write(t *testing.T, s *Store, name string, from, to int, fill byte) {
	t.Helper()
	h, err := s.OpenDisk(name)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for b := from; b < to; b++ {
		for i := range buf {
			buf[i] = fill ^ byte(b) ^ byte(i)
		}
		buf[0] = 1
		if _, err := h.WriteAt(buf, int64(b)*4096); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTrial8ExclusiveThroughDeletedParents: `usage` said a disk rolled back
// to a snapshot that was then deleted, or a clone whose source snapshot and
// disk were deleted, held 0 B exclusively (and `snapshot delete --dry-run`
// said the same of such a chain), yet deleting it freed everything it shows:
// the blocks it reads from its parent layer were counted as held by
// "layer:ID", a name no disk, snapshot or image carries. What deleting it
// frees must be its exclusive figure.
func TestTrial8ExclusiveThroughDeletedParents(t *testing.T) {
	s, _ := newTestStore(t, testOptions())
	const bs = 4096
	// A rollback, then the snapshot deleted: the disk's new head reads
	// every block from its old (now unnamed) layer.
	if _, err := s.CreateDisk("rb", 64*bs, bs); err != nil {
		t.Fatal(err)
	}
	trial8Write(t, s, "rb", 0, 32, 1)
	if _, err := s.CreateSnapshot("rb-s", []string{"rb"}, ""); err != nil {
		t.Fatal(err)
	}
	trial8Write(t, s, "rb", 0, 8, 2) // 8 blocks the rollback discards
	if err := s.RollbackDisk("rb", "rb-s", false); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSnapshot("rb-s"); err != nil {
		t.Fatal(err)
	}
	// A clone whose snapshot and source disk are gone; a clone of a clone
	// through a deleted snapshot of the middle one.
	if _, err := s.CreateDisk("src", 64*bs, bs); err != nil {
		t.Fatal(err)
	}
	trial8Write(t, s, "src", 0, 16, 3)
	if _, err := s.CreateSnapshot("src-s", []string{"src"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloneDisk("c1", "src-s", "src"); err != nil {
		t.Fatal(err)
	}
	trial8Write(t, s, "c1", 16, 20, 4) // 4 blocks of c1's own
	if _, err := s.CreateSnapshot("c1-s", []string{"c1"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloneDisk("c2", "c1-s", "c1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"src-s", "c1-s"} {
		if err := s.DeleteSnapshot(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteDisk("src", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(); err != nil { // the discarded and dead versions go
		t.Fatal(err)
	}
	u, err := s.FreshUsage()
	if err != nil {
		t.Fatal(err)
	}
	excl := map[string]int64{}
	for _, d := range u.Disks {
		excl[d.Name] = d.Exclusive
	}
	// c1 and c2 share src's 16 blocks and c1's 4 (c2 reads them through
	// c1's layer): deleting one alone frees nothing; rb holds its 32.
	want := map[string]int64{"rb": 32 * bs, "c1": 0, "c2": 0}
	for n, w := range want {
		if excl[n] != w {
			t.Errorf("usage: disk %s holds %d bytes exclusively, want %d", n, excl[n], w)
		}
	}
	// What each delete frees is what usage said.
	for _, n := range []string{"rb", "c1", "c2"} {
		u, err := s.FreshUsage()
		if err != nil {
			t.Fatal(err)
		}
		var said int64 = -1
		for _, d := range u.Disks {
			if d.Name == n {
				said = d.Exclusive
			}
		}
		before := u.Store.LiveBytes
		if err := s.DeleteDisk(n, false); err != nil {
			t.Fatal(err)
		}
		st, err := s.GC()
		if err != nil {
			t.Fatal(err)
		}
		if freed := before - st.LiveBytes; freed != said {
			t.Errorf("usage said disk %s holds %d bytes exclusively; deleting it freed %d", n, said, freed)
		}
	}
}
