package integration

import (
	"os"
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

// Trial 13: `disk create vault --size 8M --encrypt --key-file K` printed
// "created disk vault (8.0 MiB, block size 16 KiB)", the line of a plain
// disk: nothing said the disk (or a clone of it) is encrypted, which is
// what the user asked and must be sure of. The line now says "encrypted".
func TestTrial13CreateEncryptedSaysSo(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store := filepath.Join(tmp, "store")
	key := filepath.Join(tmp, "key")
	if err := os.WriteFile(key, randBytes(t, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, store, "init")
	if out := ok(t, store, "disk", "create", "vault", "--size", "8M", "--encrypt", "--key-file", key); !strings.Contains(out, "encrypted") {
		t.Errorf("disk create --encrypt: %q does not say encrypted", out)
	}
	if out := ok(t, store, "disk", "create", "plain", "--size", "8M"); strings.Contains(out, "encrypted") {
		t.Errorf("disk create of a plain disk: %q", out)
	}
}
