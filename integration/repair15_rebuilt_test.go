package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRepair15AfterIndexRebuild: a byte of a block record of snapshot s1
// (synced to a 2+1 file:// region) flipped, the index removed and
// `snapfs index rebuild` run: the block is indexed with no digest and
// reads EIO in the disk and the snapshot (exit 6 from check). `snapfs
// repair --from-region dr` mends it from the region's copy of s1 (exit 0,
// "1 block(s) repaired"): through the mount the disk and the snapshot
// read what was written and `check --read-data` is clean. On main repair
// exited 6, leaving it ("its digest is unknown").
func TestRepair15AfterIndexRebuild(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	store := filepath.Join(base, "store")
	mp := filepath.Join(base, "mnt")
	ok(t, store, "init")
	ok(t, store, "disk", "create", "d", "--size", "4M", "--block-size", "64K")
	const bs = 64 << 10
	data := randBytes(t, 1<<20)
	pid := daemon(t, store, mp)
	writeAt(t, filepath.Join(mp, "disks", "d"), 0, data)
	ok(t, store, "snapshot", "create", "s1", "--disk", "d")
	key := filepath.Join(base, "region.key")
	if err := os.WriteFile(key, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"region", "add", "dr", "--data", "2", "--parity", "1", "--key-file", key}
	for i := range 3 {
		d := filepath.Join(base, fmt.Sprintf("r%d", i))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		add = append(add, "--store", "file://"+d)
	}
	ok(t, store, add...)
	ok(t, store, "sync", "--region", "dr")
	stopDaemon(t, store, mp, pid)

	corruptPattern(t, store, data[7*bs:7*bs+256])
	if err := os.RemoveAll(filepath.Join(store, "index")); err != nil {
		t.Fatal(err)
	}
	r := fails(t, store, 6, "index", "rebuild")
	if !strings.Contains(r.stdout, "1 corrupt block record(s) indexed") {
		t.Fatalf("index rebuild: %s", r.stdout)
	}
	r = fails(t, store, 6, "check", "--read-data")
	for _, w := range []string{"disk d", "snapshot s1"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("check after the rebuild does not name %q: %s", w, r.stdout)
		}
	}
	out := ok(t, store, "repair", "--from-region", "dr")
	if !strings.Contains(out, "1 block(s) repaired, 0 left") {
		t.Errorf("repair: %s", out)
	}

	pid = daemon(t, store, mp)
	defer stopDaemon(t, store, mp, pid)
	for _, p := range []string{filepath.Join(mp, "disks", "d"), filepath.Join(mp, "snapshots", "s1", "d")} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(data))
		_, err = f.ReadAt(got, 0)
		f.Close()
		if errors.Is(err, syscall.EIO) || err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s after repair: err %v, equal %v", p, err, bytes.Equal(got, data))
		}
	}
	if out := ok(t, store, "check", "--read-data"); !strings.Contains(out, "check: OK") {
		t.Errorf("check after repair: %s", out)
	}
}
