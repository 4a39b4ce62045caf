package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapfs/snapfs/integration/testutil"
)

// needFS skips (through testutil) when the mkfs of fstype is missing.
func needFS(t *testing.T, fstype string) {
	t.Helper()
	if _, err := exec.LookPath("mkfs." + fstype); err != nil {
		testutil.Skipf(t, "mkfs.%s not installed (scripts/test.sh installs it)", fstype)
	}
}

func mkfs(t *testing.T, fstype, dev string) {
	t.Helper()
	switch fstype {
	case "ext4":
		sh(t, "mkfs.ext4", "-q", "-F", "-I", "256", dev)
	case "xfs":
		sh(t, "mkfs.xfs", "-q", "-f", dev)
	case "btrfs":
		// mkfs.btrfs stats every mount of the host: one going away at that
		// moment (another test's) fails it with ENOTCONN. Retried.
		for i := 0; ; i++ {
			out, err := exec.Command("mkfs.btrfs", "-q", "-f", dev).CombinedOutput()
			if err == nil {
				break
			}
			if i == 5 || !strings.Contains(string(out), "cannot check mount status") {
				t.Fatalf("mkfs.btrfs %s: %v: %s", dev, err, out)
			}
			time.Sleep(time.Second)
		}
	default:
		t.Fatalf("mkfs %s", fstype)
	}
}

// fileMeta is what a test checks of one file of a tree.
type fileMeta struct {
	mode     uint32
	uid, gid uint32
	size     int64
	mtime    int64 // ns
	sum      string
	link     string
	xattrs   string
	nlink    uint64
	ino      uint64
}

// treeModel walks root and records every entry's metadata, keyed by path
// relative to root (lost+found skipped).
func treeModel(t *testing.T, root string) map[string]fileMeta {
	t.Helper()
	out := map[string]fileMeta{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if rel == "lost+found" {
			return filepath.SkipDir
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		m := fileMeta{mode: st.Mode, uid: st.Uid, gid: st.Gid, mtime: st.Mtim.Nano(), nlink: st.Nlink, ino: st.Ino}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			m.size = st.Size
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("read %s: %w", rel, err)
			}
			m.sum = hex.EncodeToString(h.Sum(nil))
		case syscall.S_IFLNK:
			m.link, _ = os.Readlink(p)
		}
		m.xattrs = xattrsOf(p)
		out[rel] = m
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

// xattrsOf lists the user.* extended attributes of p, sorted, with values.
func xattrsOf(p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	var names []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if strings.HasPrefix(name, "user.") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		v := make([]byte, 256)
		vn, _ := unix.Lgetxattr(p, name, v)
		fmt.Fprintf(&b, "%s=%q;", name, v[:max(vn, 0)])
	}
	return b.String()
}

// writeTree fills dir with a seeded tree: files of several sizes (one
// sparse), directories, a symlink, a hard link, owners, modes, times and
// an extended attribute.
func writeTree(t *testing.T, dir string, seed int64) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		d := filepath.Join(dir, fmt.Sprintf("d%d", i), "sub")
		must(os.MkdirAll(d, 0o755))
		for j := 0; j < 5; j++ {
			data := make([]byte, rng.Intn(200<<10))
			rng.Read(data)
			p := filepath.Join(d, fmt.Sprintf("f%d", j))
			must(os.WriteFile(p, data, 0o644))
		}
	}
	sparse := filepath.Join(dir, "sparse")
	f, err := os.Create(sparse)
	must(err)
	_, err = f.WriteAt([]byte("head"), 0)
	must(err)
	_, err = f.WriteAt([]byte("tail"), 20<<20)
	must(err)
	must(f.Close())
	must(os.Symlink("d0/sub/f0", filepath.Join(dir, "link")))
	must(os.Link(filepath.Join(dir, "d1/sub/f1"), filepath.Join(dir, "hard")))
	must(os.Chown(filepath.Join(dir, "d2/sub/f2"), 1234, 5678))
	must(os.Chmod(filepath.Join(dir, "d3/sub/f3"), 0o4751))
	must(os.Chmod(filepath.Join(dir, "d3"), 0o700))
	must(unix.Setxattr(filepath.Join(dir, "d0/sub/f1"), "user.snapfs", []byte("kept"), 0))
	old := time.Date(2001, 2, 3, 4, 5, 6, 789000000, time.UTC)
	must(os.Chtimes(filepath.Join(dir, "d1/sub/f4"), old, old))
	must(unix.Lutimes(filepath.Join(dir, "link"), []unix.Timeval{unix.NsecToTimeval(old.UnixNano()), unix.NsecToTimeval(old.UnixNano())}))
	must(os.Chtimes(filepath.Join(dir, "d2"), old, old))
}

