package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/store/s3test"
)

// lazyHydration is the hydration part of `disk info --json`.
type lazyHydration struct {
	Local     int64   `json:"blocks_local"`
	Total     int64   `json:"blocks_total"`
	Fetched   int64   `json:"bytes_fetched"`
	Rate      float64 `json:"rate"`
	Attached  bool    `json:"attached"`
	Running   bool    `json:"running"`
	LastError string  `json:"last_error"`
}

func hydrationOf(t *testing.T, store, disk string) *lazyHydration {
	t.Helper()
	var d struct {
		Hydration *lazyHydration `json:"hydration"`
	}
	jsonLine(t, ok(t, store, "--json", "disk", "info", disk), "disk", &d)
	return d.Hydration
}

func waitHydrated(t *testing.T, store, disk string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		h := hydrationOf(t, store, disk)
		if h == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("disk %s not hydrated after %v: %+v", disk, limit, *h)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// patch is a write made to a restored disk.
type patch struct {
	off  int64
	data []byte
}

// sumPatched is the SHA-256 of the file at path with patches applied.
func sumPatched(t *testing.T, path string, patches []patch) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 4<<20)
	for off := int64(0); ; {
		n, err := f.ReadAt(buf, off)
		chunk := buf[:n]
		for _, p := range patches {
			lo, hi := max(p.off, off), min(p.off+int64(len(p.data)), off+int64(n))
			if lo < hi {
				copy(chunk[lo-off:hi-off], p.data[lo-p.off:hi-p.off])
			}
		}
		h.Write(chunk)
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestLazyRestore (issue 11, deliverable 1): a 4+2 region over the real S3
// server and file:// stores holds a snapshot of a disk with ext4; on a
// second host, restore --lazy returns at once and the ext4 mounts and
// reads a file written before the snapshot while the disk hydrates; writes
// land during hydration; the daemon is SIGKILLed mid-hydration and resumes
// after a restart; the disk ends byte-identical to the snapshot plus the
// writes. Then with two stores gone (reads reconstruct), and with too few
// stores left (reads of missing blocks fail with EIO, never other data;
// hydration retries and completes when the stores are back).
//
// SNAPFS_LAZY_SIZE sets the disk's size (default 512M to keep CI under a
// minute; at least 512M; the figures in the report are from 2G).
func TestLazyRestore(t *testing.T) {
	needRoot(t)
	start := time.Now()
	diskSize := "512M" // CI time; SNAPFS_LAZY_SIZE=2G for the size
	if v := os.Getenv("SNAPFS_LAZY_SIZE"); v != "" {
		diskSize = v
	}
	endpoint, access, secret := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	tmp := t.TempDir()
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	var fileStores []string
	add := []string{"region", "add", "dr", "--data", "4", "--parity", "2", "--key-file", key, "--s3-endpoint", endpoint, "--s3-path-style"}
	for i := range 6 {
		switch i {
		case 1:
			add = append(add, "--store", "s3://snapfs-lazy/dr/s1")
		case 4:
			add = append(add, "--store", "s3://snapfs-lazy/dr/s4")
		default:
			d := filepath.Join(tmp, fmt.Sprintf("store%d", i))
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			fileStores = append(fileStores, d)
			add = append(add, "--store", "file://"+d)
		}
	}
	hide := func(dirs ...string) func() {
		for _, d := range dirs {
			if err := os.Rename(d, d+".gone"); err != nil {
				t.Fatal(err)
			}
		}
		return func() {
			for _, d := range dirs {
				if err := os.Rename(d+".gone", d); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	// Host alpha: ext4 with two files, snapshot s1, synced.
	h1, mp1 := filepath.Join(tmp, "alpha"), filepath.Join(tmp, "m1")
	ok(t, h1, "init", "--host-name", "alpha")
	daemon(t, h1, mp1)
	ok(t, h1, add...)
	ok(t, h1, "disk", "create", "vol", "--size", diskSize)
	src := filepath.Join(mp1, "disks", "vol")
	sh(t, "mkfs.ext4", "-q", "-F", "-E", "nodiscard", src)
	files := map[string][]byte{"a": randBytes(t, 24<<20), "b": randBytes(t, 3<<20+517)}
	vol := filepath.Join(tmp, "vol")
	undo := loopMount(t, src, vol)
	for n, data := range files {
		writeFileSync(t, filepath.Join(vol, n), data)
	}
	undo()
	ok(t, h1, "snapshot", "create", "s1", "--disk", "vol")
	ok(t, h1, "sync", "--region", "dr")
	image := filepath.Join(mp1, "snapshots", "s1", "vol")
	wantImage := fileSum(t, image)
	t.Logf("setup (a %s disk synced): %v", diskSize, time.Since(start).Round(time.Millisecond))

	// Host beta: restore --lazy, and at once the file's bytes.
	h2, mp2 := filepath.Join(tmp, "beta"), filepath.Join(tmp, "m2")
	ok(t, h2, "init", "--host-name", "beta")
	pid := daemon(t, h2, mp2)
	ok(t, h2, add...)
	restore := func(to string, extra ...string) time.Duration {
		t.Helper()
		t0 := time.Now()
		out := ok(t, h2, append([]string{"restore", "--region", "dr", "--snapshot", "s1", "--host", "alpha", "--disk", "vol", "--to", to, "--lazy"}, extra...)...)
		el := time.Since(t0)
		if !strings.Contains(out, "usable now") {
			t.Fatalf("restore --lazy: %q", out)
		}
		if el > 2*time.Second {
			t.Errorf("restore --lazy took %v", el)
		}
		return el
	}
	readFiles := func(to string) {
		t.Helper()
		undo := loopMount(t, filepath.Join(mp2, "disks", to), filepath.Join(tmp, "ro-"+to), "-o", "ro,noload")
		defer undo()
		for n, data := range files {
			got, err := os.ReadFile(filepath.Join(tmp, "ro-"+to, n))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: file %s read through the lazy disk: %v (equal %v)", to, n, err, bytes.Equal(got, data))
			}
		}
	}
	t0 := time.Now()
	cmdTime := restore("vol", "--rate", "4M")
	{
		undo := loopMount(t, filepath.Join(mp2, "disks", "vol"), filepath.Join(tmp, "ro"), "-o", "ro,noload")
		got, err := os.ReadFile(filepath.Join(tmp, "ro", "b"))
		ttfb := time.Since(t0)
		if err != nil || !bytes.Equal(got, files["b"]) {
			t.Fatalf("file b through the lazy disk: %v", err)
		}
		undo()
		t.Logf("time to first byte (%s disk): restore --lazy %v, then losetup + mount + read of a %d-byte file: %v from the command's start",
			diskSize, cmdTime.Round(time.Millisecond), len(files["b"]), ttfb.Round(time.Millisecond))
	}
	h := hydrationOf(t, h2, "vol")
	if h == nil || !h.Attached || h.Local >= h.Total {
		t.Fatalf("hydration after the first reads: %+v", h)
	}
	// Writes during hydration (raw: ext4 is not mounted now).
	disk := filepath.Join(mp2, "disks", "vol")
	var patches []patch
	for _, off := range []int64{5<<20 + 12345, 300 << 20, 500<<20 - 4096} {
		p := patch{off, randBytes(t, 70001)}
		writeAt(t, disk, p.off, p.data)
		patches = append(patches, p)
	}
	// A snapshot of the hydrating disk (checked once hydrated).
	ok(t, h2, "snapshot", "create", "t1", "--disk", "vol")
	// SIGKILL the daemon mid-hydration, then start it again.
	before := hydrationOf(t, h2, "vol")
	if before == nil {
		t.Fatal("hydration finished before the kill: the kill proves nothing (lower --rate)")
	}
	if err := exec.Command("kill", "-9", pid).Run(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat("/proc/" + pid); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon %s did not die", pid)
		}
	}
	ok(t, h2, "umount", mp2)
	daemon(t, h2, mp2)
	// The daemon attaches the region again in the background.
	after := hydrationOf(t, h2, "vol")
	for deadline := time.Now().Add(20 * time.Second); after != nil && !after.Attached && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		after = hydrationOf(t, h2, "vol")
	}
	if after == nil || !after.Attached || after.Local == 0 {
		t.Fatalf("after the restart: %+v (before the kill %+v)", after, *before)
	}
	t.Logf("killed at %d of %d blocks local; after the restart %d local, hydration resumes (bound 4 MiB/s)", before.Local, before.Total, after.Local)
	phase := time.Now()
	waitHydrated(t, h2, "vol", 90*time.Second)
	t.Logf("hydration after the restart: %v", time.Since(phase).Round(time.Millisecond))
	phase = time.Now()
	wantPatched := sumPatched(t, image, patches)
	if fileSum(t, disk) != wantPatched {
		t.Fatal("hydrated disk differs from the snapshot plus the writes")
	}
	if fileSum(t, filepath.Join(mp2, "snapshots", "t1", "vol")) != wantPatched {
		t.Fatal("snapshot taken while hydrating differs from the snapshot plus the writes")
	}
	t.Logf("compare: %v", time.Since(phase).Round(time.Millisecond))
	phase = time.Now()

	// Two stores gone: reads (on demand, while restore --lazy --wait runs)
	// and hydration reconstruct from the others; --wait --json streams
	// hydration progress as sync does.
	back := hide(fileStores[0], fileStores[2])
	cmd := exec.Command(bin, "--json", "restore", "--region", "dr", "--snapshot", "s1", "--host", "alpha", "--disk", "vol", "--to", "two", "--lazy", "--wait")
	cmd.Env = append(os.Environ(), "SNAPFS_STORE="+h2)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(mp2, "disks", "two")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("disk two did not appear")
		}
	}
	readFiles("two")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("restore --lazy --wait: %v: %s", err, stderr.String())
	}
	out := stdout.String()
	if types := jsonTypes(t, out); types[0] != "start" || !contains(types, "blocks") || !contains(types, "done") || types[len(types)-1] != "restore" {
		t.Fatalf("restore --lazy --wait --json: %v", types)
	}
	var res struct {
		Hydrated    bool
		BlocksTotal int64 `json:"blocks_total"`
	}
	jsonLine(t, out, "restore", &res)
	if !res.Hydrated || res.BlocksTotal == 0 || hydrationOf(t, h2, "two") != nil {
		t.Fatalf("restore --lazy --wait: %+v", res)
	}
	back()
	if fileSum(t, filepath.Join(mp2, "disks", "two")) != wantImage {
		t.Fatal("disk restored with two stores gone differs from the snapshot")
	}

	t.Logf("two stores gone: %v", time.Since(phase).Round(time.Millisecond))
	phase = time.Now()

	// Too few stores (all four file stores gone, k = 4) from the start:
	// restore --lazy works (the manifests are on every store), reads of
	// blocks not local fail with EIO and nothing reads as other data;
	// hydration retries and completes when the stores are back.
	// (The manifests are on every store, so the two S3 stores open it.)
	back = hide(fileStores...)
	restore("gone")
	lazyDisk := filepath.Join(mp2, "disks", "gone")
	// The whole disk, not its first 64 MiB: with range reads a block whose
	// chunk lies in a data shard on an S3 store still reads, and the first
	// 64 MiB are mostly holes, so a prefix can read right throughout
	// (seen once in CI: 62 of 64 MiB read right, once all 64).
	fi, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}
	eio, good := 0, 0
	for off := int64(0); off < fi.Size(); off += 1 << 20 {
		got, err := preadDirect(lazyDisk, off, 1<<20)
		if errors.Is(err, syscall.EIO) {
			eio++
			continue
		}
		if err != nil {
			t.Fatalf("read at %d with the stores gone: %v", off, err)
		}
		if !bytes.Equal(got, readAt(t, image, off, 1<<20)) {
			t.Fatalf("read at %d with the stores gone returned other data", off)
		}
		good++
	}
	if eio == 0 {
		t.Fatal("no read failed with the stores gone")
	}
	time.Sleep(500 * time.Millisecond)
	if h := hydrationOf(t, h2, "gone"); h == nil || h.LastError == "" {
		t.Fatalf("hydration with the stores gone: %+v", h)
	}
	back()
	ok(t, h2, "disk", "info", "gone") // progress, not asserted
	waitHydrated(t, h2, "gone", 90*time.Second)
	if fileSum(t, lazyDisk) != wantImage {
		t.Fatal("disk hydrated after the stores came back differs from the snapshot")
	}
	t.Logf("stores gone: of the disk, %d MiB read right (holes, local, or in an S3 data shard), %d MiB failed with EIO; hydrated once they were back", good, eio)
	ok(t, h2, "check")
	t.Logf("TestLazyRestore: %v", time.Since(start).Round(time.Millisecond))
}

// preadDirect is readDirect returning the error.
func preadDirect(path string, off int64, n int) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	buf, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	defer syscall.Munmap(buf)
	got, err := syscall.Pread(fd, buf, off)
	if err != nil {
		return nil, err
	}
	if got != n {
		return nil, fmt.Errorf("short read: %d of %d", got, n)
	}
	return append([]byte(nil), buf...), nil
}
