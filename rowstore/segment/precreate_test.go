package segment

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// TestPrecreate: with SetPrecreate on, rotations take the segments created
// ahead (in batches of spareBatch); after a crash that left spare files
// (header only) behind the last segment holding records, Open removes
// them, recovers the torn tail of the segment before them, and numbers the
// next segment after the highest file found.
func TestPrecreate(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, vfs.Default, dir, 2048)
	l.SetPrecreate(true)
	appendN(t, l, 0, 100) // many rotations
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	active := l.Active()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	last, _ := lastSegPath(t, dir)
	var spares []string
	for n := active + 1; ; n++ {
		p := filepath.Join(dir, segName(n))
		st, err := os.Stat(p)
		if err != nil || st.Size() != FileHeaderSize {
			t.Fatalf("spare segment %d after the active one %d: %v, %v", n, active, st, err)
		}
		spares = append(spares, p)
		if p == last {
			break
		}
	}
	if len(spares) < 1 || len(spares) > 2*spareBatch {
		t.Fatalf("%d spare segments after the active one, want 1 to %d", len(spares), 2*spareBatch)
	}
	// A torn record at the end of the last segment holding records.
	f, err := os.OpenFile(filepath.Join(dir, segName(active)), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bytes.Repeat([]byte{0xde, 0xad}, 100))
	f.Close()
	l = mustOpen(t, vfs.Default, dir, 2048)
	defer l.Close()
	got, _ := scanAll(t, l)
	if len(got) != 100 {
		t.Fatalf("%d records after reopening, want 100", len(got))
	}
	if want := active + ids.Segment(len(spares)) + 1; l.Active() != want {
		t.Fatalf("active segment %d after reopening, want %d (numbers never reused)", l.Active(), want)
	}
	for _, spare := range spares {
		if _, err := os.Stat(spare); !os.IsNotExist(err) {
			t.Fatalf("spare segment %s still there: %v", spare, err)
		}
	}
	appendN(t, l, 100, 110)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, _ := scanAll(t, l); len(got) != 110 {
		t.Fatalf("%d records, want 110", len(got))
	}
}
