package segment

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// TestPrecreate: with SetPrecreate on, rotations take the segment created
// ahead; after a crash that left that spare file (header only) behind the
// last segment holding records, Open removes it, recovers the torn tail of
// the segment before it, and numbers the next segment after the highest
// file found.
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
	spare, _ := lastSegPath(t, dir)
	if st, err := os.Stat(spare); err != nil || st.Size() != FileHeaderSize || spare != filepath.Join(dir, segName(active+1)) {
		t.Fatalf("no spare segment %d after the active one %d: %s (%v)", active+1, active, spare, err)
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
	if l.Active() != active+2 {
		t.Fatalf("active segment %d after reopening, want %d (numbers never reused)", l.Active(), active+2)
	}
	if _, err := os.Stat(spare); !os.IsNotExist(err) {
		t.Fatalf("spare segment still there: %v", err)
	}
	appendN(t, l, 100, 110)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, _ := scanAll(t, l); len(got) != 110 {
		t.Fatalf("%d records, want 110", len(got))
	}
}
