package integration

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// corruptPattern flips one byte inside the first occurrence of pattern in
// the store's segment files (the store must not be open). It fails the
// test if the pattern is nowhere.
func corruptPattern(t *testing.T, store string, pattern []byte) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(store, "segments", "*.seg"))
	for _, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, pattern); i >= 0 {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte{b[i+len(pattern)/2] ^ 0x40}, int64(i+len(pattern)/2)); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("pattern not found in %d segments", len(segs))
}

// TestEIONotShortCount is finding 5 of issue 7: a read through the mount
// that covers a corrupt block fails as a whole with EIO; it never returns
// a short count (which loop devices and VMs take for the end of the disk).
// For a disk, a snapshot's disk and an image: a 16 KiB pread on a 4 KiB-block
// disk whose second block is corrupt, and dd bs=1M count=1.
func TestEIONotShortCount(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	store := filepath.Join(base, "store")
	mp := filepath.Join(base, "mnt")
	ok(t, store, "init")
	ok(t, store, "disk", "create", "vol", "--size", "1M", "--block-size", "4K")
	data := randBytes(t, 64<<10)
	pattern := func(b int) []byte { return data[b*4096+1000 : b*4096+1064] }
	pid := daemon(t, store, mp)
	writeAt(t, filepath.Join(mp, "disks", "vol"), 0, data)
	ok(t, store, "snapshot", "create", "snap", "--disk", "vol")
	ok(t, store, "image", "create", "img", "--snapshot", "snap", "--disk", "vol")
	stopDaemon(t, store, mp, pid)
	corruptPattern(t, store, pattern(1))
	daemon(t, store, mp)
	for _, file := range []string{"disks/vol", "snapshots/snap/vol", "images/img"} {
		t.Run(strings.ReplaceAll(file, "/", "_"), func(t *testing.T) {
			path := filepath.Join(mp, file)
			for round := 0; round < 3; round++ { // also once the first block is in the page cache
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 16<<10)
				n, err := syscall.Pread(int(f.Fd()), buf, 0)
				f.Close()
				if !errors.Is(err, syscall.EIO) {
					t.Fatalf("round %d: 16 KiB pread over a corrupt second block: n=%d err=%v, want EIO", round, n, err)
				}
			}
			// The first block in the page cache (read alone), the second not:
			// the kernel copies the first and then asks for the second.
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			// Random access: the kernel reads what is asked, no readahead.
			if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 16<<10)
			if n, err := syscall.Pread(int(f.Fd()), buf[:4096], 0); err != nil || n != 4096 || !bytes.Equal(buf[:4096], data[:4096]) {
				t.Fatalf("first block alone: n=%d err=%v", n, err)
			}
			n, err := syscall.Pread(int(f.Fd()), buf, 0)
			f.Close()
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("16 KiB pread with the first block cached: n=%d err=%v, want EIO", n, err)
			}
			out, err := exec.Command("dd", "if="+path, "of=/dev/null", "bs=1M", "count=1").CombinedOutput()
			if err == nil {
				t.Fatalf("dd bs=1M count=1 over a corrupt block exited 0: %s", out)
			}
			t.Logf("dd: %v: %s", err, strings.TrimSpace(string(out)))
		})
	}
}
