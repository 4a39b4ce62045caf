package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMend7LazyDeleteReleasesLock: host alpha lazily restores a snapshot
// of host beta (its source holds a shared lock on the region while it
// hydrates) and deletes the disk before hydration ends. The lock goes at
// once: beta's prune of the region succeeds within seconds, not only once
// alpha's GC removes the layer or its daemon stops.
//
// Seen on main b2a821a: 30 s after the delete the lock is still there and
// beta's prune is refused (exit 15) for as long as alpha's daemon runs.
func TestMend7LazyDeleteReleasesLock(t *testing.T) {
	a, b, regionDir := twoHostsFileRegion(t)
	syncedSnapshot(t, b, 4, "s1")
	ok(t, a.dir, "restore", "--region", "shared", "--snapshot", "s1", "--host", "beta", "--disk", "vol", "--to", "lz", "--lazy", "--rate", "64K")
	locks := filepath.Join(regionDir, "s0", "locks")
	if lockObjects(locks) == 0 {
		t.Fatal("alpha's lazy disk holds no lock on the region: nothing to test")
	}
	if h := hydrationOf(t, a.dir, "lz"); h == nil {
		t.Fatal("disk lz was hydrated already: lower --rate, the test proves nothing")
	}
	ok(t, a.dir, "disk", "delete", "lz")
	if !waitLocks(locks, false, 5*time.Second) {
		t.Fatal("5 s after disk delete, alpha's deleted lazy disk still holds its lock on the region")
	}
	ok(t, b.dir, "region", "prune", "shared", "--keep-last", "5", "--all-hosts")
}

// TestMend7RegionAddMissingStore: region add with a store directory that
// does not exist (an unmounted file system) exits 3 (not found, README's
// table: "a ... store ... does not exist"), the code its message says,
// not 2 (usage), without a daemon and through one; nothing is created.
//
// Seen on main b2a821a: exit 2 while saying "store does not exist".
func TestMend7RegionAddMissingStore(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	dir, mp := filepath.Join(tmp, "st"), filepath.Join(tmp, "m")
	ok(t, dir, "init")
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, randBytes(t, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(tmp, "unmounted", "nas")
	add := []string{"region", "add", "r", "--data", "1", "--parity", "1", "--key-file", key,
		"--store", "file://" + filepath.Join(tmp, "unmounted"), "--store", "file://" + gone}
	check := func(how string) {
		r := fails(t, dir, 3, add...)
		for _, want := range []string{"store 0: store does not exist: directory " + filepath.Join(tmp, "unmounted") + " does not exist", "pass --create"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("region add with a missing store %s: %q lacks %q", how, r.stderr, want)
			}
		}
		if _, err := os.Stat(filepath.Join(tmp, "unmounted")); !os.IsNotExist(err) {
			t.Fatalf("region add %s created the missing store directory (%v)", how, err)
		}
	}
	check("without a daemon")
	daemon(t, dir, mp)
	check("through the daemon")
	if out := ok(t, dir, "region", "list"); strings.Contains(out, "\nr ") {
		t.Errorf("a failed region add left the region configured: %q", out)
	}
}
