package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegionV4CLI: index version 4 through the commands. A 4+2 region of
// file:// stores holds each pack's index on m+1 = 3 stores. With two of an
// index's three stores gone, another host restores the incremental
// snapshot (delta chunks) byte for byte and check says unavailable, never
// lost; with all three gone (fewer than k stores), restore fails with
// exit 11 ("too few"), check says unavailable (exit 11, nothing lost) and
// repair (which deletes unindexed packs as garbage) deletes no shard; with the stores back, check --read-data is
// clean and the snapshot restores.
func TestRegionV4CLI(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	dirs := make([]string, 6)
	add := []string{"region", "add", "dr", "--data", "4", "--parity", "2", "--key-file", key}
	for i := range dirs {
		dirs[i] = filepath.Join(tmp, fmt.Sprintf("store%d", i))
		if err := os.Mkdir(dirs[i], 0o755); err != nil {
			t.Fatal(err)
		}
		add = append(add, "--store", "file://"+dirs[i])
	}
	h1, mp1 := filepath.Join(tmp, "host1"), filepath.Join(tmp, "m1")
	ok(t, h1, "init")
	daemon(t, h1, mp1)
	ok(t, h1, add...)
	ok(t, h1, "disk", "create", "vol1", "--size", "16M")
	disk := filepath.Join(mp1, "disks", "vol1")
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(randBytes(t, 16<<20), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	ok(t, h1, "snapshot", "create", "s1", "--disk", "vol1")
	ok(t, h1, "sync", "--region", "dr")
	rng := rand.New(rand.NewPCG(8, 9))
	for range 64 { // 4 KiB writes: deltas
		if _, err := f.WriteAt(randBytes(t, 4096), rng.Int64N(16<<20/4096)*4096); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	ok(t, h1, "snapshot", "create", "s2", "--disk", "vol1")
	var st struct{ Snapshots, Deltas int }
	jsonLine(t, ok(t, h1, "--json", "sync", "--region", "dr"), "sync", &st)
	if st.Snapshots != 1 || st.Deltas == 0 {
		t.Fatalf("incremental sync: %+v", st)
	}
	want := fileSum(t, filepath.Join(mp1, "snapshots", "s2", "vol1"))

	// Each index on three stores.
	on := map[string][]int{}
	for i, d := range dirs {
		es, _ := os.ReadDir(filepath.Join(d, "index"))
		for _, e := range es {
			on[e.Name()] = append(on[e.Name()], i)
		}
	}
	var name string
	for n, stores := range on {
		if len(stores) != 3 {
			t.Fatalf("index %s is on stores %v, want 3 of the 6", n, stores)
		}
		name = n
	}
	homes := on[name]
	t.Logf("%d indexes; index %s on stores %v", len(on), name, homes)

	h2, mp2 := filepath.Join(tmp, "host2"), filepath.Join(tmp, "m2")
	ok(t, h2, "init")
	daemon(t, h2, mp2)
	ok(t, h2, add...)
	hide := func(is ...int) func() {
		for _, i := range is {
			if err := os.Rename(dirs[i], dirs[i]+".gone"); err != nil {
				t.Fatal(err)
			}
		}
		return func() {
			for _, i := range is {
				_ = os.RemoveAll(dirs[i])
				if err := os.Rename(dirs[i]+".gone", dirs[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	shards := func() int {
		n := 0
		for _, d := range dirs {
			es, _ := os.ReadDir(filepath.Join(d, "packs"))
			n += len(es)
		}
		return n
	}
	notLost := func(r result) {
		t.Helper()
		if strings.Contains(r.stdout, "lost (cannot be restored): s") {
			t.Fatalf("check with stores gone calls a snapshot lost: %q", r.stdout)
		}
	}

	// Two of its three stores gone: restore works, nothing is lost.
	back := hide(homes[0], homes[1])
	ok(t, h2, "restore", "--region", "dr", "--snapshot", "s2", "--disk", "vol1", "--to", "two-gone")
	if fileSum(t, filepath.Join(mp2, "disks", "two-gone")) != want {
		t.Fatal("s2 restored with two stores gone differs")
	}
	notLost(fails(t, h2, 11, "region", "check", "dr", "--read-data"))
	back()

	// All three gone: fewer than k stores.
	before := shards()
	back = hide(homes...)
	r := fails(t, h2, 11, "restore", "--region", "dr", "--snapshot", "s2", "--disk", "vol1", "--to", "three-gone")
	if !strings.Contains(r.stderr, "too few") {
		t.Errorf("restore with an index's three stores gone: %q", r.stderr)
	}
	notLost(fails(t, h2, 11, "region", "check", "dr"))
	r = snapfs(t, h2, "region", "repair", "dr") // it cannot repair the stores that are gone (exit 11 when they are all it left, as check)
	t.Logf("repair with three stores gone: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
	back()
	if n := shards(); n != before {
		t.Fatalf("repair with the index's stores gone deleted shards: %d -> %d", before, n)
	}
	ok(t, h2, "region", "check", "dr", "--read-data")
	ok(t, h2, "restore", "--region", "dr", "--snapshot", "s2", "--disk", "vol1", "--to", "back")
	if fileSum(t, filepath.Join(mp2, "disks", "back")) != want {
		t.Fatal("s2 restored with the stores back differs")
	}
}
