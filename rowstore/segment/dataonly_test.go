package segment

import (
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// TestDataOnly: a segment this Log created is data-only until a record of
// another kind (a hole, a catalog change) is appended to it, through
// either stream and either append path; a segment Open found never is
// (its records were not seen), nor one that does not exist.
func TestDataOnly(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, vfs.Default, dir, 1<<20)
	data := func(i int) *Record {
		return &Record{Kind: KindData, Layer: 1, Block: ids.Block(i), Epoch: 1, Seq: ids.Seq(i + 1), Payload: []byte{byte(i)}}
	}
	p, err := l.Append(data(0))
	if err != nil {
		t.Fatal(err)
	}
	fg := p.Segment
	if !l.DataOnly(fg) {
		t.Fatalf("segment %d with one data record is not data-only", fg)
	}
	raw := Encode(nil, data(1))
	cp, err := l.AppendCleanerRawBatch([][]byte{raw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := cp[0].Segment
	if cl == fg || !l.DataOnly(cl) {
		t.Fatalf("cleaner segment %d (foreground %d) with one data record is not data-only", cl, fg)
	}
	// A hole in the foreground stream, a raw catalog record in the cleaner's.
	if _, err := l.Append(&Record{Kind: KindZero, Layer: 1, Block: 5, Epoch: 1, Seq: 3, Payload: zeroPayload(2)}); err != nil {
		t.Fatal(err)
	}
	if l.DataOnly(fg) {
		t.Fatalf("segment %d is data-only after a zero record", fg)
	}
	cat := Encode(nil, &Record{Kind: KindCatalog, Seq: 4, Payload: []byte("c")})
	if _, err := l.AppendCleanerRawBatch([][]byte{cat}, nil); err != nil {
		t.Fatal(err)
	}
	if l.DataOnly(cl) {
		t.Fatalf("cleaner segment %d is data-only after a catalog record", cl)
	}
	// A new segment starts data-only again.
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	p, err = l.Append(data(5))
	if err != nil {
		t.Fatal(err)
	}
	if p.Segment == fg || !l.DataOnly(p.Segment) {
		t.Fatalf("new segment %d (old %d) is not data-only", p.Segment, fg)
	}
	if l.DataOnly(p.Segment + 100) {
		t.Fatal("a segment that does not exist is data-only")
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.SyncCleaner(); err != nil {
		t.Fatal(err)
	}
	last := p.Segment
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, vfs.Default, dir, 1<<20)
	defer l.Close()
	for _, n := range []ids.Segment{fg, cl, last} {
		if l.DataOnly(n) {
			t.Fatalf("segment %d found by Open is data-only", n)
		}
	}
}
