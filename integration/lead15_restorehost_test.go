package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestLead15RestoreSuggestsOtherHost: on a second host whose own snapshot
// of a name lacks the disk asked for, restore says which host's snapshot
// of that name holds it and how to choose it (it said only "remote
// snapshot "s" has no disk "x"", trial15); with --host it restores.
func TestLead15RestoreSuggestsOtherHost(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	_, key := trial15Region(t, tmp, a)
	add := []string{"region", "add", "dr", "--data", "2", "--parity", "1", "--key-file", key}
	for i := range 3 {
		add = append(add, "--store", "file://"+filepath.Join(tmp, "store"+string(rune('0'+i))))
	}
	ok(t, b, "init", "--host-name", "web2")
	ok(t, b, add...)
	ok(t, a, "disk", "create", "x", "--size", "1M")
	ok(t, a, "snapshot", "create", "s", "--disk", "x")
	ok(t, a, "sync", "--region", "dr")
	ok(t, b, "disk", "create", "y", "--size", "1M")
	ok(t, b, "snapshot", "create", "s", "--disk", "y")
	ok(t, b, "sync", "--region", "dr")
	r := fails(t, b, 3, "restore", "--region", "dr", "--snapshot", "s", "--disk", "x", "--to", "z")
	if !strings.Contains(r.stderr, "--host web1") {
		t.Fatalf("restore of a disk another host's snapshot of that name holds: %q, want the --host hint", r.stderr)
	}
	if r := fails(t, b, 3, "restore", "--region", "dr", "--snapshot", "s", "--disk", "x", "--to", "z", "--lazy"); !strings.Contains(r.stderr, "--host web1") {
		t.Fatalf("restore --lazy of a disk another host's snapshot of that name holds: %q, want the --host hint", r.stderr)
	}
	if out := ok(t, b, "disk", "list"); strings.Contains(out, "z") {
		t.Fatalf("a refused restore left a disk: %s", out)
	}
	ok(t, b, "restore", "--region", "dr", "--snapshot", "s", "--disk", "x", "--to", "z", "--host", "web1")
}
