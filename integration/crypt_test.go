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

	"github.com/snapfs/snapfs/rowstore/segment"
)

// asNobody runs a command as uid/gid 65534 and returns its combined output
// and error.
func asNobody(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mountWith starts `snapfs mount --background` with extra flags and stops
// it at cleanup.
func mountWith(t *testing.T, store, mp string, flags ...string) {
	t.Helper()
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	out := ok(t, store, append(append([]string{"--json", "mount", "--background"}, flags...), mp)...)
	var m struct{ PID string }
	jsonLine(t, out, "mount", &m)
	t.Cleanup(func() { stopDaemon(t, store, mp, m.PID) })
}

// scanFor fails the test if a needle is in any file under the roots.
func scanFor(t *testing.T, when string, needle []byte, roots ...string) {
	t.Helper()
	n := 0
	for _, root := range roots {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("%s: read %s: %v", when, p, err)
				return nil
			}
			n++
			if bytes.Contains(b, needle) {
				t.Errorf("%s: the plaintext pattern is in %s", when, p)
			}
			return nil
		})
	}
	if n < 5 {
		t.Fatalf("%s: only %d files scanned", when, n)
	}
}

// TestEncryptedDisksThroughMount: an encrypted disk created, written and
// read through a real mount (daemon with --key-file), snapshots, clones and
// images of it, locked and unlocked while mounted, wrong keys, a restart
// with and without the key, a region sync and an encrypted restore; the
// pattern written is in no byte of the store nor of the region's stores.
// Another user can neither use the control socket (even with its mode and
// the store's widened) nor read the mount without --allow-other.
func TestEncryptedDisksThroughMount(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	// Let uid 65534 reach the mountpoint (t.TempDir is 0700).
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	key, wrong, loose := filepath.Join(tmp, "disk.key"), filepath.Join(tmp, "wrong.key"), filepath.Join(tmp, "loose.key")
	for p, mode := range map[string]os.FileMode{key: 0o600, wrong: 0o600, loose: 0o644} {
		if err := os.WriteFile(p, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	ok(t, store, "init")
	if fi, err := os.Stat(store); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("store directory mode %v, %v: want 0700", fi.Mode().Perm(), err)
	}

	// Bad key use: clear errors, nothing created.
	fails(t, store, 2, "disk", "create", "sec", "--size", "8M", "--encrypt")
	r := fails(t, store, 2, "disk", "create", "sec", "--size", "8M", "--encrypt", "--key-file", loose)
	if !strings.Contains(r.stderr, "0644") {
		t.Fatalf("insecure key file: %q", r.stderr)
	}
	fails(t, store, 2, "disk", "create", "sec", "--size", "8M", "--key-file", key)
	fails(t, store, 3, "disk", "info", "sec")

	ok(t, store, "disk", "create", "sec", "--size", "8M", "--block-size", "4K", "--encrypt", "--key-file", key)
	ok(t, store, "disk", "create", "plain", "--size", "8M", "--block-size", "4K")
	pattern := bytes.Repeat([]byte("SNAPFS-CRYPT-PATTERN-0123456789|"), 4<<20/32)
	needle := []byte("SNAPFS-CRYPT-PATTERN-0123")

	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	fails(t, store, 2, "mount", "--background", "--key-file", loose, mp)
	if isMounted(mp) {
		t.Fatal("mounted with a key file others may read")
	}
	mountWith(t, store, mp, "--key-file", key, "--key-file", wrong)
	disk := filepath.Join(mp, "disks", "sec")
	writeAt(t, disk, 0, pattern)
	writeAt(t, filepath.Join(mp, "disks", "plain"), 0, []byte("plain data"))
	if !bytes.Equal(readAt(t, disk, 0, len(pattern)), pattern) {
		t.Fatal("encrypted disk reads other data")
	}
	ok(t, store, "snapshot", "create", "s1", "--disk", "sec", "--disk", "plain")
	ok(t, store, "disk", "create", "cl", "--from-snapshot", "s1", "--disk", "sec")
	ok(t, store, "image", "create", "im", "--snapshot", "s1", "--disk", "sec")
	if !bytes.Equal(readAt(t, filepath.Join(mp, "disks", "cl"), 0, 4096), pattern[:4096]) ||
		!bytes.Equal(readAt(t, filepath.Join(mp, "images", "im"), 4096, 4096), pattern[4096:8192]) ||
		!bytes.Equal(readAt(t, filepath.Join(mp, "snapshots", "s1", "sec"), 0, 4096), pattern[:4096]) {
		t.Fatal("clone, image or snapshot of the encrypted disk reads other data")
	}
	// The plain snapshot copied into a new encrypted disk; the encrypted
	// one cannot be (it is encrypted already).
	ok(t, store, "disk", "create", "plain-enc", "--from-snapshot", "s1", "--disk", "plain", "--encrypt", "--key-file", key)
	fails(t, store, 2, "disk", "create", "x", "--from-snapshot", "s1", "--disk", "sec", "--encrypt", "--key-file", key)
	fails(t, store, 2, "disk", "create", "x", "--from-image", "im", "--encrypt", "--key-file", key)
	fails(t, store, 3, "disk", "info", "x")
	var di struct {
		Encrypted bool `json:"encrypted"`
		Locked    bool `json:"locked"`
	}
	jsonLine(t, ok(t, store, "--json", "disk", "info", "plain-enc"), "disk", &di)
	if !di.Encrypted || di.Locked {
		t.Fatalf("plain-enc: %+v", di)
	}

	// Lock while mounted: the family refuses to open (ENOKEY), listed as
	// locked; other disks are unaffected; a wrong key is exit 13 and
	// unlocks nothing; the right one unlocks.
	ok(t, store, "disk", "lock", "sec")
	if _, err := os.Open(disk); !errors.Is(err, syscall.ENOKEY) {
		t.Fatalf("open of a locked disk: %v", err)
	}
	if _, err := os.Open(filepath.Join(mp, "images", "im")); !errors.Is(err, syscall.ENOKEY) {
		t.Fatalf("open of an image of a locked disk: %v", err)
	}
	// Listings and metadata need no key.
	ok(t, store, "snapshot", "list")
	ok(t, store, "snapshot", "info", "s1")
	ok(t, store, "image", "list")
	if _, err := os.Stat(filepath.Join(mp, "images", "im")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "snapshots", "s1", "snapshot.json")); err != nil || !strings.Contains(string(b), `"sec"`) {
		t.Fatalf("snapshot.json while locked: %v %s", err, b)
	}
	if out := ok(t, store, "disk", "list"); !strings.Contains(out, " locked") {
		t.Fatalf("disk list does not show the lock: %q", out)
	}
	jsonLine(t, ok(t, store, "--json", "disk", "info", "cl"), "disk", &di)
	if !di.Encrypted || !di.Locked {
		t.Fatalf("clone of a locked disk: %+v", di)
	}
	if got := readAt(t, filepath.Join(mp, "disks", "plain"), 0, 10); string(got) != "plain data" {
		t.Fatal("plain disk affected by the lock")
	}
	r = fails(t, store, 13, "disk", "unlock", "sec", "--key-file", wrong)
	if strings.Contains(r.stderr, "\\x") || !strings.Contains(r.stderr, "wrong key") {
		t.Fatalf("wrong key: %q", r.stderr)
	}
	fails(t, store, 2, "disk", "unlock", "sec", "--key-file", loose)
	ok(t, store, "disk", "unlock", "sec", "--key-file", key)
	if !bytes.Equal(readAt(t, disk, 0, 4096), pattern[:4096]) {
		t.Fatal("unlocked disk reads other data")
	}

	// Another user: no control socket even with the modes widened, and no
	// access to the mount without --allow-other.
	sock := filepath.Join(store, "control.sock")
	os.Chmod(store, 0o755)
	os.Chmod(sock, 0o777)
	nbin := filepath.Join(tmp, "snapfs") // bin's directory is private
	if b, err := os.ReadFile(bin); err != nil || os.WriteFile(nbin, b, 0o755) != nil {
		t.Fatal("copy the binary:", err)
	}
	if out, err := asNobody(nbin, "--store", store, "disk", "list"); err == nil || strings.Contains(out, "sec") {
		t.Fatalf("uid 65534 used the control socket: %v %q", err, out)
	} else {
		t.Logf("uid 65534: snapfs disk list: %v: %s", err, out)
	}
	os.Chmod(sock, 0o600)
	os.Chmod(store, 0o700)
	if log, _ := os.ReadFile(filepath.Join(store, "snapfs.log")); !strings.Contains(string(log), "refused a connection of another user") {
		t.Fatalf("the daemon did not log the refused connection: %s", log)
	}
	for _, p := range []string{filepath.Join(mp, "disks", "plain"), filepath.Join(mp, "snapshots", "s1", "plain")} {
		if out, err := asNobody("cat", p); err == nil {
			t.Fatalf("uid 65534 read %s without --allow-other: %q", p, out)
		}
	}

	// Region: sync the encrypted disk's snapshot; restore it encrypted.
	rkey := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(rkey, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	var stores []string
	var rdirs []string
	for i := 0; i < 3; i++ {
		d := filepath.Join(tmp, fmt.Sprintf("r%d", i))
		os.Mkdir(d, 0o700)
		rdirs = append(rdirs, d)
		stores = append(stores, "--store", "file://"+d)
	}
	ok(t, store, append([]string{"region", "add", "r", "--data", "2", "--parity", "1", "--key-file", rkey}, stores...)...)
	ok(t, store, "sync", "--region", "r", "--disk", "sec")
	ok(t, store, "restore", "--region", "r", "--snapshot", "s1", "--disk", "sec", "--to", "back", "--encrypt", "--key-file", key)
	jsonLine(t, ok(t, store, "--json", "disk", "info", "back"), "disk", &di)
	if !di.Encrypted {
		t.Fatal("restore --encrypt made a plain disk")
	}
	if !bytes.Equal(readAt(t, filepath.Join(mp, "disks", "back"), 0, len(pattern)), pattern) {
		t.Fatal("restored disk reads other data")
	}
	ok(t, store, "snapshot", "delete", "s1")
	ok(t, store, "gc")
	scanFor(t, "after snapshots, clone, image, copy, sync, restore and gc", needle, append([]string{store}, rdirs...)...)

	// Restart without a key: everything encrypted is locked, files refuse
	// to open; restart with the key: everything as before.
	ok(t, store, "umount", mp)
	mountWith(t, store, mp)
	for _, n := range []string{"sec", "cl", "back", "plain-enc"} {
		if _, err := os.Open(filepath.Join(mp, "disks", n)); !errors.Is(err, syscall.ENOKEY) {
			t.Fatalf("open of %s without its key: %v", n, err)
		}
	}
	if got := readAt(t, filepath.Join(mp, "disks", "plain"), 0, 10); string(got) != "plain data" {
		t.Fatal("plain disk after restart")
	}
	ok(t, store, "umount", mp)
	mountWith(t, store, mp, "--key-file", key, "--allow-other")
	for _, n := range []string{"sec", "back"} {
		if !bytes.Equal(readAt(t, filepath.Join(mp, "disks", n), 0, len(pattern)), pattern) {
			t.Fatalf("%s after a restart with the key reads other data", n)
		}
	}
	// --allow-other: others see the names and reach what the modes allow,
	// never a disk image (0600, as a block device: it holds every file of
	// its filesystem, and an unlocked encrypted disk's plaintext) nor write.
	if out, err := asNobody("ls", filepath.Join(mp, "disks")); err != nil || !strings.Contains(out, "plain") {
		t.Fatalf("uid 65534 with --allow-other lists disks/: %v %q", err, out)
	}
	for _, n := range []string{"plain", "sec"} {
		if out, err := asNobody("head", "-c", "10", filepath.Join(mp, "disks", n)); err == nil {
			t.Fatalf("uid 65534 with --allow-other read disks/%s: %q", n, out)
		}
	}
	if out, err := asNobody("dd", "if=/dev/zero", "of="+filepath.Join(mp, "disks", "plain"), "bs=1", "count=1", "conv=notrunc"); err == nil {
		t.Fatalf("uid 65534 wrote a disk: %q", out)
	}
	ok(t, store, "check", "--read-data")
	scanFor(t, "after restart", needle, store)
	// The key files' contents are nowhere in the store (catalog, index,
	// logs, region configuration) nor in the region stores.
	for _, p := range []string{key, wrong} {
		b, _ := os.ReadFile(p)
		scanFor(t, "key file "+filepath.Base(p), bytes.TrimSpace(b), append([]string{store}, rdirs...)...)
	}

	// Tampering: a flipped byte in every sealed block (record checksums
	// made valid again, so only the authentication can tell): reads fail
	// with EIO, check reports corruption (exit 6).
	ok(t, store, "umount", mp)
	segs, _ := filepath.Glob(filepath.Join(store, "segments", "*"))
	flipped := 0
	for _, f := range segs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for off := segment.FileHeaderSize; off < len(b); {
			r, n, err := segment.Decode(b[off:])
			if err != nil {
				break
			}
			if r.Kind == segment.KindData && r.Flags&1 != 0 {
				r.Payload[len(r.Payload)/2] ^= 0x80
				copy(b[off:], segment.Encode(nil, &r))
				flipped++
			}
			off += n
		}
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if flipped == 0 {
		t.Fatal("no sealed record found in the segments")
	}
	mountWith(t, store, mp, "--key-file", key)
	if _, err := os.ReadFile(filepath.Join(mp, "disks", "sec")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of a tampered encrypted disk: %v", err)
	}
	if got := readAt(t, filepath.Join(mp, "disks", "plain"), 0, 10); string(got) != "plain data" {
		t.Fatal("plain disk after tampering with the encrypted ones")
	}
	fails(t, store, 6, "check", "--read-data")
}