// compareTrees fails on every difference of got from want; ino compares
// hard-link groups (same inode in want <=> same inode in got).
func compareTrees(t *testing.T, what string, want, got map[string]fileMeta, times bool) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: %s is missing", what, p)
			continue
		}
		dir := w.mode&syscall.S_IFMT == syscall.S_IFDIR // a directory's nlink is the filesystem's (btrfs: 1)
		if g.mode != w.mode || g.uid != w.uid || g.gid != w.gid || g.size != w.size || g.sum != w.sum || g.link != w.link || g.xattrs != w.xattrs || (!dir && g.nlink != w.nlink) {
			t.Errorf("%s: %s differs:\n got %+v\nwant %+v", what, p, g, w)
		}
		if times && w.mode&syscall.S_IFMT != syscall.S_IFDIR && g.mtime != w.mtime {
			t.Errorf("%s: %s mtime %d, want %d", what, p, g.mtime, w.mtime)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected %s", what, p)
		}
	}
	// Hard links: the same inode groups.
	group := func(m map[string]fileMeta) map[string]string {
		byIno := map[uint64][]string{}
		for p, x := range m {
			if x.mode&syscall.S_IFMT == syscall.S_IFREG {
				byIno[x.ino] = append(byIno[x.ino], p)
			}
		}
		out := map[string]string{}
		for _, ps := range byIno {
			sort.Strings(ps)
			for _, p := range ps {
				out[p] = strings.Join(ps, ",")
			}
		}
		return out
	}
	gw, gg := group(want), group(got)
	for p, w := range gw {
		if gg[p] != w {
			t.Errorf("%s: hard links of %s: %q, want %q", what, p, gg[p], w)
		}
	}
}

func fileSha(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// filesMounts lists the .files mounts of store (under <store>/files).
// (A mountpoint is counted once: /proc/self/mounts is read in several
// reads, and a mount or unmount between two of them can show a line twice.)
func filesMounts(store string) []string {
	data, _ := os.ReadFile("/proc/self/mounts")
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], store+"/files/") && !seen[f[1]] {
			seen[f[1]] = true
			out = append(out, f[1])
		}
	}
	return out
}

// noLeftovers fails if a mount or loop device of store's .files is left.
func noLeftovers(t *testing.T, store string) {
	t.Helper()
	if ms := filesMounts(store); len(ms) > 0 {
		t.Errorf(".files mounts left: %v", ms)
	}
	out, _ := exec.Command("losetup", "-a").CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, filepath.Dir(store)) {
			t.Errorf("loop device left: %s", line)
		}
	}
}

// TestFilesBrowse: on ext4, xfs and btrfs inside a disk, every file under
// M/snapshots/<s>/<d>.files (and M/images/<i>.files) has the content,
// owner, mode, size, symlink target, hard links and xattrs written before
// the snapshot; cp -a out of it reproduces them with their times; the
// snapshot's bytes are unchanged after; nothing is left after umount.
func TestFilesBrowse(t *testing.T) {
	needRoot(t)
	for _, fstype := range []string{"ext4", "xfs", "btrfs"} {
		t.Run(fstype, func(t *testing.T) {
			needFS(t, fstype)
			tmp := t.TempDir()
			store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
			ok(t, store, "init")
			daemon(t, store, mp)
			ok(t, store, "disk", "create", "d1", "--size", "320M")
			disk := filepath.Join(mp, "disks", "d1")
			mkfs(t, fstype, disk)
			vol := filepath.Join(tmp, "vol")
			undo := loopMount(t, disk, vol)
			writeTree(t, vol, 1)
			want := treeModel(t, vol)
			undo()
			ok(t, store, "snapshot", "create", "s1", "--disk", "d1")
			ok(t, store, "image", "create", "i1", "--snapshot", "s1", "--disk", "d1")
			snapSum := fileSha(t, filepath.Join(mp, "snapshots", "s1", "d1"))

			if ms := filesMounts(store); len(ms) > 0 {
				t.Fatalf("something is mounted before anyone entered .files: %v", ms)
			}
			names := strings.Join(dirNames(t, filepath.Join(mp, "snapshots", "s1")), " ")
			if names != "d1 d1.files snapshot.json" {
				t.Fatalf("snapshot directory lists %q", names)
			}
			if ms := filesMounts(store); len(ms) > 0 {
				t.Fatalf("listing the snapshot directory mounted %v", ms)
			}
			start := time.Now()
			dirNames(t, filepath.Join(mp, "snapshots", "s1", "d1.files"))
			t.Logf("%s: entering .files took %v", fstype, time.Since(start))
			files := filepath.Join(mp, "snapshots", "s1", "d1.files")
			compareTrees(t, ".files", want, treeModel(t, files), true)
			compareTrees(t, "images/i1.files", want, treeModel(t, filepath.Join(mp, "images", "i1.files")), true)

			cp := filepath.Join(tmp, "copy")
			if out, err := exec.Command("cp", "-a", files+"/.", cp).CombinedOutput(); err != nil {
				t.Fatalf("cp -a: %v: %s", err, out)
			}
			got := treeModel(t, cp)
			delete(got, "lost+found")
			compareTrees(t, "cp -a", want, got, true)
			// Sparse stays sparse (cp finds the holes through SEEK_HOLE).
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(cp, "sparse"), &st); err != nil || st.Blocks*512 > 1<<20 {
				t.Errorf("sparse file copied with %d bytes allocated (err %v)", st.Blocks*512, err)
			}
			// Read-only.
			if err := os.WriteFile(filepath.Join(files, "new"), nil, 0o644); !errorsIs(err, syscall.EROFS) {
				t.Errorf("create in .files: %v, want EROFS", err)
			}
			if got := fileSha(t, filepath.Join(mp, "snapshots", "s1", "d1")); got != snapSum {
				t.Errorf("the snapshot's bytes changed after browsing")
			}
			ok(t, store, "umount", mp)
			noLeftovers(t, store)
		})
	}
}

