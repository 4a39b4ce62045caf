package integration

import (
	"path/filepath"
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
	ok(t, b.dir, "disk", "create", "vol", "--size", "4M")
	writeAt(t, filepath.Join(b.mp, "disks", "vol"), 0, randBytes(t, 4<<20))
	ok(t, b.dir, "snapshot", "create", "s1", "--disk", "vol")
	ok(t, b.dir, "sync", "--region", "shared")
	ok(t, a.dir, "restore", "--region", "shared", "--snapshot", "s1", "--host", "beta", "--disk", "vol", "--to", "lz", "--lazy", "--rate", "64K")
	locks := filepath.Join(regionDir, "s0", "locks")
	if lockObjects(locks) == 0 {
		t.Fatal("alpha's lazy disk holds no lock on the region: nothing to test")
	}
	if h := hydrationOf(t, a.dir, "lz"); h == nil {
		t.Fatal("disk lz was hydrated already: lower --rate, the test proves nothing")
	}
	ok(t, a.dir, "disk", "delete", "lz")
	for deadline := time.Now().Add(5 * time.Second); lockObjects(locks) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("5 s after disk delete, alpha's deleted lazy disk still holds its lock on the region")
		}
	}
	ok(t, b.dir, "region", "prune", "shared", "--keep-last", "5", "--all-hosts")
}
