package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Trial 13: `snapfs mount --files-max 0` (or -1), `--files-idle 0s` (or a
// negative duration) and `--region-cache 0` mounted the store with the
// defaults (8 trees, 5 minutes, 1 GiB) without a word: a user asking for no
// .files trees, for release at once or for no region cache got something
// else. Each is now refused (exit 2, one line naming the flag) before
// anything is mounted or made, as policy flags given a value that means
// "not given" are.
func TestTrial13MountRefusesMeaninglessValues(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store := filepath.Join(tmp, "store")
	ok(t, store, "init")
	for _, tc := range [][]string{
		{"--files-max", "0"},
		{"--files-max", "-1"},
		{"--files-idle", "0s"},
		{"--files-idle", "-5m"},
		{"--region-cache", "0"},
	} {
		mp := filepath.Join(tmp, "m"+strings.Trim(strings.Join(tc, ""), "-"))
		t.Cleanup(func() { stopDaemon(t, store, mp, "") })
		r := snapfs(t, store, append([]string{"mount", "--background", mp}, tc...)...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "snapfs: ") || strings.Count(r.stderr, "\n") != 1 ||
			!strings.Contains(r.stderr, tc[0]) {
			t.Errorf("mount %s %s: exit %d, stderr %q; want exit 2 and one line naming %s", tc[0], tc[1], r.code, r.stderr, tc[0])
		}
		if isMounted(mp) {
			t.Errorf("mount %s %s mounted the store", tc[0], tc[1])
			stopDaemon(t, store, mp, "")
		}
		if _, err := os.Stat(mp); err == nil {
			t.Errorf("mount %s %s left the mount point %s it made", tc[0], tc[1], mp)
		}
	}
}

// Trial 13: `snapfs umount` of a mount in use said "is in use (open files,
// loop devices or snapshot mounts on its disks); release them and try
// again" (exit 5) without saying which: the user had to find them with
// fuser, losetup and lsof. It now names them, as fuser -m would: the loop
// devices backed by its disks (and where each is mounted), and the
// processes whose working directory or open files are in it. So do disk
// delete and disk rollback of a disk that is open.
func TestTrial13UmountNamesHolders(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "8M")
	ok(t, store, "snapshot", "create", "s", "--disk", "d")
	loop := sh(t, "losetup", "-f", "--show", filepath.Join(mp, "disks", "d"))
	defer func() { _ = exec.Command("losetup", "-d", loop).Run() }()
	sleep := exec.Command("sleep", "60")
	sleep.Dir = filepath.Join(mp, "snapshots")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()

	// disk delete and disk rollback of the disk name the loop device too.
	for _, args := range [][]string{{"disk", "delete", "d"}, {"disk", "rollback", "d", "--snapshot", "s"}} {
		if r := fails(t, store, 5, args...); !strings.Contains(r.stderr, "held by "+loop+" (d)") {
			t.Errorf("%s with %s attached to disk d: %q does not name it", strings.Join(args[:2], " "), loop, r.stderr)
		}
	}
	r := fails(t, store, 5, "umount", mp) // the daemon retries a few seconds first
	if !strings.Contains(r.stderr, loop+" (disks/d)") {
		t.Errorf("umount with %s attached to disk d: %q does not name it", loop, r.stderr)
	}
	if want := fmt.Sprintf("sleep (pid %d: working directory)", sleep.Process.Pid); !strings.Contains(r.stderr, want) {
		t.Errorf("umount with a process in the mount: %q does not say %q", r.stderr, want)
	}
	sh(t, "losetup", "-d", loop)
	_ = sleep.Process.Kill()
	_ = sleep.Wait()
	ok(t, store, "umount", mp)
}

// Trial 13: `df M` showed a size, used and available of 0 (statfs of the
// mount's root reported no blocks, and of disks/, snapshots/ and every
// disk file a block size of 0 as well), so df, shutil.disk_usage and
// free-space checks of VM managers saw a full filesystem. Every node of
// the namespace (outside .files, which report the filesystem inside the
// disk) now reports the filesystem that holds the store: what disks can
// still take.
func TestTrial13StatfsReportsStoreSpace(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "8M")
	ok(t, store, "snapshot", "create", "s", "--disk", "d")
	var want syscall.Statfs_t
	if err := syscall.Statfs(store, &want); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{mp, filepath.Join(mp, "disks"), filepath.Join(mp, "disks", "d"), filepath.Join(mp, "snapshots"),
		filepath.Join(mp, "snapshots", "s"), filepath.Join(mp, "snapshots", "s", "d"), filepath.Join(mp, "snapshots", "s", "snapshot.json"),
		filepath.Join(mp, "images")} {
		var got syscall.Statfs_t
		if err := syscall.Statfs(p, &got); err != nil {
			t.Fatal(err)
		}
		if got.Bsize == 0 || got.Blocks != want.Blocks*uint64(want.Bsize)/uint64(got.Bsize) || got.Bavail == 0 {
			t.Errorf("statfs %s: bsize %d, blocks %d, available %d; want the store's filesystem (bsize %d, blocks %d, available %d)",
				p, got.Bsize, got.Blocks, got.Bavail, want.Bsize, want.Blocks, want.Bavail)
		}
	}
}
