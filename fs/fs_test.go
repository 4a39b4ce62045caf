package fs

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/posixtest"
	"github.com/snapfs/snapfs/integration/testutil"
	"github.com/snapfs/snapfs/rowstore"
	"golang.org/x/sys/unix"
)

// testLogger logs warnings and errors to stderr (not to t: the server may log
// after the test returned).
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// mountT mounts b on a fresh directory and unmounts it in t.Cleanup, even
// when the test fails.
func mountT(tb testing.TB, b Backend, edit ...func(*Options)) (*Server, string) {
	tb.Helper()
	mnt := tb.TempDir()
	opts := Options{Backend: b, Logger: testLogger(), Errno: testErrno}
	for _, e := range edit {
		e(&opts)
	}
	srv, err := Mount(mnt, opts)
	if err != nil {
		tb.Fatalf("Mount: %v", err)
	}
	tb.Cleanup(func() {
		var err error
		for i := 0; i < 20; i++ {
			if err = srv.Unmount(); err == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		tb.Errorf("Unmount: %v; detaching", err)
		_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
	})
	return srv, mnt
}

// fixture: disks vol1 (1 MiB, some data) and vol2 (64 KiB); snapshot s1 of
// both; image img1.
func fixture(t *testing.T) (*memBackend, *Server, string) {
	b := newMemBackend()
	d := b.addDisk("vol1", 1<<20)
	copy(d.data[4096:], "hello vol1")
	b.addDisk("vol2", 64<<10)
	b.snapshot("s1", "vol1", "vol2")
	img := bytes.Repeat([]byte("image!"), 10000)
	b.addImage("img1", img)
	srv, mnt := mountT(t, b)
	return b, srv, mnt
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir %s: %v", dir, err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

func ino(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

func TestListing(t *testing.T) {
	_, _, mnt := fixture(t)
	for dir, want := range map[string][]string{
		"":             {"disks", "images", "snapshots"},
		"disks":        {"vol1", "vol2"},
		"snapshots":    {"s1"},
		"snapshots/s1": {"snapshot.json", "vol1", "vol2"},
		"images":       {"img1"},
	} {
		if got := names(t, filepath.Join(mnt, dir)); !slices.Equal(got, want) {
			t.Errorf("ls %q = %v, want %v", dir, got, want)
		}
	}
	// Inode numbers are stable and match readdir.
	seen := map[uint64]string{}
	for _, p := range []string{"disks/vol1", "disks/vol2", "snapshots/s1", "snapshots/s1/vol1",
		"snapshots/s1/vol2", "snapshots/s1/snapshot.json", "images/img1", "disks", "snapshots", "images"} {
		full := filepath.Join(mnt, p)
		a, b := ino(t, full), ino(t, full)
		if a != b {
			t.Errorf("%s: inode %d then %d", p, a, b)
		}
		if other, dup := seen[a]; dup {
			t.Errorf("%s and %s share inode %d", p, other, a)
		}
		seen[a] = p
	}
	es, _ := os.ReadDir(filepath.Join(mnt, "disks"))
	for _, e := range es {
		info, _ := e.Info()
		if got, want := info.Sys().(*syscall.Stat_t).Ino, ino(t, filepath.Join(mnt, "disks", e.Name())); got != want {
			t.Errorf("readdir ino %d != stat ino %d", got, want)
		}
	}
	// Modes.
	for p, want := range map[string]os.FileMode{
		"disks/vol1": 0600, "snapshots/s1/vol1": 0400, "images/img1": 0400,
		"snapshots/s1": os.ModeDir | 0555, "snapshots": os.ModeDir | 0555, "disks": os.ModeDir | 0755,
	} {
		fi, err := os.Stat(filepath.Join(mnt, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestReadWriteUnaligned(t *testing.T) {
	b, _, mnt := fixture(t)
	p := filepath.Join(mnt, "disks/vol1")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	model := b.diskData("vol1")
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		off := rng.Int63n(int64(len(model)) - 1)
		n := 1 + rng.Intn(min(300000, len(model)-int(off)))
		buf := make([]byte, n)
		rng.Read(buf)
		if got, err := f.WriteAt(buf, off); err != nil || got != n {
			t.Fatalf("pwrite %d@%d: %d, %v", n, off, got, err)
		}
		copy(model[off:], buf)
		roff := rng.Int63n(int64(len(model)))
		rn := 1 + rng.Intn(len(model)-int(roff))
		rbuf := make([]byte, rn)
		if got, err := f.ReadAt(rbuf, roff); err != nil || got != rn {
			t.Fatalf("pread %d@%d: %d, %v", rn, roff, got, err)
		}
		if !bytes.Equal(rbuf, model[roff:roff+int64(rn)]) {
			t.Fatalf("pread %d@%d: content differs", rn, roff)
		}
	}
	if !bytes.Equal(b.diskData("vol1"), model) {
		t.Error("backend content differs from model")
	}
	// Reads past the end are short (EOF); writes past it fail.
	buf := make([]byte, 100)
	if n, _ := f.ReadAt(buf, int64(len(model))-10); n != 10 {
		t.Errorf("read across end: %d bytes, want 10", n)
	}
	_, err = f.WriteAt(buf, int64(len(model)))
	wantErrno(t, "write at end", err, syscall.EFBIG)
	n, err := unix.Pwrite(int(f.Fd()), buf, int64(len(model))-10)
	if n != 10 || err != nil {
		t.Errorf("pwrite across end: %d, %v; want a short write of 10", n, err)
	}
}

func TestFsyncAndFlushCallSync(t *testing.T) {
	b, _, mnt := fixture(t)
	f, err := os.OpenFile(filepath.Join(mnt, "disks/vol1"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := b.syncs.Load()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	if got := b.syncs.Load() - before; got != 2 {
		t.Errorf("fsync+fdatasync: %d Backend Syncs, want 2", got)
	}
	if _, err := f.WriteAt([]byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	before = b.syncs.Load()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := b.syncs.Load() - before; got != 1 {
		t.Errorf("close after write: %d Backend Syncs, want 1", got)
	}
	// close reports a failing Sync.
	f, err = os.OpenFile(filepath.Join(mnt, "disks/vol1"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.failSync = fmt.Errorf("injected: %w", rowstore.ErrNoSpace)
	b.mu.Unlock()
	err = f.Close()
	b.mu.Lock()
	b.failSync = nil
	b.mu.Unlock()
	wantErrno(t, "close after failing sync", err, syscall.ENOSPC)
	// A read-only open does not sync at close.
	before = b.syncs.Load()
	if _, err := os.ReadFile(filepath.Join(mnt, "disks/vol2")); err != nil {
		t.Fatal(err)
	}
	if got := b.syncs.Load() - before; got != 0 {
		t.Errorf("read-only open and close: %d Syncs, want 0", got)
	}
}

func TestFallocate(t *testing.T) {
	b, _, mnt := fixture(t)
	p := filepath.Join(mnt, "disks/vol1")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xAA}, 256<<10), 0); err != nil {
		t.Fatal(err)
	}
	// Read first, so the kernel caches the pages the punch must drop.
	if _, err := f.ReadAt(make([]byte, 256<<10), 0); err != nil {
		t.Fatal(err)
	}
	before := b.punches.Load()
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 1000, 70000); err != nil {
		t.Fatalf("punch hole: %v", err)
	}
	if b.punches.Load() != before+1 {
		t.Errorf("punch hole did not call PunchHole")
	}
	got := make([]byte, 256<<10)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	for i, c := range got {
		want := byte(0xAA)
		if i >= 1000 && i < 71000 {
			want = 0
		}
		if c != want {
			t.Fatalf("after punch: byte %d = %#x, want %#x", i, c, want)
		}
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, 100000, 100); err != nil {
		t.Fatalf("zero range: %v", err)
	}
	if _, err := f.ReadAt(got[:200], 99950); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:200], append(append(bytes.Repeat([]byte{0xAA}, 50), make([]byte, 100)...), bytes.Repeat([]byte{0xAA}, 50)...)) {
		t.Errorf("zero range: wrong content")
	}
	// Mode 0 inside the disk: no-op; past the end: grows.
	if err := unix.Fallocate(fd, 0, 0, 4096); err != nil {
		t.Errorf("fallocate mode 0 inside: %v", err)
	}
	if err := unix.Fallocate(fd, 0, 1<<20, 1<<20); err != nil {
		t.Errorf("fallocate mode 0 past end: %v", err)
	}
	if fi, _ := f.Stat(); fi.Size() != 2<<20 {
		t.Errorf("size after fallocate past end: %d, want %d", fi.Size(), 2<<20)
	}
	err = unix.Fallocate(fd, unix.FALLOC_FL_COLLAPSE_RANGE, 0, 4096)
	wantErrno(t, "collapse range", err, syscall.EOPNOTSUPP)
}

func TestTruncate(t *testing.T) {
	_, _, mnt := fixture(t)
	p := filepath.Join(mnt, "disks/vol2")
	if err := os.Truncate(p, 128<<10); err != nil {
		t.Fatalf("grow: %v", err)
	}
	if fi, _ := os.Stat(p); fi.Size() != 128<<10 {
		t.Errorf("size after grow: %d", fi.Size())
	}
	wantErrno(t, "shrink", os.Truncate(p, 4096), syscall.EINVAL)
	if err := os.Truncate(p, 128<<10); err != nil {
		t.Errorf("truncate to same size: %v", err)
	}
	// The new tail reads as zeros and is writable.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(256 << 10); err != nil {
		t.Fatalf("ftruncate grow: %v", err)
	}
	if _, err := f.WriteAt([]byte("tail"), 256<<10-4); err != nil {
		t.Fatalf("write at new end: %v", err)
	}
}

func TestStat(t *testing.T) {
	b, _, mnt := fixture(t)
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mnt, "disks/vol1"), &st); err != nil {
		t.Fatal(err)
	}
	e, _ := b.Disk("vol1")
	if st.Size != 1<<20 || st.Blocks != e.Allocated/512 || st.Blksize != 4096 || st.Nlink != 1 {
		t.Errorf("stat vol1: size %d blocks %d blksize %d nlink %d; want %d %d 4096 1", st.Size, st.Blocks, st.Blksize, st.Nlink, 1<<20, e.Allocated/512)
	}
	if e.Allocated != 4096 {
		t.Errorf("fixture: allocated %d", e.Allocated)
	}
	// st_blocks follows writes (NameTimeout 0: attributes are not cached).
	// os.WriteFile would O_TRUNC, which is a shrink: EINVAL (disks never shrink).
	wantErrno(t, "O_TRUNC open", os.WriteFile(filepath.Join(mnt, "disks/vol1"), []byte{1}, 0), syscall.EINVAL)
	f, err := os.OpenFile(filepath.Join(mnt, "disks/vol1"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte{1}, 64<<10)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(filepath.Join(mnt, "disks/vol1"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks != (64<<10)/512 { // the fixture's block 1 is inside the write
		t.Errorf("blocks after write: %d, want %d", st.Blocks, (64<<10)/512)
	}
	if err := syscall.Stat(filepath.Join(mnt, "snapshots/s1/vol1"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 1<<20 || st.Blocks != 8 {
		t.Errorf("stat s1/vol1: size %d blocks %d", st.Size, st.Blocks)
	}
}

// TestReadOnlyEROFS: every kind of change under snapshots/ and images/.
func TestReadOnlyEROFS(t *testing.T) {
	_, _, mnt := fixture(t)
	j := func(p string) string { return filepath.Join(mnt, p) }
	files := []string{"snapshots/s1/vol1", "snapshots/s1/snapshot.json", "images/img1"}
	dirs := []string{"snapshots", "snapshots/s1", "images"}
	for _, f := range files {
		for _, flags := range []int{os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND} {
			fd, err := os.OpenFile(j(f), flags, 0)
			if err == nil {
				fd.Close()
			}
			wantErrno(t, fmt.Sprintf("open %s %#x", f, flags), err, syscall.EROFS)
		}
		wantErrno(t, "truncate "+f, os.Truncate(j(f), 0), syscall.EROFS)
		wantErrno(t, "chmod "+f, os.Chmod(j(f), 0600), syscall.EROFS)
		wantErrno(t, "chown "+f, os.Chown(j(f), 1, 1), syscall.EROFS)
		wantErrno(t, "utimes "+f, os.Chtimes(j(f), time.Now(), time.Now()), syscall.EROFS)
		wantErrno(t, "unlink "+f, os.Remove(j(f)), syscall.EROFS)
		wantErrno(t, "rename "+f, os.Rename(j(f), j(f)+".x"), syscall.EROFS)
		wantErrno(t, "rename "+f+" to disks", os.Rename(j(f), j("disks/x")), syscall.EROFS)
		wantErrno(t, "link "+f, os.Link(j(f), j(filepath.Dir(f)+"/l")), syscall.EROFS)
		wantErrno(t, "access W_OK "+f, unix.Access(j(f), unix.W_OK), syscall.EROFS)
	}
	for _, d := range dirs {
		fd, err := os.OpenFile(j(d+"/new"), os.O_CREATE|os.O_WRONLY, 0644)
		if err == nil {
			fd.Close()
		}
		wantErrno(t, "create in "+d, err, syscall.EROFS)
		wantErrno(t, "mkdir in "+d, os.Mkdir(j(d+"/newdir"), 0755), syscall.EROFS)
		wantErrno(t, "symlink in "+d, os.Symlink("x", j(d+"/sym")), syscall.EROFS)
		wantErrno(t, "mknod in "+d, syscall.Mknod(j(d+"/fifo"), syscall.S_IFIFO|0644, 0), syscall.EROFS)
		wantErrno(t, "chmod "+d, os.Chmod(j(d), 0700), syscall.EROFS)
		wantErrno(t, "utimes "+d, os.Chtimes(j(d), time.Now(), time.Now()), syscall.EROFS)
	}
	wantErrno(t, "rmdir snapshot", syscall.Rmdir(j("snapshots/s1")), syscall.EROFS)
	wantErrno(t, "rename snapshot", os.Rename(j("snapshots/s1"), j("snapshots/s2")), syscall.EROFS)
	wantErrno(t, "rename disk into snapshots", os.Rename(j("disks/vol1"), j("snapshots/vol1")), syscall.EROFS)
	// The disks/ directory is fixed by the CLI: EPERM.
	fd, err := os.OpenFile(j("disks/new"), os.O_CREATE|os.O_WRONLY, 0644)
	if err == nil {
		fd.Close()
	}
	wantErrno(t, "create in disks", err, syscall.EPERM)
	wantErrno(t, "unlink disk", os.Remove(j("disks/vol1")), syscall.EPERM)
	wantErrno(t, "rename disk", os.Rename(j("disks/vol1"), j("disks/vol9")), syscall.EPERM)
	wantErrno(t, "mkdir in disks", os.Mkdir(j("disks/d"), 0755), syscall.EPERM)
	wantErrno(t, "rmdir disks", syscall.Rmdir(j("disks")), syscall.EPERM)
	wantErrno(t, "mkdir in root", os.Mkdir(j("x"), 0755), syscall.EPERM)
	// chmod/chown of a disk: EPERM; utimes: accepted.
	wantErrno(t, "chmod disk", os.Chmod(j("disks/vol1"), 0644), syscall.EPERM)
	wantErrno(t, "chown disk", os.Chown(j("disks/vol1"), 4242, 4242), syscall.EPERM)
	if err := os.Chmod(j("disks/vol1"), 0600); err != nil {
		t.Errorf("chmod disk to its own mode: %v", err)
	}
	if err := os.Chtimes(j("disks/vol1"), time.Now(), time.Now()); err != nil {
		t.Errorf("utimes disk: %v", err)
	}
	// Nothing changed.
	if got := names(t, j("snapshots/s1")); len(got) != 3 {
		t.Errorf("snapshot dir changed: %v", got)
	}
}

func TestNamesAppearAndDisappear(t *testing.T) {
	b, _, mnt := fixture(t)
	j := func(p string) string { return filepath.Join(mnt, p) }
	if _, err := os.Stat(j("snapshots/s2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("s2 before: %v", err)
	}
	b.snapshot("s2", "vol1")
	if _, err := os.Stat(j("snapshots/s2/vol1")); err != nil {
		t.Errorf("new snapshot s2: %v", err)
	}
	if got := names(t, j("snapshots")); !slices.Equal(got, []string{"s1", "s2"}) {
		t.Errorf("ls snapshots: %v", got)
	}
	b.deleteSnapshot("s2")
	if _, err := os.Stat(j("snapshots/s2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted snapshot s2: %v", err)
	}
	if _, err := os.Stat(j("snapshots/s2/vol1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file of deleted snapshot s2: %v", err)
	}
	if got := names(t, j("snapshots")); !slices.Equal(got, []string{"s1"}) {
		t.Errorf("ls snapshots: %v", got)
	}
	// Same name, new snapshot: new inode, new content.
	oldIno := ino(t, j("snapshots/s1"))
	b.deleteSnapshot("s1")
	b.snapshot("s1", "vol2")
	if ino(t, j("snapshots/s1")) == oldIno {
		t.Errorf("recreated s1 kept the old inode")
	}
	if got := names(t, j("snapshots/s1")); !slices.Equal(got, []string{"snapshot.json", "vol2"}) {
		t.Errorf("ls recreated s1: %v", got)
	}
	b.addDisk("vol3", 4096)
	b.addImage("img2", []byte("x"))
	for _, p := range []string{"disks/vol3", "images/img2"} {
		if _, err := os.Stat(j(p)); err != nil {
			t.Errorf("new %s: %v", p, err)
		}
	}
}

// With a long NameTimeout the kernel caches names; InvalidateNames drops them.
func TestInvalidateNames(t *testing.T) {
	b := newMemBackend()
	b.addDisk("vol1", 4096)
	b.snapshot("s1", "vol1")
	srv, mnt := mountT(t, b, func(o *Options) { o.NameTimeout = time.Hour })
	p := filepath.Join(mnt, "snapshots/s1")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	b.deleteSnapshot("s1")
	srv.InvalidateNames()
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after InvalidateNames: %v", err)
	}
}

func TestInvalidateDisk(t *testing.T) {
	b, srv, mnt := fixture(t)
	f, err := os.Open(filepath.Join(mnt, "disks/vol2"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	copy(b.disks["vol2"].data, "rolled back")
	b.mu.Unlock()
	srv.InvalidateDisk("vol2")
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf, []byte("rolled back")) {
		t.Errorf("after InvalidateDisk: read %q", buf[:11])
	}
	srv.InvalidateDisk("no-such-disk") // harmless
}

// alignedBuf returns a page-aligned buffer for O_DIRECT.
func alignedBuf(t testing.TB, n int) []byte {
	buf, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Munmap(buf) })
	return buf
}

func TestODirectReadsFullLength(t *testing.T) {
	b := newMemBackend()
	d := b.addDisk("vol1", 8<<20)
	rand.New(rand.NewSource(2)).Read(d.data)
	b.snapshot("s1", "vol1")
	b.addImage("img1", d.data)
	_, mnt := mountT(t, b)
	want := b.diskData("vol1")
	for _, p := range []string{"disks/vol1", "snapshots/s1/vol1", "images/img1"} {
		fd, err := unix.Open(filepath.Join(mnt, p), unix.O_RDONLY|unix.O_DIRECT, 0)
		if err != nil {
			t.Fatalf("open O_DIRECT %s: %v", p, err)
		}
		for size := 4096; size <= 1<<20; size *= 2 {
			buf := alignedBuf(t, size)
			for _, off := range []int64{0, int64(size), 3 << 20, int64(8<<20 - size)} {
				n, err := unix.Pread(fd, buf, off)
				if err != nil || n != size {
					t.Errorf("%s: O_DIRECT pread %d@%d = %d, %v", p, size, off, n, err)
					continue
				}
				if !bytes.Equal(buf, want[off:off+int64(size)]) {
					t.Errorf("%s: O_DIRECT pread %d@%d: wrong content", p, size, off)
				}
			}
		}
		unix.Close(fd)
	}
	// O_DIRECT writes round-trip too.
	fd, err := unix.Open(filepath.Join(mnt, "disks/vol1"), unix.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf := alignedBuf(t, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	if n, err := unix.Pwrite(fd, buf, 1<<20); err != nil || n != len(buf) {
		t.Fatalf("O_DIRECT pwrite: %d, %v", n, err)
	}
	if !bytes.Equal(b.diskData("vol1")[1<<20:2<<20], buf) {
		t.Error("O_DIRECT pwrite: backend content differs")
	}
}

func TestSnapshotJSON(t *testing.T) {
	b, _, mnt := fixture(t)
	got, err := os.ReadFile(filepath.Join(mnt, "snapshots/s1/snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := b.Snapshot("s1")
	if !bytes.Equal(got, e.JSON) || !strings.HasSuffix(string(got), "\n") {
		t.Errorf("snapshot.json = %q, want %q", got, e.JSON)
	}
	fi, _ := os.Stat(filepath.Join(mnt, "snapshots/s1/snapshot.json"))
	if fi.Size() != int64(len(e.JSON)) || fi.Mode() != 0444 {
		t.Errorf("snapshot.json: size %d mode %v", fi.Size(), fi.Mode())
	}
	// Snapshot and image content.
	if got, _ := os.ReadFile(filepath.Join(mnt, "snapshots/s1/vol1")); !bytes.Equal(got, b.snaps["s1"].disks["vol1"]) {
		t.Error("snapshot disk content differs")
	}
	if got, _ := os.ReadFile(filepath.Join(mnt, "images/img1")); !bytes.Equal(got, b.images["img1"].data) {
		t.Error("image content differs")
	}
}

func TestENOENT(t *testing.T) {
	_, _, mnt := fixture(t)
	for _, p := range []string{"nope", "disks/nope", "snapshots/nope", "snapshots/s1/nope", "images/nope", "snapshots/nope/vol1"} {
		_, err := os.Stat(filepath.Join(mnt, p))
		wantErrno(t, "stat "+p, err, syscall.ENOENT)
	}
}

// testErrno is the errno mapping the tests hand to Mount: snapfs's is
// exitcode.Errno (tested there), which this package cannot import.
func testErrno(err error) syscall.Errno {
	for _, e := range []struct {
		err   error
		errno syscall.Errno
	}{
		{rowstore.ErrCorrupt, syscall.EIO},
		{rowstore.ErrNotFound, syscall.ENOENT},
		{rowstore.ErrExists, syscall.EEXIST},
		{rowstore.ErrInvalid, syscall.EINVAL},
		{rowstore.ErrBusy, syscall.EBUSY},
		{rowstore.ErrReadOnly, syscall.EROFS},
		{rowstore.ErrNoSpace, syscall.ENOSPC},
	} {
		if errors.Is(err, e.err) {
			return e.errno
		}
	}
	return 0
}

// TestToErrno: an errno an error wraps wins; then Options.Errno; EIO for
// anything else, and without Options.Errno.
func TestToErrno(t *testing.T) {
	with := &mountState{errno: testErrno}
	without := &mountState{}
	for _, tc := range []struct {
		err           error
		with, without syscall.Errno
	}{
		{nil, 0, 0},
		{fmt.Errorf("disk x: %w", rowstore.ErrNotFound), syscall.ENOENT, syscall.EIO},
		{&rowstore.CorruptError{What: "block 1", Err: rowstore.ErrNotFound}, syscall.EIO, syscall.EIO},
		{errors.New("other"), syscall.EIO, syscall.EIO},
		{fmt.Errorf("wrapped: %w", syscall.EAGAIN), syscall.EAGAIN, syscall.EAGAIN},
	} {
		if got := with.toErrno(tc.err); got != tc.with {
			t.Errorf("toErrno(%v) = %v, want %v", tc.err, got, tc.with)
		}
		if got := without.toErrno(tc.err); got != tc.without {
			t.Errorf("without Options.Errno: toErrno(%v) = %v, want %v", tc.err, got, tc.without)
		}
	}
}

func TestPanicIsEIO(t *testing.T) {
	b, _, mnt := fixture(t)
	b.mu.Lock()
	b.panicDisk = true
	b.mu.Unlock()
	_, err := os.Stat(filepath.Join(mnt, "disks/vol1"))
	wantErrno(t, "stat with panicking backend", err, syscall.EIO)
	b.mu.Lock()
	b.panicDisk = false
	b.mu.Unlock()
	if _, err := os.Stat(filepath.Join(mnt, "disks/vol1")); err != nil {
		t.Errorf("after panic: %v", err)
	}
}

func TestTwoMounts(t *testing.T) {
	b1, b2 := newMemBackend(), newMemBackend()
	b1.addDisk("a", 4096)
	b2.addDisk("b", 4096)
	_, m1 := mountT(t, b1)
	_, m2 := mountT(t, b2)
	if got := names(t, m1+"/disks"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("mount 1: %v", got)
	}
	if got := names(t, m2+"/disks"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("mount 2: %v", got)
	}
}

// TestPosix runs go-fuse's posixtest checks that apply to a fixed namespace.
//
// Not applicable, because each creates, links, renames or removes names, or
// uses xattrs, locks or SEEK_HOLE on files it creates itself (snapfs's
// namespace is fixed by the CLI; create/unlink/mkdir fail by design):
// AppendWrite, DirSeek, DirectIO (creates with O_TRUNC|O_CREAT; covered by
// TestODirectReadsFullLength), Fallocate (covered by TestFallocate),
// FcntlFlockLocksFile, FcntlFlockSetLk, FdLeak, FileBasic, FileLarge,
// FstatDeleted, Link, LinkUnlinkRename, LseekEnxioCheck, LseekHoleSeeksToEOF,
// MkdirRmdir, NlinkZero, OpenAt, OpenSymlinkRace, ParallelFileOpen,
// ReadDirBasic, RenameOpenDir, RenameOverwriteDestExist,
// RenameOverwriteDestNoExist, SetattrSymlink, SymlinkReadlink, TruncateFile,
// TruncateNoFile, XAttr, XAttrLarge.
func TestPosix(t *testing.T) {
	_, _, mnt := fixture(t)
	for _, dir := range []string{"", "disks", "snapshots", "snapshots/s1", "images"} {
		t.Run("ReadDirConsistency/"+dir, func(t *testing.T) {
			posixtest.ReadDirConsistency(t, filepath.Join(mnt, dir))
		})
	}
}

// TestMkfsExt4Loop puts ext4 on a disk of the mount and loop-mounts it.
func TestMkfsExt4Loop(t *testing.T) {
	for _, tool := range []string{"mkfs.ext4", "losetup", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Skipf(t, "%s not found", tool)
		}
	}
	b := newMemBackend()
	b.addDisk("vol1", 64<<20)
	_, mnt := mountT(t, b)
	img := filepath.Join(mnt, "disks/vol1")
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("mkfs.ext4", "-q", "-F", img)
	dev := run("losetup", "-f", "--show", img)
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	dir := t.TempDir()
	run("mount", dev, dir)
	mounted := true
	t.Cleanup(func() {
		if mounted {
			_ = exec.Command("umount", dir).Run()
		}
	})
	data := bytes.Repeat([]byte("ext4 on snapfs\n"), 100000)
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0644); err != nil {
		t.Fatal(err)
	}
	run("umount", dir)
	mounted = false
	// Mount again and read back (through the loop device and FUSE).
	run("mount", "-o", "ro", dev, dir)
	mounted = true
	got, err := os.ReadFile(filepath.Join(dir, "f"))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("read back: %d bytes, %v", len(got), err)
	}
	run("umount", dir)
	mounted = false
	if e, _ := b.Disk("vol1"); e.Allocated == 0 {
		t.Error("disk has no allocated blocks after mkfs")
	}
}
