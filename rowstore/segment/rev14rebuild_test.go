package segment

import (
	"os"
	"testing"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// TestRev14RebuildCorruptThenTornTail: with no durable position known (an
// index rebuild), a last segment holding a corrupt record with valid records
// after it AND a record torn at its end (the file ends inside it: a crash
// after the damage). The corrupt record and the records after it are kept;
// the torn tail, with nothing valid after it, is cut and passed to
// OnTornTail, as it is in a segment with no corrupt record. On main Open
// kept the whole file once it met the corrupt record, so the torn tail
// stayed in the log for good: the rebuild listed it as a second corrupt,
// unattributed record and check --read-data reported it at every run.
func TestRev14RebuildCorruptThenTornTail(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, vfs.Default, dir, 1<<20)
	ps := appendN(t, l, 0, 20)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	victim, torn := ps[10], ps[18] // rec(10), rec(18): data records
	last, _ := lastSegPath(t, dir)
	damage(t, last, victim.Offset+HeaderSize+1)
	tornAt := torn.Offset + HeaderSize + 3 // the file ends inside rec(18)
	if err := os.Truncate(last, tornAt); err != nil {
		t.Fatal(err)
	}
	var tails []TornTail
	l, err := Open(vfs.Default, dir, Options{SegmentSize: 1 << 20, DurableUnknown: true, OnTornTail: func(tt TornTail) { tails = append(tails, tt) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if st, _ := os.Stat(last); st.Size() != torn.Offset || len(tails) != 1 || tails[0].Offset != torn.Offset || tails[0].Bytes != tornAt-torn.Offset {
		t.Fatalf("segment %d bytes, tails %+v; want cut at %d (the torn record), %d bytes", st.Size(), tails, torn.Offset, tornAt-torn.Offset)
	}
	var good int
	var bad []BadRecord
	if _, err := l.ScanReport(Pos{}, func(r *Record, _ Pos) error {
		good++
		if !sameRecord(r, rec(int(r.Seq)-1)) {
			t.Errorf("record seq %d has wrong content", r.Seq)
		}
		return nil
	}, func(b *BadRecord) error { bad = append(bad, *b); return nil }); err != nil {
		t.Fatal(err)
	}
	if good != 17 || len(bad) != 1 || bad[0].Offset != victim.Offset || !bad[0].HeaderOK {
		t.Fatalf("scan: %d good records, bad %+v; want 17 and the corrupt one at %d", good, bad, victim.Offset)
	}
}
