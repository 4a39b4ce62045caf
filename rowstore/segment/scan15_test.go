package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// Tests of a damaged record header (scan15): the scanner never trusts the
// length of a record whose checksum fails, a damaged version byte is
// corruption (only a record with a valid checksum is "newer"), and the
// record after the damaged one, wherever the damaged fields point, is
// found.

// hdrDamage edits the record at v (its position) of a segment file b:
// ps are the positions of the segment's records, size its size.
type hdrDamage struct {
	name     string
	edit     func(b []byte, v Pos, ps []Pos)
	proven   bool // the header is proven (restored fields, CRC valid)
	headerOK bool
}

func setLen(b []byte, v Pos, end int64) {
	binary.LittleEndian.PutUint32(b[v.Offset+40:], uint32(end-v.Offset-HeaderSize))
}

var hdrDamages = []hdrDamage{
	{"payload", func(b []byte, v Pos, _ []Pos) { b[v.Offset+HeaderSize+1] ^= 0x40 }, false, true},
	{"length to a later record", func(b []byte, v Pos, ps []Pos) { setLen(b, v, ps[13].Offset) }, true, true},
	{"length to the next record but one", func(b []byte, v Pos, ps []Pos) { setLen(b, v, ps[12].Offset) }, true, true},
	{"length to the segment end", func(b []byte, v Pos, _ []Pos) { setLen(b, v, int64(len(b))) }, true, true},
	{"length mid-record", func(b []byte, v Pos, ps []Pos) { setLen(b, v, ps[13].Offset+5) }, true, true},
	{"length past the file", func(b []byte, v Pos, _ []Pos) { setLen(b, v, int64(len(b))+1000) }, true, true},
	{"length over the limit", func(b []byte, v Pos, _ []Pos) { binary.LittleEndian.PutUint32(b[v.Offset+40:], MaxPayload+1) }, true, true},
	{"length shorter", func(b []byte, v Pos, _ []Pos) { b[v.Offset+40]-- }, true, true},
	{"version up", func(b []byte, v Pos, _ []Pos) { b[v.Offset+4] = 7 }, true, true},
	{"version 0", func(b []byte, v Pos, _ []Pos) { b[v.Offset+4] = 0 }, true, true},
	{"kind unknown", func(b []byte, v Pos, _ []Pos) { b[v.Offset+5] = 9 }, true, true},
	{"kind to zero", func(b []byte, v Pos, _ []Pos) { b[v.Offset+5] = byte(KindZero) }, true, true},
	{"magic", func(b []byte, v Pos, _ []Pos) { b[v.Offset+1] ^= 0x08 }, true, true},
	{"checksum", func(b []byte, v Pos, _ []Pos) { b[v.Offset+45] ^= 0x01 }, false, true},
}

