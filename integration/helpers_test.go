package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/integration/testutil"
)

// bin is the snapfs binary built by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "snapfs-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "snapfs")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/snapfs/snapfs/cmd/snapfs")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build snapfs:", err)
		return 1
	}
	return m.Run()
}

// needRoot skips a test that needs root and real mounts.
func needRoot(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = append(missing, "/dev/fuse")
	}
	for _, tool := range []string{"losetup", "mount", "umount", "mkfs.ext4", "fstrim"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		testutil.Skipf(t, "missing %v", missing)
	}
}

// result is what a snapfs run printed and its exit code.
type result struct {
	stdout, stderr string
	code           int
}

// snapfs runs the binary on store.
func snapfs(t *testing.T, store string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SNAPFS_STORE="+store)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("snapfs %v: %v", args, err)
	}
	return r
}

// ok runs snapfs and fails the test unless it succeeds; it returns stdout.
func ok(t *testing.T, store string, args ...string) string {
	t.Helper()
	r := snapfs(t, store, args...)
	if r.code != 0 {
		t.Fatalf("snapfs %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// fails runs snapfs and checks it fails with code and one "snapfs: " line.
func fails(t *testing.T, store string, code int, args ...string) result {
	t.Helper()
	r := snapfs(t, store, args...)
	if r.code != code {
		t.Fatalf("snapfs %s: exit %d, want %d (stderr %q)", strings.Join(args, " "), r.code, code, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "snapfs: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("snapfs %s: stderr is not one clear line: %q", strings.Join(args, " "), r.stderr)
	}
	return r
}

// jsonLine decodes one JSON line of type typ from out into v.
func jsonLine(t *testing.T, out, typ string, v any) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var head struct{ Type string }
		if err := json.Unmarshal([]byte(line), &head); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if head.Type == typ {
			if err := json.Unmarshal([]byte(line), v); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no %q line in %q", typ, out)
}

// diskInfo is `disk info --json`.
type diskInfo struct {
	Name      string
	Size      int64
	Allocated int64
	Open      int `json:"open_handles"`
}

func getDisk(t *testing.T, store, name string) diskInfo {
	t.Helper()
	var d diskInfo
	jsonLine(t, ok(t, store, "--json", "disk", "info", name), "disk", &d)
	return d
}

// daemon starts `snapfs mount --background` and stops it at cleanup. It
// returns the daemon's pid.
func daemon(t *testing.T, store, mp string) string {
	t.Helper()
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	out := ok(t, store, "--json", "mount", "--background", mp)
	var m struct{ PID string }
	jsonLine(t, out, "mount", &m)
	t.Cleanup(func() { stopDaemon(t, store, mp, m.PID) })
	return m.PID
}

// stopDaemon unmounts with snapfs umount, or by force.
func stopDaemon(t *testing.T, store, mp, pid string) {
	if !isMounted(mp) {
		return
	}
	if r := snapfs(t, store, "umount", mp); r.code == 0 {
		return
	} else {
		t.Errorf("snapfs umount %s: exit %d: %s", mp, r.code, r.stderr)
	}
	_ = exec.Command("umount", "-l", mp).Run()
	if pid != "" {
		_ = exec.Command("kill", "-9", pid).Run()
	}
}

func isMounted(mp string) bool {
	data, _ := os.ReadFile("/proc/self/mounts")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == mp {
			return true
		}
	}
	return false
}

// sh runs a command, failing the test on error; it returns trimmed stdout.
func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %v: %v: %s", name, args, err, msg)
	}
	return strings.TrimSpace(string(out))
}

// loopMount attaches file to a loop device and mounts it at dir (created),
// with mount options opts; both are undone at cleanup. It returns an
// unmount function that also detaches (idempotent).
func loopMount(t *testing.T, file, dir string, opts ...string) func() {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	loop := sh(t, "losetup", "-f", "--show", file)
	done := false
	undo := func() {
		if done {
			return
		}
		done = true
		if isMounted(dir) {
			if err := exec.Command("umount", dir).Run(); err != nil {
				_ = exec.Command("umount", "-l", dir).Run()
			}
		}
		_ = exec.Command("losetup", "-d", loop).Run()
	}
	t.Cleanup(undo)
	args := append(append([]string{}, opts...), loop, dir)
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Fatalf("mount %v: %v: %s", args, err, out)
	}
	return undo
}

// plainMount mounts with mount(8) (e.g. -o loop) and unmounts at cleanup.
func plainMount(t *testing.T, dir string, args ...string) func() {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	undo := func() {
		if isMounted(dir) {
			if err := exec.Command("umount", dir).Run(); err != nil {
				_ = exec.Command("umount", "-l", dir).Run()
			}
		}
	}
	t.Cleanup(undo)
	if out, err := exec.Command("mount", append(args, dir)...).CombinedOutput(); err != nil {
		t.Fatalf("mount %v: %v: %s", args, err, out)
	}
	return undo
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeFileSync writes data to path and fsyncs it.
func writeFileSync(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeAt writes data at off of an existing file (a disk) and fsyncs.
func writeAt(t *testing.T, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("read %s at %d: %v", path, off, err)
	}
	return b
}

// readDirect reads n bytes at off with O_DIRECT into an aligned buffer, in
// one read(2), and returns what it read.
func readDirect(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatalf("open %s O_DIRECT: %v", path, err)
	}
	defer syscall.Close(fd)
	buf, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(buf)
	got, err := syscall.Pread(fd, buf, off)
	if err != nil {
		t.Fatalf("O_DIRECT read of %s: %v", path, err)
	}
	if got != n {
		t.Fatalf("O_DIRECT read of %s at %d returned %d bytes, want %d", path, off, got, n)
	}
	return append([]byte(nil), buf...)
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}
