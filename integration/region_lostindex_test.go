package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRegionLostIndexCLI: the indexes of the packs of a snapshot deleted
// on every store (by hand, a bucket lifecycle rule). Another host still
// restores the snapshot that needs none of them; the one that does fails
// (exit 6) saying region repair rebuilds the index; check says so (exit
// 12); repair rebuilds the indexes from the packs' own tables (text and
// indexes_rebuilt in JSON) instead of deleting the packs as garbage, and
// the snapshot restores byte for byte. With a store unreachable, repair
// exits 11 as check does.
func TestRegionLostIndexCLI(t *testing.T) {
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
	disk := filepath.Join(mp1, "disks", "vol1")
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
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
	want1 := fileSum(t, filepath.Join(mp1, "snapshots", "s1", "vol1"))
	want2 := fileSum(t, filepath.Join(mp1, "snapshots", "s2", "vol1"))
	var lost []string
	for name := range indexes() {
		if !before[name] {
			lost = append(lost, name)
		}
	}
	if len(lost) == 0 {
		t.Fatal("the sync of s2 wrote no pack")
	}
	slices.Sort(lost)
	packs := 0
	for _, d := range dirs {
		for _, name := range lost {
			if err := os.Remove(filepath.Join(d, "index", name)); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		es, _ := os.ReadDir(filepath.Join(d, "packs"))
		packs += len(es)
	}
	t.Logf("indexes of s2's packs deleted on every store: %v", lost)

	h2, mp2 := filepath.Join(tmp, "host2"), filepath.Join(tmp, "m2")
	ok(t, h2, "init")
	daemon(t, h2, mp2)
	ok(t, h2, add...)
	ok(t, h2, "restore", "--region", "dr", "--snapshot", "s1", "--disk", "vol1", "--to", "r1")
	if fileSum(t, filepath.Join(mp2, "disks", "r1")) != want1 {
		t.Fatal("s1 restored differs")
	}
	r := fails(t, h2, 6, "restore", "--region", "dr", "--snapshot", "s2", "--disk", "vol1", "--to", "r2")
	if !strings.Contains(r.stderr, "region repair dr") || !strings.Contains(r.stderr, lost[0]) {
		t.Fatalf("restore of s2 with its indexes lost: %q", r.stderr)
	}
	r = fails(t, h2, 12, "region", "check", "dr")
	if !strings.Contains(r.stdout, "repair rebuilds them") || !strings.Contains(r.stdout, lost[0]) || strings.Contains(r.stdout, "lost (cannot be restored): s") {
		t.Fatalf("check with the indexes of s2's packs lost: %q", r.stdout)
	}
	out := ok(t, h2, "region", "repair", "dr")
	if !strings.Contains(out, fmt.Sprintf("%d pack index(es) rebuilt", len(lost))) {
		t.Fatalf("repair: %q", out)
	}
	n := 0
	for _, d := range dirs {
		es, _ := os.ReadDir(filepath.Join(d, "packs"))
		n += len(es)
	}
	if n != packs {
		t.Fatalf("repair deleted shards: %d -> %d", packs, n)
	}
	var rep struct {
		IndexesRebuilt []string `json:"indexes_rebuilt"`
	}
	jsonLine(t, ok(t, h2, "--json", "region", "repair", "dr"), "repair", &rep)
	if len(rep.IndexesRebuilt) != 0 {
		t.Fatalf("second repair rebuilt again: %v", rep.IndexesRebuilt)
	}
	ok(t, h2, "region", "check", "dr", "--read-data")
	ok(t, h2, "restore", "--region", "dr", "--snapshot", "s2", "--disk", "vol1", "--to", "r3")
	if fileSum(t, filepath.Join(mp2, "disks", "r3")) != want2 {
		t.Fatal("s2 restored after repair differs")
	}

	// A store unreachable: check and repair agree on exit 11 (unavailable:
	// bring it back), not repair 12 (degraded).
	if err := os.Rename(dirs[2], dirs[2]+".gone"); err != nil {
		t.Fatal(err)
	}
	fails(t, h2, 11, "region", "check", "dr")
	r = fails(t, h2, 11, "region", "repair", "dr")
	if !strings.Contains(r.stderr, "unreachable") {
		t.Fatalf("repair with store 2 unreachable: %q", r.stderr)
	}
	if err := os.Rename(dirs[2]+".gone", dirs[2]); err != nil {
		t.Fatal(err)
	}
	ok(t, h2, "region", "repair", "dr")
}
