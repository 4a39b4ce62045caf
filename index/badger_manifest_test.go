package index

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
)

// TestBadgerWithoutManifest documents why rowstore inspects the index
// directory before Badger opens it: Badger, finding no MANIFEST, starts a
// new empty database in the same directory and deletes the table files
// (.sst) it does not know, so the data is gone after one open. (Finding 1
// of issue 7: `rm index/MANIFEST`, then any snapfs command emptied the
// store.) If Badger ever stops doing this, this test fails: update the doc.
func TestBadgerWithoutManifest(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		if err := db.Update(func(t *Txn) error { return t.PutLayer(Layer{ID: ids.Layer(i + 1), Epoch: 1}) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	list := func() []string {
		ents, _ := os.ReadDir(dir)
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		sort.Strings(n)
		return n
	}
	before := list()
	var ssts int
	for _, n := range before {
		if filepath.Ext(n) == ".sst" {
			ssts++
		}
	}
	if ssts == 0 {
		t.Fatalf("no table file written: %v", before)
	}
	if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, Options{MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	db.View(func(t *Txn) error { return t.Layers(func(Layer) error { n++; return nil }) })
	db.Close()
	after := list()
	t.Logf("files before: %v", before)
	t.Logf("files after an open without MANIFEST: %v; layers readable: %d of 2000", after, n)
	for _, f := range after {
		if filepath.Ext(f) == ".sst" {
			t.Errorf("Badger kept table file %s: update index/doc.go", f)
		}
	}
	if n != 0 {
		t.Errorf("Badger still reads %d layers: update index/doc.go", n)
	}
}
