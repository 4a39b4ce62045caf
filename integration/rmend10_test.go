package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRmend10SyncJobRecreatedName (rmend10 item 1): a snapshot deleted
// and re-created under the same name after its first copy reached the
// region. Sync cannot ship the new one under that name (the region's copy
// is never replaced: it may be the only one left of the old snapshot), but
// the job must not stop there for good: every other snapshot ships, prune
// and check still run, the job exits 9 (not 1), and once retention has
// pruned the old copy the job is clean again.
//
// Seen on main 4b908c1: the sync refused with snapfs exit 4 on every run
// and snapfs-sync.sh stopped at the sync (exit 1): prune and check never
// ran again, retention was never applied.
func TestRmend10SyncJobRecreatedName(t *testing.T) {
	tmp := t.TempDir()
	store := filepath.Join(tmp, "host")
	ok(t, store, "init")
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("cd", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"region", "add", "dr", "--data", "2", "--parity", "1", "--key-file", key, "--keep-last", "2", "--create"}
	for i := range 3 {
		add = append(add, "--store", "file://"+filepath.Join(tmp, "store", string(rune('a'+i))))
	}
	ok(t, store, add...)
	ok(t, store, "disk", "create", "v", "--size", "1M")
	lockDir := filepath.Join(tmp, "locks")
	if err := os.Mkdir(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"SNAPFS=" + bin, "SNAPFS_STORE=" + store, "SNAPFS_LOCK_DIR=" + lockDir}
	job := repoFile(t, "scripts/snapfs-sync.sh") + " dr"
	remote := func() string {
		t.Helper()
		return ok(t, store, "region", "snapshots", "dr")
	}

	ok(t, store, "snapshot", "create", "daily", "--disk", "v")
	if code, out := bare(t, job, env...); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, out)
	}
	ok(t, store, "snapshot", "delete", "daily")
	ok(t, store, "snapshot", "create", "daily", "--disk", "v")
	ok(t, store, "snapshot", "create", "x", "--disk", "v")

	code, out := bare(t, job, env...)
	if code != 9 {
		t.Fatalf("run with a re-created name: exit %d, want 9 (name taken; prune and check ran): %s", code, out)
	}
	for _, want := range []string{"holds another snapshot of that name", "pruned", "removed 0 snapshot(s)", "pruned and checked", "not shipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("run with a re-created name: output lacks %q: %s", want, out)
		}
	}
	if r := remote(); !strings.Contains(r, "x") {
		t.Fatalf("the other snapshot was not shipped: %s", r)
	}

	// A newer snapshot pushes the old "daily" out of retention (keep 2):
	// prune, which the job still runs, removes it, and the job is clean
	// again (the new "daily" is older than the two retention keeps, so
	// sync does not ship it to be pruned).
	ok(t, store, "snapshot", "create", "y", "--disk", "v")
	code, out = bare(t, job, env...)
	if code != 0 || !strings.Contains(out, "removed 1 snapshot(s) (daily)") {
		t.Fatalf("run after y: exit %d, want 0 with the old daily pruned: %s", code, out)
	}
	if r := remote(); strings.Contains(r, "daily") {
		t.Fatalf("region still lists a daily: %s", r)
	}
}
