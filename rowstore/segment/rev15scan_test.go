package segment

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// TestRev15ScanShortenedLength: a single damage, the length field of a
// record whose payload holds a run of whole encoded records (a disk
// holding a segment file) made SHORTER, so that the length names a point
// inside its own payload: before that run, or inside it (not on a record
// boundary). The real records after the damaged one can only start at its
// true end, past where the damaged length names, so no record inside the
// span it names is real, and the run inside the payload must never be
// taken for real records (they would be indexed as blocks of whatever
// layer they name). Its checksum verifies with the true length restored:
// the bad record is proven, and the scan goes on at the next real record.
// On main the resync took the embedded run in both cases (scan15's chain
// rule, and the byte search from the garbage "record" the short length
// names).
func TestRev15ScanShortenedLength(t *testing.T) {
	var foreign []byte
	for i := 0; i < 6; i++ {
		foreign = Encode(foreign, &Record{Kind: KindData, Layer: 1, Block: 777, Epoch: 1, Seq: 5, Payload: bytes.Repeat([]byte{0xee}, 100+i)})
	}
	const lead = 50
	for _, tc := range []struct {
		name string
		at   int64 // where the damaged length ends, from the payload's start
		last bool  // the damaged record is the segment's last
	}{
		{"before the embedded run", 20, false},
		{"inside the first embedded record", lead + 30, false},
		{"inside the embedded run", lead + int64(len(foreign))/2 + 3, false},
		{"at the end of the embedded run", lead + int64(len(foreign)) - 9, false},
		{"inside the embedded run, last record", lead + int64(len(foreign))/2 + 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, vfs.Default, dir, 1<<20)
			var ps []Pos
			n := 8
			if tc.last {
				n = 6
			}
			for i := 0; i < n; i++ {
				r := rec(i)
				if i == 5 {
					r.Payload = append(append(bytes.Repeat([]byte{1}, lead), foreign...), bytes.Repeat([]byte{2}, 50)...)
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
			l = mustOpen(t, vfs.Default, dir, 1<<20)
			if _, err := l.Append(rec(20)); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			v := ps[5]
			editFile(t, filepath.Join(dir, segName(v.Segment)), func(b []byte) { setLen(b, v, v.Offset+HeaderSize+tc.at) })
			l, err := Open(vfs.Default, dir, Options{DurableUnknown: true})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var got []int
			var bad []BadRecord
			if _, err := l.ScanReport(Pos{}, func(r *Record, pos Pos) error {
				if r.Block == 777 {
					t.Errorf("the record embedded in a payload was taken for a real one at %v", pos)
					return nil
				}
				got = append(got, int(r.Seq)-1)
				return nil
			}, func(b *BadRecord) error { bad = append(bad, *b); return nil }); err != nil {
				t.Fatal(err)
			}
			want := []int{0, 1, 2, 3, 4, 6, 7, 20}
			if tc.last {
				want = []int{0, 1, 2, 3, 4, 20}
			}
			if len(got) != len(want) || len(bad) != 1 || bad[0].Offset != v.Offset || bad[0].Bytes != int64(v.Length) || !bad[0].Proven {
				t.Fatalf("scan: records %v (want %v), bad %+v (want %v whole, proven)", got, want, bad, v)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("scan: records %v, want %v", got, want)
				}
			}
		})
	}
}

// BenchmarkRev15ScanDamaged scans (ScanReport) an older segment of 4096
// records of 4 KiB (16 MiB, page-cached) in which the header of every
// 64th record is zeroed (64 bad records, not provable, naming no span):
// the resync's cost per bad record, of which the proofs ahead (proveAhead:
// up to 64 candidates, each proof a CRC over the span to it) are the bulk.
func BenchmarkRev15ScanDamaged(b *testing.B) {
	benchRev15Damaged(b, 4096, 4096, 64)
}

// BenchmarkRev15ScanDamagedLarge: the same with 1 MiB records (64 MiB,
// 64 records, every 8th damaged): a proof's span reaches up to 16 MiB.
func BenchmarkRev15ScanDamagedLarge(b *testing.B) {
	benchRev15Damaged(b, 1<<20, 64, 8)
}

func benchRev15Damaged(b *testing.B, size, n, every int) {
	dir := b.TempDir()
	l, err := Open(vfs.Default, dir, Options{SegmentSize: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	var ps []Pos
	for i := 0; i < n; i++ {
		p, err := l.Append(&Record{Kind: KindData, Layer: 1, Block: ids.Block(i), Epoch: 1, Seq: ids.Seq(i + 1), Payload: bytes.Repeat([]byte{byte(i)}, size)})
		if err != nil {
			b.Fatal(err)
		}
		ps = append(ps, p)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	l, err = Open(vfs.Default, dir, Options{SegmentSize: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := l.Append(rec(n)); err != nil {
		b.Fatal(err)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	editFile(b, filepath.Join(dir, segName(ps[0].Segment)), func(buf []byte) {
		for i := every / 2; i < n; i += every {
			clear(buf[ps[i].Offset : ps[i].Offset+HeaderSize])
		}
	})
	l, err = Open(vfs.Default, dir, Options{SegmentSize: 1 << 30, DurableUnknown: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.SetBytes(int64(size * n))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		good, bad := 0, 0
		if _, err := l.ScanReport(Pos{}, func(*Record, Pos) error { good++; return nil }, func(*BadRecord) error { bad++; return nil }); err != nil {
			b.Fatal(err)
		}
		if bad < n/every || good != n-n/every+1 { // a zeroed header names a further bad record 48 bytes on
			b.Fatalf("scan: %d good, %d bad", good, bad)
		}
	}
}
