package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cacheBytes is the size of the block cache of region r in store: every
// block a remote disk fetched from the stores (the cache is larger than
// what these tests read, so nothing is evicted).
func cacheBytes(t *testing.T, store, r string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(filepath.Join(store, "regions", r+".cache", "blocks"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A second host with nothing local but the region's stores and key lists
// the region's snapshots under M/regions/, reads a disk of one on demand
// (the snapshot's bytes exactly), browses its ext4 through <d>.files and
// copies a 1 MiB file out of it fetching little more than the file,
// restores it, and gets EIO (never wrong bytes) while every store is
// unreachable, then the right bytes again when they return.
func TestRegionsMount(t *testing.T) {
	needRoot(t)
	needFS(t, "ext4")
	tmp := t.TempDir()
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"region", "add", "dr", "--data", "2", "--parity", "1", "--key-file", key}
	var dirs []string
	for i := range 3 {
		d := filepath.Join(tmp, fmt.Sprintf("store%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
		add = append(add, "--store", "file://"+d)
	}

	// Host A: ext4 with a 1 MiB file in d1, snapshot s1, synced.
	a, mpA := filepath.Join(tmp, "a"), filepath.Join(tmp, "ma")
	ok(t, a, "init", "--host-name", "alpha")
	daemon(t, a, mpA)
	ok(t, a, add...)
	ok(t, a, "disk", "create", "d1", "--size", "64M")
	diskA := filepath.Join(mpA, "disks", "d1")
	// Data near the end that neither mkfs nor the files touch: read only
	// in the outage below, so it is not cached then.
	tail := randBytes(t, 256<<10)
	writeAt(t, diskA, 62<<20, tail)
	sh(t, "mkfs.ext4", "-q", "-F", "-E", "nodiscard", diskA)
	vol := filepath.Join(tmp, "vol")
	undo := loopMount(t, diskA, vol)
	big := randBytes(t, 1<<20)
	writeFileSync(t, filepath.Join(vol, "big"), big)
	if err := os.MkdirAll(filepath.Join(vol, "dir", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFileSync(t, filepath.Join(vol, "dir", "sub", "small"), []byte("hello from alpha\n"))
	// s2: taken while the ext4 is mounted, with a file just written: its
	// journal needs replay, which goes into the overlay clone on host B.
	late := randBytes(t, 200<<10)
	writeFileSync(t, filepath.Join(vol, "late"), late)
	sh(t, "sync", "-f", vol)
	ok(t, a, "snapshot", "create", "s2", "--disk", "d1")
	undo()
	ok(t, a, "snapshot", "create", "s1", "--disk", "d1")
	ok(t, a, "sync", "--region", "dr")
	snapSum := fileSum(t, filepath.Join(mpA, "snapshots", "s1", "d1"))

	// Host B: nothing local; the region attached with the same stores and key.
	b, mpB := filepath.Join(tmp, "b"), filepath.Join(tmp, "mb")
	ok(t, b, "init", "--host-name", "beta")
	if err := os.MkdirAll(mpB, 0o755); err != nil {
		t.Fatal(err)
	}
	var m struct{ PID string }
	jsonLine(t, ok(t, b, "--json", "mount", "--background", "--region-cache", "256M", mpB), "mount", &m)
	t.Cleanup(func() { stopDaemon(t, b, mpB, m.PID) })
	ok(t, b, add...)
	if got := strings.Join(dirNames(t, mpB), " "); got != "disks images regions snapshots" {
		t.Fatalf("root lists %q", got)
	}
	if got := strings.Join(dirNames(t, filepath.Join(mpB, "regions")), " "); got != "dr" {
		t.Fatalf("regions/ lists %q", got)
	}
	if got := strings.Join(dirNames(t, filepath.Join(mpB, "regions", "dr")), " "); got != "s1 s2" {
		t.Fatalf("regions/dr lists %q", got)
	}
	snapDir := filepath.Join(mpB, "regions", "dr", "s1")
	if got := strings.Join(dirNames(t, snapDir), " "); got != "d1 d1.files" {
		t.Fatalf("regions/dr/s1 lists %q", got)
	}
	if n := cacheBytes(t, b, "dr"); n != 0 {
		t.Fatalf("listing fetched %d bytes of blocks", n)
	}
	fi, err := os.Stat(filepath.Join(snapDir, "d1"))
	if err != nil || fi.Size() != 64<<20 || fi.Mode().Perm() != 0o400 {
		t.Fatalf("remote disk: %v %v", fi, err)
	}
	if err := os.WriteFile(filepath.Join(snapDir, "d1"), []byte("x"), 0o644); !errorsIs(err, syscall.EROFS) {
		t.Fatalf("write to a remote disk: %v, want EROFS", err)
	}

	// .files: enter, copy the 1 MiB file out.
	files := filepath.Join(snapDir, "d1.files")
	start := time.Now()
	if got := strings.Join(dirNames(t, files), " "); got != "big dir late lost+found" {
		t.Fatalf("d1.files lists %q", got)
	}
	entered := cacheBytes(t, b, "dr")
	t.Logf("entering d1.files took %v and fetched %d bytes (blocks cached)", time.Since(start), entered)
	out := filepath.Join(tmp, "big.copy")
	if o, err := exec.Command("cp", filepath.Join(files, "big"), out).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, o)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("copied file differs (%v)", err)
	}
	copied := cacheBytes(t, b, "dr") - entered
	t.Logf("cp of a 1 MiB file out of regions/dr/s1/d1.files fetched %d bytes of blocks (%.2f x the file; range reads add 28 bytes per 16 KiB block)", copied, float64(copied)/float64(len(big)))
	if copied > 4*int64(len(big)) {
		t.Errorf("cp fetched %d bytes for a %d-byte file, want at most 4x", copied, len(big))
	}
	if s, err := os.ReadFile(filepath.Join(files, "dir", "sub", "small")); err != nil || string(s) != "hello from alpha\n" {
		t.Fatalf("small file: %q %v", s, err)
	}
	if err := os.WriteFile(filepath.Join(files, "new"), nil, 0o644); !errorsIs(err, syscall.EROFS) {
		t.Errorf("create in a remote .files: %v, want EROFS", err)
	}

	// All stores unreachable: a block not cached is EIO, never other bytes.
	f, err := os.Open(filepath.Join(snapDir, "d1"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, d := range dirs {
		if err := os.Rename(d, d+".away"); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(d+".away", dirs[i]) //nolint:errcheck // put back below; this is for a failure
	}
	buf := make([]byte, 64<<10)
	off := int64(62 << 20) // the tail written before mkfs
	if _, err := f.ReadAt(buf, off); !errorsIs(err, syscall.EIO) {
		t.Fatalf("read with every store unreachable: %v, want EIO", err)
	}
	for i, d := range dirs {
		if err := os.Rename(d+".away", d); err != nil {
			t.Fatal(err)
		}
		_ = i
	}
	if _, err := f.ReadAt(buf, off); err != nil {
		t.Fatalf("read after the stores returned: %v", err)
	}
	want := readAt(t, filepath.Join(mpA, "snapshots", "s1", "d1"), off, len(buf))
	if !bytes.Equal(buf, want) {
		t.Fatal("remote disk bytes differ from the snapshot's after the outage")
	}
	f.Close()

	// The whole disk, byte for byte; then a restore on the host with
	// nothing local.
	if got := fileSum(t, filepath.Join(snapDir, "d1")); got != snapSum {
		t.Fatalf("regions/dr/s1/d1 differs from the snapshot")
	}
	// s2's ext4 needs its journal replayed: into the overlay clone, never
	// into the remote disk.
	s2 := filepath.Join(mpB, "regions", "dr", "s2", "d1")
	s2Sum := fileSum(t, filepath.Join(mpA, "snapshots", "s2", "d1"))
	if out, _ := exec.Command("dumpe2fs", "-h", s2).CombinedOutput(); !strings.Contains(string(out), "needs_recovery") {
		t.Logf("note: s2's ext4 does not need recovery (dumpe2fs: %.300s)", out)
	}
	if got, err := os.ReadFile(filepath.Join(s2+".files", "late")); err != nil || !bytes.Equal(got, late) {
		t.Fatalf("s2.files/late: %v", err)
	}
	if fileSum(t, s2) != s2Sum {
		t.Fatal("regions/dr/s2/d1 differs from the snapshot after browsing it")
	}
	ok(t, b, "restore", "--region", "dr", "--snapshot", "s1", "--disk", "d1", "--to", "d1r")
	if got := fileSum(t, filepath.Join(mpB, "disks", "d1r")); got != snapSum {
		t.Fatalf("restored disk differs from the snapshot")
	}
	ok(t, b, "umount", mpB)
	noLeftovers(t, b)
}

// A disk encrypted at rest on its host is listed under M/regions/ but not
// shown in the clear (ENOKEY), as restore never makes it a plain disk.
func TestRegionsMountEncrypted(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	key, rkey := filepath.Join(tmp, "disk.key"), filepath.Join(tmp, "region.key")
	for _, p := range []string{key, rkey} {
		if err := os.WriteFile(p, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	store, mp := filepath.Join(tmp, "s"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	mountWith(t, store, mp, "--key-file", key)
	ok(t, store, "disk", "create", "sec", "--size", "8M", "--encrypt", "--key-file", key)
	ok(t, store, "disk", "create", "plain", "--size", "8M")
	writeAt(t, filepath.Join(mp, "disks", "sec"), 0, []byte("secret"))
	writeAt(t, filepath.Join(mp, "disks", "plain"), 0, []byte("plain"))
	ok(t, store, "snapshot", "create", "s1", "--disk", "sec", "--disk", "plain")
	add := []string{"region", "add", "r", "--data", "2", "--parity", "1", "--key-file", rkey}
	for i := range 3 {
		d := filepath.Join(tmp, fmt.Sprintf("r%d", i))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		add = append(add, "--store", "file://"+d)
	}
	ok(t, store, add...)
	ok(t, store, "sync", "--region", "r")
	dir := filepath.Join(mp, "regions", "r", "s1")
	if got := strings.Join(dirNames(t, dir), " "); got != "plain plain.files sec sec.files" {
		t.Fatalf("regions/r/s1 lists %q", got)
	}
	if _, err := os.Open(filepath.Join(dir, "sec")); !errorsIs(err, syscall.ENOKEY) {
		t.Fatalf("open of an encrypted remote disk: %v, want ENOKEY", err)
	}
	if got := readAt(t, filepath.Join(dir, "plain"), 0, 5); string(got) != "plain" {
		t.Fatalf("plain remote disk reads %q", got)
	}
}
