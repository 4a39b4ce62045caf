package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestLead15SnapshotByteCap: over the store's cap on snapshot bytes
// (policy quota --max-snapshot-bytes), a manual snapshot create fails with
// exit 7 and a message in the user's units, creating nothing; without the
// cap it succeeds. (The cap had no test at all; its message printed raw
// byte counts.)
func TestLead15SnapshotByteCap(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	h, mp := filepath.Join(tmp, "host"), filepath.Join(tmp, "m")
	ok(t, h, "init")
	daemon(t, h, mp)
	ok(t, h, "disk", "create", "v", "--size", "4M")
	disk := filepath.Join(mp, "disks", "v")
	writeAt(t, disk, 0, randBytes(t, 1<<20))
	ok(t, h, "snapshot", "create", "s1", "--disk", "v")
	writeAt(t, disk, 0, randBytes(t, 1<<20)) // s1 now holds 1 MiB exclusively
	ok(t, h, "policy", "quota", "--max-snapshot-bytes", "512K")
	r := fails(t, h, 7, "snapshot", "create", "s2", "--disk", "v")
	if !strings.Contains(r.stderr, "1.0 MiB") || !strings.Contains(r.stderr, "512 KiB") || !strings.Contains(r.stderr, "--max-snapshot-bytes") {
		t.Fatalf("snapshot create over the byte cap: %q, want the figures in KiB/MiB and the way out", r.stderr)
	}
	if out := ok(t, h, "snapshot", "list"); strings.Contains(out, "s2") {
		t.Fatalf("a refused snapshot was created: %s", out)
	}
	ok(t, h, "policy", "quota", "--max-snapshot-bytes", "0")
	ok(t, h, "snapshot", "create", "s2", "--disk", "v")
}
