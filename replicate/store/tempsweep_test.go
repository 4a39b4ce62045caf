package store_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// TestLocalListSweepsOldTemps: a put killed midway leaves a temporary file
// (a lock put's in locks/); List removes the ones older than
// TempOrphanAge, in locks/ and in any prefix, and never a fresh one (a
// live put's), nor an object.
func TestLocalListSweepsOldTemps(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(t.Context(), "file://"+dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put(t.Context(), "locks/l1", []byte("lock")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "packs/p1", []byte("pack")); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-store.TempOrphanAge - time.Minute)
	mk := func(p string, mtime time.Time) string {
		p = filepath.Join(dir, p)
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldLock := mk("locks/"+vfs.TempPrefix+"l2-0123", old)
	freshLock := mk("locks/"+vfs.TempPrefix+"l3-4567", time.Now().Add(-store.TempOrphanAge/2))
	oldPut := mk("packs/~put-p2", old)
	list := func(prefix string) []string {
		var names []string
		if err := s.List(t.Context(), prefix, func(name string, _ int64) error {
			names = append(names, name)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return names
	}
	if got := list("locks/"); len(got) != 1 || got[0] != "locks/l1" {
		t.Errorf("List(locks/) = %q, want [locks/l1]", got)
	}
	if _, err := os.Stat(oldLock); !os.IsNotExist(err) {
		t.Errorf("a killed lock put's temporary file older than TempOrphanAge is still there (%v)", err)
	}
	if _, err := os.Stat(freshLock); err != nil {
		t.Errorf("a fresh temporary file (maybe a live put) was removed: %v", err)
	}
	if got := list("packs/"); len(got) != 1 || got[0] != "packs/p1" {
		t.Errorf("List(packs/) = %q, want [packs/p1]", got)
	}
	if _, err := os.Stat(oldPut); !os.IsNotExist(err) {
		t.Errorf("an old ~put- temporary file in packs/ is still there (%v)", err)
	}
	if got := list("locks/"); len(got) != 1 {
		t.Errorf("List(locks/) after the sweep = %q", got)
	}
}
