package segment

import (
	"bytes"
	"path/filepath"
	"testing"

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
