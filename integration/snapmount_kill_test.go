package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSnapshotMountKilled: the daemon, which does every step of snapshot
// mount, SIGKILLed after each of them (clone made, mounted, record written)
// never shows its scratch clone in disk list, and the next daemon start
// removes every clone, loop device, mount, record and ledger entry those
// runs left.
func TestSnapshotMountKilled(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	pid := daemon(t, store, mp)
	ok(t, store, "disk", "create", "e1", "--size", "32M")
	sh(t, "mkfs.ext4", "-q", "-F", filepath.Join(mp, "disks", "e1"))
	ok(t, store, "snapshot", "create", "s1", "--disk", "e1")
	ok(t, store, "umount", mp)

	points := []string{"clone", "mount", "record"}
	var smps []string
	for _, point := range points {
		smp := filepath.Join(tmp, "snap-"+point)
		smps = append(smps, smp)
		t.Cleanup(func() {
			if isMounted(smp) {
				_ = exec.Command("umount", "-l", smp).Run()
			}
		})
		cmd := exec.Command(bin, "--json", "mount", "--background", mp)
		cmd.Env = append(os.Environ(), "SNAPFS_STORE="+store, "SNAPFS_TEST_KILL_AT="+point)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("mount: %v: %s", err, out)
		}
		var m struct{ PID string }
		jsonLine(t, string(out), "mount", &m)
		pid = m.PID
		if r := snapfs(t, store, "snapshot", "mount", "s1", "--disk", "e1", smp); r.code == 0 {
			t.Fatalf("kill at %s: snapshot mount succeeded: %s", point, r.stdout)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat("/proc/" + pid); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kill at %s: daemon %s did not die", point, pid)
			}
		}
		ok(t, store, "umount", mp) // the dead daemon's mount
		if list := ok(t, store, "disk", "list"); strings.Contains(list, "snapmount-") {
			t.Fatalf("kill at %s: disk list shows the scratch clone:\n%s", point, list)
		}
		if point != "clone" {
			if out := sh(t, "losetup", "-a"); !strings.Contains(out, "snapmount-") {
				t.Fatalf("kill at %s: no loop device of the killed run to clean up: the test does not test: %s", point, out)
			}
		}
	}
	clones := dirNames(t, filepath.Join(store, "snapmounts", "clones"))
	daemon(t, store, mp)

	for _, smp := range smps {
		if isMounted(smp) {
			t.Errorf("%s is still mounted after the daemon restarted", smp)
		}
	}
	if out, _ := exec.Command("losetup", "-a").CombinedOutput(); strings.Contains(string(out), "snapmount-") {
		t.Errorf("loop devices of scratch clones left: %s", out)
	}
	for _, c := range clones {
		name := strings.TrimSuffix(c, ".json")
		if r := snapfs(t, store, "disk", "info", name); r.code == 0 {
			t.Errorf("scratch clone %s still exists", name)
		}
	}
	if left := dirNames(t, filepath.Join(store, "snapmounts", "clones")); len(left) != 0 {
		t.Errorf("ledger entries left: %v", left)
	}
	if recs, _ := filepath.Glob(filepath.Join(store, "snapmounts", "*.json")); len(recs) != 0 {
		t.Errorf("snapshot mount records left: %v", recs)
	}
	// And snapshot mount works again, end to end.
	smp := filepath.Join(tmp, "snap-again")
	ok(t, store, "snapshot", "mount", "s1", "--disk", "e1", smp)
	if list := ok(t, store, "disk", "list"); strings.Contains(list, "snapmount-") {
		t.Fatalf("disk list shows a mounted snapshot's scratch clone:\n%s", list)
	}
	ok(t, store, "snapshot", "umount", smp)
	if left := dirNames(t, filepath.Join(store, "snapmounts", "clones")); len(left) != 0 {
		t.Errorf("ledger entries left after snapshot umount: %v", left)
	}
}
