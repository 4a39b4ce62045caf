package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// step is one command and the exit code it must give; want, if set, must
// appear in its stdout.
type step struct {
	args []string
	code int
	want string
}

func s(code int, want string, args ...string) step { return step{args, code, want} }

// commandTable works the same with and without a running daemon.
var commandTable = []step{
	s(4, "", "init"),
	s(0, `"name":"d1"`, "--json", "disk", "create", "d1", "--size", "64M"),
	s(0, "created disk d2", "disk", "create", "d2", "--size", "1M", "--block-size", "4K"),
	s(0, "", "disk", "list"),
	s(0, `"size":67108864`, "disk", "info", "d1", "--json"),
	s(0, "128 MiB", "disk", "resize", "d1", "--size", "128M"),
	s(0, `"type":"snapshot"`, "--json", "snapshot", "create", "s1", "--disk", "d1", "--disk", "d2"),
	s(0, "s1", "snapshot", "list"),
	s(0, "s1", "snapshot", "list", "--disk", "d2"),
	s(0, "d2", "snapshot", "info", "s1"),
	s(0, `"type":"diff"`, "--json", "snapshot", "diff", "s1", "--disk", "d1"),
	s(0, "0 ranges", "snapshot", "diff", "s1", "--disk", "d1"),
	s(0, "origin", "disk", "create", "c1", "--from-snapshot", "s1", "--disk", "d1"),
	s(0, "created image i1", "image", "create", "i1", "--snapshot", "s1", "--disk", "d2"),
	s(0, "i1", "image", "list"),
	s(0, `"type":"image"`, "image", "list", "--json"),
	s(0, "created disk c2", "disk", "create", "c2", "--from-image", "i1"),
	s(0, "rolled disk d1 back", "disk", "rollback", "d1", "--snapshot", "s1"),
	s(0, "", "snapshot", "create", "s2", "--disk", "d1"),
	s(0, "0 ranges", "snapshot", "diff", "s1", "s2", "--disk", "d1"),
	s(0, "EXCLUSIVE", "usage"),
	s(0, `"type":"store_usage"`, "usage", "--json"),
	s(0, `"exclusive_stale":false`, "usage", "--json", "--fresh"),
	s(0, "gc:", "gc"),
	s(0, `"type":"gc"`, "--json", "gc"),
	s(0, "deleted image i1", "image", "delete", "i1"),
	s(0, "deleted snapshot s2", "snapshot", "delete", "s2"),
	s(0, "deleted disk c2", "disk", "delete", "c2"),
}

// badInput must fail with the given code and change nothing.
var badInput = []step{
	s(4, "", "disk", "create", "d1", "--size", "64M"),
	s(2, "", "disk", "create", "bad/name", "--size", "1M"),
	s(2, "", "disk", "create", ".hidden", "--size", "1M"),
	s(2, "", "disk", "create", strings.Repeat("x", 65), "--size", "1M"),
	s(2, "", "disk", "create", "d9", "--size", "12Q"),
	s(2, "", "disk", "create", "d9", "--size", "-1G"),
	s(2, "", "disk", "create", "d9", "--size", "1000"),
	s(2, "", "disk", "create", "d9", "--size", "1M", "--block-size", "3K"),
	s(2, "", "disk", "create", "d9"),
	s(2, "", "disk", "create", "d9", "--size"),
	s(2, "", "disk", "create", "d9", "--size", "1M", "--from-image", "i1"),
	s(2, "", "disk", "create", "d9", "--from-snapshot", "s1"),
	s(2, "", "disk", "create"),
	s(2, "", "disk", "frobnicate"),
	s(2, "", "frobnicate"),
	s(2, "", "disk", "list", "--bogus-flag"),
	s(2, "", "disk", "resize", "d1", "--size", "1M"),
	s(3, "", "disk", "info", "nope"),
	s(3, "", "disk", "resize", "nope", "--size", "1G"),
	s(3, "", "disk", "delete", "nope"),
	s(3, "", "disk", "rollback", "d1", "--snapshot", "nope"),
	s(3, "", "disk", "rollback", "nope", "--snapshot", "s1"),
	s(3, "", "disk", "create", "d9", "--from-snapshot", "nope", "--disk", "d1"),
	s(3, "", "disk", "create", "d9", "--from-snapshot", "s1", "--disk", "nope"),
	s(3, "", "disk", "create", "d9", "--from-image", "nope"),
	s(4, "", "snapshot", "create", "s1", "--disk", "d1"),
	s(3, "", "snapshot", "create", "s9", "--disk", "nope"),
	s(3, "", "snapshot", "create", "s9", "--disk", "d1", "--disk", "nope"),
	s(2, "", "snapshot", "create", "s9"),
	s(2, "", "snapshot", "create", "bad name", "--disk", "d1"),
	s(3, "", "snapshot", "info", "nope"),
	s(3, "", "snapshot", "delete", "nope"),
	s(3, "", "snapshot", "diff", "nope", "--disk", "d1"),
	s(3, "", "snapshot", "diff", "s1", "nope", "--disk", "d1"),
	s(2, "", "snapshot", "diff", "s1"),
	s(3, "", "image", "create", "i9", "--snapshot", "nope", "--disk", "d1"),
	s(3, "", "image", "delete", "nope"),
	s(3, "", "snapshot", "umount", "/nonexistent"),
}

