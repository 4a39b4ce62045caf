package service

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/rowstore"
)

// TestScratchLedger: a scratch clone is recorded before it exists, never
// listed, and removed by CleanScratch with its ledger entry; a user's disk
// whose name looks like a scratch clone is never touched.
func TestScratchLedger(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := rowstore.Create(dir, rowstore.Options{}); err != nil {
		t.Fatal(err)
	}
	open := func() *Local {
		st, err := rowstore.Open(dir, rowstore.Options{GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		l := NewLocal(st, dir)
		l.SetDaemon(filepath.Join(dir, "m"), Hooks{})
		return l
	}
	l := open()
	for _, name := range []string{"vol", "snapmount-s1-vol-1", "snapmount-s1-vol-2"} {
		if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: name, Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.CreateSnapshot(ctx, "s1", []string{"vol"}); err != nil {
		t.Fatal(err)
	}
	c, err := l.scratchClone(browse.Source{Snapshot: "s1", Disk: "vol"}) // as snapshot mount and the .files make them
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "snapmount-s1-vol-3" {
		t.Fatalf("scratch clone %q: the user's disks' names were not skipped", c.Name)
	}
	if _, err := os.Stat(filepath.Join(dir, ScratchDir, c.Name+".json")); err != nil {
		t.Fatalf("no ledger entry: %v", err)
	}
	ds, err := l.ListDisks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 {
		t.Fatalf("disk list %v: want the three user disks, not the scratch clone", ds)
	}
	if _, err := l.GetDisk(ctx, c.Name); err != nil {
		t.Fatalf("the scratch clone cannot be found by name: %v", err)
	}
	// A crash: the daemon never deleted it. The next start cleans.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open()
	defer l.Close()
	l.CleanScratch()
	if _, err := l.GetDisk(ctx, c.Name); err == nil {
		t.Fatal("CleanScratch left the scratch clone")
	}
	for _, name := range []string{"vol", "snapmount-s1-vol-1", "snapmount-s1-vol-2"} {
		if _, err := l.GetDisk(ctx, name); err != nil {
			t.Fatalf("CleanScratch touched the user's disk %s: %v", name, err)
		}
	}
	if es, _ := os.ReadDir(filepath.Join(dir, ScratchDir)); len(es) != 0 {
		t.Fatalf("ledger entries left: %v", es)
	}
	// A ledger entry whose name a user's disk took (created between the
	// entry and the clone, then a crash) does not delete that disk.
	if err := l.recordScratch("snapmount-s1-vol-1", "s1", "vol"); err != nil {
		t.Fatal(err)
	}
	l.CleanScratch()
	if _, err := l.GetDisk(ctx, "snapmount-s1-vol-1"); err != nil {
		t.Fatalf("CleanScratch deleted a user's disk named like a scratch clone: %v", err)
	}
}
