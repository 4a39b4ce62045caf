package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// writer writes files into dir (no fsync: dirty data and journal in
// flight) until stopped; it returns how many files it wrote.
func writer(t *testing.T, dir string) (stop func() int) {
	t.Helper()
	var n atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			buf[0] = byte(i)
			p := filepath.Join(dir, fmt.Sprintf("f%d", i%200))
			if err := os.WriteFile(p, buf, 0o644); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			n.Add(1)
		}
	}()
	var once sync.Once
	return func() int {
		once.Do(func() { close(done); wg.Wait() })
		return int(n.Load())
	}
}

// fsckClean runs e2fsck -fn on image and checks that it is clean and
// needs no journal replay.
func fsckClean(t *testing.T, image string) {
	t.Helper()
	out, err := exec.Command("e2fsck", "-fn", image).CombinedOutput()
	if err != nil || strings.Contains(string(out), "journal") || strings.Contains(string(out), "recovery") {
		t.Fatalf("e2fsck -fn %s: %v\n%s", image, err, out)
	}
	feat, err := exec.Command("dumpe2fs", "-h", image).CombinedOutput()
	if err != nil || strings.Contains(string(feat), "needs_recovery") {
		t.Fatalf("dumpe2fs -h %s: %v (needs_recovery set?)\n%s", image, err, feat)
	}
}

// writable checks that a file can be written in dir within a few seconds
// (the filesystem is not left frozen).
func writable(t *testing.T, dir string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- os.WriteFile(filepath.Join(dir, "probe"), []byte("x"), 0o644) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s is still frozen", dir)
	}
}

// Issue 9 deliverable 4: snapshot create --freeze with ext4 in a
// loop-mounted disk and a writer running: the snapshot's filesystem is
// clean with no journal replay needed; a hanging pre-hook is killed at its
// timeout, SIGINT aborts, and the filesystem is never left frozen.
func TestFreezeSnapshot(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "vol", "--size", "64M")
	disk := filepath.Join(mp, "disks", "vol")
	sh(t, "mkfs.ext4", "-q", "-F", disk)
	guest := filepath.Join(tmp, "guest")
	undo := loopMount(t, disk, guest)
	stop := writer(t, guest)
	time.Sleep(500 * time.Millisecond)
	var info struct{ Consistency string }
	jsonLine(t, ok(t, store, "--json", "snapshot", "create", "frozen", "--disk", "vol", "--freeze", guest), "snapshot", &info)
	if info.Consistency != "filesystem" {
		t.Fatalf("consistency %q", info.Consistency)
	}
	// Only a filesystem inside a disk of the snapshot is ever frozen.
	if r := snapfs(t, store, "snapshot", "create", "notmp", "--disk", "vol", "--freeze", tmp); r.code != 2 || !strings.Contains(r.stderr, "not a mount point") {
		t.Fatalf("--freeze of a plain directory: exit %d: %s", r.code, r.stderr)
	}
	ok(t, store, "disk", "create", "other", "--size", "8M")
	if r := snapfs(t, store, "snapshot", "create", "wrong", "--disk", "other", "--freeze", guest); r.code != 2 || !strings.Contains(r.stderr, "not in a disk of this snapshot") {
		t.Fatalf("--freeze of another disk's filesystem: exit %d: %s", r.code, r.stderr)
	}
	// A hanging pre-hook: killed at its timeout; nothing frozen after.
	start := time.Now()
	r := snapfs(t, store, "snapshot", "create", "hung", "--disk", "vol", "--freeze", guest, "--pre-hook", "sleep 600", "--hook-timeout", "1s")
	if r.code == 0 || !strings.Contains(r.stderr, "timeout") || time.Since(start) > time.Minute {
		t.Fatalf("hanging pre-hook: exit %d after %s: %s", r.code, time.Since(start), r.stderr)
	}
	writable(t, guest)
	// SIGINT while the pre-hook runs: the command stops, nothing frozen.
	cmd := exec.Command(bin, "snapshot", "create", "intr", "--disk", "vol", "--freeze", guest, "--pre-hook", "sleep 600", "--hook-timeout", "10m")
	cmd.Env = append(os.Environ(), "SNAPFS_STORE="+store)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	_ = cmd.Process.Signal(syscall.SIGINT)
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("interrupted snapshot create succeeded")
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("snapshot create did not stop on SIGINT")
	}
	writable(t, guest)
	n := stop()
	undo()
	t.Logf("writer wrote %d files", n)
	// The frozen snapshot's filesystem: clean, no journal replay.
	img := filepath.Join(tmp, "frozen.img")
	sh(t, "cp", "--sparse=always", filepath.Join(mp, "snapshots", "frozen", "vol"), img)
	fsckClean(t, img)
	if out := ok(t, store, "--json", "snapshot", "info", "frozen"); !strings.Contains(out, `"consistency":"filesystem"`) {
		t.Fatalf("snapshot info: %s", out)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "snapshots", "frozen", "snapshot.json")); err != nil || !strings.Contains(string(b), `"consistency":"filesystem"`) {
		t.Fatalf("snapshot.json: %s %v", b, err)
	}
}

