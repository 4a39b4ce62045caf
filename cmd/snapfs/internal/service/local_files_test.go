package service

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/rowstore"
)

// TestScratchImagesAndTempSnapshots: a scratch clone of an image and the
// temporary snapshot of a diff against now are in the ledger, and
// CleanScratch removes them; a user's snapshot or disk under such a name
// (of another kind or origin) is kept.
func TestScratchImagesAndTempSnapshots(t *testing.T) {
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
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "vol", Size: 1 << 20})
	must(err)
	_, err = l.CreateSnapshot(ctx, "s1", []string{"vol"})
	must(err)
	_, err = l.CreateImage(ctx, "img", "s1", "vol")
	must(err)
	c, err := l.scratchClone(browse.Source{Image: "img"})
	must(err)
	if d, err := l.GetDisk(ctx, c.Name); err != nil || d.Origin != "image img" {
		t.Fatalf("scratch clone of an image: %+v %v", d, err)
	}
	tmp, _, err := l.tempSnapshot("vol")
	must(err)
	if s, err := l.GetSnapshot(ctx, tmp); err != nil || s.Kind != ScratchKind {
		t.Fatalf("temporary snapshot: %+v %v", s, err)
	}
	// A user's snapshot recorded like a temporary one (as if its ledger
	// entry were stale) is of kind manual: kept.
	must(l.recordScratchEntry(scratchEntry{Clone: "keepme", TempSnapshot: true, Disk: "vol"}))
	_, err = l.CreateSnapshot(ctx, "keepme", []string{"vol"})
	must(err)
	must(l.Close())

	l = open()
	defer l.Close()
	l.CleanScratch()
	if _, err := l.GetDisk(ctx, c.Name); err == nil {
		t.Error("CleanScratch left the scratch clone of the image")
	}
	if _, err := l.GetSnapshot(ctx, tmp); err == nil {
		t.Error("CleanScratch left the temporary snapshot")
	}
	if _, err := l.GetSnapshot(ctx, "keepme"); err != nil {
		t.Errorf("CleanScratch deleted a user's snapshot: %v", err)
	}
	if len(l.scratchEntries()) != 0 {
		t.Errorf("ledger entries left: %v", l.scratchEntries())
	}
	// snapshot info says what .files shows: here, nothing, and why.
	s, err := l.GetSnapshot(ctx, "s1")
	must(err)
	if f := s.Disks[0].Files; f == nil || f.Browsable() || f.Reason == "" {
		t.Errorf("files of an empty disk: %+v", f)
	}
}
