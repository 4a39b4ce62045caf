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
		at2      int64 // a second one (0: none)
		headerOK bool
		proven   bool // scan15: a damaged magic or length is restored and the CRC verifies
	}{
		{"payload", HeaderSize + 1, 0, true, false},
		{"header length", 40, 0, true, true},
		{"magic", 0, 0, true, true},
		{"length and payload", 40, HeaderSize + 1, false, false},
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
			if tc.at2 != 0 {
				damage(t, last, victim.Offset+tc.at2)
			}
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
			if b.Segment != victim.Segment || b.Offset != victim.Offset || b.Bytes != int64(victim.Length) || b.HeaderOK != tc.headerOK || b.Proven != tc.proven {
				t.Fatalf("bad record %+v, want segment %d offset %d bytes %d headerOK %v proven %v", b, victim.Segment, victim.Offset, victim.Length, tc.headerOK, tc.proven)
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

			// A known durable position before the victim: cut there,
			// unless the damage is proven (scan15: not a torn write).
			tails = nil
			l, err = Open(vfs.Default, dir, Options{SegmentSize: 1 << 20, Durable: ps[5], OnTornTail: func(tt TornTail) { tails = append(tails, tt) }})
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			if tc.proven {
				if st, _ := os.Stat(last); st.Size() != size || len(tails) != 0 {
					t.Fatalf("known durable position, proven damage: segment %d bytes (was %d), tails %+v; want kept whole", st.Size(), size, tails)
				}
				return
			}
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

// FuzzRebuild14Damage damages bytes of a segment at fuzzed places and opens
// it as a rebuild does (DurableUnknown): Open and ScanReport never fail
// nor panic (a damaged version byte is corruption, not a newer record),
// every record they pass is one that was written, unchanged, at its
// place; every record holding no damaged byte is still there, except in
// the one case two damages can hide records (package doc, "Corruption":
// a damaged length, and a second damage in a record after it: records
// after the first may be skipped or cut); a bad record starts in a
// damaged record, and one passed with HeaderOK names a length that ends
// where the next good record starts, and when Proven, is the written
// record's header.
func FuzzRebuild14Damage(f *testing.F) {
	f.Add(uint16(100), byte(0xff), uint16(0), byte(0))
	f.Add(uint16(2000), byte(1), uint16(2100), byte(0x80))
	f.Add(uint16(40), byte(0x10), uint16(3000), byte(7))
	f.Add(uint16(4), byte(0xd6), uint16(6), byte(0x17))       // a record version byte
	f.Add(uint16(1931), byte(0x01), uint16(2097), byte(0x7d)) // refused by the scan on main
	f.Add(uint16(40), byte(0x55), uint16(3125), byte(0))      // a length naming the next record but one
	f.Add(uint16(4), byte(0x06), uint16(0), byte(0))          // version 1 -> 7
	f.Add(uint16(5), byte(0x08), uint16(0), byte(0))          // kind 1 -> 9
	f.Add(uint16(40), byte(0x20), uint16(0), byte(0))         // length 0 -> 32: mid-record
	f.Add(uint16(43), byte(0x80), uint16(0), byte(0))         // length past the file, over the limit
	f.Fuzz(func(t *testing.T, off1 uint16, x1 byte, off2 uint16, x2 byte) {
		dir := t.TempDir()
		l := mustOpen(t, vfs.Default, dir, 1<<20)
		ps := appendN(t, l, 0, 30)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		last, size := lastSegPath(t, dir)
		b, err := os.ReadFile(last)
		if err != nil {
			t.Fatal(err)
		}
		recOf := func(o int64) int {
			for i, p := range ps {
				if o >= p.Offset && o < p.Offset+int64(p.Length) {
					return i
				}
			}
			t.Fatalf("offset %d in no record", o)
			return -1
		}
		damaged := map[int]bool{} // records holding a damaged byte
		lenDamaged := map[int]bool{}
		for _, d := range []struct {
			off int64
			x   byte
		}{{int64(off1), x1}, {int64(off2), x2}} {
			o := FileHeaderSize + d.off%(size-FileHeaderSize)
			if d.x != 0 {
				b[o] ^= d.x
				i := recOf(o)
				damaged[i] = true
				if o-ps[i].Offset >= 40 && o-ps[i].Offset < 44 {
					lenDamaged[i] = true
				}
			}
		}
		if err := os.WriteFile(last, b, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err = Open(vfs.Default, dir, Options{SegmentSize: 1 << 20, DurableUnknown: true})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		seen := map[int]bool{}
		var bad []BadRecord
		if _, err := l.ScanReport(Pos{}, func(r *Record, pos Pos) error {
			i := int(r.Seq) - 1
			if i < 0 || i >= len(ps) || !sameRecord(r, rec(i)) || pos != ps[i] || seen[i] {
				t.Fatalf("record seq %d at %v was never written there (or passed twice)", r.Seq, pos)
			}
			seen[i] = true
			return nil
		}, func(br *BadRecord) error { bad = append(bad, *br); return nil }); err != nil {
			t.Fatal(err)
		}
		// The one case two damages may hide records: a damaged length
		// (first) and a damage in a later record (second).
		first, second := -1, -1
		for i := range ps {
			if damaged[i] {
				if first < 0 {
					first = i
				} else {
					second = i
				}
			}
		}
		excused := func(i int) bool { return second >= 0 && lenDamaged[first] && i > first }
		for i, p := range ps {
			if !damaged[i] && !seen[i] && !excused(i) {
				t.Fatalf("record %d at %v, holding no damaged byte, is gone (damaged records %v, bad %+v)", i, p, damaged, bad)
			}
		}
		for _, br := range bad {
			// A bad record starts at a damaged record, or inside one (a
			// damaged length believed, where more damage hides the
			// record's true end: the scan reports the rest on its own).
			i := recOf(br.Offset)
			if !damaged[i] && !excused(i) {
				t.Fatalf("bad record %+v does not start in a damaged record", br)
			}
			if br.Offset != ps[i].Offset {
				continue
			}
			if br.HeaderOK && br.Offset+int64(br.Length) != br.Offset+br.Bytes {
				t.Fatalf("bad record %+v: header length does not end where the next good record starts", br)
			}
			if br.Proven {
				w := rec(i)
				if h := br.Header; h.Kind != w.Kind || h.Flags != w.Flags || h.Layer != w.Layer || h.Block != w.Block || h.Epoch != w.Epoch || h.Seq != w.Seq || br.Length != ps[i].Length {
					t.Fatalf("bad record %+v proven, but record %d was written there", br, i)
				}
			}
		}
	})
}
