package replicate_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rev15FlipEpoch lowers by one the epoch field of the header of the record
// holding block content want (found in the segments by its bytes): the
// header checks pass, the record's CRC does not.
func rev15FlipEpoch(t *testing.T, dir string, want []byte) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
	for _, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(b, want)
		if i < 48 {
			continue
		}
		at := i - 48 + 24 // the header's epoch field
		e := binary.LittleEndian.Uint64(b[at:])
		if e < 2 {
			t.Fatalf("the record names epoch %d", e)
		}
		binary.LittleEndian.PutUint64(b[at:], e-1)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("block content not found in the segments")
}

// TestBlockSourceRev15EpochFlip: through a real region. Snapshots sa, sb
// are taken, block 5 of v is written again, snapshot sc taken, all three
// synced. The epoch field of the new record's header is then lowered by
// one: the index rebuild indexes it (damaged, no digest) at sb's epoch, so
// sb, sc and the disk all see it, while the region's copies of sb and sc
// hold different blocks (sb's the old one). Repair must write neither: the
// record's CRC matches no copy. Before the fix repair wrote sb's copy (or
// sc's) into the version, and sc and the disk's head read the old block
// without an error.
func TestBlockSourceRev15EpochFlip(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a")
	a := hs[0].host
	mkDisk(t, a, "v", 16)
	writeBlocks(t, a, "v", 1, span(0, 8))
	snapshot(t, a, "sa", "v")
	snapshot(t, a, "sb", "v")
	writeBlocks(t, a, "v", 2, []uint64{5, 6}) // 6: a valid record after 5's
	snapshot(t, a, "sc", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	old := readSnapshot(t, a, "sb", "v")
	now := readSnapshot(t, a, "sc", "v")
	if bytes.Equal(block(old, 5), block(now, 5)) {
		t.Fatal("block 5 was not written again")
	}
	rev15FlipEpoch(t, a.dir, block(now, 5))
	a = repair15Rebuild(t, a, 1)

	src, done, err := a.mgr.BlockSource(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := a.rs.Repair(ctx, src, nil)
	done()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repaired %d, unrepaired %+v", rep.Repaired, rep.Unrepaired)
	type reader interface {
		ReadAt([]byte, int64) (int, error)
		Close() error
	}
	check := func(what string, r reader, err error, want []byte) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got := make([]byte, bs)
		if _, err := r.ReadAt(got, 5*bs); err == nil && !bytes.Equal(got, want) {
			t.Errorf("%s: block 5 reads another block's content after repair, without an error", what)
		}
	}
	for _, s := range []struct {
		name string
		want []byte
	}{{"sa", old}, {"sb", old}, {"sc", now}} {
		r, err := a.rs.OpenSnapshotDisk(s.name, "v")
		check("snapshot "+s.name, r, err, block(s.want, 5))
	}
	d, err := a.rs.OpenDisk("v")
	check("disk v", d, err, block(now, 5))
	if rep.Repaired != 0 || len(rep.Unrepaired) != 1 || !strings.Contains(rep.Unrepaired[0].Message, "checksum") {
		t.Errorf("repaired %d, unrepaired %+v: want block 5 left, saying no copy matches the record's checksum", rep.Repaired, rep.Unrepaired)
	}
}
