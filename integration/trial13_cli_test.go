package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// Trial 13: `snapshot list --disk nope` (a typo) printed an empty table,
// exit 0, as for a disk that has no snapshot: like `zfs list` of a dataset
// that does not exist, it is now "not found" (exit 3). A disk without
// snapshots still lists none (exit 0), and a deleted disk's snapshots are
// still listed by its name.
func TestTrial13SnapshotListUnknownDisk(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store := filepath.Join(tmp, "store")
	ok(t, store, "init")
	ok(t, store, "disk", "create", "d", "--size", "8M")
	ok(t, store, "disk", "create", "gone", "--size", "8M")
	ok(t, store, "snapshot", "create", "s", "--disk", "gone")
	ok(t, store, "disk", "delete", "gone")

	r := fails(t, store, 3, "snapshot", "list", "--disk", "nope")
	if !strings.Contains(r.stderr, `"nope"`) {
		t.Errorf("snapshot list --disk nope: %q does not name the disk", r.stderr)
	}
	if out := ok(t, store, "--json", "snapshot", "list", "--disk", "d"); strings.TrimSpace(out) != "" {
		t.Errorf("snapshot list --disk d (no snapshots): %q", out)
	}
	if out := ok(t, store, "snapshot", "list", "--disk", "gone"); !strings.Contains(out, "\ns ") {
		t.Errorf("snapshot list --disk gone (deleted, one snapshot) does not list s:\n%s", out)
	}
}
