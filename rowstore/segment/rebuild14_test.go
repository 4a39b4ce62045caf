package segment

import (
	"os"
	"testing"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// TestRebuild14DurableUnknown: in the last segment, a record damaged in its
// payload or its header with valid records after it. With no durable
// position known (DurableUnknown, an index rebuild) Open keeps the segment
// whole, and ScanReport skips only the bad record, passing it with its
// header when intact; on main Open cut the segment there. With a known
// durable position before it, the first bad record still starts a torn
// tail (package doc, "Torn tail"). A bad tail with nothing valid after it
// is cut either way, and passed to OnTornTail.
func TestRebuild14DurableUnknown(t *testing.T) {
	for _, tc := range []struct {
		name     string
		at       int64 // byte of the victim record to damage
		headerOK bool
	}{
		{"payload", HeaderSize + 1, true},
		{"header length", 40, false},
		{"magic", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, vfs.Default, dir, 1<<20)
			ps := appendN(t, l, 0, 20)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			victim := ps[10] // rec(10): data, with a payload
			last, size := lastSegPath(t, dir)
			damage(t, last, victim.Offset+tc.at)
			var tails []TornTail
			l, err := Open(vfs.Default, dir, Options{SegmentSize: 1 << 20, DurableUnknown: true, OnTornTail: func(tt TornTail) { tails = append(tails, tt) }})
			if err != nil {
				t.Fatal(err)
			}
			if st, _ := os.Stat(last); st.Size() != size || len(tails) != 0 {
				t.Fatalf("segment cut to %d bytes (was %d), tails %v", st.Size(), size, tails)
			}
			var seqs []int
			var bad []BadRecord
			if _, err := l.ScanReport(Pos{}, func(r *Record, _ Pos) error {
				seqs = append(seqs, int(r.Seq))
				if !sameRecord(r, rec(int(r.Seq)-1)) {
					t.Errorf("record seq %d has wrong content", r.Seq)
				}
				return nil
			}, func(b *BadRecord) error { bad = append(bad, *b); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(seqs) != 19 || len(bad) != 1 {
				t.Fatalf("scan: %d good records, bad %v; want 19 and 1", len(seqs), bad)
			}
			b := bad[0]
			if b.Segment != victim.Segment || b.Offset != victim.Offset || b.Bytes != int64(victim.Length) || b.HeaderOK != tc.headerOK {
				t.Fatalf("bad record %+v, want segment %d offset %d bytes %d headerOK %v", b, victim.Segment, victim.Offset, victim.Length, tc.headerOK)
			}
			if tc.headerOK {
				want := rec(10)
				if h := b.Header; h.Kind != want.Kind || h.Layer != want.Layer || h.Block != want.Block || h.Epoch != want.Epoch || h.Seq != want.Seq || b.Length != victim.Length {
					t.Fatalf("header %+v length %d, want %+v length %d", h, b.Length, want, victim.Length)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}

			// A known durable position before the victim: cut there.
			tails = nil
			l, err = Open(vfs.Default, dir, Options{SegmentSize: 1 << 20, Durable: ps[5], OnTornTail: func(tt TornTail) { tails = append(tails, tt) }})
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			if st, _ := os.Stat(last); st.Size() != victim.Offset || len(tails) != 1 || tails[0].Offset != victim.Offset || tails[0].Bytes != size-victim.Offset {
				t.Fatalf("known durable position: segment %d bytes, tails %+v; want cut at %d", st.Size(), tails, victim.Offset)
			}
		})
	}
}

// TestRebuild14BadTailCut: with DurableUnknown, a damaged last record (no
// valid record after it) is cut as a torn tail and reported.
func TestRebuild14BadTailCut(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, vfs.Default, dir, 1<<20)
	ps := appendN(t, l, 0, 9) // rec(8) is a data record
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	victim := ps[8]
	last, size := lastSegPath(t, dir)
	damage(t, last, victim.Offset+HeaderSize+1)
	var tails []TornTail
	l, err := Open(vfs.Default, dir, Options{SegmentSize: 1 << 20, DurableUnknown: true, OnTornTail: func(tt TornTail) { tails = append(tails, tt) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if st, _ := os.Stat(last); st.Size() != victim.Offset || len(tails) != 1 || tails[0].Bytes != size-victim.Offset || tails[0].Err == nil {
		t.Fatalf("segment %d bytes, tails %+v; want cut at %d", st.Size(), tails, victim.Offset)
	}
}

func damage(t *testing.T, file string, off int64) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 4)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xa5
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
