package fs

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// dirFiles is a Files over host directories: snapshot s1's vol1 is one
// whole-disk tree, vol2 a disk with partitions p1 and p2, images none. It
// counts holds, and Gone makes Enter fail with EIO.
type dirFiles struct {
	mu    sync.Mutex
	root  string
	held  int
	enter int
	gone  bool
}

func (f *dirFiles) Parts(src FilesSource) ([]string, error) {
	switch src.Disk {
	case "vol1":
		return []string{""}, nil
	case "vol2":
		return []string{"p1", "p2"}, nil
	}
	return nil, nil
}

func (f *dirFiles) Enter(src FilesSource, part string) (FilesTree, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return nil, syscall.EUCLEAN // the host filesystem is corrupt
	}
	f.held++
	f.enter++
	return &dirTree{f: f, dir: filepath.Join(f.root, src.Disk, part)}, nil
}

type dirTree struct {
	f   *dirFiles
	dir string
}

func (t *dirTree) Dir() string        { return t.dir }
func (t *dirTree) Track(f *os.File)   {}
func (t *dirTree) Untrack(f *os.File) {}
func (t *dirTree) Release() {
	t.f.mu.Lock()
	t.f.held--
	t.f.mu.Unlock()
}

// TestFilesDirs: <d>.files is listed only for disks with a filesystem,
// entering it shows the tree handed in (content, modes, symlinks, hard
// links with one inode number, xattrs), every change is EROFS, every hold
// is released, and an error of the host filesystem is EIO.
func TestFilesDirs(t *testing.T) {
	b := newMemBackend()
	b.addDisk("vol1", 1<<20)
	b.addDisk("vol2", 1<<20)
	b.addDisk("raw", 1<<20)
	b.snapshot("s1", "vol1", "vol2", "raw")
	host := t.TempDir()
	files := &dirFiles{root: host}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	v1 := filepath.Join(host, "vol1")
	must(os.MkdirAll(filepath.Join(v1, "dir"), 0o750))
	must(os.WriteFile(filepath.Join(v1, "dir", "f"), []byte("content"), 0o640))
	must(os.Link(filepath.Join(v1, "dir", "f"), filepath.Join(v1, "hard")))
	must(os.Symlink("dir/f", filepath.Join(v1, "link")))
	xattr := unix.Setxattr(filepath.Join(v1, "dir", "f"), "user.k", []byte("v"), 0) == nil
	for _, p := range []string{"p1", "p2"} {
		must(os.MkdirAll(filepath.Join(host, "vol2", p), 0o755))
		must(os.WriteFile(filepath.Join(host, "vol2", p, "in-"+p), []byte(p), 0o644))
	}
	_, mnt := mountT(t, b, func(o *Options) { o.Files = files })
	snap := filepath.Join(mnt, "snapshots", "s1")

	if got := names(t, snap); len(got) != 6 || got[3] != "vol1.files" || got[5] != "vol2.files" {
		t.Fatalf("snapshot directory: %v", got)
	}
	if _, err := os.Stat(filepath.Join(snap, "raw.files")); !os.IsNotExist(err) {
		t.Errorf("raw.files: %v, want ENOENT", err)
	}
	files.mu.Lock()
	entered := files.enter
	files.mu.Unlock()
	if entered != 0 {
		t.Errorf("listing the snapshot directory entered %d trees", entered)
	}
	fv1 := filepath.Join(snap, "vol1.files")
	if got, err := os.ReadFile(filepath.Join(fv1, "link")); err != nil || string(got) != "content" {
		t.Errorf("read through the symlink: %q %v", got, err)
	}
	var a, h syscall.Stat_t
	must(syscall.Lstat(filepath.Join(fv1, "dir", "f"), &a))
	must(syscall.Lstat(filepath.Join(fv1, "hard"), &h))
	if a.Ino != h.Ino || a.Nlink != 2 || a.Mode != syscall.S_IFREG|0o640 || a.Size != 7 {
		t.Errorf("stat: %+v / hard link %+v", a, h)
	}
	if l, _ := os.Readlink(filepath.Join(fv1, "link")); l != "dir/f" {
		t.Errorf("symlink -> %q", l)
	}
	if xattr {
		v := make([]byte, 8)
		if n, err := unix.Getxattr(filepath.Join(fv1, "dir", "f"), "user.k", v); err != nil || string(v[:n]) != "v" {
			t.Errorf("xattr: %v", err)
		}
	}
	if got := names(t, filepath.Join(snap, "vol2.files")); len(got) != 2 || got[0] != "p1" || got[1] != "p2" {
		t.Errorf("vol2.files: %v", got)
	}
	if got, err := os.ReadFile(filepath.Join(snap, "vol2.files", "p2", "in-p2")); err != nil || string(got) != "p2" {
		t.Errorf("p2: %q %v", got, err)
	}
	_, err := os.Create(filepath.Join(fv1, "new"))
	wantErrno(t, "create", err, syscall.EROFS)
	_, err = os.OpenFile(filepath.Join(fv1, "dir", "f"), os.O_WRONLY, 0)
	wantErrno(t, "open for writing", err, syscall.EROFS)
	wantErrno(t, "chmod", os.Chmod(filepath.Join(fv1, "dir", "f"), 0o777), syscall.EROFS)
	wantErrno(t, "remove", os.Remove(filepath.Join(fv1, "hard")), syscall.EROFS)
	wantErrno(t, "rename", os.Rename(filepath.Join(fv1, "hard"), filepath.Join(fv1, "hard2")), syscall.EROFS)

	f, err := os.Open(filepath.Join(fv1, "dir", "f"))
	must(err)
	files.mu.Lock()
	held := files.held
	files.mu.Unlock()
	if held != 1 {
		t.Errorf("an open file holds %d trees, want 1", held)
	}
	f.Close()

	files.mu.Lock()
	files.gone = true
	files.mu.Unlock()
	_, err = os.ReadDir(filepath.Join(fv1, "dir"))
	wantErrno(t, "list when the host filesystem fails", err, syscall.EIO)
	files.mu.Lock()
	held = files.held
	files.mu.Unlock()
	for i := 0; i < 100 && held != 0; i++ { // the release of the closed file is asynchronous
		files.mu.Lock()
		held = files.held
		files.mu.Unlock()
	}
	if held != 0 {
		t.Errorf("%d holds not released", held)
	}
}
