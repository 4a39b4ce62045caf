package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
)

// Trial 10: `snapfs mount STORE/files` (a new directory inside the store)
// was accepted; the mount then hid the directory the daemon opens the
// files of snapshots in, and every <disk>.files/ read EIO ("files: mkdir
// STORE/files/1: operation not permitted" in the log). A mountpoint inside
// the store, or over a directory holding it (with --force), is refused
// with exit 2 before anything is made.
func TestTrial10MountpointInsideStore(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	var out, errb bytes.Buffer
	if code := run([]string{"snapfs", "--store", store, "init"}, &out, &errb); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errb.String())
	}
	if err := os.Symlink(store, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"mount", "--background", filepath.Join(store, "files")},
		{"mount", "--background", filepath.Join(dir, "link", "policies", "mnt")},
		{"mount", "--background", store},
		{"mount", "--background", "--force", store},
		{"mount", "--background", "--force", dir},
	} {
		out.Reset()
		errb.Reset()
		code := run(append([]string{"snapfs", "--store", store}, args...), &out, &errb)
		if code == 0 { // mounted: take it down again
			var o2, e2 bytes.Buffer
			run([]string{"snapfs", "--store", store, "umount", args[len(args)-1]}, &o2, &e2)
		}
		if code != exitcode.Usage || !strings.HasPrefix(errb.String(), "snapfs: ") || !strings.Contains(errb.String(), "store") {
			t.Errorf("%v: exit %d, want %d; stderr %q", args, code, exitcode.Usage, errb.String())
		}
	}
	for _, p := range []string{"files", "policies"} {
		if _, err := os.Lstat(filepath.Join(store, p)); err == nil {
			t.Errorf("a refused mount left %s in the store", p)
		}
	}
}