// state is what the listings show (without the times of changes).
func storeState(t *testing.T, store string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"disk", "list"}, {"snapshot", "list"}, {"image", "list"}} {
		b.WriteString(ok(t, store, append([]string{"--json"}, args...)...))
	}
	return b.String()
}

func runTable(t *testing.T, store string) {
	for _, st := range commandTable {
		r := snapfs(t, store, st.args...)
		if r.code != st.code {
			t.Fatalf("snapfs %s: exit %d, want %d: %s", strings.Join(st.args, " "), r.code, st.code, r.stderr)
		}
		if !strings.Contains(r.stdout, st.want) {
			t.Fatalf("snapfs %s: stdout %q lacks %q", strings.Join(st.args, " "), r.stdout, st.want)
		}
	}
	before := storeState(t, store)
	for _, st := range badInput {
		fails(t, store, st.code, st.args...)
	}
	if after := storeState(t, store); after != before {
		t.Fatalf("bad input changed the store:\nbefore %s\nafter  %s", before, after)
	}
}

// TestCommandsWithAndWithoutDaemon runs the same command table on a store
// opened by each command, and on one served by a daemon.
func TestCommandsWithAndWithoutDaemon(t *testing.T) {
	needRoot(t)
	t.Run("direct", func(t *testing.T) {
		t.Parallel()
		store := filepath.Join(t.TempDir(), "store")
		ok(t, store, "init")
		runTable(t, store)
		mp := t.TempDir()
		fails(t, store, 9, "snapshot", "mount", "s1", "--disk", "d1", mp)
		fails(t, store, 9, "umount", mp)
	})
	t.Run("daemon", func(t *testing.T) {
		t.Parallel()
		tmp := t.TempDir()
		store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
		ok(t, store, "init")
		daemon(t, store, mp)
		runTable(t, store)
		// Every name the commands made shows in the mount without remounting.
		if got := strings.Join(dirNames(t, filepath.Join(mp, "disks")), ","); got != "c1,d1,d2" {
			t.Fatalf("disks/: %s", got)
		}
		if err := os.MkdirAll(filepath.Join(tmp, "other"), 0o755); err != nil {
			t.Fatal(err)
		}
		fails(t, store, 5, "mount", filepath.Join(tmp, "other"))
		fails(t, store, 5, "mount", "--background", filepath.Join(tmp, "other"))
		fails(t, store, 3, "umount", filepath.Join(tmp, "other"))
	})
}

// TestBusyAndForce: rollback and delete of an open disk are refused with
// exit 5 unless forced; after a forced rollback the open file reads the
// snapshot's data (its cached pages were dropped).
func TestBusyAndForce(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "d", "--size", "4M")
	disk := filepath.Join(mp, "disks", "d")
	old := randBytes(t, 64<<10)
	writeAt(t, disk, 0, old)
	ok(t, store, "snapshot", "create", "s", "--disk", "d")
	writeAt(t, disk, 0, randBytes(t, 64<<10))

	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	if _, err := f.ReadAt(buf, 0); err != nil { // fill the page cache
		t.Fatal(err)
	}
	if getDisk(t, store, "d").Open == 0 {
		t.Fatal("disk info does not count the open handle")
	}
	fails(t, store, 5, "disk", "rollback", "d", "--snapshot", "s")
	fails(t, store, 5, "disk", "delete", "d")
	ok(t, store, "disk", "rollback", "d", "--snapshot", "s", "--force")
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if sum(buf) != sum(old) {
		t.Fatal("after a forced rollback the open file still reads the old pages")
	}
	ok(t, store, "disk", "delete", "d", "--force")
	if _, err := os.Stat(disk); !os.IsNotExist(err) {
		t.Fatalf("deleted disk still in disks/: %v", err)
	}
}
