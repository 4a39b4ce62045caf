package integration

// Trial 7: a new user's everyday flow and an operator's two hosts sharing
// one region. Each test is one finding: what a user saw, as a test that
// fails while the defect is there.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// sharedHost is one host of a shared region: its store, mount point and
// daemon pid.
type sharedHost struct {
	name, dir, mp, pid string
}

// twoHostsFileRegion makes hosts alpha and beta, each with a store and a
// daemon, sharing the 2+1 file:// region "shared" (stores under tmp/region).
func twoHostsFileRegion(t *testing.T) (a, b *sharedHost, regionDir string) {
	t.Helper()
	needRoot(t)
	tmp := t.TempDir()
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, randBytes(t, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	regionDir = filepath.Join(tmp, "region")
	add := []string{"region", "add", "shared", "--data", "2", "--parity", "1", "--key-file", key}
	for i := range 3 {
		add = append(add, "--store", "file://"+filepath.Join(regionDir, fmt.Sprintf("s%d", i)))
	}
	var hs []*sharedHost
	for i, n := range []string{"alpha", "beta"} {
		h := &sharedHost{name: n, dir: filepath.Join(tmp, n), mp: filepath.Join(tmp, "m-"+n)}
		ok(t, h.dir, "init", "--host-name", n)
		h.pid = daemon(t, h.dir, h.mp)
		args := add
		if i == 0 {
			args = append(slices.Clone(add), "--create")
		}
		ok(t, h.dir, args...)
		hs = append(hs, h)
	}
	return hs[0], hs[1], regionDir
}

// TestTrial7CopiedStoreKeepsOthersSnapshots: a store copied to a second
// machine (a VM cloned from a golden image with /var/lib/snapfs already
// initialised, or a store restored from a backup onto another host) has
// the original's host identity. The copy's routine prune of "this host's"
// snapshots must not remove the original's synced snapshots: either the
// copy refuses region operations until it has an identity of its own, or
// the prune leaves the original's snapshots alone.
//
// Seen on main 720ab5e: `region snapshots` on both shows the other's
// snapshots as "(this host)"; the copy's `region prune --keep-last 1`
// removes the original's newest synced snapshot, and the original's next
// sync says "pruned from the region before (not sent again)": the
// original host's copy in the region is silently gone for good.
func TestTrial7CopiedStoreKeepsOthersSnapshots(t *testing.T) {
	a, _, _ := twoHostsFileRegion(t)
	ok(t, a.dir, "disk", "create", "vol", "--size", "4M")
	writeAt(t, filepath.Join(a.mp, "disks", "vol"), 0, randBytes(t, 4<<20))
	ok(t, a.dir, "snapshot", "create", "a1", "--disk", "vol")
	want := fileSum(t, filepath.Join(a.mp, "snapshots", "a1", "vol"))
	ok(t, a.dir, "sync", "--region", "shared")

	stopDaemon(t, a.dir, a.mp, a.pid)
	clone := &sharedHost{name: "clone", dir: a.dir + "-clone", mp: a.mp + "-clone"}
	sh(t, "cp", "-a", a.dir, clone.dir)
	t.Cleanup(func() { os.RemoveAll(clone.dir) })
	a.pid = daemon(t, a.dir, a.mp)
	clone.pid = daemon(t, clone.dir, clone.mp)

	// The clone lives its own life: new data, a snapshot, its sync and prune.
	writeAt(t, filepath.Join(clone.mp, "disks", "vol"), 0, randBytes(t, 4<<20))
	ok(t, clone.dir, "snapshot", "create", "c1", "--disk", "vol")
	s := snapfs(t, clone.dir, "sync", "--region", "shared")
	p := snapfs(t, clone.dir, "region", "prune", "shared", "--keep-last", "1")
	t.Logf("the clone's sync: exit %d %s%s; prune: exit %d %s%s", s.code, s.stdout, s.stderr, p.code, p.stdout, p.stderr)

	ok(t, a.dir, "sync", "--region", "shared")
	r := snapfs(t, a.dir, "restore", "--region", "shared", "--snapshot", "a1", "--disk", "vol", "--to", "back")
	if r.code != 0 {
		t.Fatalf("the original host's synced a1 after its copy's prune: restore exit %d: %s\nregion snapshots:\n%s", r.code, r.stderr, ok(t, a.dir, "region", "snapshots", "shared"))
	}
	if got := fileSum(t, filepath.Join(a.mp, "disks", "back")); got != want {
		t.Fatal("a1 restored differs from the snapshot")
	}
}
