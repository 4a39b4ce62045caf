package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// daemonKilledAt starts h's daemon with SNAPFS_TEST_KILL_AT=point (the
// daemon SIGKILLs itself when it reaches that step) and returns its pid.
func daemonKilledAt(t *testing.T, h *sharedHost, point string) string {
	t.Helper()
	cmd := exec.Command(bin, "--json", "mount", "--background", h.mp)
	cmd.Env = append(os.Environ(), "SNAPFS_STORE="+h.dir, "SNAPFS_TEST_KILL_AT="+point)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	var m struct{ PID string }
	jsonLine(t, string(out), "mount", &m)
	t.Cleanup(func() { stopDaemon(t, h.dir, h.mp, m.PID) })
	return m.PID
}

// diskNames is `disk list --json`'s names.
func diskNames(t *testing.T, store string) []string {
	t.Helper()
	var names []string
	out := ok(t, store, "--json", "disk", "list")
	if strings.TrimSpace(out) == "" {
		return nil
	}
	for _, o := range jsonObjects(t, out) {
		var d struct{ Type, Name string }
		if err := json.Unmarshal(o, &d); err != nil {
			t.Fatal(err)
		}
		if d.Type == "disk" {
			names = append(names, d.Name)
		}
	}
	return names
}

// TestLazyKillNeverListsUnheldDisk (the torture-regions.sh round-20
// failure, seed 19764): host alpha's daemon SIGKILLed at each step of
// restore --lazy (disk created, hold written, source attached, disk
// renamed to its name); meanwhile beta prunes (alpha's dead lock removed
// as a stale one would be), and alpha's daemon starts again. Each kill
// leaves either a disk under the name asked for that reads whole and whose
// hold kept its snapshot, or no disk at all (no temporary one listed
// either) and, once the daemon started, no hold of alpha, although alpha
// keeps a snapshot of an earlier disk of that name. Before the fix,
// a kill after the disk was created and before its hold left the disk
// listed, its snapshot pruned, and every read of it EIO.
func TestLazyKillNeverListsUnheldDisk(t *testing.T) {
	a, b, _ := twoHostsFileRegion(t)
	syncedSnapshot(t, b, 4, "base")
	vol := filepath.Join(b.mp, "disks", "vol")
	for i, point := range []string{"lazy-created", "lazy-held", "lazy-attached", "lazy-renamed"} {
		snap, to := fmt.Sprintf("k%d", i), fmt.Sprintf("vic%d", i)
		writeAt(t, vol, 0, randBytes(t, 4<<20))
		ok(t, b.dir, "snapshot", "create", snap, "--disk", "vol")
		want := fileSum(t, filepath.Join(b.mp, "snapshots", snap, "vol"))
		ok(t, b.dir, "sync", "--region", "shared")

		// alpha kept a snapshot of an earlier disk of that name: a hold's
		// release cannot go by names alone.
		ok(t, a.dir, "disk", "create", to, "--size", "1M")
		ok(t, a.dir, "snapshot", "create", "old-"+to, "--disk", to)
		ok(t, a.dir, "disk", "delete", to)

		stopDaemon(t, a.dir, a.mp, a.pid)
		a.pid = daemonKilledAt(t, a, point)
		if r := snapfs(t, a.dir, "restore", "--region", "shared", "--snapshot", snap, "--host", "beta", "--disk", "vol", "--to", to, "--lazy", "--rate", "64K"); r.code == 0 {
			t.Fatalf("kill at %s: restore --lazy succeeded: the daemon was not killed: %s", point, r.stdout)
		}
		waitGone(t, a.pid)
		ok(t, a.dir, "umount", a.mp) // the dead daemon's mount

		// beta prunes while alpha is down: alpha's lock is a dead process's
		// (stale for everyone after 30 min; removed by hand here).
		ok(t, b.dir, "region", "unlock", "shared", "--force")
		writeAt(t, vol, 0, randBytes(t, 1<<20))
		ok(t, b.dir, "snapshot", "create", "n"+snap, "--disk", "vol")
		ok(t, b.dir, "sync", "--region", "shared")
		pruned := ok(t, b.dir, "region", "prune", "shared", "--keep-last", "1")

		a.pid = daemon(t, a.dir, a.mp)
		names := diskNames(t, a.dir)
		if i := slices.IndexFunc(names, func(n string) bool { return strings.HasPrefix(n, "restore-") }); i >= 0 {
			t.Fatalf("kill at %s: disk list shows the temporary disk %s after the restart: %q", point, names[i], names)
		}
		if slices.Contains(names, to) {
			// Complete: its hold kept the snapshot (hydration, bound by
			// --rate, is far from done: reading the disk whole would end it
			// and release the hold), and it reads whole.
			if got := heldBy(t, b.dir, "beta", snap); !slices.Equal(got, []string{"alpha/" + to}) {
				t.Fatalf("kill at %s: snapshot %s held by %q, want alpha/%s", point, snap, got, to)
			}
			data, err := os.ReadFile(filepath.Join(a.mp, "disks", to))
			if err != nil {
				t.Fatalf("kill at %s: disk %s is listed after the restart but reading it fails: %v (prune said: %s)", point, to, err, strings.TrimSpace(pruned))
			}
			if sum(data) != want {
				t.Fatalf("kill at %s: disk %s differs from snapshot %s", point, to, snap)
			}
			t.Logf("kill at %s: disk %s complete and held", point, to)
			continue
		}
		// Not kept: no hold of alpha stays behind once the daemon started.
		if slices.ContainsFunc(regionSnapshots(t, b.dir, "shared"), func(s remoteSnap) bool { return s.Name == snap && s.Host == "beta" }) {
			waitHeld(t, b.dir, "beta", snap, nil)
			if out := ok(t, b.dir, "region", "prune", "shared", "--keep-last", "1"); !strings.Contains(out, snap) {
				t.Fatalf("kill at %s: prune after the release kept %s: %s", point, snap, out)
			}
		}
		t.Logf("kill at %s: no disk %s, no hold", point, to)
	}
	// The name is free again: a lazy restore to it works.
	ok(t, a.dir, "restore", "--region", "shared", "--snapshot", "nk3", "--host", "beta", "--disk", "vol", "--to", "vic0", "--lazy")
	waitHydrated(t, a.dir, "vic0", 30*time.Second)
}

