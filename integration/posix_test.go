package integration

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// TestPosixRealEngine runs go-fuse's posixtest checks that apply to snapfs's
// fixed namespace against a mount of the real engine (the fs package runs
// the same against its in-memory backend and lists, with reasons, the checks
// that do not apply: they create, link, rename or remove names).
func TestPosixRealEngine(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	for _, d := range []string{"a", "b", "c"} {
		ok(t, store, "disk", "create", d, "--size", "8M")
	}
	ok(t, store, "snapshot", "create", "s1", "--disk", "a", "--disk", "b")
	ok(t, store, "image", "create", "img", "--snapshot", "s1", "--disk", "a")
	for _, dir := range []string{"", "disks", "snapshots", "snapshots/s1", "images"} {
		t.Run("ReadDirConsistency/"+dir, func(t *testing.T) {
			posixtest.ReadDirConsistency(t, filepath.Join(mp, dir))
		})
	}
	// A disk file behaves like a file: pwrite/pread round trip at odd offsets.
	f, err := os.OpenFile(filepath.Join(mp, "disks", "c"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := randBytes(t, 70000)
	if _, err := f.WriteAt(data, 12345); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := f.ReadAt(got, 12345); err != nil || string(got) != string(data) {
		t.Fatalf("read back differs (err %v)", err)
	}
}
