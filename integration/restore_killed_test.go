package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestoreKilledLeavesNothing (issue 7 item 6): the daemon SIGKILLed
// while `snapfs restore` builds its temporary disk "restore-<hex>"; after a
// remount that disk is in neither `disk list` nor disks/: the daemon
// deletes it at start, before the mount serves. A new restore then works.
func TestRestoreKilledLeavesNothing(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	h, mp := filepath.Join(tmp, "host"), filepath.Join(tmp, "m")
	ok(t, h, "init")
	pid := daemon(t, h, mp)
	add := []string{"region", "add", "kr", "--data", "2", "--parity", "1", "--key-file", key}
	for i := range 3 {
		d := filepath.Join(tmp, fmt.Sprintf("store%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		add = append(add, "--store", "file://"+d)
	}
	ok(t, h, add...)
	ok(t, h, "disk", "create", "big", "--size", "256M")
	disk := filepath.Join(mp, "disks", "big")
	for off := int64(0); off < 128<<20; off += 16 << 20 {
		writeAt(t, disk, off, randBytes(t, 16<<20))
	}
	ok(t, h, "snapshot", "create", "k1", "--disk", "big")
	ok(t, h, "sync", "--region", "kr")

	var seen string
	for try := 0; try < 3 && seen == ""; try++ {
		cmd := exec.Command(bin, "restore", "--region", "kr", "--snapshot", "k1", "--disk", "big", "--to", fmt.Sprintf("back%d", try))
		cmd.Env = append(os.Environ(), "SNAPFS_STORE="+h)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && seen == ""; time.Sleep(2 * time.Millisecond) {
			ents, _ := os.ReadDir(filepath.Join(mp, "disks"))
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), "restore-") {
					seen = e.Name()
				}
			}
			if cmd.ProcessState != nil {
				break
			}
		}
		if seen != "" {
			if err := exec.Command("kill", "-9", pid).Run(); err != nil {
				t.Fatal(err)
			}
		}
		_ = cmd.Wait()
		if seen == "" {
			ok(t, h, "disk", "delete", fmt.Sprintf("back%d", try))
		}
	}
	if seen == "" {
		t.Fatal("never saw the restore's temporary disk: the kill was not provoked")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat("/proc/" + pid); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon %s did not die", pid)
		}
	}
	ok(t, h, "umount", mp) // the dead daemon's mount
	daemon(t, h, mp)
	if out := ok(t, h, "disk", "list"); strings.Contains(out, "restore-") {
		t.Fatalf("disk list after the remount shows the killed restore's disk:\n%s", out)
	}
	for _, n := range dirNames(t, filepath.Join(mp, "disks")) {
		if strings.HasPrefix(n, "restore-") {
			t.Fatalf("disks/ after the remount holds %s", n)
		}
	}
	ok(t, h, "restore", "--region", "kr", "--snapshot", "k1", "--disk", "big", "--to", "again")
	if fileSum(t, filepath.Join(mp, "disks", "again")) != fileSum(t, filepath.Join(mp, "snapshots", "k1", "big")) {
		t.Fatal("restore after the kill differs from the snapshot")
	}
	t.Logf("killed the daemon while %s existed; it was gone after the remount", seen)
}
