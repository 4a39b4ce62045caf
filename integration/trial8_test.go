package integration

// Trial 8: an operator's adversarial trial of the local store and the
// daemon. Each test is one finding: what a user saw, as a test that fails
// while the defect is there.

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestTrial8MountOverDeadMount: after the daemon was SIGKILLed (or the OOM
// killer took it), `snapfs mount M` said "mountpoint M does not exist"
// (exit 3, which snapfs@.service's RestartPreventExitStatus takes as not
// worth retrying): the kernel keeps the dead FUSE mount, and every access to
// M fails with ENOTCONN. Now the mount of the same store removes its dead
// mount and serves again, every fsynced byte intact; a dead mount of
// another store is refused (busy) and left alone.
func TestTrial8MountOverDeadMount(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	pid := daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "4M")
	data := randBytes(t, 1<<20)
	writeAt(t, filepath.Join(mp, "disks", "d"), 0, data)
	killDaemon(t, pid)
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(mp, &sfs); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("statfs of the dead mount: %v, want ENOTCONN", err)
	}

	// Another store's daemon may not take the dead mount over.
	other := filepath.Join(tmp, "other")
	ok(t, other, "init")
	r := fails(t, other, 5, "mount", "--background", mp)
	if !strings.Contains(r.stderr, "dead mount") {
		t.Fatalf("mount over another store's dead mount: %q", r.stderr)
	}
	if !isMounted(mp) {
		t.Fatal("another store's mount removed the dead mount")
	}

	// The same store's mount removes it and serves again.
	ok(t, store, "mount", "--background", mp)
	if got := readAt(t, filepath.Join(mp, "disks", "d"), 0, len(data)); sum(got) != sum(data) {
		t.Fatal("fsynced data differs after the daemon was killed and mounted again")
	}
	ok(t, store, "umount", mp)
	if isMounted(mp) {
		t.Fatal("still mounted after umount")
	}
}
