package index

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
)

// TestReadOnlyOpenEmptyMemtable: a SIGKILL right after Badger created its
// next memtable file leaves that file empty. A read-only open (rowstore's
// verification before it trusts an index) cannot size it, so it must say
// ErrNeedsWrite — never an error that makes the store refuse to open (seen
// in scripts/torture.sh: "fallocate …/00003.mem: bad file descriptor",
// then every start failed). The read-write open then recovers and the data
// is there.
func TestReadOnlyOpenEmptyMemtable(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := db.Update(func(t *Txn) error { return t.PutLayer(Layer{ID: ids.Layer(i + 1), Epoch: 1}) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// What the crash leaves: the next memtable's file, created, never sized.
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	name := filepath.Join(dir, "00099.mem")
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("memtable files before: %v; added %s", mems, filepath.Base(name))
	if _, err := Open(dir, Options{MemTableSize: 1 << 20, ReadOnly: true}); !errors.Is(err, ErrNeedsWrite) {
		t.Fatalf("read-only open with an empty memtable file: %v, want ErrNeedsWrite", err)
	}
	db, err = Open(dir, Options{MemTableSize: 1 << 20})
	if err != nil {
		t.Fatalf("read-write open: %v", err)
	}
	defer db.Close()
	n := 0
	if err := db.View(func(t *Txn) error { return t.Layers(func(Layer) error { n++; return nil }) }); err != nil {
		t.Fatal(err)
	}
	if n != 100 {
		t.Fatalf("%d layers after recovery, want 100", n)
	}
}
