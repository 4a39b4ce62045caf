package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestUserScenario is issue 3's "Verify" walk-through: ext4 in a disk,
// snapshot, browse, snapshot mount and cp restore, loop-mount of a snapshot,
// fstrim, rollback, clone, EROFS, and everything again after a remount.
func TestUserScenario(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)

	ok(t, store, "disk", "create", "vol1", "--size", "1G")
	disk := filepath.Join(mp, "disks", "vol1")
	if fi, err := os.Stat(disk); err != nil || fi.Size() != 1<<30 {
		t.Fatalf("stat %s: %v %v", disk, fi, err)
	}
	sh(t, "mkfs.ext4", "-q", "-F", "-E", "nodiscard", disk)
	vol := filepath.Join(tmp, "vol1")
	umountVol := loopMount(t, disk, vol)

	// Files with known checksums.
	a, b, c := randBytes(t, 1<<20), randBytes(t, 3<<20+123), []byte("small file\n")
	writeFileSync(t, filepath.Join(vol, "a"), a)
	writeFileSync(t, filepath.Join(vol, "b"), b)
	if err := os.Mkdir(filepath.Join(vol, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFileSync(t, filepath.Join(vol, "dir", "c"), c)
	sh(t, "sync", "-f", filepath.Join(vol, "a"))
	ok(t, store, "snapshot", "create", "S", "--disk", "vol1")

	// Change and delete.
	a2 := randBytes(t, 1<<20)
	writeFileSync(t, filepath.Join(vol, "a"), a2)
	if err := os.Remove(filepath.Join(vol, "b")); err != nil {
		t.Fatal(err)
	}
	sh(t, "sync", "-f", filepath.Join(vol, "a"))

	// snapshots/S/ lists the disk, its files (vol1.files: an ext4) and
	// snapshot.json, which is `snapshot info --json`.
	if got := dirNames(t, filepath.Join(mp, "snapshots", "S")); !slices.Equal(got, []string{"snapshot.json", "vol1", "vol1.files"}) {
		t.Fatalf("snapshots/S: %v", got)
	}
	js, err := os.ReadFile(filepath.Join(mp, "snapshots", "S", "snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	if info := ok(t, store, "--json", "snapshot", "info", "S"); info != string(js) {
		t.Fatalf("snapshot.json %q != snapshot info --json %q", js, info)
	}
	var sj struct {
		Type, Name, State string
		Disks             []struct{ Name string }
	}
	if err := json.Unmarshal(js, &sj); err != nil || sj.Type != "snapshot" || sj.Name != "S" || len(sj.Disks) != 1 || sj.Disks[0].Name != "vol1" {
		t.Fatalf("snapshot.json %s: %+v %v", js, sj, err)
	}

	// snapshot mount shows the old files; cp restores them byte for byte.
	smp := filepath.Join(tmp, "snapmount")
	if err := os.Mkdir(smp, 0o755); err != nil {
		t.Fatal(err)
	}
	ok(t, store, "snapshot", "mount", "S", "--disk", "vol1", smp)
	t.Cleanup(func() {
		if isMounted(smp) {
			if r := snapfs(t, store, "snapshot", "umount", smp); r.code != 0 {
				t.Errorf("snapshot umount: %s", r.stderr)
				_ = exec.Command("umount", "-l", smp).Run()
			}
		}
	})
	var disks []diskInfo
	for _, line := range strings.Split(strings.TrimSpace(ok(t, store, "--json", "disk", "list")), "\n") {
		var d diskInfo
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, d)
	}
	if len(disks) != 1 || disks[0].Name != "vol1" { // the scratch clone is never listed
		t.Fatalf("disks while a snapshot is mounted: %+v", disks)
	}
	for name, want := range map[string][]byte{"a": a, "b": b, "dir/c": c} {
		if got := fileSum(t, filepath.Join(smp, name)); got != sum(want) {
			t.Fatalf("snapshot mount: %s has the wrong content", name)
		}
	}
	if err := os.WriteFile(filepath.Join(smp, "x"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write into a snapshot mount: %v, want EROFS", err)
	}
	sh(t, "cp", filepath.Join(smp, "b"), filepath.Join(vol, "b"))
	sh(t, "sync", "-f", filepath.Join(vol, "b"))
	if fileSum(t, filepath.Join(vol, "b")) != sum(b) {
		t.Fatal("cp restore: b differs")
	}
	ok(t, store, "snapshot", "umount", smp)
	if isMounted(smp) || strings.Contains(ok(t, store, "disk", "list"), "snapmount-") {
		t.Fatal("snapshot umount left the mount or the clone")
	}

	// mount -o loop,ro,noload of the snapshot's file works too.
	ro := filepath.Join(tmp, "ro")
	umountRO := plainMount(t, ro, "-o", "loop,ro,noload", filepath.Join(mp, "snapshots", "S", "vol1"))
	if fileSum(t, filepath.Join(ro, "a")) != sum(a) || fileSum(t, filepath.Join(ro, "b")) != sum(b) {
		t.Fatal("loop,ro,noload mount of the snapshot: wrong content")
	}
	umountRO()

	// One O_DIRECT read through the real engine returns its full length.
	if got, want := readDirect(t, filepath.Join(mp, "snapshots", "S", "vol1"), 1<<20, 1<<20), readAt(t, filepath.Join(mp, "snapshots", "S", "vol1"), 1<<20, 1<<20); !bytes.Equal(got, want) {
		t.Fatal("O_DIRECT read differs from a buffered read")
	}

	// fstrim after deleting a big file lowers the disk's allocated bytes.
	writeFileSync(t, filepath.Join(vol, "big"), randBytes(t, 64<<20))
	sh(t, "sync", "-f", filepath.Join(vol, "big"))
	before := getDisk(t, store, "vol1").Allocated
	if err := os.Remove(filepath.Join(vol, "big")); err != nil {
		t.Fatal(err)
	}
	sh(t, "sync", "-f", filepath.Join(vol, "a"))
	sh(t, "fstrim", vol)
	if after := getDisk(t, store, "vol1").Allocated; after > before-32<<20 {
		t.Fatalf("fstrim: allocated %d -> %d, want at least 32 MiB less", before, after)
	}

	// A later snapshot; then roll back to S while S2 stays intact.
	ok(t, store, "snapshot", "create", "S2", "--disk", "vol1")
	fails(t, store, 5, "disk", "rollback", "vol1", "--snapshot", "S") // open by the loop device
	umountVol()
	ok(t, store, "disk", "rollback", "vol1", "--snapshot", "S")
	umountVol = loopMount(t, disk, vol)
	if fileSum(t, filepath.Join(vol, "a")) != sum(a) || fileSum(t, filepath.Join(vol, "b")) != sum(b) {
		t.Fatal("rollback: old state not back")
	}
	ro2 := filepath.Join(tmp, "ro2")
	umountRO2 := plainMount(t, ro2, "-o", "loop,ro,noload", filepath.Join(mp, "snapshots", "S2", "vol1"))
	if fileSum(t, filepath.Join(ro2, "a")) != sum(a2) || fileSum(t, filepath.Join(ro2, "b")) != sum(b) {
		t.Fatal("S2 changed by the rollback")
	}
	umountRO2()
	umountVol()

	// A clone is independent of its origin (block level).
	ok(t, store, "disk", "create", "clone1", "--from-snapshot", "S", "--disk", "vol1")
	clone := filepath.Join(mp, "disks", "clone1")
	const off = 700 << 20
	orig := readAt(t, disk, off, 64<<10)
	x, y := randBytes(t, 64<<10), randBytes(t, 64<<10)
	writeAt(t, clone, off, x)
	writeAt(t, disk, off+(1<<20), y)
	if !bytes.Equal(readAt(t, disk, off, 64<<10), orig) || !bytes.Equal(readAt(t, clone, off, 64<<10), x) {
		t.Fatal("a write to the clone shows in its origin")
	}
	if bytes.Equal(readAt(t, clone, off+(1<<20), 64<<10), y) {
		t.Fatal("a write to the origin shows in the clone")
	}
	writeAt(t, disk, off+(1<<20), readAt(t, filepath.Join(mp, "snapshots", "S", "vol1"), off+(1<<20), 64<<10))

	// Writes under snapshots/ and images/ fail with EROFS.
	ok(t, store, "image", "create", "img1", "--snapshot", "S", "--disk", "vol1")
	for _, p := range []string{filepath.Join(mp, "snapshots", "S", "vol1"), filepath.Join(mp, "images", "img1"), filepath.Join(mp, "snapshots", "S", "snapshot.json")} {
		if _, err := os.OpenFile(p, os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) {
			t.Fatalf("open %s for writing: %v, want EROFS", p, err)
		}
	}
	if err := os.WriteFile(filepath.Join(mp, "snapshots", "S", "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("create under snapshots/S: %v, want EROFS", err)
	}
	if err := os.Mkdir(filepath.Join(mp, "images", "d"), 0o755); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("mkdir under images: %v, want EROFS", err)
	}
	if fileSum(t, filepath.Join(mp, "images", "img1")) != fileSum(t, filepath.Join(mp, "snapshots", "S", "vol1")) {
		t.Fatal("image differs from its snapshot")
	}

	// Everything survives umount and mount again.
	ok(t, store, "umount", mp)
	if isMounted(mp) {
		t.Fatal("still mounted after snapfs umount")
	}
	daemon(t, store, mp)
	if got := dirNames(t, filepath.Join(mp, "disks")); !slices.Equal(got, []string{"clone1", "vol1"}) {
		t.Fatalf("disks after remount: %v", got)
	}
	if got := dirNames(t, filepath.Join(mp, "snapshots")); !slices.Equal(got, []string{"S", "S2"}) {
		t.Fatalf("snapshots after remount: %v", got)
	}
	if got := dirNames(t, filepath.Join(mp, "images")); !slices.Equal(got, []string{"img1", "img1.files"}) { // an ext4: img1.files
		t.Fatalf("images after remount: %v", got)
	}
	if !bytes.Equal(readAt(t, clone, off, 64<<10), x) {
		t.Fatal("clone write lost across remount")
	}
	loopMount(t, disk, vol)
	for name, want := range map[string][]byte{"a": a, "b": b, "dir/c": c} {
		if fileSum(t, filepath.Join(vol, name)) != sum(want) {
			t.Fatalf("after remount: %s has the wrong content", name)
		}
	}
}
