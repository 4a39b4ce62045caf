package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/integration/testutil"
)

// TestSnapshotMountXFSWhileLive: an XFS snapshot mounts while the live XFS
// (same UUID) is mounted, and snapshot umount leaves no loop device or clone
// behind even after other snapshots were created meanwhile (both found in
// review: duplicate UUID; a name invalidation detached the clone's loop
// backing file).
func TestSnapshotMountXFSWhileLive(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		testutil.Skipf(t, "mkfs.xfs not installed (scripts/test.sh installs xfsprogs)")
	}
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "x1", "--size", "320M")
	disk := filepath.Join(mp, "disks", "x1")
	sh(t, "mkfs.xfs", "-q", "-f", disk)
	vol := filepath.Join(tmp, "vol")
	loopMount(t, disk, vol)
	data := randBytes(t, 200<<10)
	writeFileSync(t, filepath.Join(vol, "f"), data)
	sh(t, "sync", "-f", filepath.Join(vol, "f"))
	ok(t, store, "snapshot", "create", "s1", "--disk", "x1")
	writeFileSync(t, filepath.Join(vol, "f"), randBytes(t, 1000))

	smp := filepath.Join(tmp, "snap")
	ok(t, store, "snapshot", "mount", "s1", "--disk", "x1", smp)
	t.Cleanup(func() {
		if isMounted(smp) {
			_ = exec.Command("umount", "-l", smp).Run()
		}
	})
	got, err := os.ReadFile(filepath.Join(smp, "f"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("snapshot's file differs (err %v)", err)
	}
	// Names change meanwhile: the clone's loop device must stay attached to it.
	ok(t, store, "snapshot", "create", "s2", "--disk", "x1")
	ok(t, store, "disk", "create", "other", "--size", "8M")
	ok(t, store, "snapshot", "umount", smp)
	if _, err := os.Stat(smp); !os.IsNotExist(err) {
		t.Errorf("the mountpoint snapshot mount created is left after snapshot umount: %v", err)
	}
	out, _ := exec.Command("losetup", "-a").CombinedOutput()
	if strings.Contains(string(out), "snapmount-") {
		t.Fatalf("a loop device of the clone is left: %s", out)
	}
	if list := ok(t, store, "disk", "list"); strings.Contains(list, "snapmount-") {
		t.Fatalf("the clone is left: %s", list)
	}
}
