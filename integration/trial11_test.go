package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// trial11Region adds a 2+1 file:// region "dr" under tmp to store.
func trial11Region(t *testing.T, store, tmp string) {
	t.Helper()
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"region", "add", "dr", "--data", "2", "--parity", "1", "--key-file", key}
	for i := 0; i < 3; i++ {
		d := filepath.Join(tmp, fmt.Sprintf("region%d", i))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		add = append(add, "--store", "file://"+d)
	}
	ok(t, store, add...)
}

// Trial 11: `snapfs umount` while a sync ran through the daemon ended the
// sync with exit 1 and "snapfs: sync snapshot ...: context canceled
// (context canceled)" (a `check --read-data`: "snapfs: context canceled"),
// which says neither what happened nor what to do. The job now ends with
// exit 130 (interrupted) and says the daemon stopped and to run it again;
// run again on a new daemon, it completes.
func TestTrial11UmountDuringSync(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	trial11Region(t, store, tmp)
	ok(t, store, "disk", "create", "d", "--size", "256M")
	disk := filepath.Join(mp, "disks", "d")
	for off := int64(0); off < 192<<20; off += 16 << 20 {
		writeAt(t, disk, off, randBytes(t, 16<<20))
	}
	ok(t, store, "snapshot", "create", "s", "--disk", "d")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--json", "sync", "--region", "dr")
	cmd.Env = append(os.Environ(), "SNAPFS_STORE="+store)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Stop the daemon once the sync has shipped something.
	sc := bufio.NewScanner(out)
	shipping := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"blocks":`) {
			shipping = true
			break
		}
	}
	if !shipping {
		cmd.Wait()
		t.Fatalf("sync ended before it shipped anything: %s", errb.String())
	}
	ok(t, store, "umount", mp)
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	code := 0
	if ee, isExit := err.(*exec.ExitError); isExit {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	msg := errb.String()
	if code == 0 {
		t.Fatalf("the sync finished before the daemon stopped (too little data for this machine?): %q", msg)
	}
	if code != 130 || !strings.HasPrefix(msg, "snapfs: ") || strings.Count(msg, "\n") != 1 ||
		!strings.Contains(msg, "daemon serving the store stopped") || !strings.Contains(msg, "run it again") {
		t.Fatalf("sync cut by snapfs umount: exit %d, stderr %q; want 130 and a line saying the daemon stopped and to run it again", code, msg)
	}
	daemon(t, store, mp)
	ok(t, store, "sync", "--region", "dr")
	ok(t, store, "region", "check", "dr", "--read-data")
	back := filepath.Join(mp, "disks", "back")
	ok(t, store, "restore", "--region", "dr", "--snapshot", "s", "--disk", "d", "--to", "back")
	if a, b := fileSum(t, filepath.Join(mp, "snapshots", "s", "d")), fileSum(t, back); a != b {
		t.Fatal("restore after the interrupted and resumed sync differs from the snapshot")
	}
}

// Trial 11: `kill -HUP` of the daemon (a closed terminal, or an operator's
// "reload") ended it at once, as SIGKILL would: the mount left dead
// ("Transport endpoint is not connected"), ext4 on a loop device of one
// of its disks failing with EIO, nothing in the log. SIGHUP is now logged
// and ignored: the daemon keeps serving through writes, and SIGTERM
// afterwards still stops it cleanly with every fsynced byte kept.
func TestTrial11SighupKeepsServing(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	pid := daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "64M")
	disk := filepath.Join(mp, "disks", "d")
	data := randBytes(t, 4<<20)
	writeAt(t, disk, 0, data)
	stop := make(chan struct{})
	werr := make(chan error, 1)
	go func() { // writes going on while the signal arrives
		f, err := os.OpenFile(disk, os.O_WRONLY, 0)
		if err != nil {
			werr <- err
			return
		}
		defer f.Close()
		buf := make([]byte, 64<<10)
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				werr <- f.Sync()
				return
			default:
			}
			if _, err := f.WriteAt(buf, 8<<20+(i%512)*int64(len(buf))); err != nil {
				werr <- err
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	if err := exec.Command("kill", "-HUP", pid).Run(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	if err := <-werr; err != nil {
		t.Fatalf("writes across SIGHUP: %v", err)
	}
	if _, err := os.Stat("/proc/" + pid); err != nil {
		t.Fatalf("daemon %s died of SIGHUP", pid)
	}
	if got := readAt(t, disk, 0, len(data)); !bytes.Equal(got, data) {
		t.Fatal("disk reads other data after SIGHUP")
	}
	ok(t, store, "status")
	if err := exec.Command("kill", "-TERM", pid).Run(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); isMounted(mp); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("SIGTERM after SIGHUP: still mounted after 30 s")
		}
	}
	daemon(t, store, mp)
	if got := readAt(t, disk, 0, len(data)); !bytes.Equal(got, data) {
		t.Fatal("fsynced data lost across SIGHUP and SIGTERM")
	}
}

// Trial 11: `umount -l` of the mount from outside while ext4 on a loop
// device of one of its disks is mounted. The daemon serves on (the kernel
// keeps the connection while the loop device holds the disk file), but
// `snapfs umount` then failed with exit 1 and "snapfs: snapfs: unmount M:
// invalid argument". It now says what happened and what to do (exit 5);
// once the loop device is released, the daemon flushes and stops by
// itself, no fsynced byte is lost, and the store mounts again.
func TestTrial11LazyUnmountFromOutside(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	pid := daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "64M")
	disk := filepath.Join(mp, "disks", "d")
	sh(t, "mkfs.ext4", "-q", "-F", disk)
	guest := filepath.Join(tmp, "guest")
	undoGuest := loopMount(t, disk, guest)
	data := randBytes(t, 1<<20)
	writeFileSync(t, filepath.Join(guest, "f"), data)

	sh(t, "umount", "-l", mp)
	// Writes through the detached mount still reach the daemon.
	more := randBytes(t, 1<<20)
	writeFileSync(t, filepath.Join(guest, "g"), more)
	r := fails(t, store, 5, "umount", mp)
	if !strings.Contains(r.stderr, "detached from outside") || strings.Contains(r.stderr, "snapfs: snapfs:") {
		t.Fatalf("snapfs umount of a lazily detached mount: %q", r.stderr)
	}
	// Mounting the store again (elsewhere) says why it cannot yet.
	r = fails(t, store, 5, "mount", "--background", filepath.Join(tmp, "m2"))
	if !strings.Contains(r.stderr, "detached from outside") {
		t.Fatalf("snapfs mount while the detached mount still serves: %q", r.stderr)
	}
	undoGuest()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat("/proc/" + pid); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not stop once the detached mount's last file closed")
		}
	}
	daemon(t, store, mp)
	loopMount(t, disk, guest, "-o", "ro")
	if got, err := os.ReadFile(filepath.Join(guest, "f")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file written before the detach: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(guest, "g")); err != nil || !bytes.Equal(got, more) {
		t.Fatalf("file written through the detached mount: %v", err)
	}
}

// Trial 11: the store's filesystem out of inodes (df -i at 100 %, df
// showing free bytes). Writes fail with ENOSPC as on a full filesystem, but
// after an unmount no command could open the store again: exit 1 and the
// index library's "cannot create memtable err: ... no space left on
// device", which next to free bytes in df explains nothing. It is now exit
// 7 (no space), naming the free inodes and what to do; once files are
// removed there, the store mounts again with its data.
func TestTrial11StoreOutOfInodes(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	img := filepath.Join(tmp, "fs.img")
	sh(t, "truncate", "-s", "256M", img)
	sh(t, "mkfs.ext4", "-q", "-F", "-N", "128", img)
	fsdir := filepath.Join(tmp, "fs")
	loopMount(t, img, fsdir)
	store, mp := filepath.Join(fsdir, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "16M")
	data := randBytes(t, 1<<20)
	writeAt(t, filepath.Join(mp, "disks", "d"), 0, data)
	ok(t, store, "umount", mp)

	// Someone else's small files take every inode left.
	filler := filepath.Join(fsdir, "filler")
	if err := os.Mkdir(filler, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		f, err := os.Create(filepath.Join(filler, fmt.Sprint(i)))
		if err != nil {
			// One inode back: the index makes its lock file, then fails
			// (and logs) on its next file.
			if i > 0 {
				os.Remove(filepath.Join(filler, fmt.Sprint(i-1)))
			}
			break
		}
		f.Close()
	}
	for _, args := range [][]string{{"mount", "--background", mp}, {"disk", "list"}} {
		r := snapfs(t, store, args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		last := lines[len(lines)-1]
		if r.code != 7 || !strings.HasPrefix(last, "snapfs: no space left") || !strings.Contains(last, "inodes") {
			t.Fatalf("snapfs %v with no free inodes: exit %d, %q; want 7 and a line naming the inodes", args, r.code, r.stderr)
		}
	}
	// A one-shot command prints its one line, not the index library's
	// records of the same failure.
	if r := fails(t, store, 7, "snapshot", "list"); !strings.Contains(r.stderr, "inodes") {
		t.Fatalf("snapshot list with no free inodes: %q", r.stderr)
	}
	if err := os.RemoveAll(filler); err != nil {
		t.Fatal(err)
	}
	daemon(t, store, mp)
	if got := readAt(t, filepath.Join(mp, "disks", "d"), 0, len(data)); !bytes.Equal(got, data) {
		t.Fatal("data differs after the inodes came back")
	}
	ok(t, store, "check", "--read-data")
}

// Trial 11: a daemon started under `ulimit -n 64` mounted without a word;
// with 7 of 20 disks written, writes failed with "too many open files"
// (mkfs.ext4 among them), and the daemon could no longer flush to unmount.
// It now warns at mount (on the command's stderr, also with --background)
// that the limit is below what it needs, and how to raise it.
func TestTrial11LowFileLimitWarns(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `ulimit -n 64 && exec "$0" mount --background "$1"`, bin, mp)
	cmd.Env = append(os.Environ(), "SNAPFS_STORE="+store)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("mount under ulimit -n 64: %v: %s", err, errb.String())
	}
	t.Cleanup(func() { stopDaemon(t, store, mp, "") })
	if !strings.Contains(errb.String(), "open file limit is 64") || !strings.Contains(errb.String(), "ulimit -n") {
		t.Fatalf("mount under ulimit -n 64 said nothing of it: %q", errb.String())
	}
}

// Trial 11: `snapfs snapshot delete S` while `snapfs restore-file S dir`
// copied S's files: restore-file kept its promise (nothing left in the
// target, exit 3) but said "not found: M/snapshots/S/vol1.files/doc: no
// such file or directory", pointing at a path that did exist. It now says
// the snapshot was deleted meanwhile. 20,000 small files: the copy takes
// well over the second after which restore-file prints its first progress
// line, when the snapshot is deleted.
func TestTrial11RestoreFileSnapshotDeleted(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "512M")
	disk := filepath.Join(mp, "disks", "d")
	sh(t, "mkfs.ext4", "-q", "-F", disk)
	guest := filepath.Join(tmp, "guest")
	undo := loopMount(t, disk, guest)
	tree := filepath.Join(guest, "tree")
	blob := randBytes(t, 2<<10)
	for i := 0; i < 80; i++ {
		dir := filepath.Join(tree, fmt.Sprint(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 250; j++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(j)), blob, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	undo() // unmounted: everything written to the disk
	ok(t, store, "snapshot", "create", "s", "--disk", "d")

	to := filepath.Join(tmp, "to")
	if err := os.Mkdir(to, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	started := time.Now()
	cmd := exec.CommandContext(ctx, bin, "--json", "restore-file", "s", "tree", "--disk", "d", "--to", to)
	cmd.Env = append(os.Environ(), "SNAPFS_STORE="+store)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	copying := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "restore_progress") {
			copying = true
			break
		}
	}
	if !copying {
		cmd.Wait()
		t.Fatalf("restore-file ended before its first progress line: %s", errb.String())
	}
	ok(t, store, "snapshot", "delete", "s")
	t.Logf("snapshot deleted %v after restore-file started", time.Since(started).Round(time.Millisecond))
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	code := 0
	if ee, isExit := err.(*exec.ExitError); isExit {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code == 0 {
		t.Fatal("restore-file finished although its snapshot was deleted mid-copy (too few files to be cut?)")
	}
	if code != 3 || !strings.Contains(errb.String(), "snapshot s was deleted") {
		t.Fatalf("restore-file whose snapshot was deleted mid-copy: exit %d, %q; want 3 and a line saying the snapshot was deleted", code, errb.String())
	}
	if names := dirNames(t, to); len(names) != 0 {
		t.Fatalf("restore-file left %v in the target", names)
	}
}

// Trial 11: a store on a filesystem that is read-only (mounted so, or
// remounted so by ext4 after an error: errors=remount-ro) made every
// command exit 1 with the raw "open .../lock: read-only file system"
// (with a daemon running when ext4 went read-only, snapshot create too:
// "sync log: write segment 153: ...: read-only file system"). Exit 10
// (read-only) is the documented code for it.
func TestTrial11StoreReadOnly(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	img := filepath.Join(tmp, "fs.img")
	sh(t, "truncate", "-s", "256M", img)
	sh(t, "mkfs.ext4", "-q", "-F", img)
	fsdir := filepath.Join(tmp, "fs")
	loopMount(t, img, fsdir)
	store, mp := filepath.Join(fsdir, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	ok(t, store, "disk", "create", "d", "--size", "16M")
	sh(t, "mount", "-o", "remount,ro", fsdir)
	for _, args := range [][]string{{"disk", "list"}, {"snapshot", "create", "s", "--disk", "d"}, {"mount", "--background", mp}} {
		r := snapfs(t, store, args...)
		if r.code != 10 || !strings.HasPrefix(r.stderr, "snapfs: ") || !strings.Contains(r.stderr, "read-only") {
			t.Errorf("snapfs %v on a read-only store filesystem: exit %d, %q; want 10", args, r.code, r.stderr)
		}
	}
	sh(t, "mount", "-o", "remount,rw", fsdir)
	daemon(t, store, mp)
	ok(t, store, "snapshot", "create", "s", "--disk", "d")
}

// Trial 11: `umount -l` of the mount while only the daemon's own .files
// view was open, then `snapfs umount`: the daemon stopped (its own view
// released, nothing else held the mount), yet the command exited 130 with
// "interrupted: the daemon ... stopped ... (busy: the mount ... was
// detached ...)", two contradicting stories. It now succeeds, and nothing
// of the store stays mounted or attached.
func TestTrial11LazyUnmountWithOwnFilesView(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "64M")
	sh(t, "mkfs.ext4", "-q", "-F", filepath.Join(mp, "disks", "d"))
	ok(t, store, "snapshot", "create", "s", "--disk", "d")
	if names := dirNames(t, filepath.Join(mp, "snapshots", "s", "d.files")); len(names) == 0 {
		t.Fatal("the snapshot's files show nothing")
	}
	sh(t, "umount", "-l", mp)
	if r := snapfs(t, store, "umount", mp); r.code != 0 && r.code != 3 {
		t.Fatalf("snapfs umount after an outside umount -l with only the daemon's own view open: exit %d: %q", r.code, r.stderr)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		data, _ := os.ReadFile("/proc/self/mounts")
		loops, _ := exec.Command("losetup", "-a").Output()
		if !strings.Contains(string(data), store) && !strings.Contains(string(loops), mp) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left after the daemon stopped:\n%s\n%s", data, loops)
		}
	}
	daemon(t, store, mp)
	ok(t, store, "snapshot", "list")
}

// Trial 11: `snapfs disk lock` of an encrypted disk after one of its
// snapshots' .files had been browsed was refused (exit 5: "disk
// snapmount-S-D-1 (sharing the key of D) is open; close it first"), naming
// the daemon's own cached view, which the user cannot close (it goes after
// --files-idle). The lock now releases unused views first. A view of a
// locked disk then fails with ENOKEY ("Required key not available"), not
// EIO remembered as corruption for 30 s: after unlock it opens at once.
func TestTrial11LockWithFilesViewCached(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	key := filepath.Join(tmp, "disk.key")
	if err := os.WriteFile(key, randBytes(t, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, store, "init")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	ok(t, store, "mount", "--background", "--key-file", key, mp)
	t.Cleanup(func() { stopDaemon(t, store, mp, "") })
	ok(t, store, "disk", "create", "v", "--size", "64M", "--encrypt", "--key-file", key)
	disk := filepath.Join(mp, "disks", "v")
	sh(t, "mkfs.ext4", "-q", "-F", disk)
	guest := filepath.Join(tmp, "guest")
	undo := loopMount(t, disk, guest)
	if err := os.WriteFile(filepath.Join(guest, "f"), []byte("enc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	undo()
	ok(t, store, "snapshot", "create", "s", "--disk", "v")
	f := filepath.Join(mp, "snapshots", "s", "v.files", "f")
	if b, err := os.ReadFile(f); err != nil || string(b) != "enc\n" {
		t.Fatalf("the snapshot's file: %q %v", b, err)
	}
	ok(t, store, "disk", "lock", "v")
	if _, err := os.ReadFile(f); !errors.Is(err, syscall.ENOKEY) {
		t.Fatalf("a file of a locked disk's snapshot: %v; want ENOKEY", err)
	}
	ok(t, store, "disk", "unlock", "v", "--key-file", key)
	if b, err := os.ReadFile(f); err != nil || string(b) != "enc\n" {
		t.Fatalf("the snapshot's file once unlocked: %q %v", b, err)
	}
}
