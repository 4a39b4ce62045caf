package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrial9ReadOnlyStoreAndAliases (trial 9, shared regions) through
// two daemons: with one store of the 2+1 region bind-mounted read-only
// (a NAS remounted read-only after errors), host beta restores alpha's
// snapshot byte for byte and region check runs, reads every store and
// reports the read-only one as unwritable (exit 11, trial15; it said OK);
// before trial 9, both failed with exit 11 on their lock's put. And region add refuses, exit
// 2, a store list naming one directory twice (before: "created", then
// every operation failed with exit 13).
func TestTrial9ReadOnlyStoreAndAliases(t *testing.T) {
	a, b, regionDir := twoHostsFileRegion(t)
	want := syncedSnapshot(t, a, 2, "a1")
	s1 := filepath.Join(regionDir, "s1")
	sh(t, "mount", "--bind", s1, s1)
	t.Cleanup(func() { sh(t, "umount", s1) })
	sh(t, "mount", "-o", "remount,ro,bind", s1)
	ok(t, b.dir, "restore", "--region", "shared", "--snapshot", "a1", "--host", "alpha", "--disk", "vol", "--to", "got")
	if got := fileSum(t, filepath.Join(b.mp, "disks", "got")); got != want {
		t.Fatalf("restored with store 1 read-only: sha %s, want %s", got, want)
	}
	if r := fails(t, b.dir, 11, "region", "check", "shared"); !strings.Contains(r.stderr, "store(s) [1] refuse writes") || !strings.Contains(r.stdout, "lost (cannot be restored): none") {
		t.Fatalf("check with store 1 read-only: %q %q", r.stdout, r.stderr)
	}

	d := filepath.Join(t.TempDir(), "d0")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(key, randBytes(t, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, b.dir, 2, "region", "add", "dup", "--data", "1", "--parity", "1", "--key-file", key, "--store", "file://"+d, "--store", "file://"+d+"/")
	if ents, _ := os.ReadDir(d); len(ents) != 0 {
		t.Fatalf("left in the store directory: %v", ents)
	}
}
