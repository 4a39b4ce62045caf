package vfs

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRealPathContains: symlinks in the existing part are resolved, a
// missing tail is kept; Contains holds for the directory itself and what
// is under it, never for a sibling sharing its prefix or for a parent.
func TestRealPathContains(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(store, link); err != nil {
		t.Fatal(err)
	}
	got, err := RealPath(filepath.Join(link, "files", "new"))
	if err != nil || got != filepath.Join(store, "files", "new") {
		t.Fatalf("RealPath through a symlink to a missing tail: %q, %v", got, err)
	}
	for _, c := range []struct {
		dir, path string
		want      bool
	}{
		{store, store, true},
		{store, filepath.Join(store, "files"), true},
		{store, store + "2", false},
		{store, dir, false},
		{"/", store, true},
	} {
		if Contains(c.dir, c.path) != c.want {
			t.Errorf("Contains(%q, %q) = %v", c.dir, c.path, !c.want)
		}
	}
}
