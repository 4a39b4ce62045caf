package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestRegionLostIndexRepairOnSyncHostCLI: every copy of the indexes of
// s2's packs corrupt on every store (bit rot, a bad restore of the
// buckets). The engineer runs region repair on the host that synced s2,
// whose daemon's index cache still holds good copies: repair puts them
// back (exit 0, not 12 "no good copy" every time), check --read-data is
// clean, and another host restores s2 byte for byte.
func TestRegionLostIndexRepairOnSyncHostCLI(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	dirs := make([]string, 3)
	add := []string{"region", "add", "dr", "--data", "2", "--parity", "1", "--key-file", key}
	for i := range dirs {
		dirs[i] = filepath.Join(tmp, fmt.Sprintf("store%d", i))
		if err := os.Mkdir(dirs[i], 0o755); err != nil {
			t.Fatal(err)
		}
		add = append(add, "--store", "file://"+dirs[i])
	}
	indexes := func() map[string]bool {
		out := map[string]bool{}
		for _, d := range dirs {
			es, _ := os.ReadDir(filepath.Join(d, "index"))
			for _, e := range es {
				out[e.Name()] = true
			}
		}
		return out
	}
	h1, mp1 := filepath.Join(tmp, "host1"), filepath.Join(tmp, "m1")
	ok(t, h1, "init")
	daemon(t, h1, mp1)
	ok(t, h1, add...)
	ok(t, h1, "disk", "create", "vol1", "--size", "8M")
	f, err := os.OpenFile(filepath.Join(mp1, "disks", "vol1"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	write := func(off int64, n int) {
		if _, err := f.WriteAt(randBytes(t, n), off); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 8<<20)
	ok(t, h1, "snapshot", "create", "s1", "--disk", "vol1")
	ok(t, h1, "sync", "--region", "dr")
	before := indexes()
	write(0, 2<<20)
	ok(t, h1, "snapshot", "create", "s2", "--disk", "vol1")
	ok(t, h1, "sync", "--region", "dr")
	want2 := fileSum(t, filepath.Join(mp1, "snapshots", "s2", "vol1"))
	n := 0
	for name := range indexes() {
		if before[name] {
			continue
		}
		for _, d := range dirs {
			p := filepath.Join(d, "index", name)
			b, err := os.ReadFile(p)
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x55
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("the sync of s2 wrote no index")
	}
	fails(t, h1, 12, "region", "check", "dr")
	ok(t, h1, "region", "repair", "dr")
	ok(t, h1, "region", "check", "dr", "--read-data")

	h2, mp2 := filepath.Join(tmp, "host2"), filepath.Join(tmp, "m2")
	ok(t, h2, "init")
	daemon(t, h2, mp2)
	ok(t, h2, add...)
	ok(t, h2, "restore", "--region", "dr", "--snapshot", "s2", "--disk", "vol1", "--to", "r2")
	if fileSum(t, filepath.Join(mp2, "disks", "r2")) != want2 {
		t.Fatal("s2 restored after repair on its sync host differs")
	}
}
