package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// Trial 13: `snapshot create --freeze vol1=/mnt/vol1`, the form policy
// create takes (and prints in policy info), failed with "freeze
// /cwd/vol1=/mnt/vol1: lstat /cwd/vol1=: no such file or directory"; it is
// now taken as in a policy (the filesystem of that disk), and a DISK= that
// names no --disk is refused (exit 2). A pre-hook failing without output
// said `pre-hook "exit 3" failed: exit status 3:`, a dangling colon.
func TestTrial13SnapshotFreezeDiskForm(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "64M")
	ok(t, store, "disk", "create", "e", "--size", "8M")
	sh(t, "mkfs.ext4", "-q", filepath.Join(mp, "disks", "d"))
	fsdir := filepath.Join(tmp, "fs")
	loopMount(t, filepath.Join(mp, "disks", "d"), fsdir)

	out := ok(t, store, "snapshot", "create", "s1", "--disk", "d", "--freeze", "d="+fsdir)
	if !strings.Contains(out, "filesystem-consistent") {
		t.Errorf("snapshot create --freeze d=%s: %q, want a filesystem-consistent snapshot", fsdir, out)
	}
	fails(t, store, 2, "snapshot", "create", "s2", "--disk", "d", "--disk", "e", "--freeze", "x="+fsdir)
	// The filesystem of d is not in e.
	fails(t, store, 2, "snapshot", "create", "s3", "--disk", "d", "--disk", "e", "--freeze", "e="+fsdir)
	for _, s := range []string{"s2", "s3"} {
		fails(t, store, 3, "snapshot", "info", s)
	}

	r := fails(t, store, 5, "snapshot", "create", "s4", "--disk", "d", "--pre-hook", "exit 3") // exit 5 since trial14
	if line := strings.TrimSpace(r.stderr); strings.HasSuffix(line, ":") {
		t.Errorf("a pre-hook failing without output: %q ends with a colon", line)
	}
}