// editFile applies f to the bytes of file.
func editFile(t testing.TB, file string, f func(b []byte)) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f(b)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// scan15Log writes a log of 3 foreground segments of 30 records each
// (rec(0..89)) and a cleaner segment of 30 records (clRec(0..29)) after
// the second one, and closes it. It returns the positions of the records
// of each of the four (in the order foreground 1, 2, 3, cleaner).
func scan15Log(t *testing.T, dir string) [4][]Pos {
	t.Helper()
	var out [4][]Pos
	for i := 0; i < 3; i++ {
		l := mustOpen(t, vfs.Default, dir, 1<<20)
		out[i] = appendN(t, l, 30*i, 30*i+30)
		if i == 1 {
			var raws [][]byte
			for j := 0; j < 30; j++ {
				raws = append(raws, Encode(nil, clRec(j)))
			}
			ps, err := l.AppendCleanerRawBatch(raws, nil)
			if err != nil {
				t.Fatal(err)
			}
			out[3] = ps
			if err := l.SyncCleaner(); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < 4; i++ {
		if out[i][0].Segment == out[i-1][0].Segment {
			t.Fatalf("records of two groups in segment %d", out[i][0].Segment)
		}
	}
	return out
}

// scanCheck scans the whole log with ScanReport: every record written but
// the victim must be passed once, unchanged, at its position, and the
// victim alone reported bad, whole, with its header when want.headerOK.
func scanCheck(t *testing.T, l *Log, groups [4][]Pos, victim Pos, want *Record, d hdrDamage) {
	t.Helper()
	seen := map[int64]bool{} // by seq
	var bad []BadRecord
	if _, err := l.ScanReport(Pos{}, func(r *Record, pos Pos) error {
		wr, wp := rec(int(r.Seq)-1), Pos{}
		if r.Seq >= clBase {
			wr = clRec(int(r.Seq - clBase))
			wp = groups[3][r.Seq-clBase]
		} else if int(r.Seq)-1 < 90 {
			wp = groups[(r.Seq-1)/30][(r.Seq-1)%30]
		}
		if !sameRecord(r, wr) || pos != wp || seen[int64(r.Seq)] {
			t.Fatalf("record seq %d at %v: not the one written there (want %v), or twice", r.Seq, pos, wp)
		}
		seen[int64(r.Seq)] = true
		return nil
	}, func(b *BadRecord) error { bad = append(bad, *b); return nil }); err != nil {
		t.Fatal(err)
	}
	for g, ps := range groups {
		for i, p := range ps {
			seq := int64(30*g + i + 1)
			if g == 3 {
				seq = clBase + int64(i)
			}
			if p != victim && !seen[seq] {
				t.Errorf("record seq %d at %v is missing from the scan", seq, p)
			}
		}
	}
	if len(bad) != 1 {
		t.Fatalf("bad records %+v, want the victim's alone", bad)
	}
	b := bad[0]
	if b.Segment != victim.Segment || b.Offset != victim.Offset || b.Bytes != int64(victim.Length) || b.HeaderOK != d.headerOK || b.Proven != d.proven {
		t.Fatalf("bad record %+v, want %v whole, headerOK %v proven %v", b, victim, d.headerOK, d.proven)
	}
	if d.headerOK {
		if h := b.Header; h.Kind != want.Kind || h.Flags != want.Flags || h.Layer != want.Layer || h.Block != want.Block || h.Epoch != want.Epoch || h.Seq != want.Seq || b.Length != victim.Length {
			t.Fatalf("header %+v length %d, want %+v length %d", h, b.Length, want, victim.Length)
		}
	}
	if _, err := l.Read(victim, nil); !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrIncompatible) {
		t.Fatalf("read of the victim: %v, want corrupt", err)
	}
}

// TestScan15HeaderDamage damages one field of one record's header (or its
// payload, for reference) in an older foreground segment, in the last
// foreground segment and in the cleaner's last segment, and opens the log
// as a rebuild does (no durable position known) and as a store whose
// checkpoint is past the damage does: the segment is never cut, and the
// scan passes every other record and reports the damaged one whole. On
// main: a version byte damaged upward made Open (or the scan) fail as
// "newer format"; a length naming a later record or the segment's end
// skipped the records between (and in the last segment cut them as a
// torn tail); no header was proven.
func TestScan15HeaderDamage(t *testing.T) {
	for _, d := range hdrDamages {
		for _, where := range []struct {
			name  string
			group int
		}{{"older segment", 0}, {"last segment", 2}, {"cleaner segment", 3}} {
			t.Run(d.name+"/"+where.name, func(t *testing.T) {
				dir := t.TempDir()
				groups := scan15Log(t, dir)
				ps := groups[where.group]
				victim := ps[10] // rec(10) or clRec(10): data, 70-byte payload
				want := rec(10)
				if where.group == 3 {
					want = clRec(10)
				} else {
					want = rec(30*where.group + 10)
				}
				file := filepath.Join(dir, segName(victim.Segment))
				st, err := os.Stat(file)
				if err != nil {
					t.Fatal(err)
				}
				editFile(t, file, func(b []byte) { d.edit(b, victim, ps) })
				for _, opts := range []struct {
					name string
					o    Options
				}{
					{"rebuild", Options{DurableUnknown: true}},
					{"checkpoint past it", Options{Durable: groups[2][29], CleanerDurable: groups[3][29]}},
				} {
					l, err := Open(vfs.Default, dir, opts.o)
					if err != nil {
						t.Fatalf("%s: open: %v", opts.name, err)
					}
					if st2, err := os.Stat(file); err != nil || st2.Size() != st.Size() {
						t.Fatalf("%s: segment %d cut to %d bytes (was %d)", opts.name, victim.Segment, st2.Size(), st.Size())
					}
					scanCheck(t, l, groups, victim, want, d)
					if err := l.Close(); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

// TestScan15NewerRecord: a record a newer snapfs wrote (version 2, its
// checksum valid) is refused, never skipped nor cut: Open fails on it in a
// last segment (with and without a durable position, even right after a
// damaged record, where the scanner resyncs), and Scan fails on it in an
// older segment (or after a damaged record before the durable position,
// where Open stops looking); nothing is changed on disk. On main a version
// byte damaged upward was refused the same way (TestScan15HeaderDamage).
func TestScan15NewerRecord(t *testing.T) {
	for _, tc := range []struct {
		name       string
		group      int
		damagePrev bool
	}{{"last segment", 2, false}, {"last segment after a damaged record", 2, true}, {"older segment", 0, false}, {"older segment after a damaged record", 0, true}, {"cleaner segment", 3, true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			groups := scan15Log(t, dir)
			ps := groups[tc.group]
			file := filepath.Join(dir, segName(ps[10].Segment))
			editFile(t, file, func(b []byte) {
				r := b[ps[10].Offset : ps[10].Offset+int64(ps[10].Length)]
				r[4] = Version + 1
				reseal(r)
				if tc.damagePrev {
					b[ps[9].Offset+HeaderSize+2] ^= 1
				}
			})
			before, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			opts := []Options{{DurableUnknown: true}, {Durable: groups[2][29], CleanerDurable: groups[3][29]}}
			if !tc.damagePrev {
				// Past a known durable position a damaged record before
				// it would start a torn tail (package doc, "Torn tail").
				opts = append(opts, Options{})
			}
			for _, o := range opts {
				l, err := Open(vfs.Default, dir, o)
				if tc.group != 0 && (err != nil || o.DurableUnknown || !tc.damagePrev) {
					// Open stops at a damaged record before the durable
					// position (the segment is kept whole): the scan
					// meets the newer record then.
					if !errors.Is(err, ErrIncompatible) {
						t.Fatalf("open %+v: %v, want ErrIncompatible", o, err)
					}
				} else {
					if err != nil {
						t.Fatal(err)
					}
					_, err = l.Scan(Pos{}, func(*Record, Pos) error { return nil })
					if !errors.Is(err, ErrIncompatible) {
						t.Fatalf("scan: %v, want ErrIncompatible", err)
					}
					l.Close()
				}
				if after, err := os.ReadFile(file); err != nil || !bytes.Equal(before, after) {
					t.Fatalf("segment changed (%v)", err)
				}
			}
		})
	}
}

// TestScan15EmbeddedRecord: a data record whose payload holds a whole
// encoded record (a disk holding a copy of a segment file) is damaged
// elsewhere in its payload, or in its length field too: the scanner, which
// tries every offset after a bad record, must not take the embedded record
// for a real one, nor skip the real records after the damaged one.
func TestScan15EmbeddedRecord(t *testing.T) {
	foreign := Encode(nil, &Record{Kind: KindData, Layer: 1, Block: 777, Epoch: 1, Seq: 5, Payload: bytes.Repeat([]byte{0xee}, 100)})
	foreign = append(foreign, Encode(nil, &Record{Kind: KindZero, Layer: 1, Block: 778, Epoch: 1, Seq: 6, Payload: zeroPayload(3)})...)
	for _, tc := range []struct {
		name  string
		edit  func(b []byte, v Pos, ps []Pos)
		tail  bool // the victim is the segment's last record
		proof bool
	}{
		{"payload", func(b []byte, v Pos, _ []Pos) { b[v.Offset+HeaderSize+1] ^= 1 }, false, false},
		{"payload, last record", func(b []byte, v Pos, _ []Pos) { b[v.Offset+HeaderSize+1] ^= 1 }, true, false},
		{"length to a later record", func(b []byte, v Pos, ps []Pos) { setLen(b, v, ps[7].Offset) }, false, true},
		{"length to the segment end", func(b []byte, v Pos, _ []Pos) { setLen(b, v, int64(len(b))) }, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, vfs.Default, dir, 1<<20)
			var ps []Pos
			n := 8
			if tc.tail {
				n = 6
			}
			for i := 0; i < n; i++ {
				r := rec(i)
				if i == 5 {
					r.Payload = append(append(bytes.Repeat([]byte{1}, 50), foreign...), bytes.Repeat([]byte{2}, 50)...)
				}
				p, err := l.Append(r)
				if err != nil {
					t.Fatal(err)
				}
				ps = append(ps, p)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// A second segment, so the first is an older one.
			l = mustOpen(t, vfs.Default, dir, 1<<20)
			if _, err := l.Append(rec(20)); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			editFile(t, filepath.Join(dir, segName(ps[0].Segment)), func(b []byte) { tc.edit(b, ps[5], ps) })
			l, err := Open(vfs.Default, dir, Options{DurableUnknown: true})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var got []int
			var bad []BadRecord
			if _, err := l.ScanReport(Pos{}, func(r *Record, pos Pos) error {
				if r.Block == 777 || r.Block == 778 {
					t.Fatalf("the record embedded in a payload was taken for a real one at %v", pos)
				}
				got = append(got, int(r.Seq)-1)
				return nil
			}, func(b *BadRecord) error { bad = append(bad, *b); return nil }); err != nil {
				t.Fatal(err)
			}
			want := []int{0, 1, 2, 3, 4, 6, 7, 20}
			if tc.tail {
				want = []int{0, 1, 2, 3, 4, 20}
			}
			if len(got) != len(want) || len(bad) != 1 || bad[0].Offset != ps[5].Offset || bad[0].Bytes != int64(ps[5].Length) || !bad[0].HeaderOK || bad[0].Proven != tc.proof {
				t.Fatalf("scan: records %v (want %v), bad %+v (want %v whole, proven %v)", got, want, bad, ps[5], tc.proof)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("scan: records %v, want %v", got, want)
				}
			}
		})
	}
}

// TestScan15TornEmbedded: the last record of the last segment is torn by a
// crash (the file ends inside its payload) after the part of its payload
// that holds whole encoded records: Open, with no durable position known
// (a rebuild), must cut it as a torn tail, not take the embedded records
// for real ones and keep them. On main the byte search took them.
func TestScan15TornEmbedded(t *testing.T) {
	foreign := Encode(nil, &Record{Kind: KindData, Layer: 1, Block: 777, Epoch: 1, Seq: 5, Payload: bytes.Repeat([]byte{0xee}, 100)})
	dir := t.TempDir()
	l := mustOpen(t, vfs.Default, dir, 1<<20)
	ps := appendN(t, l, 0, 5)
	r := rec(5)
	r.Payload = append(append(bytes.Repeat([]byte{1}, 50), foreign...), bytes.Repeat([]byte{2}, 500)...)
	victim, err := l.Append(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, segName(victim.Segment))
	tornAt := victim.Offset + HeaderSize + 50 + int64(len(foreign)) + 7
	if err := os.Truncate(file, tornAt); err != nil {
		t.Fatal(err)
	}
	var tails []TornTail
	l, err = Open(vfs.Default, dir, Options{DurableUnknown: true, OnTornTail: func(tt TornTail) { tails = append(tails, tt) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if st, err := os.Stat(file); err != nil || st.Size() != victim.Offset || len(tails) != 1 || tails[0].Offset != victim.Offset {
		t.Fatalf("torn record at %v not cut: tails %+v (%v)", victim, tails, err)
	}
	got, _ := scanAll(t, l)
	if len(got) != len(ps) {
		t.Fatalf("scan: %d records, want %d", len(got), len(ps))
	}
}

// embRec is the i-th record of FuzzScan15Embedded's log: every fourth one
// holds two whole encoded records (foreign: blocks 1000+, seqs 100000+)
// in the middle of its payload, as a disk holding a segment file would.
func embRec(i int) *Record {
	r := rec(i)
	if i%4 == 2 {
		f := Encode(nil, &Record{Kind: KindData, Layer: 1, Block: ids.Block(1000 + i), Epoch: 1, Seq: ids.Seq(100000 + i), Payload: bytes.Repeat([]byte{byte(i)}, 20+i)})
		f = Encode(f, &Record{Kind: KindZero, Layer: 1, Block: ids.Block(2000 + i), Epoch: 1, Seq: ids.Seq(200000 + i), Payload: zeroPayload(2)})
		r.Payload = append(append(bytes.Repeat([]byte{0x11}, 10+i), f...), bytes.Repeat([]byte{0x22}, 30)...)
	}
	return r
}

// FuzzScan15Embedded damages two bytes of an older segment whose records
// carry encoded records in their payloads, and scans it (ScanReport):
// every record passed was written there, unchanged; a record embedded in a
// payload is passed only when the length of the record holding it was
// damaged (it may then name the embedded record exactly: package doc,
// "Corruption"); every record holding no damaged byte is passed, but for
// the two-damage case (a damaged length, and a damage in a later record:
// records after the first may be skipped, records embedded in them taken
// for real); a proven bad record's header is the written one.
func FuzzScan15Embedded(f *testing.F) {
	f.Add(uint16(300), byte(0x40), uint16(0), byte(0))
	f.Add(uint16(40), byte(0x0f), uint16(0), byte(0))
	f.Add(uint16(4), byte(0x06), uint16(900), byte(0x01))
	f.Add(uint16(590), byte(0x74), uint16(1200), byte(0x10))
	f.Fuzz(func(t *testing.T, off1 uint16, x1 byte, off2 uint16, x2 byte) {
		fsys := vfs.NewCrashFS()
		l := mustOpen(t, fsys, "log", 1<<20)
		var ps []Pos
		for i := 0; i < 24; i++ {
			p, err := l.Append(embRec(i))
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, fsys, "log", 1<<20)
		after, err := l.Append(rec(50))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		size := ps[23].Offset + int64(ps[23].Length)
		recOf := func(o int64) int {
			for i, p := range ps {
				if o >= p.Offset && o < p.Offset+int64(p.Length) {
					return i
				}
			}
			return -1
		}
		file, err := fsys.OpenReadWrite(filepath.Join("log", segName(ps[0].Segment)))
		if err != nil {
			t.Fatal(err)
		}
		damaged, lenDamaged := map[int]bool{}, map[int]bool{}
		for _, d := range []struct {
			off int64
			x   byte
		}{{int64(off1), x1}, {int64(off2), x2}} {
			if d.x == 0 {
				continue
			}
			o := FileHeaderSize + d.off%(size-FileHeaderSize)
			b := make([]byte, 1)
			if _, err := file.ReadAt(b, o); err != nil {
				t.Fatal(err)
			}
			b[0] ^= d.x
			if _, err := file.WriteAt(b, o); err != nil {
				t.Fatal(err)
			}
			i := recOf(o)
			damaged[i] = true
			if k := o - ps[i].Offset; k >= 40 && k < 44 {
				lenDamaged[i] = true
			}
		}
		file.Close()
		l, err = Open(fsys, "log", Options{SegmentSize: 1 << 20, DurableUnknown: true})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
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
		// The two-damage case: a damaged length, and a damage in a later
		// record (package doc, "Corruption").
		double := second >= 0 && lenDamaged[first]
		seen := map[int]bool{}
		var bad []BadRecord
		if _, err := l.ScanReport(Pos{}, func(r *Record, pos Pos) error {
			if pos == after {
				return nil
			}
			if h := recOf(pos.Offset); pos.Segment == ps[0].Segment && h >= 0 && pos.Offset != ps[h].Offset {
				if !lenDamaged[h] && !(double && h > first) {
					t.Fatalf("record %+v at %v, inside record %d's payload, taken for a real one", r.Block, pos, h)
				}
				return nil
			}
			i := int(r.Seq) - 1
			if i < 0 || i >= len(ps) || !sameRecord(r, embRec(i)) || pos != ps[i] || seen[i] {
				t.Fatalf("record seq %d at %v was never written there (or passed twice)", r.Seq, pos)
			}
			seen[i] = true
			return nil
		}, func(br *BadRecord) error { bad = append(bad, *br); return nil }); err != nil {
			t.Fatal(err)
		}
		for i, p := range ps {
			if !damaged[i] && !seen[i] && !(double && i > first) {
				t.Fatalf("record %d at %v, holding no damaged byte, is gone (damaged %v, bad %+v)", i, p, damaged, bad)
			}
		}
		for _, br := range bad {
			i := recOf(br.Offset)
			if i < 0 || br.Offset != ps[i].Offset {
				continue // after an embedded record taken for real (excused above)
			}
			if br.Proven {
				w := embRec(i)
				if h := br.Header; h.Kind != w.Kind || h.Flags != w.Flags || h.Layer != w.Layer || h.Block != w.Block || h.Epoch != w.Epoch || h.Seq != w.Seq || br.Length != ps[i].Length {
					t.Fatalf("bad record %+v proven, but record %d was written there", br, i)
				}
			}
		}
	})
}

// BenchmarkScan15Clean scans a clean log of 64 MiB of 4 KiB data records
// (page-cached): the resync of scan15 must cost a clean scan nothing.
func BenchmarkScan15Clean(b *testing.B) {
	dir := b.TempDir()
	l := mustOpen(b, vfs.Default, dir, 16<<20)
	p := make([]byte, 4096)
	const n = 64 << 20 / 4096
	for i := 0; i < n; i++ {
		p[0], p[1] = byte(i), byte(i>>8)
		if _, err := l.Append(&Record{Kind: KindData, Layer: 1, Block: ids.Block(i), Epoch: 1, Seq: ids.Seq(i + 1), Payload: p}); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	l = mustOpen(b, vfs.Default, dir, 16<<20)
	defer l.Close()
	b.SetBytes(n * (4096 + HeaderSize))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := 0
		if _, err := l.Scan(Pos{}, func(*Record, Pos) error { k++; return nil }); err != nil || k != n {
			b.Fatalf("scan: %d records, %v", k, err)
		}
	}
}

// TestScan15ProvenNotTorn: past a known durable position (the records
// after the checkpoint: what a crash may have torn) the first bad record
// starts a torn tail, unless its damage is proven (its CRC verifies with
// the damaged magic, version, length or kind restored): a write a crash
// tore leaves bytes unwritten that no such restoring brings back, so a
// proven record is media damage, kept with what follows it (on main a
// version byte damaged upward made Open fail, and a damaged length cut
// the acknowledged records after it). The same holds for the last record
// of a segment (nothing valid after it), with or without a durable
// position: kept, reported. Unproven damage (payload, checksum field) is
// still cut.
func TestScan15ProvenNotTorn(t *testing.T) {
	for _, d := range hdrDamages {
		for _, tail := range []bool{false, true} {
			name := d.name
			if tail {
				// The last record is rec(89), a zero record: "kind to
				// zero" does not damage it, and "length to the segment
				// end" is no damage either.
				if d.name == "kind to zero" || d.name == "length to the segment end" {
					continue
				}
				name += "/last record"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				groups := scan15Log(t, dir)
				ps := groups[2]
				vi := 10
				if tail {
					vi = len(ps) - 1
				}
				victim := ps[vi]
				want := rec(60 + vi)
				file := filepath.Join(dir, segName(victim.Segment))
				st, err := os.Stat(file)
				if err != nil {
					t.Fatal(err)
				}
				// For the last record, the damages naming records after it
				// name earlier ones: a length wrapped past the limit.
				editFile(t, file, func(b []byte) { d.edit(b, victim, ps) })
				for _, o := range []Options{{Durable: ps[5]}, {DurableUnknown: true}} {
					if !tail && o.DurableUnknown {
						continue // TestScan15HeaderDamage
					}
					var tails []TornTail
					o.OnTornTail = func(tt TornTail) { tails = append(tails, tt) }
					l, err := Open(vfs.Default, dir, o)
					if err != nil {
						t.Fatalf("open: %v", err)
					}
					st2, err := os.Stat(file)
					if err != nil {
						t.Fatal(err)
					}
					if !d.proven {
						if st2.Size() != victim.Offset || len(tails) != 1 {
							t.Fatalf("unproven damage: segment %d bytes, tails %+v; want cut at %d", st2.Size(), tails, victim.Offset)
						}
						l.Close()
						return
					}
					if st2.Size() != st.Size() || len(tails) != 0 {
						t.Fatalf("proven damage: segment %d bytes (was %d), tails %+v; want kept whole", st2.Size(), st.Size(), tails)
					}
					scanCheck(t, l, groups, victim, want, d)
					if err := l.Close(); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

// TestScan15ZeroTail: a crash left the last segment extended by 64 MiB of
// zeros after its records (the file's size was updated, its pages never
// written). Open, which now looks for a valid record after a bad one even
// past a known durable position (a proven record is kept), cuts the zeros
// as a torn tail, with and without a durable position, and does it in a
// window-at-a-time search (the time is logged; a byte-at-a-time one took
// seconds).
func TestScan15ZeroTail(t *testing.T) {
	for _, o := range []Options{{}, {DurableUnknown: true}} {
		dir := t.TempDir()
		l := mustOpen(t, vfs.Default, dir, 1<<20)
		ps := appendN(t, l, 0, 20)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		last, size := lastSegPath(t, dir)
		if err := os.Truncate(last, size+64<<20); err != nil {
			t.Fatal(err)
		}
		var tails []TornTail
		o.OnTornTail = func(tt TornTail) { tails = append(tails, tt) }
		start := time.Now()
		l, err := Open(vfs.Default, dir, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("DurableUnknown %v: Open in %v", o.DurableUnknown, time.Since(start))
		if st, err := os.Stat(last); err != nil || st.Size() != size || len(tails) != 1 || tails[0].Offset != size {
			t.Fatalf("zeros not cut at %d: tails %+v (%v)", size, tails, err)
		}
		if got, _ := scanAll(t, l); len(got) != len(ps) {
			t.Fatalf("scan: %d records, want %d", len(got), len(ps))
		}
		l.Close()
	}
}
