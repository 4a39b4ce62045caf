package rowstore

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/dgraph-io/ristretto/v2/z"

	"github.com/snapfs/snapfs/integration/testutil"
)

// TestBadgerFilesAllocated: Badger's mmap'd files are made by ristretto's
// z.OpenMmapFile. Upstream makes them sparse, and a store into a page the
// filesystem cannot allocate raises SIGBUS. The patched copy snapfs builds
// with (index/third_party/ristretto) allocates them first: on a full
// filesystem opening one is an ENOSPC error, after the no-space hook was
// asked to free space. Fails if the go.mod replace is lost.
func TestBadgerFilesAllocated(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Skipf(t, "needs root to mount a 1 MiB tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	asked := 0
	hook := func(string) bool { asked++; return false }
	old := z.NoSpaceHook.Swap(&hook)
	defer z.NoSpaceHook.Store(old)
	mf, err := z.OpenMmapFile(filepath.Join(dir, "00001.mem"), os.O_CREATE|os.O_RDWR, 8<<20)
	if err == nil || errors.Is(err, z.NewFile) {
		if mf != nil {
			mf.Close(-1)
		}
		t.Fatal("an 8 MiB mmap'd file was made on a 1 MiB filesystem: sparse, so writing it would SIGBUS (is the ristretto replace in go.mod lost?)")
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("open on a full filesystem: %v, want ENOSPC", err)
	}
	if asked != 1 {
		t.Fatalf("the no-space hook was asked %d times, want 1", asked)
	}
}
