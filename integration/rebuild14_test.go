package integration

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRebuild14CorruptMiddle is the new-user trial's reproduction: 4 MiB
// written to a disk, a snapshot, an image and a clone of it, the daemon
// stopped; 4 bytes at offset 2000000 of the segment file overwritten; the
// index removed; `snapfs index rebuild`. On main the rebuild cut the
// segment at the damaged record ("truncating torn or corrupt tail"),
// reported 0 corrupt segments and exited 0: the snapshot, image and clone
// were gone, and half the disk. Now it exits 6 with one stderr line,
// reports 1 segment with corrupt records and the damaged block, keeps the
// old index as a named safety copy; every other block of the disk,
// snapshot, image and clone reads its data through the mount, the damaged
// block fails with EIO everywhere (never its zeros), and check
// --read-data names it with the disk and snapshot.
func TestRebuild14CorruptMiddle(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	store := filepath.Join(base, "store")
	mp := filepath.Join(base, "mnt")
	ok(t, store, "init")
	ok(t, store, "disk", "create", "d", "--size", "8M", "--block-size", "64K")
	const bs = 64 << 10
	data := randBytes(t, 4<<20)
	pid := daemon(t, store, mp)
	writeAt(t, filepath.Join(mp, "disks", "d"), 0, data)
	ok(t, store, "snapshot", "create", "s1", "--disk", "d")
	ok(t, store, "image", "create", "img", "--snapshot", "s1", "--disk", "d")
	ok(t, store, "disk", "create", "c", "--from-snapshot", "s1", "--disk", "d")
	stopDaemon(t, store, mp, pid)

	// The one segment file holding offset 2000000.
	segs, _ := filepath.Glob(filepath.Join(store, "segments", "*.seg"))
	var seg string
	for _, f := range segs {
		if fi, err := os.Stat(f); err == nil && fi.Size() > 2000004 {
			seg = f
		}
	}
	if seg == "" {
		t.Fatalf("no segment of more than 2000004 bytes among %v", segs)
	}
	fh, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	old := make([]byte, 4)
	if _, err := fh.ReadAt(old, 2000000); err != nil {
		t.Fatal(err)
	}
	bad := []byte("XXXX")
	if bytes.Equal(old, bad) {
		bad = []byte("YYYY")
	}
	if _, err := fh.WriteAt(bad, 2000000); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	if err := os.RemoveAll(filepath.Join(store, "index")); err != nil {
		t.Fatal(err)
	}
	sizeBefore := fileSize(t, seg)

	r := fails(t, store, 6, "index", "rebuild")
	t.Logf("index rebuild: %s%s", r.stdout, r.stderr)
	for _, want := range []string{"1 segments with corrupt records", "1 snapshots, 1 images", "1 corrupt block record(s) indexed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("index rebuild output lacks %q: %s", want, r.stdout)
		}
	}
	if got := fileSize(t, seg); got != sizeBefore {
		t.Errorf("rebuild changed the segment's size from %d to %d", sizeBefore, got)
	}

	// A rebuild of the (now healthy) index: exits 6 again (the log is
	// still damaged), and names the old index it kept and how to remove it.
	r = fails(t, store, 6, "index", "rebuild")
	if !strings.Contains(r.stdout, "old index kept as a safety copy at "+filepath.Join(store, "index.bad-")) || !strings.Contains(r.stdout, "rm -r ") {
		t.Errorf("second rebuild does not name the old index it kept: %s", r.stdout)
	}

	pid = daemon(t, store, mp)
	defer stopDaemon(t, store, mp, pid)
	badBlock := -1
	for _, path := range []string{
		filepath.Join(mp, "disks", "d"),
		filepath.Join(mp, "snapshots", "s1", "d"),
		filepath.Join(mp, "images", "img"),
		filepath.Join(mp, "disks", "c"),
	} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var eio []int
		buf := make([]byte, bs)
		for b := 0; b < len(data)/bs; b++ {
			_, err := f.ReadAt(buf, int64(b*bs))
			if errors.Is(err, syscall.EIO) {
				eio = append(eio, b)
				continue
			}
			if err != nil {
				t.Errorf("%s block %d: %v", path, b, err)
			} else if !bytes.Equal(buf, data[b*bs:(b+1)*bs]) {
				t.Errorf("%s block %d differs from what was written", path, b)
			}
		}
		f.Close()
		if len(eio) != 1 || badBlock >= 0 && eio[0] != badBlock {
			t.Errorf("%s: blocks failing with EIO %v, want exactly the damaged one (%d)", path, eio, badBlock)
		} else {
			badBlock = eio[0]
		}
	}
	r = fails(t, store, 6, "check", "--read-data")
	if !strings.Contains(r.stdout, "disk d") || !strings.Contains(r.stdout, "snapshot s1") {
		t.Errorf("check --read-data does not name disk d and snapshot s1: %s", r.stdout)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
