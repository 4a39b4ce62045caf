package segment

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// TestRotationKeepsBuffer: the gathering buffer moves to the new segment at
// every rotation, with or without segments created ahead: a rotation never
// leaves the new segment to regrow it append by append (measured: 9 % of
// the cleaner benchmark's CPU went to that regrowth when it did).
func TestRotationKeepsBuffer(t *testing.T) {
	for _, pre := range []bool{false, true} {
		l := mustOpen(t, vfs.Default, t.TempDir(), 4096)
		l.SetPrecreate(pre)
		first := l.Active()
		for i := 0; l.Active() < first+20; i++ {
			appendN(t, l, i, i+1)
			l.mu.RLock()
			s := l.fg.active
			l.mu.RUnlock()
			s.bufMu.Lock()
			c := cap(s.wbuf)
			s.bufMu.Unlock()
			if c < writeBehind {
				t.Fatalf("precreate %v: segment %d gathers in a buffer of %d bytes, not the %d one carried over", pre, s.num, c, writeBehind)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAppendBatch: a batch lands in order, across rotations, each record
// readable at its position as Append would have put it; a batch holding an
// invalid record appends nothing.
func TestAppendBatch(t *testing.T) {
	l := mustOpen(t, vfs.Default, t.TempDir(), 2048)
	defer l.Close()
	var rs []Record
	for i := 0; i < 100; i++ {
		rs = append(rs, *rec(i))
	}
	first := l.Active()
	pos, err := l.AppendBatch(rs, nil)
	if err != nil || len(pos) != len(rs) {
		t.Fatalf("AppendBatch: %d positions, %v", len(pos), err)
	}
	if l.Active() == first {
		t.Fatal("no rotation in a batch larger than a segment")
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	for i, p := range pos {
		got, err := l.Read(p, nil)
		if err != nil || !sameRecord(&got, &rs[i]) {
			t.Fatalf("record %d at %v: %+v, %v", i, p, got, err)
		}
	}
	before := l.Bytes()
	bad := []Record{*rec(1), {Kind: KindData, Layer: 1, Seq: 0}}
	if pos, err := l.AppendBatch(bad, nil); !errors.Is(err, ErrInvalid) || len(pos) != 0 || l.Bytes() != before {
		t.Fatalf("a batch with an invalid record: %d appended, %v, %d bytes added", len(pos), err, l.Bytes()-before)
	}
}

// TestScanSegment: ScanSegment visits the records of one segment only and
// never reads the next one (the cleaner may be removing it meanwhile).
func TestScanSegment(t *testing.T) {
	l := mustOpen(t, vfs.Default, t.TempDir(), 2048)
	defer l.Close()
	ps := appendN(t, l, 0, 60)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	n := ps[0].Segment
	want := 0
	for _, p := range ps {
		if p.Segment == n {
			want++
		}
	}
	if err := l.Remove(n + 1); err != nil {
		t.Fatal(err)
	}
	got := 0
	if _, err := l.ScanSegment(n, func(r *Record, pos Pos) error {
		if pos.Segment != n {
			t.Fatalf("record of segment %d visited", pos.Segment)
		}
		got++
		return nil
	}); err != nil || got != want {
		t.Fatalf("ScanSegment: %d records of %d, %v", got, want, err)
	}
	if _, err := l.ScanSegment(n+1, func(*Record, Pos) error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ScanSegment of a removed segment: %v", err)
	}
}
