package integration

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A mount right after the daemon was stopped with SIGTERM (a restart). The
// stopping daemon unmounts before it has flushed and closed the store, and
// answers its control socket until then; the new mount took it for a
// daemon whose mount was detached from outside and failed with exit 5
// ("umount -l … while files are open"; CI saw it as
// TestTrial11SighupKeepsServing failing). It now waits for the stopping
// daemon as it waits for its lock. SNAPFS_TEST_STOP_DELAY holds the old
// daemon in that window for 2 s.
func TestMountRightAfterSIGTERM(t *testing.T) {
	needRoot(t)
	t.Setenv("SNAPFS_TEST_STOP_DELAY", "2s")
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	pid := daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "16M")
	if err := exec.Command("kill", "-TERM", pid).Run(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); isMounted(mp); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("SIGTERM: still mounted after 30 s")
		}
	}
	daemon(t, store, mp)
	if out := ok(t, store, "disk", "list"); !strings.Contains(out, "d") {
		t.Fatalf("disk list after the restart: %q", out)
	}
}
