package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Trial 10: after the daemon is SIGKILLed, `snapfs mount` of the same
// store and mountpoint (no umount first) removes the dead mount and
// serves again, and a mountpoint inside the store is refused (exit 2)
// without touching the running daemon.
func TestTrial10MountAfterKillAndInsideStore(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	pid := daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "16M")
	disk := filepath.Join(mp, "disks", "d")
	data := randBytes(t, 64<<10)
	writeAt(t, disk, 4096, data)
	if err := exec.Command("kill", "-9", pid).Run(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat("/proc/" + pid); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon %s did not die", pid)
		}
	}
	// Over the dead mount, as the README says (no umount first).
	if r := snapfs(t, store, "mount", "--background", mp); r.code != 0 {
		t.Fatalf("mount over the dead mount: exit %d: %s", r.code, r.stderr)
	}
	t.Cleanup(func() { stopDaemon(t, store, mp, "") })
	if got := readAt(t, disk, 4096, len(data)); !bytes.Equal(got, data) {
		t.Fatal("an fsync'd write was lost when the daemon was killed")
	}
	r := snapfs(t, store, "mount", "--background", filepath.Join(store, "files"))
	if r.code != 2 {
		t.Fatalf("mount inside the store: exit %d (%s), want 2", r.code, r.stderr)
	}
	if got := readAt(t, disk, 4096, len(data)); !bytes.Equal(got, data) {
		t.Fatal("the running mount changed after a refused mount")
	}
}
