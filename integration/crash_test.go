package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestDaemonKilled: the daemon killed with SIGKILL after an fsync'd write;
// snapfs umount removes the dead mount, mount again, the data is there.
func TestDaemonKilled(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	pid := daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "64M")
	disk := filepath.Join(mp, "disks", "d")
	data := randBytes(t, 1<<20+4096+17) // whole and partial blocks
	writeAt(t, disk, 4<<20+512, data)

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
	ok(t, store, "umount", mp) // the dead daemon's mount
	if isMounted(mp) {
		t.Fatal("stale mount left behind")
	}
	daemon(t, store, mp)
	if got := readAt(t, disk, 4<<20+512, len(data)); !bytes.Equal(got, data) {
		t.Fatal("an fsync'd write was lost when the daemon was killed")
	}
	// O_DIRECT reads of a disk return their full length too.
	if got := readDirect(t, disk, 4<<20, 1<<20); !bytes.Equal(got[512:], data[:1<<20-512]) {
		t.Fatal("O_DIRECT read of the disk returned other data")
	}
}

// TestForegroundSignal: a foreground daemon stops on SIGTERM, flushing and
// unmounting, and exits 0; writes made before are there after a remount.
func TestForegroundSignal(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	ok(t, store, "disk", "create", "d", "--size", "8M")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--store", store, "mount", mp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if isMounted(mp) {
			_ = exec.Command("umount", "-l", mp).Run()
		}
		_ = cmd.Process.Kill()
	})
	disk := filepath.Join(mp, "disks", "d")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(disk); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("foreground mount not ready: %s", stderr.String())
		}
	}
	data := randBytes(t, 100000)
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 12345); err != nil { // no fsync: the shutdown flushes
		t.Fatal(err)
	}
	f.Close()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("daemon after SIGINT: %v: %s", err, stderr.String())
	}
	if isMounted(mp) {
		t.Fatal("still mounted after SIGINT")
	}
	daemon(t, store, mp)
	if !bytes.Equal(readAt(t, disk, 12345, len(data)), data) {
		t.Fatal("a write before SIGINT was lost")
	}
}