func errorsIs(err error, target syscall.Errno) bool {
	var e syscall.Errno
	for err != nil {
		if x, ok := err.(syscall.Errno); ok {
			e = x
			break
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			break
		}
		err = u.Unwrap()
	}
	return e == target
}

// TestFilesGPT: a GPT disk with two partitions (ext4 and xfs) shows
// <d>.files/p1 and p2 with their files.
func TestFilesGPT(t *testing.T) {
	needRoot(t)
	needFS(t, "xfs")
	if _, err := exec.LookPath("sgdisk"); err != nil {
		testutil.Skipf(t, "sgdisk not installed (scripts/test.sh installs gdisk)")
	}
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "vm", "--size", "460M")
	disk := filepath.Join(mp, "disks", "vm")
	sh(t, "sgdisk", "-n", "1:2048:+120M", "-n", "2:0:0", disk)
	// Partitions through loop devices over their ranges (the kernel may
	// have no partition table support).
	want := map[string]map[string]fileMeta{}
	for i, p := range []string{"p1", "p2"} {
		var first, last int64
		for _, line := range strings.Split(sh(t, "sgdisk", "-i", p[1:], disk), "\n") {
			fmt.Sscanf(line, "First sector: %d", &first)
			fmt.Sscanf(line, "Last sector: %d", &last)
		}
		if first == 0 || last <= first {
			t.Fatalf("partition %s: sectors %d-%d", p, first, last)
		}
		loop := sh(t, "losetup", "-f", "--show", "-o", fmt.Sprint(first*512), "--sizelimit", fmt.Sprint((last-first+1)*512), disk)
		t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })
		mkfs(t, map[string]string{"p1": "ext4", "p2": "xfs"}[p], loop)
		vol := filepath.Join(tmp, "vol"+p)
		plainMount(t, vol, loop)
		writeTree(t, vol, int64(10+i))
		want[p] = treeModel(t, vol)
		sh(t, "umount", vol)
		sh(t, "losetup", "-d", loop)
	}
	ok(t, store, "snapshot", "create", "s1", "--disk", "vm")
	files := filepath.Join(mp, "snapshots", "s1", "vm.files")
	if names := strings.Join(dirNames(t, files), " "); names != "p1 p2" {
		t.Fatalf("vm.files lists %q, want p1 p2", names)
	}
	for p, w := range want {
		compareTrees(t, p, w, treeModel(t, filepath.Join(files, p)), true)
	}
	ok(t, store, "umount", mp)
	noLeftovers(t, store)
}

// daemonWith starts a background daemon with extra mount flags.
func daemonWith(t *testing.T, store, mp string, flags ...string) string {
	t.Helper()
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	out := ok(t, store, append(append([]string{"--json", "mount", "--background"}, flags...), mp)...)
	var m struct{ PID string }
	jsonLine(t, out, "mount", &m)
	t.Cleanup(func() { stopDaemon(t, store, mp, m.PID) })
	return m.PID
}

