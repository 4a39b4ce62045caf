package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// trial11Region adds a 2+1 file:// region "dr" under tmp to store.
func trial11Region(t *testing.T, store, tmp string) {
	t.Helper()
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"region", "add", "dr", "--data", "2", "--parity", "1", "--key-file", key}
	for i := 0; i < 3; i++ {
		d := filepath.Join(tmp, fmt.Sprintf("region%d", i))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		add = append(add, "--store", "file://"+d)
	}
	ok(t, store, add...)
}

// Trial 11: `snapfs umount` while a sync ran through the daemon ended the
// sync with exit 1 and "snapfs: sync snapshot ...: context canceled
// (context canceled)" (a `check --read-data`: "snapfs: context canceled"),
// which says neither what happened nor what to do. The job now ends with
// exit 130 (interrupted) and says the daemon stopped and to run it again;
// run again on a new daemon, it completes.
func TestTrial11UmountDuringSync(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	trial11Region(t, store, tmp)
	ok(t, store, "disk", "create", "d", "--size", "256M")
	disk := filepath.Join(mp, "disks", "d")
	for off := int64(0); off < 192<<20; off += 16 << 20 {
		writeAt(t, disk, off, randBytes(t, 16<<20))
	}
	ok(t, store, "snapshot", "create", "s", "--disk", "d")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--json", "sync", "--region", "dr")
	cmd.Env = append(os.Environ(), "SNAPFS_STORE="+store)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Stop the daemon once the sync has shipped something.
	sc := bufio.NewScanner(out)
	shipping := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"blocks":`) {
			shipping = true
			break
		}
	}
	if !shipping {
		cmd.Wait()
		t.Fatalf("sync ended before it shipped anything: %s", errb.String())
	}
	ok(t, store, "umount", mp)
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	code := 0
	if ee, isExit := err.(*exec.ExitError); isExit {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	msg := errb.String()
	if code == 0 {
		t.Fatalf("the sync finished before the daemon stopped (too little data for this machine?): %q", msg)
	}
	if code != 130 || !strings.HasPrefix(msg, "snapfs: ") || strings.Count(msg, "\n") != 1 ||
		!strings.Contains(msg, "daemon serving the store stopped") || !strings.Contains(msg, "run it again") {
		t.Fatalf("sync cut by snapfs umount: exit %d, stderr %q; want 130 and a line saying the daemon stopped and to run it again", code, msg)
	}
	daemon(t, store, mp)
	ok(t, store, "sync", "--region", "dr")
	ok(t, store, "region", "check", "dr", "--read-data")
	back := filepath.Join(mp, "disks", "back")
	ok(t, store, "restore", "--region", "dr", "--snapshot", "s", "--disk", "d", "--to", "back")
	if a, b := fileSum(t, filepath.Join(mp, "snapshots", "s", "d")), fileSum(t, back); a != b {
		t.Fatal("restore after the interrupted and resumed sync differs from the snapshot")
	}
}