// Issue 9: a policy on two disks, run by the daemon on a fast test clock
// (an hour a second), takes, expires and copies snapshots while a writer
// runs in ext4 inside one disk (frozen for each snapshot); manual
// snapshots are untouched; then the sync job, run 3 times, ships each
// snapshot once.
func TestPolicyDaemon(t *testing.T) {
	needRoot(t)
	t.Setenv("SNAPFS_TEST_CLOCK_SCALE", "3600")
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("cd", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"region", "add", "dr", "--data", "2", "--parity", "1", "--key-file", key, "--create"}
	for i := range 3 {
		add = append(add, "--store", "file://"+filepath.Join(tmp, fmt.Sprintf("store%d", i)))
	}
	ok(t, store, add...)
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "vol1", "--size", "64M")
	ok(t, store, "disk", "create", "vol2", "--size", "8M")
	disk := filepath.Join(mp, "disks", "vol1")
	sh(t, "mkfs.ext4", "-q", "-F", disk)
	guest := filepath.Join(tmp, "guest")
	undo := loopMount(t, disk, guest)
	stop := writer(t, guest)
	ok(t, store, "snapshot", "create", "manual1", "--disk", "vol1")
	ok(t, store, "snapshot", "create", "manual2", "--disk", "vol2")
	ok(t, store, "policy", "create", "hourly", "--at", "00:00", "--every", "1h", "--retain-count", "3", "--copy-to", "dr", "--copy-retain-count", "2",
		"--consistency", "fs", "--freeze", "vol1="+guest, "--disk", "vol1", "--disk", "vol2")
	// Wait for 6 runs per disk (6 scaled hours), at most 3 minutes.
	seen := map[string]bool{}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var ss []struct{ Name, Kind string }
		for _, l := range strings.Split(strings.TrimSpace(ok(t, store, "--json", "snapshot", "list")), "\n") {
			var s struct{ Type, Name, Kind string }
			if json.Unmarshal([]byte(l), &s) == nil && s.Type == "snapshot" {
				ss = append(ss, struct{ Name, Kind string }{s.Name, s.Kind})
			}
		}
		for _, s := range ss {
			if s.Kind == "automatic" {
				seen[s.Name] = true
			}
		}
		n := 0
		for name := range seen {
			if strings.HasPrefix(name, "hourly-vol2-") {
				n++
			}
		}
		if n >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 3 minutes the policy took %d snapshots of vol2: %v", n, seen)
		}
		time.Sleep(time.Second)
	}
	// Stop the policy (its snapshots stay), then the writer.
	var info struct {
		Status []struct {
			Disk     string
			Failures int
			Error    string `json:"last_error"`
		}
	}
	jsonLine(t, ok(t, store, "--json", "policy", "info", "hourly"), "policy", &info)
	for _, s := range info.Status {
		if s.Failures > 0 {
			t.Errorf("policy failing on %s: %s", s.Disk, s.Error)
		}
	}
	ok(t, store, "policy", "delete", "hourly")
	t.Logf("writer wrote %d files", stop())
	undo()
	local := map[string][]string{}
	out := ok(t, store, "--json", "snapshot", "list")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var s struct{ Type, Name, Kind, Policy, Consistency string }
		if json.Unmarshal([]byte(l), &s) != nil || s.Type != "snapshot" {
			continue
		}
		local[s.Kind] = append(local[s.Kind], s.Name)
		if s.Kind == "automatic" && (s.Policy != "hourly" || (strings.HasPrefix(s.Name, "hourly-vol1-") != (s.Consistency == "filesystem"))) {
			t.Errorf("automatic snapshot %s: policy %q consistency %q", s.Name, s.Policy, s.Consistency)
		}
	}
	if fmt.Sprint(local["manual"]) != "[manual1 manual2]" {
		t.Fatalf("manual snapshots: %v", local["manual"])
	}
	if n := len(local["automatic"]); n < 2 || n > 8 { // 3 per disk, and one just taken
		t.Fatalf("automatic snapshots kept: %v", local["automatic"])
	}
	remote := ok(t, store, "--json", "region", "snapshots", "dr")
	if c := strings.Count(remote, `"hourly-vol2-`); c < 1 || c > 3 {
		t.Fatalf("region copies of vol2 (copy retention 2): %d\n%s", c, remote)
	}
	// The newest automatic snapshot of vol1 is filesystem-clean.
	var newest string
	for _, n := range local["automatic"] {
		if strings.HasPrefix(n, "hourly-vol1-") && n > newest {
			newest = n
		}
	}
	img := filepath.Join(tmp, "newest.img")
	sh(t, "cp", "--sparse=always", filepath.Join(mp, "snapshots", newest, "vol1"), img)
	fsckClean(t, img)
	// Deliverable 6: usage's bytes per region store agree with du.
	var stores []struct {
		Type, Region, URL string
		Bytes             int64
		Error             string
	}
	for _, l := range strings.Split(strings.TrimSpace(ok(t, store, "--json", "usage")), "\n") {
		var u struct {
			Type, Region, URL string
			Bytes             int64
			Error             string
		}
		if json.Unmarshal([]byte(l), &u) == nil && u.Type == "region_usage" {
			stores = append(stores, u)
		}
	}
	if len(stores) != 3 {
		t.Fatalf("usage lists %d region stores", len(stores))
	}
	for _, u := range stores {
		dir := strings.TrimPrefix(u.URL, "file://")
		du, err := exec.Command("du", "-sb", dir).Output()
		if err != nil || u.Error != "" {
			t.Fatalf("du %s: %v (usage error %q)", dir, err, u.Error)
		}
		n, _ := strconv.ParseInt(strings.Fields(string(du))[0], 10, 64)
		if diff := n - u.Bytes; diff < 0 || float64(diff) > 0.03*float64(n)+64<<10 {
			t.Errorf("store %s: usage says %d bytes, du -sb %d", dir, u.Bytes, n)
		}
		t.Logf("store %s: usage %d bytes, du -sb %d", dir, u.Bytes, n)
	}
	// snapshot delete --dry-run deletes nothing and says what it frees.
	var plan struct {
		Snapshot         string
		Frees, Allocated int64
	}
	jsonLine(t, ok(t, store, "--json", "snapshot", "delete", "--dry-run", newest), "delete_plan", &plan)
	if plan.Snapshot != newest || plan.Frees < 0 || plan.Frees > plan.Allocated {
		t.Fatalf("dry run: %+v", plan)
	}
	ok(t, store, "snapshot", "info", newest)
	// The sync job, 3 times: each snapshot shipped once.
	env := []string{"SNAPFS=" + bin, "SNAPFS_STORE=" + store, "SNAPFS_LOCK_DIR=" + tmp, "SNAPFS_KEEP_LAST=0"}
	re := regexp.MustCompile(`(?m)^region dr: (\d+) snapshot\(s\) copied`)
	for run := range 3 {
		code, out := bare(t, repoFile(t, "scripts/snapfs-sync.sh")+" dr", env...)
		if code != 0 {
			t.Fatalf("sync job run %d: exit %d: %s", run, code, out)
		}
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("run %d: %s", run, out)
		}
		if n, _ := strconv.Atoi(m[1]); run > 0 && n != 0 {
			t.Fatalf("sync job run %d shipped %d snapshot(s) again: %s", run, n, out)
		}
	}
}
