package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/store/s3test"
)

// TestRegions is issue 4's walk-through as a user does it: a 4+2 region over
// four file:// stores and two S3 prefixes (versitygw), ext4 in a disk, three
// snapshots synced (through the daemon and without one), a second host that
// attaches and restores every snapshot byte for byte, restores with two
// stores gone, a clean failure with three gone, a corrupt shard found by
// check and rebuilt by repair, and prune.
func TestRegions(t *testing.T) {
	needRoot(t)
	start := time.Now()
	endpoint, access, secret := s3test.Start(t)
	// Both hosts' commands and daemons take S3 credentials from the
	// environment (the daemons inherit it from the test).
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)

	tmp := t.TempDir()
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	dirs := make([]string, 6)
	var stores []string
	for i := range dirs {
		switch i {
		case 1:
			stores = append(stores, "s3://snapfs-regions/east/data1")
		case 4:
			stores = append(stores, "s3://snapfs-regions/east/parity0")
		default:
			dirs[i] = filepath.Join(tmp, fmt.Sprintf("store%d", i))
			if err := os.Mkdir(dirs[i], 0o755); err != nil { // a region never creates it on /
				t.Fatal(err)
			}
			stores = append(stores, "file://"+dirs[i])
		}
	}
	add := []string{"region", "add", "dr", "--data", "4", "--parity", "2", "--key-file", key,
		"--s3-endpoint", endpoint, "--s3-path-style"}
	for _, s := range stores {
		add = append(add, "--store", s)
	}

	// Host 1, with its daemon: ext4 in vol1, s1 synced, s2 copied.
	h1, mp1 := filepath.Join(tmp, "host1"), filepath.Join(tmp, "m1")
	ok(t, h1, "init")
	daemon(t, h1, mp1)
	if out := ok(t, h1, add...); !strings.Contains(out, "created region dr (4+2 over 6 stores)") {
		t.Fatalf("region add: %q", out)
	}
	fails(t, h1, 4, add...)
	ok(t, h1, "disk", "create", "vol1", "--size", "64M")
	disk := filepath.Join(mp1, "disks", "vol1")
	sh(t, "mkfs.ext4", "-q", "-F", "-E", "nodiscard", disk)
	vol := filepath.Join(tmp, "vol1")
	write := func(name string, n int) {
		t.Helper()
		undo := loopMount(t, disk, vol)
		writeFileSync(t, filepath.Join(vol, name), randBytes(t, n))
		undo()
	}
	write("a", 3<<20)
	ok(t, h1, "snapshot", "create", "s1", "--disk", "vol1")
	out := ok(t, h1, "--json", "sync", "--region", "dr")
	types := jsonTypes(t, out)
	if types[0] != "start" || types[len(types)-1] != "sync" || !contains(types, "snapshot") || !contains(types, "done") {
		t.Fatalf("sync --json types %v", types)
	}
	write("b", 2<<20)
	ok(t, h1, "snapshot", "create", "s2", "--disk", "vol1")
	ok(t, h1, "snapshot", "copy", "s2", "--region", "dr")
	write("a", 1<<20) // rewrite part of a
	ok(t, h1, "snapshot", "create", "s3", "--disk", "vol1")

	// The snapshot images, through the mount, to compare restores with.
	want := map[string]string{}
	for _, s := range []string{"s1", "s2", "s3"} {
		want[s] = fileSum(t, filepath.Join(mp1, "snapshots", s, "vol1"))
	}
	// snapshot.json shows the copies, without asking the stores.
	if got := copyState(t, readFile(t, filepath.Join(mp1, "snapshots", "s2", "snapshot.json"))); got != "available" {
		t.Fatalf("s2 copy in dr: %q", got)
	}
	if got := copyState(t, ok(t, h1, "--json", "snapshot", "info", "s3")); got != "absent" {
		t.Fatalf("s3 copy in dr before sync: %q", got)
	}
	ok(t, h1, "umount", mp1)

	// Host 1 without a daemon: s3 synced; s1 and s2 are skipped.
	var st struct{ Snapshots, Skipped int }
	jsonLine(t, ok(t, h1, "--json", "sync", "--region", "dr", "--disk", "vol1"), "sync", &st)
	if st.Snapshots != 1 || st.Skipped != 2 {
		t.Fatalf("second sync: %+v", st)
	}
	if got := copyState(t, ok(t, h1, "--json", "snapshot", "info", "s3")); got != "available" {
		t.Fatalf("s3 copy in dr after sync: %q", got)
	}
	if out := ok(t, h1, "snapshot", "info", "s3"); !strings.Contains(out, "available") {
		t.Fatalf("snapshot info s3: %q", out)
	}
	ok(t, h1, "region", "check", "dr")
	t.Logf("host 1 synced 3 snapshots after %v", time.Since(start).Round(time.Millisecond))

	// Host 2, with its daemon: attaches and sees the three snapshots.
	h2, mp2 := filepath.Join(tmp, "host2"), filepath.Join(tmp, "m2")
	ok(t, h2, "init")
	daemon(t, h2, mp2)
	if out := ok(t, h2, add...); !strings.Contains(out, "attached region dr") {
		t.Fatalf("region add on host 2: %q", out)
	}
	var remote []struct{ Name, State string }
	for _, l := range jsonObjects(t, ok(t, h2, "--json", "region", "snapshots", "dr")) {
		var r struct{ Name, State string }
		_ = json.Unmarshal(l, &r)
		remote = append(remote, r)
	}
	if fmt.Sprint(remote) != "[{s1 available} {s2 available} {s3 available}]" {
		t.Fatalf("region snapshots on host 2: %v", remote)
	}
	restore := func(snap, to string) {
		t.Helper()
		ok(t, h2, "restore", "--region", "dr", "--snapshot", snap, "--disk", "vol1", "--to", to)
		if got := fileSum(t, filepath.Join(mp2, "disks", to)); got != want[snap] {
			t.Fatalf("restore of %s differs from the snapshot", snap)
		}
	}
	for _, s := range []string{"s1", "s2", "s3"} {
		restore(s, "r-"+s)
	}
	jsonTypes(t, ok(t, h2, "--json", "restore", "--region", "dr", "--snapshot", "s1", "--disk", "vol1", "--to", "r-json"))
	fails(t, h2, 4, "restore", "--region", "dr", "--snapshot", "s1", "--disk", "vol1", "--to", "r-json")
	fails(t, h2, 3, "restore", "--region", "dr", "--snapshot", "nope", "--disk", "vol1", "--to", "r-x")
	t.Logf("host 2 restored 3 snapshots after %v", time.Since(start).Round(time.Millisecond))

	// A corrupt shard: check --read-data finds it (exit 12), repair
	// rebuilds it, check passes. Host 1 runs its daemon again.
	daemon(t, h1, mp1)
	shard := firstFile(t, filepath.Join(dirs[0], "packs"))
	b, err := os.ReadFile(shard)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(shard, b, 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, h1, 12, "region", "check", "dr", "--read-data")
	var rep struct {
		Problems []struct {
			Store  int
			Object string
			Kind   string
		}
	}
	r := snapfs(t, h1, "--json", "region", "check", "dr", "--read-data")
	jsonLine(t, r.stdout, "check", &rep)
	if r.code != 12 || len(rep.Problems) != 1 || rep.Problems[0].Store != 0 || rep.Problems[0].Kind != "corrupt" {
		t.Fatalf("check --json: exit %d, %+v", r.code, rep)
	}
	jsonTypes(t, ok(t, h1, "--json", "region", "repair", "dr"))
	ok(t, h1, "region", "check", "dr", "--read-data")

	// Two stores gone: restore still works.
	// Three gone: a clear failure (exit 11), and no half-made disk.
	hide := func(i int) func() {
		if err := os.Rename(dirs[i], dirs[i]+".gone"); err != nil {
			t.Fatal(err)
		}
		return func() {
			_ = os.RemoveAll(dirs[i]) // nothing re-creates a missing directory
			if err := os.Rename(dirs[i]+".gone", dirs[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	back0, back2 := hide(0), hide(2)
	restore("s2", "r2-two-gone")
	back3 := hide(3)
	disksBefore := ok(t, h2, "disk", "list")
	fr := fails(t, h2, 11, "restore", "--region", "dr", "--snapshot", "s2", "--disk", "vol1", "--to", "r2-three-gone")
	if !strings.Contains(fr.stderr, "too few") {
		t.Errorf("restore with 3 stores gone: %q", fr.stderr)
	}
	if after := ok(t, h2, "disk", "list"); after != disksBefore || strings.Contains(after, "restore-") {
		t.Fatalf("failed restore left a disk behind:\n%s\nbefore:\n%s", after, disksBefore)
	}
	// Issue 9 finding 4: unreachable stores are unavailable (exit 11),
	// never "lost" (exit 12), and check says which.
	if fr := fails(t, h2, 11, "region", "check", "dr"); !strings.Contains(fr.stderr, "unreachable") || strings.Contains(fr.stdout, "lost (cannot be restored): s") {
		t.Errorf("check with 3 stores gone: %q %q", fr.stdout, fr.stderr)
	}
	back0()
	back2()
	back3()

	// Prune to the newest; it still restores. Host 1 sees s1 and s2
	// pruned (trial15: "absent" before, and counted in the region lag).
	var pr struct{ Deleted []string }
	jsonLine(t, ok(t, h1, "--json", "region", "prune", "dr", "--keep-last", "1"), "prune", &pr)
	if fmt.Sprint(pr.Deleted) != "[s1 s2]" && fmt.Sprint(pr.Deleted) != "[s2 s1]" {
		t.Fatalf("prune deleted %v", pr.Deleted)
	}
	if got := copyState(t, ok(t, h1, "--json", "snapshot", "info", "s1")); got != "pruned" {
		t.Fatalf("s1 after prune: %q", got)
	}
	fails(t, h2, 3, "restore", "--region", "dr", "--snapshot", "s1", "--disk", "vol1", "--to", "r-pruned")
	restore("s3", "r3-after-prune")
	fails(t, h1, 2, "region", "prune", "dr")
	ok(t, h1, "region", "list")
	ok(t, h1, "region", "info", "dr")
	ok(t, h1, "region", "remove", "dr")
	fails(t, h1, 3, "region", "info", "dr")
	t.Logf("done after %v", time.Since(start).Round(time.Millisecond))
}

// jsonObjects splits --json output into its lines, each an object with a
// non-empty "type".
func jsonObjects(t *testing.T, out string) []json.RawMessage {
	t.Helper()
	var objs []json.RawMessage
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var head struct{ Type string }
		if err := json.Unmarshal([]byte(line), &head); err != nil || head.Type == "" {
			t.Fatalf("not a JSON object with a type: %q (%v)", line, err)
		}
		objs = append(objs, json.RawMessage(line))
	}
	return objs
}

// jsonTypes is the "type" of every --json line.
func jsonTypes(t *testing.T, out string) []string {
	t.Helper()
	var types []string
	for _, o := range jsonObjects(t, out) {
		var head struct{ Type string }
		_ = json.Unmarshal(o, &head)
		types = append(types, head.Type)
	}
	return types
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// copyState is the state of the copy in region dr of a snapshot.json.
func copyState(t *testing.T, js string) string {
	t.Helper()
	var s struct {
		Copies []struct{ Region, State string }
	}
	jsonLine(t, js, "snapshot", &s)
	for _, c := range s.Copies {
		if c.Region == "dr" {
			return c.State
		}
	}
	return "none"
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// firstFile is the first regular file under dir.
func firstFile(t *testing.T, dir string) string {
	t.Helper()
	var found string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && found == "" && d.Type().IsRegular() {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no file under %s", dir)
	}
	return found
}