func killDaemon(t *testing.T, pid string) {
	t.Helper()
	if err := exec.Command("kill", "-9", pid).Run(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

// TestFilesLimit: 20 .files directories entered in a loop with
// --files-max 4: never more than 4 filesystems mounted at once (sampled
// every millisecond), every one readable, and all released after the
// idle timeout; entering again after that works.
func TestFilesLimit(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemonWith(t, store, mp, "--files-max", "4", "--files-idle", "3s")
	ok(t, store, "disk", "create", "e", "--size", "32M")
	disk := filepath.Join(mp, "disks", "e")
	mkfs(t, "ext4", disk)
	vol := filepath.Join(tmp, "vol")
	undo := loopMount(t, disk, vol)
	for i := 0; i < 20; i++ {
		writeFileSync(t, filepath.Join(vol, "n"), []byte(fmt.Sprint(i)))
		sh(t, "sync", "-f", vol)
		ok(t, store, "snapshot", "create", fmt.Sprintf("s%02d", i), "--disk", "e")
	}
	undo()

	stop := make(chan struct{})
	peak := make(chan int)
	go func() {
		most := 0
		for {
			select {
			case <-stop:
				peak <- most
				return
			default:
			}
			most = max(most, len(filesMounts(store)))
			time.Sleep(time.Millisecond)
		}
	}()
	for i := 0; i < 20; i++ {
		got, err := os.ReadFile(filepath.Join(mp, "snapshots", fmt.Sprintf("s%02d", i), "e.files", "n"))
		if err != nil || string(got) != fmt.Sprint(i) {
			t.Fatalf("s%02d/e.files/n: %q, %v", i, got, err)
		}
		if n := len(filesMounts(store)); n > 4 {
			t.Fatalf("%d filesystems mounted after entering %d", n, i+1)
		}
	}
	// 8 readers at once over 8 snapshots: each waits for a free slot, none fails.
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			for k := 0; k < 5; k++ {
				got, err := os.ReadFile(filepath.Join(mp, "snapshots", fmt.Sprintf("s%02d", i), "e.files", "n"))
				if err == nil && string(got) != fmt.Sprint(i) {
					err = fmt.Errorf("s%02d: read %q", i, got)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Errorf("concurrent reader: %v", err)
		}
	}
	close(stop)
	if p := <-peak; p > 4 || p == 0 {
		t.Fatalf("at most %d filesystems were mounted at once, want 1..4", p)
	}
	// Released in this order: unmounted, loop device detached, scratch
	// clone dropped; each within the idle timeout and its tick.
	ourLoops := func() []string {
		out, _ := exec.Command("losetup", "-a").CombinedOutput()
		var ours []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, filepath.Dir(store)) && strings.Contains(line, "snapmount-") {
				ours = append(ours, line)
			}
		}
		return ours
	}
	clones := func() bool { return strings.Contains(ok(t, store, "disk", "list"), "snapmount-") }
	deadline := time.Now().Add(20 * time.Second)
	for len(filesMounts(store)) > 0 || len(ourLoops()) > 0 || clones() {
		if time.Now().After(deadline) {
			t.Fatalf("left after the idle timeout: mounts %v, loop devices %v, scratch clones %v", filesMounts(store), ourLoops(), clones())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got, err := os.ReadFile(filepath.Join(mp, "snapshots", "s07", "e.files", "n")); err != nil || string(got) != "7" {
		t.Fatalf("after release: %q, %v", got, err)
	}
	ok(t, store, "umount", mp)
	noLeftovers(t, store)
}

// TestFilesCorrupt: a fuzzed ext4 (garbage over its metadata, the
// superblock kept) and a truncated one (its superblock claims twice the
// disk) give EIO, never a hang or a dead daemon, and nothing is left after
// umount.
func TestFilesCorrupt(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)

	// No filesystem: no .files entry, and snapshot info says why.
	ok(t, store, "disk", "create", "raw", "--size", "8M")
	writeAt(t, filepath.Join(mp, "disks", "raw"), 0, randBytes(t, 1<<20))
	ok(t, store, "snapshot", "create", "rawsnap", "--disk", "raw")
	if names := strings.Join(dirNames(t, filepath.Join(mp, "snapshots", "rawsnap")), " "); names != "raw snapshot.json" {
		t.Errorf("snapshot of a disk without a filesystem lists %q", names)
	}
	if _, err := os.Stat(filepath.Join(mp, "snapshots", "rawsnap", "raw.files")); !os.IsNotExist(err) {
		t.Errorf("raw.files: %v, want ENOENT", err)
	}
	var info struct {
		Disks []struct {
			Files struct{ Scheme, Reason string }
		}
	}
	jsonLine(t, ok(t, store, "--json", "snapshot", "info", "rawsnap"), "snapshot", &info)
	if len(info.Disks) != 1 || info.Disks[0].Files.Reason == "" || info.Disks[0].Files.Scheme != "" {
		t.Errorf("snapshot info of a disk without a filesystem: %+v", info)
	}
	if text := ok(t, store, "snapshot", "info", "rawsnap"); !strings.Contains(text, "none: no ext4, xfs or btrfs superblock") {
		t.Errorf("snapshot info does not say why raw has no files:\n%s", text)
	}

	// Fuzzed: a tree written, then random bytes over group 0's inode table
	// (the superblock and group descriptors kept, so that it mounts).
	ok(t, store, "disk", "create", "fz", "--size", "64M")
	disk := filepath.Join(mp, "disks", "fz")
	mkfs(t, "ext4", disk)
	vol := filepath.Join(tmp, "vol")
	undo := loopMount(t, disk, vol)
	writeTree(t, vol, 3)
	undo()
	var bsize, first, last int64
	for _, line := range strings.Split(sh(t, "dumpe2fs", disk), "\n") {
		fmt.Sscanf(strings.TrimSpace(line), "Block size: %d", &bsize)
		if i := strings.Index(line, "Inode table at "); i >= 0 && first == 0 {
			fmt.Sscanf(line[i:], "Inode table at %d-%d", &first, &last)
		}
	}
	if bsize == 0 || first == 0 {
		t.Fatalf("no inode table found (block size %d, table %d-%d)", bsize, first, last)
	}
	rng := rand.New(rand.NewSource(42))
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 64; i++ {
		off := first*bsize + int64(rng.Intn(int(min(last-first+1, 64)*bsize)))
		b := make([]byte, 256)
		rng.Read(b)
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	ok(t, store, "snapshot", "create", "fuzzed", "--disk", "fz")

	// Truncated: an ext4 of 128 MiB whose first 64 MiB fill a 64 MiB disk.
	img := filepath.Join(tmp, "big.img")
	sh(t, "truncate", "-s", "128M", img)
	mkfs(t, "ext4", img)
	ok(t, store, "disk", "create", "tr", "--size", "64M")
	sh(t, "dd", "if="+img, "of="+filepath.Join(mp, "disks", "tr"), "bs=1M", "count=64", "conv=notrunc", "status=none")
	ok(t, store, "snapshot", "create", "truncated", "--disk", "tr")

	walk := func(dir string) (string, error) {
		cmd := exec.Command("timeout", "120", "sh", "-c", `find "$1" -type f -exec cat {} + >/dev/null`, "sh", dir)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 124 {
			t.Fatalf("walking %s hung (killed after 120 s): %s", dir, out)
		}
		return string(out), err
	}
	out, err := walk(filepath.Join(mp, "snapshots", "fuzzed", "fz.files"))
	t.Logf("fuzzed: err %v, %d bytes of errors", err, len(out))
	if err == nil || !strings.Contains(out, "Input/output error") {
		t.Errorf("fuzzed: walking it gave no EIO (err %v): %.500s", err, out)
	}
	// restore-file of the fuzzed tree fails and leaves nothing.
	target := filepath.Join(tmp, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	r := snapfs(t, store, "restore-file", "fuzzed", "d0", "d1", "d2", "d3", "--disk", "fz", "--to", target)
	if r.code == 0 {
		t.Errorf("restore-file of the fuzzed filesystem succeeded: %s", r.stdout)
	}
	t.Logf("restore-file of the fuzzed filesystem: exit %d: %s", r.code, r.stderr)
	if names := dirNames(t, target); len(names) != 0 {
		t.Errorf("a failed restore-file left %v", names)
	}
	_, err = os.ReadDir(filepath.Join(mp, "snapshots", "truncated", "tr.files"))
	if !errorsIs(err, syscall.EIO) {
		t.Errorf("truncated: list .files: %v, want EIO", err)
	}
	// The daemon still serves.
	ok(t, store, "disk", "list")
	ok(t, store, "umount", mp)
	noLeftovers(t, store)
}

// TestFilesUnclean: ext4 written through a loop device when the daemon is
// SIGKILLed; after a restart, a snapshot's .files shows the filesystem as
// after journal replay (every fsync'd file with its content), and the
// snapshot's bytes are not changed by it (the replay goes into a clone).
func TestFilesUnclean(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	pid := daemon(t, store, mp)
	ok(t, store, "disk", "create", "e", "--size", "128M")
	disk := filepath.Join(mp, "disks", "e")
	mkfs(t, "ext4", disk)
	vol := filepath.Join(tmp, "vol")
	undo := loopMount(t, disk, vol)
	want := map[string]string{}
	for i := 0; i < 30; i++ {
		data := randBytes(t, 1000+i*3000)
		name := fmt.Sprintf("f%02d", i)
		writeFileSync(t, filepath.Join(vol, name), data)
		want[name] = sum(data)
	}
	sh(t, "sync", "-f", vol) // the directory entries too
	// Writes in flight when the daemon dies.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			if os.WriteFile(filepath.Join(vol, fmt.Sprintf("late%03d", i)), randBytes(t, 64<<10), 0o644) != nil {
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	killDaemon(t, pid)
	<-done
	undo() // lazily if need be: its loop device reads a dead mount
	ok(t, store, "umount", mp)
	daemon(t, store, mp)
	ok(t, store, "snapshot", "create", "s1", "--disk", "e")
	snap := filepath.Join(mp, "snapshots", "s1", "e")
	if out, _ := exec.Command("dumpe2fs", "-h", snap).CombinedOutput(); !strings.Contains(string(out), "needs_recovery") {
		t.Logf("note: the snapshot's ext4 does not need recovery (dumpe2fs: %.300s)", out)
	}
	before := fileSha(t, snap)
	files := filepath.Join(mp, "snapshots", "s1", "e.files")
	for name, w := range want {
		if got := fileSha(t, filepath.Join(files, name)); got != w {
			t.Errorf("%s: content differs after the crash", name)
		}
	}
	treeModel(t, files) // every file readable
	if fileSha(t, snap) != before {
		t.Errorf("the snapshot's bytes changed (the journal must be replayed into a clone)")
	}
	ok(t, store, "umount", mp)
	noLeftovers(t, store)
}

// TestFilesDiffModel: random file operations (create, delete, append,
// chmod, rename, rename over another file, mkdir) between two snapshots;
// snapshot diff --files reports exactly the model's changes of files and
// the created directories, between the snapshots and against the disk now.
func TestFilesDiffModel(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "e", "--size", "128M")
	disk := filepath.Join(mp, "disks", "e")
	mkfs(t, "ext4", disk)
	vol := filepath.Join(tmp, "vol")
	undo := loopMount(t, disk, vol)
	type file struct {
		id      int
		path    string
		touched bool // content or mode changed
		renamed bool
	}
	rng := rand.New(rand.NewSource(7))
	files := map[string]*file{} // by path
	dirs := []string{"a", "b", "c"}
	next := 0
	newFile := func(p string) {
		if err := os.WriteFile(filepath.Join(vol, p), randBytes(t, rng.Intn(10000)), 0o644); err != nil {
			t.Fatal(err)
		}
		next++
		files[p] = &file{id: next, path: p}
	}
	for _, d := range dirs {
		if err := os.Mkdir(filepath.Join(vol, d), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 30; i++ {
			newFile(fmt.Sprintf("%s/f%d", d, i))
		}
	}
	undo()
	ok(t, store, "snapshot", "create", "s1", "--disk", "e")
	before := map[int]string{}
	for p, f := range files {
		before[f.id] = p
	}
	undo = loopMount(t, disk, vol)
	pick := func() *file {
		ps := make([]string, 0, len(files))
		for p := range files {
			ps = append(ps, p)
		}
		sort.Strings(ps)
		return files[ps[rng.Intn(len(ps))]]
	}
	var newDirs []string
	for op := 0; op < 150; op++ {
		f := pick()
		full := filepath.Join(vol, f.path)
		switch rng.Intn(7) {
		case 0:
			newFile(fmt.Sprintf("%s/n%d", dirs[rng.Intn(len(dirs))], op))
		case 1:
			if err := os.Remove(full); err != nil {
				t.Fatal(err)
			}
			delete(files, f.path)
		case 2:
			fh, err := os.OpenFile(full, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fh.Write([]byte("more"))
			fh.Close()
			f.touched = true
		case 3:
			if err := os.Chmod(full, 0o600); err != nil {
				t.Fatal(err)
			}
			f.touched = true
		case 4, 5:
			to := fmt.Sprintf("%s/r%d", dirs[rng.Intn(len(dirs))], op)
			if rng.Intn(3) == 0 { // over another file
				to = pick().path
				if to == f.path {
					continue
				}
			}
			if err := os.Rename(full, filepath.Join(vol, to)); err != nil {
				t.Fatal(err)
			}
			delete(files, f.path)
			f.path, f.renamed = to, true
			files[to] = f
		case 6:
			d := fmt.Sprintf("d%d", op)
			if err := os.Mkdir(filepath.Join(vol, d), 0o755); err != nil {
				t.Fatal(err)
			}
			dirs = append(dirs, d)
			newDirs = append(newDirs, d)
		}
	}
	undo()
	ok(t, store, "snapshot", "create", "s2", "--disk", "e")

	// The model's changes of files, as "kind path [from] modified".
	want := map[string]bool{}
	after := map[int]*file{}
	for _, f := range files {
		after[f.id] = f
	}
	for id, p := range before {
		f, ok := after[id]
		switch {
		case !ok:
			want["deleted "+p] = true
		case f.path == p && (f.touched || f.renamed):
			want["modified "+p] = true // renamed away and back: its ctime changed
		case f.path != p:
			want[fmt.Sprintf("renamed %s %s %v", f.path, p, f.touched)] = true
		}
	}
	for id, f := range after {
		if _, ok := before[id]; !ok {
			want["created "+f.path] = true
		}
	}
	for _, d := range newDirs {
		want["created "+d] = true
	}
	type change struct {
		Kind, Path, From string
		FileType         string `json:"file_type"`
		Modified         bool
	}
	for _, args := range [][]string{{"s1", "s2"}, {"s1"}} {
		out := ok(t, store, append([]string{"--json", "snapshot", "diff", "--disk", "e", "--files"}, args...)...)
		got := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.Contains(line, `"file_change"`) {
				t.Logf("%v: %s", args, line)
				continue
			}
			var c change
			jsonLine(t, line, "file_change", &c)
			if c.FileType == "dir" && c.Kind == "modified" {
				continue // directories whose entries changed
			}
			key := c.Kind + " " + c.Path
			if c.Kind == "renamed" {
				key = fmt.Sprintf("renamed %s %s %v", c.Path, c.From, c.Modified)
			}
			got[key] = true
		}
		for k := range want {
			if !got[k] {
				t.Errorf("diff %v: missing %q", args, k)
			}
		}
		for k := range got {
			if !want[k] {
				t.Errorf("diff %v: unexpected %q", args, k)
			}
		}
	}
	if list := ok(t, store, "snapshot", "list"); strings.Contains(list, "snapmount-") {
		t.Errorf("the temporary snapshot of diff against now is left: %s", list)
	}
	// No block changed: no file changed, known without walking.
	ok(t, store, "snapshot", "create", "s3", "--disk", "e")
	if out := ok(t, store, "--json", "snapshot", "diff", "s2", "s3", "--disk", "e", "--files"); strings.Contains(out, "file_change") ||
		!strings.Contains(out, `"old_files":0`) {
		t.Errorf("diff of identical snapshots: %s", out)
	}
	ok(t, store, "umount", mp)
	noLeftovers(t, store)
}

// TestRestoreFile: restore-file copies paths out of a snapshot's
// filesystem with owners, modes, times, symlinks, hard links, xattrs and
// holes; an existing destination is refused (exit 4) and a missing source
// (exit 3) without changing anything; --overwrite replaces a file.
func TestRestoreFile(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "d1", "--size", "128M")
	disk := filepath.Join(mp, "disks", "d1")
	mkfs(t, "ext4", disk)
	vol := filepath.Join(tmp, "vol")
	undo := loopMount(t, disk, vol)
	writeTree(t, vol, 5)
	want := treeModel(t, vol)
	undo()
	ok(t, store, "snapshot", "create", "s1", "--disk", "d1")

	target := filepath.Join(tmp, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	out := ok(t, store, "--json", "restore-file", "s1", "d0", "d1", "d2", "d3", "/sparse", "link", "hard", "--disk", "d1", "--to", target)
	var res struct{ Files, Hard_links, Symlinks, Bytes int64 }
	jsonLine(t, out, "restore_file", &res)
	if res.Files == 0 || res.Hard_links != 1 || res.Symlinks != 1 {
		t.Errorf("restore-file counts: %s", out)
	}
	compareTrees(t, "restore-file", want, treeModel(t, target), true)
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(target, "sparse"), &st); err != nil || st.Blocks*512 > 1<<20 {
		t.Errorf("sparse file restored with %d bytes allocated (err %v)", st.Blocks*512, err)
	}

	// Refusals change nothing.
	before := treeModel(t, target)
	fails(t, store, 4, "restore-file", "s1", "d0", "--disk", "d1", "--to", target)
	fails(t, store, 3, "restore-file", "s1", "nonexistent", "--disk", "d1", "--to", target)
	fails(t, store, 3, "restore-file", "nosuch", "d0", "--disk", "d1", "--to", target)
	compareTrees(t, "after refusals", before, treeModel(t, target), true)
	os.Remove(filepath.Join(target, "link"))
	if err := os.WriteFile(filepath.Join(target, "link"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fails(t, store, 4, "restore-file", "s1", "link", "--disk", "d1", "--to", target)
	ok(t, store, "restore-file", "s1", "link", "--disk", "d1", "--to", target, "--overwrite")
	if got, _ := os.Readlink(filepath.Join(target, "link")); got != "d0/sub/f0" {
		t.Errorf("--overwrite: link -> %q", got)
	}
	ok(t, store, "umount", mp)
	noLeftovers(t, store)
	// Without a daemon: exit 9, nothing done.
	fails(t, store, 9, "restore-file", "s1", "d0", "--disk", "d1", "--to", t.TempDir())
	fails(t, store, 9, "snapshot", "diff", "s1", "--disk", "d1", "--files")
	fails(t, store, 9, "snapshot", "mount", "s1", "--disk", "d1", filepath.Join(tmp, "smp"))
}

// TestFilesDaemonKilled: the daemon SIGKILLed while .files filesystems are
// open (one with a file open in it); after snapfs umount and a restart,
// no .files mount, loop device or scratch clone is left, and .files works.
func TestFilesDaemonKilled(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	pid := daemon(t, store, mp)
	ok(t, store, "disk", "create", "e", "--size", "64M")
	disk := filepath.Join(mp, "disks", "e")
	mkfs(t, "ext4", disk)
	vol := filepath.Join(tmp, "vol")
	undo := loopMount(t, disk, vol)
	writeFileSync(t, filepath.Join(vol, "f"), []byte("kept"))
	undo()
	ok(t, store, "snapshot", "create", "s1", "--disk", "e")
	ok(t, store, "snapshot", "create", "s2", "--disk", "e")
	dirNames(t, filepath.Join(mp, "snapshots", "s1", "e.files"))
	f, err := os.Open(filepath.Join(mp, "snapshots", "s2", "e.files", "f"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(filesMounts(store)); n != 2 {
		t.Fatalf("%d .files mounts, want 2", n)
	}
	killDaemon(t, pid)
	f.Close()
	ok(t, store, "umount", mp)
	daemon(t, store, mp)
	if ms := filesMounts(store); len(ms) != 0 {
		t.Errorf(".files mounts left after the restart: %v", ms)
	}
	if out, _ := exec.Command("losetup", "-a").CombinedOutput(); strings.Contains(string(out), "snapmount-") {
		t.Errorf("loop devices left after the restart: %s", out)
	}
	if left := dirNames(t, filepath.Join(store, "snapmounts", "clones")); len(left) != 0 {
		t.Errorf("scratch clones left after the restart: %v", left)
	}
	if got, err := os.ReadFile(filepath.Join(mp, "snapshots", "s2", "e.files", "f")); err != nil || string(got) != "kept" {
		t.Errorf("after the restart: %q %v", got, err)
	}
	ok(t, store, "umount", mp)
	noLeftovers(t, store)
}

// TestFilesEnterTime: entering the .files of a 10 GiB ext4 disk (scratch
// clone, loop device, mount, listing) takes under a second: the best of
// three entries, each after the idle release (the machine is shared).
func TestFilesEnterTime(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemonWith(t, store, mp, "--files-idle", "1s")
	ok(t, store, "disk", "create", "big", "--size", "10G")
	disk := filepath.Join(mp, "disks", "big")
	mkfs(t, "ext4", disk)
	vol := filepath.Join(tmp, "vol")
	undo := loopMount(t, disk, vol)
	for i := 0; i < 100; i++ {
		if err := os.WriteFile(filepath.Join(vol, fmt.Sprintf("f%d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	undo()
	ok(t, store, "snapshot", "create", "s1", "--disk", "big")
	best := time.Hour
	for round := 0; round < 3; round++ {
		for deadline := time.Now().Add(20 * time.Second); len(filesMounts(store)) > 0; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("not released after the idle timeout")
			}
		}
		start := time.Now()
		if n := len(dirNames(t, filepath.Join(mp, "snapshots", "s1", "big.files"))); n != 101 {
			t.Fatalf("big.files lists %d entries, want 101", n)
		}
		best = min(best, time.Since(start))
	}
	t.Logf("entering the .files of a 10 GiB ext4: best of 3: %v", best)
	if best > time.Second {
		t.Errorf("entering the .files of a 10 GiB ext4 took %v (best of 3), want under 1 s", best)
	}
	ok(t, store, "umount", mp)
	noLeftovers(t, store)
}
