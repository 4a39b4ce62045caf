package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// storeFiles is every file under dirs with its size (what a dry run must
// leave as it is).
func storeFiles(t *testing.T, dirs []string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				if fi, err := e.Info(); err == nil {
					out[p] = fi.Size()
				}
			}
			return nil
		})
	}
	return out
}

// TestRegion14PruneDryRunCLI: region prune --dry-run (text and --json)
// says what prune would remove and changes no store file; with a store
// away prune exits 11 naming it and saying what to do, changing nothing;
// with it back the real prune removes what the dry run said. A restore
// under a host without that name names the one with it; a prune beside
// this host's lazy disk names the disk (exit 15).
func TestRegion14PruneDryRunCLI(t *testing.T) {
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
	h, mp := filepath.Join(tmp, "host"), filepath.Join(tmp, "m")
	ok(t, h, "init", "--host-name", "web1")
	daemon(t, h, mp)
	ok(t, h, add...)
	ok(t, h, "disk", "create", "vol1", "--size", "4M")
	f, err := os.OpenFile(filepath.Join(mp, "disks", "vol1"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range []string{"s1", "s2"} {
		if _, err := f.WriteAt(randBytes(t, 4<<20), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		ok(t, h, "snapshot", "create", s, "--disk", "vol1")
		ok(t, h, "sync", "--region", "dr")
	}
	before := storeFiles(t, dirs)
	out := ok(t, h, "region", "prune", "dr", "--keep-last", "1", "--dry-run")
	if !strings.Contains(out, "dry run, nothing changed") || !strings.Contains(out, "would remove 1 snapshot(s) (s1)") || !strings.Contains(out, "store 2: ") {
		t.Fatalf("prune --dry-run: %q", out)
	}
	var js struct {
		MessageType   string   `json:"message_type"`
		Deleted       []string `json:"deleted"`
		PacksDeleted  int      `json:"packs_deleted"`
		BytesFreed    int64    `json:"bytes_freed"`
		BytesPerStore []int64  `json:"bytes_per_store"`
		DryRun        bool     `json:"dry_run"`
	}
	jout := ok(t, h, "--json", "region", "prune", "dr", "--keep-last", "1", "--dry-run")
	if err := json.Unmarshal([]byte(strings.TrimSpace(jout)), &js); err != nil || !js.DryRun || len(js.Deleted) != 1 || js.PacksDeleted == 0 || len(js.BytesPerStore) != 3 || js.BytesFreed == 0 {
		t.Fatalf("prune --dry-run --json: %q (%v)", jout, err)
	}
	if after := storeFiles(t, dirs); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("prune --dry-run changed the stores")
	}

	// A store away: prune refuses, naming it, and changes nothing.
	if err := os.Rename(dirs[1], dirs[1]+".away"); err != nil {
		t.Fatal(err)
	}
	r := fails(t, h, 11, "region", "prune", "dr", "--keep-last", "1")
	if !strings.Contains(r.stderr, "store1") || !strings.Contains(r.stderr, "nothing was changed") || !strings.Contains(r.stderr, "--new-store") {
		t.Fatalf("prune with store 1 away: %q", r.stderr)
	}
	if err := os.Rename(dirs[1]+".away", dirs[1]); err != nil {
		t.Fatal(err)
	}
	if after := storeFiles(t, dirs); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("prune with a store away changed the stores")
	}

	jout = ok(t, h, "--json", "region", "prune", "dr", "--keep-last", "1")
	var real struct {
		Deleted      []string `json:"deleted"`
		PacksDeleted int      `json:"packs_deleted"`
		BytesFreed   int64    `json:"bytes_freed"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(jout)), &real); err != nil || fmt.Sprint(real.Deleted) != fmt.Sprint(js.Deleted) || real.PacksDeleted != js.PacksDeleted || real.BytesFreed != js.BytesFreed {
		t.Fatalf("prune did %q; the dry run said %+v", jout, js)
	}
	ok(t, h, "region", "check", "dr")

	// A name asked under a host that has none: the error names the host
	// that has it.
	r = fails(t, h, 3, "restore", "--region", "dr", "--snapshot", "s2", "--host", "web2", "--disk", "vol1", "--to", "x")
	if !strings.Contains(r.stderr, "--host web1") {
		t.Fatalf("restore of s2 under host web2: %q", r.stderr)
	}
	t.Logf("restore under another host: %s", r.stderr)
	r = fails(t, h, 3, "restore", "--region", "dr", "--snapshot", "s2", "--host", "web2", "--disk", "vol1", "--to", "x", "--lazy")
	if !strings.Contains(r.stderr, "--host web1") {
		t.Fatalf("restore --lazy of s2 under host web2: %q", r.stderr)
	}

	// This host's lazy disk, hydrating slowly, holds the region: prune
	// waits (exit 15) and names it, not region unlock; a dry run runs.
	ok(t, h, "restore", "--region", "dr", "--snapshot", "s2", "--disk", "vol1", "--to", "lz", "--lazy", "--rate", "4K")
	r = fails(t, h, 15, "region", "prune", "dr", "--keep-last", "1")
	if !strings.Contains(r.stderr, "lazy disk lz") || !strings.Contains(r.stderr, "snapshot s2 disk vol1") || strings.Contains(r.stderr, "run `snapfs region unlock") {
		t.Fatalf("prune beside this host's lazy disk: %q", r.stderr)
	}
	t.Logf("prune beside this host's lazy disk: %s", r.stderr)
	ok(t, h, "region", "prune", "dr", "--keep-last", "1", "--dry-run")
	ok(t, h, "disk", "delete", "lz")
}
