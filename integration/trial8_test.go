package integration

// Trial 8: an operator's adversarial trial of the local store and the
// daemon. Each test is one finding: what a user saw, as a test that fails
// while the defect is there.

import (
	"errors"
	"path/filepath"
	"slices"
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

// TestTrial8DeletedSnapshotFilesReleased: after browsing a snapshot's
// files (<snapshot>/<disk>.files/), `snapshot delete` and `gc` freed
// nothing: the scratch clone the browse had mounted, hidden from disk list
// and usage, kept the deleted snapshot's blocks until its idle timeout (5
// minutes by default). The filesystems of deleted snapshots that nothing
// uses are released at the delete, so gc frees their space at once.
func TestTrial8DeletedSnapshotFilesReleased(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "e", "--size", "32M")
	disk := filepath.Join(mp, "disks", "e")
	sh(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "^has_journal", disk) // one group, its metadata at the start
	const held = 4 << 20
	writeAt(t, disk, 16<<20, randBytes(t, held)) // unallocated to ext4: the snapshot's alone once overwritten
	ok(t, store, "snapshot", "create", "s", "--disk", "e")
	writeAt(t, disk, 16<<20, randBytes(t, held))
	if names := dirNames(t, filepath.Join(mp, "snapshots", "s", "e.files")); !slices.Contains(names, "lost+found") {
		t.Fatalf("e.files holds %v", names)
	}
	type gcStats struct {
		Live int64 `json:"live_bytes"`
	}
	var before, after gcStats
	jsonLine(t, ok(t, store, "--json", "gc"), "gc", &before)
	ok(t, store, "snapshot", "delete", "s")
	jsonLine(t, ok(t, store, "--json", "gc"), "gc", &after)
	if freed := before.Live - after.Live; freed < held {
		t.Fatalf("gc after deleting a browsed snapshot freed %d live bytes, want at least %d", freed, held)
	}
	if m := filesMounts(store); len(m) != 0 {
		t.Fatalf("the deleted snapshot's filesystem is still mounted: %v", m)
	}

	// snapshot diff --files against the disk now takes a temporary
	// snapshot and deletes it: its filesystem goes with it (only the old
	// snapshot's stays, for the idle timeout).
	ok(t, store, "snapshot", "create", "s2", "--disk", "e")
	writeAt(t, disk, 16<<20, randBytes(t, held))
	ok(t, store, "snapshot", "diff", "s2", "--disk", "e", "--files")
	if m := filesMounts(store); len(m) != 1 {
		t.Fatalf("after diff --files of s2 and the disk now, .files mounts %v: want s2's alone", m)
	}
}
