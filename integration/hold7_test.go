package integration

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// heldBy is what `region snapshots` says holds snapshot name of host.
func heldBy(t *testing.T, store, host, name string) []string {
	t.Helper()
	snaps := regionSnapshots(t, store, "shared")
	for _, s := range snaps {
		if s.Type == "remote_snapshot" && s.Name == name && s.Host == host {
			return s.HeldBy
		}
	}
	t.Fatalf("no snapshot %s of %s in %+v", name, host, snaps)
	return nil
}

// waitHeld waits until heldBy(snapshot) is want.
func waitHeld(t *testing.T, store, host, name string, want []string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got := heldBy(t, store, host, name)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %s of %s held by %q, want %q", name, host, got, want)
		}
	}
}

// TestHoldLifecycle: restore --lazy holds the snapshot it reads (region
// snapshots shows it); the hold outlives a daemon restart; the owner's
// prune keeps the held snapshot and says so; disk delete and hydration
// release their holds; region release removes a hold by hand.
func TestHoldLifecycle(t *testing.T) {
	a, b, _ := twoHostsFileRegion(t)
	syncedSnapshot(t, b, 4, "s1")

	lazy := func(to, rate string) {
		ok(t, a.dir, "restore", "--region", "shared", "--snapshot", "s1", "--host", "beta", "--disk", "vol", "--to", to, "--lazy", "--rate", rate)
	}
	lazy("slow", "64K")
	lazy("gone", "64K")
	waitHeld(t, b.dir, "beta", "s1", []string{"alpha/gone", "alpha/slow"})

	// Disk delete releases that disk's hold, not the other's.
	ok(t, a.dir, "disk", "delete", "gone")
	waitHeld(t, b.dir, "beta", "s1", []string{"alpha/slow"})

	// A daemon restart keeps the hold of a disk still hydrating.
	stopDaemon(t, a.dir, a.mp, a.pid)
	a.pid = daemon(t, a.dir, a.mp)
	if h := hydrationOf(t, a.dir, "slow"); h == nil {
		t.Fatal("disk slow hydrated already: lower its --rate, the test proves nothing")
	}
	time.Sleep(500 * time.Millisecond) // the start's sweep of stale holds
	waitHeld(t, b.dir, "beta", "s1", []string{"alpha/slow"})

	// beta's prune (alpha down: its live reads hold a shared lock) keeps
	// s1 and names the hold.
	ok(t, b.dir, "snapshot", "create", "s2", "--disk", "vol")
	ok(t, b.dir, "sync", "--region", "shared")
	stopDaemon(t, a.dir, a.mp, a.pid)
	if out := ok(t, b.dir, "region", "prune", "shared", "--keep-last", "1"); !strings.Contains(out, "s1 (held by alpha/slow)") {
		t.Fatalf("prune does not name the held snapshot: %s", out)
	}
	heldBy(t, b.dir, "beta", "s1")            // still listed
	ok(t, b.dir, "region", "check", "shared") // holds are no damage
	a.pid = daemon(t, a.dir, a.mp)

	// Hydration at full speed releases the hold once done.
	ok(t, a.dir, "restore", "--region", "shared", "--snapshot", "s2", "--host", "beta", "--disk", "vol", "--to", "fast", "--lazy")
	waitHydrated(t, a.dir, "fast", 30*time.Second)
	waitHeld(t, b.dir, "beta", "s2", nil)

	// By hand: a wrong holder matches nothing and changes nothing; the
	// right one releases, and the next prune removes s1.
	if r := snapfs(t, b.dir, "region", "release", "shared", "s1", "--holder", "nosuchhost"); r.code == 0 {
		t.Fatalf("release of no hold: exit 0: %s", r.stdout)
	}
	waitHeld(t, b.dir, "beta", "s1", []string{"alpha/slow"})
	stopDaemon(t, a.dir, a.mp, a.pid)
	if out := ok(t, b.dir, "region", "release", "shared", "s1", "--holder", "alpha"); !strings.Contains(out, "released 1 hold(s)") {
		t.Fatalf("release: %s", out)
	}
	if out := ok(t, b.dir, "region", "prune", "shared", "--keep-last", "1"); !strings.Contains(out, "removed 1 snapshot(s) (s1)") {
		t.Fatalf("prune after release: %s", out)
	}
}