// TestLazyKillOfflineRestore: without a daemon, the command does the
// restore itself: a restore --lazy killed at each step before its disk is
// named (created, held, attached) leaves nothing that the next daemon
// start lists, and no hold once it started, while beta pruned meanwhile;
// a restore --lazy run to its end without a daemon gives a disk that the
// daemon hydrates and that reads whole.
func TestLazyKillOfflineRestore(t *testing.T) {
	a, b, _ := twoHostsFileRegion(t)
	vol := filepath.Join(b.mp, "disks", "vol")
	want := syncedSnapshot(t, b, 4, "s1")
	stopDaemon(t, a.dir, a.mp, a.pid)
	ok(t, a.dir, "restore", "--region", "shared", "--snapshot", "s1", "--host", "beta", "--disk", "vol", "--to", "whole", "--lazy", "--rate", "64K")
	points := []string{"lazy-created", "lazy-held", "lazy-attached"}
	for i, point := range points {
		snap := fmt.Sprintf("k%d", i)
		writeAt(t, vol, 0, randBytes(t, 1<<20))
		ok(t, b.dir, "snapshot", "create", snap, "--disk", "vol")
		ok(t, b.dir, "sync", "--region", "shared")
		cmd := exec.Command(bin, "restore", "--region", "shared", "--snapshot", snap, "--host", "beta", "--disk", "vol", "--to", "vic"+snap, "--lazy", "--rate", "64K")
		cmd.Env = append(os.Environ(), "SNAPFS_STORE="+a.dir, "SNAPFS_TEST_KILL_AT="+point)
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("kill at %s: restore --lazy without a daemon succeeded: %s", point, out)
		}
	}
	// beta prunes every k (no hold) while alpha has no daemon.
	ok(t, b.dir, "region", "unlock", "shared", "--force")
	ok(t, b.dir, "snapshot", "create", "last", "--disk", "vol")
	ok(t, b.dir, "sync", "--region", "shared")
	ok(t, b.dir, "region", "prune", "shared", "--keep-last", "1")

	a.pid = daemon(t, a.dir, a.mp)
	names := diskNames(t, a.dir)
	if !slices.Equal(names, []string{"whole"}) {
		for _, n := range names {
			if n != "whole" {
				if _, err := os.ReadFile(filepath.Join(a.mp, "disks", n)); err != nil {
					t.Errorf("disk %s left by a killed restore reads: %v", n, err)
				}
			}
		}
		t.Fatalf("disks after killed restores without a daemon: %q, want [whole]", names)
	}
	waitHeld(t, b.dir, "beta", "s1", []string{"alpha/whole"})
	for _, s := range regionSnapshots(t, b.dir, "shared") {
		if len(s.HeldBy) > 0 && s.Name != "s1" {
			t.Fatalf("snapshot %s still held by %q after the daemon started", s.Name, s.HeldBy)
		}
	}
	if got := fileSum(t, filepath.Join(a.mp, "disks", "whole")); got != want {
		t.Fatal("disk whole, restored lazily without a daemon, differs from s1")
	}
}
