package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 13: running snapfs as a service. These tests cover "What was seen":
// exit codes and exact one-line messages, mount safety and leftovers,
// metrics scraped during a workload, status during a sync, SIGINT of a
// sync, the fstab helper and the systemd units.

// seenCase is one command of "What was seen" and what it must give: exit
// code and the exact stderr (one line; {S} is the test's directory).
type seenCase struct {
	name   string
	args   []string
	code   int
	stderr string // exact, after replacing {S}; "" when it succeeds silently or stderr is checked elsewhere
	stdout string // a substring of stdout
}

// TestWhatWasSeen is the table of issue 13's findings, run against the
// built binary without a daemon.
func TestWhatWasSeen(t *testing.T) {
	tmp := t.TempDir()
	store := filepath.Join(tmp, "st")
	ok(t, store, "init")
	key := filepath.Join(tmp, "key")
	if err := os.WriteFile(key, randBytes(t, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "afile"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Region stores on a file system other than / (tmpfs), whose
	// directories region add --create makes.
	shm, err := os.MkdirTemp("/dev/shm", "snapfs-seen-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	r1, r2 := "file://"+filepath.Join(shm, "r1"), "file://"+filepath.Join(shm, "r2")
	cases := []seenCase{
		// 1. a CLI that explains itself
		{"version flag", []string{"--version"}, 0, "", "store format 1"},
		{"version command", []string{"version"}, 0, "", "store format 1"},
		{"help", []string{"help"}, 0, "", "snapfs help exit-codes"},
		{"help command", []string{"help", "disk", "create"}, 0, "", "Examples:\n      snapfs disk create vol1 --size 10G"},
		{"help group", []string{"help", "snapshot"}, 0, "", "   mount   mount the filesystem inside a snapshot's disk"},
		{"help exit codes", []string{"help", "exit-codes"}, 0, "", "130  interrupted"},
		{"disk help", []string{"disk", "help", "create"}, 0, "", "snapfs disk create"},
		{"completion", []string{"completion", "bash"}, 0, "", "complete -o bashdefault"},
		// 6. the block size default, documented suffixes
		{"block size default", []string{"disk", "create", "--help"}, 0, "", "(default 16KiB)"},
		{"size suffixes", []string{"--help"}, 0, "", "K, M, G, T, P, E (any case)"},
		// 2. exit codes of the README's table
		{"invalid store URL", []string{"region", "add", "r1", "--data", "1", "--parity", "1", "--store", r1, "--store", "bogus://x", "--key-file", key}, 2,
			`snapfs: region "r1": store 1: invalid store URL: "bogus://x": unknown scheme "bogus", want file or s3`, ""},
		{"missing key file", []string{"region", "add", "r1", "--data", "1", "--parity", "1", "--store", r1, "--store", r2, "--key-file", "{S}/nokey"}, 2,
			"snapfs: --key-file {S}/nokey does not exist (make one: head -c 32 /dev/urandom > {S}/nokey; chmod 600 {S}/nokey)", ""},
		{"file as store", []string{"--store", "{S}/afile", "disk", "list"}, 2, "snapfs: --store {S}/afile is a file, not a store directory", ""},
		{"mountpoint parent missing", []string{"mount", "{S}/nope/mp"}, 3,
			"snapfs: not found: the parent of mountpoint {S}/nope/mp does not exist (snapfs creates only the last directory)", ""},
		// 3. one line, no package names
		{"missing required flag", []string{"restore", "--region", "r1", "--snapshot", "s", "--disk", "d"}, 2, "snapfs: --to is required (see snapfs help restore)", ""},
		{"bad region name", []string{"region", "add", "r 1", "--data", "1", "--parity", "1", "--store", r1, "--store", r2, "--key-file", key}, 2,
			`snapfs: region name "r 1" has character ' ' (allowed: letters A-Z a-z, digits, '.', '_', '-')`, ""},
		{"unknown command", []string{"frob"}, 2, `snapfs: unknown command "frob" (see snapfs help)`, ""},
		{"group without a subcommand", []string{"disk"}, 2, "snapfs: disk needs a subcommand: create, list, info, resize, delete, rollback, unlock, lock, rekey (see snapfs help disk)", ""},
		{"unknown flag", []string{"disk", "list", "--frob"}, 2, "snapfs: disk list: flag provided but not defined: -frob (see snapfs help disk list)", ""},
		{"arguments", []string{"disk", "create", "a", "b", "--size", "1M"}, 2, "snapfs: disk create: want NAME, got 2 argument(s) (see snapfs help disk create)", ""},
		// 6. sizes human in errors
		{"size too large", []string{"disk", "create", "big", "--size", "1000P"}, 2, "snapfs: disk size 1000 PiB is larger than the largest, 256 TiB", ""},
		{"size not sectors", []string{"disk", "create", "odd", "--size", "1000"}, 2, "snapfs: disk size 1000 bytes is not a multiple of 512 bytes", ""},
		{"not found", []string{"snapshot", "info", "nope"}, 3, `snapfs: not found: snapshot "nope"`, ""},
		// 7. a failed mount on a directory that is not a store
		{"mount a non-store", []string{"--store", "{S}/notstore", "mount", "{S}/mp"}, 3, "snapfs: not found: {S}/notstore is not a snapfs store (run snapfs init)", ""},
	}
	if err := os.Mkdir(filepath.Join(tmp, "notstore"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		args := make([]string, len(c.args))
		for i, a := range c.args {
			args[i] = strings.ReplaceAll(a, "{S}", tmp)
		}
		r := snapfs(t, store, args...)
		want := strings.ReplaceAll(c.stderr, "{S}", tmp)
		if r.code != c.code {
			t.Errorf("%s: snapfs %s: exit %d, want %d (stderr %q)", c.name, strings.Join(args, " "), r.code, c.code, r.stderr)
			continue
		}
		if c.code != 0 {
			if r.stderr != want+"\n" {
				t.Errorf("%s: stderr\n got %q\nwant %q", c.name, r.stderr, want+"\n")
			}
			if r.stdout != "" {
				t.Errorf("%s: a failing command printed to stdout: %q", c.name, r.stdout)
			}
		}
		if c.stdout != "" && !strings.Contains(r.stdout, c.stdout) {
			t.Errorf("%s: stdout lacks %q:\n%s", c.name, c.stdout, r.stdout)
		}
		if strings.Contains(r.stdout+r.stderr, "go doc") {
			t.Errorf("%s: still points at go doc", c.name)
		}
	}
	// Nothing was left behind by the failures above.
	for _, p := range []string{filepath.Join(shm, "r1"), filepath.Join(shm, "r2"), filepath.Join(tmp, "mp"),
		filepath.Join(tmp, "notstore", "daemon.lock"), filepath.Join(tmp, "nope")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a failed command left %s behind", p)
		}
	}

	// Running as non-root: exit 16 with a hint.
	pub, err := os.MkdirTemp("", "snapfs-public-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pub, "snapfs"), exe, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(pub, "snapfs"), "--store", store, "disk", "list")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err = cmd.Run()
	ee, isExit := err.(*exec.ExitError)
	if !isExit || ee.ExitCode() != 16 || !strings.HasSuffix(errb.String(), ": permission denied (run snapfs as root, or as the owner of the store)\n") ||
		strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("non-root: %v, stderr %q; want exit 16 and a hint", err, errb.String())
	}

	// A disk larger than the free space: created, with a warning.
	r := snapfs(t, store, "disk", "create", "huge", "--size", "250T")
	if r.code != 0 || !strings.HasPrefix(r.stderr, "snapfs: warning: disk huge is 250 TiB but the store's filesystem has ") {
		t.Errorf("huge disk: exit %d, stderr %q", r.code, r.stderr)
	}
	ok(t, store, "disk", "delete", "huge")

	// 8. lineage: a deleted origin is shown as such.
	ok(t, store, "disk", "create", "d", "--size", "1M")
	ok(t, store, "snapshot", "create", "s", "--disk", "d")
	ok(t, store, "disk", "create", "c", "--from-snapshot", "s", "--disk", "d")
	ok(t, store, "snapshot", "delete", "s")
	if d := ok(t, store, "disk", "info", "c"); !strings.Contains(d, "origin:       snapshot s/d (deleted)") {
		t.Errorf("disk info after deleting the origin:\n%s", d)
	}
	ok(t, store, "snapshot", "create", "s", "--disk", "d") // a new s is not the origin
	if d := ok(t, store, "disk", "list"); !strings.Contains(d, "snapshot s/d (deleted)") {
		t.Errorf("disk list after re-creating a snapshot of the origin's name:\n%s", d)
	}

	// restore onto an existing disk: "already exists", without package names.
	ok(t, store, "region", "add", "r1", "--data", "1", "--parity", "1", "--store", r1, "--store", r2, "--key-file", key, "--create") // issue 9: only asked
	ok(t, store, "sync", "--region", "r1")
	fails(t, store, 4, "restore", "--region", "r1", "--snapshot", "s", "--disk", "d", "--to", "d")
	if r := snapfs(t, store, "restore", "--region", "r1", "--snapshot", "s", "--disk", "d", "--to", "d"); r.stderr != "snapfs: already exists: local disk \"d\"\n" {
		t.Errorf("restore onto an existing disk: %q", r.stderr)
	}
}

// TestMountSafety: mount refuses a non-empty or mounted directory unless
// --force, removes the mountpoint it created, and an open disk's refusal
// names --force.
func TestMountSafety(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, other := filepath.Join(tmp, "st"), filepath.Join(tmp, "other")
	ok(t, store, "init")
	ok(t, other, "init")
	mp := filepath.Join(tmp, "m") // does not exist: mount creates it
	out := ok(t, store, "--json", "mount", "--background", mp)
	var m struct{ PID string }
	jsonLine(t, out, "mount", &m)
	t.Cleanup(func() { stopDaemon(t, store, mp, m.PID) })

	r := fails(t, other, 5, "mount", "--background", mp)
	if want := fmt.Sprintf("snapfs: busy: %s is already a mount point (fuse.snapfs of %s); unmount it, choose another directory, or use --force\n", mp, store); r.stderr != want {
		t.Errorf("mount on a mount point: %q, want %q", r.stderr, want)
	}
	full := filepath.Join(tmp, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = fails(t, other, 5, "mount", "--background", full)
	if want := fmt.Sprintf("snapfs: busy: mountpoint %s is not empty (it holds keep, ...): the mount would hide it; choose an empty directory, or use --force\n", full); r.stderr != want {
		t.Errorf("mount on a non-empty directory: %q, want %q", r.stderr, want)
	}
	if isMounted(full) {
		t.Fatal("mounted over a non-empty directory")
	}

	ok(t, store, "disk", "create", "d", "--size", "1M")
	f, err := os.Open(filepath.Join(mp, "disks", "d"))
	if err != nil {
		t.Fatal(err)
	}
	r = fails(t, store, 5, "disk", "delete", "d")
	f.Close()
	// The message names what holds the disk (service.Holders): this test's
	// own process.
	if !strings.HasPrefix(r.stderr, "snapfs: busy: disk \"d\" is open (1 open handle); close it, or use --force; held by ") ||
		!strings.Contains(r.stderr, fmt.Sprintf("pid %d", os.Getpid())) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("delete of an open disk: %q", r.stderr)
	}

	// --force mounts over a non-empty directory (and leaves it in place).
	pid2 := ok(t, other, "--json", "mount", "--background", "--force", full)
	jsonLine(t, pid2, "mount", &m)
	ok(t, other, "umount", full)
	if _, err := os.Stat(filepath.Join(full, "keep")); err != nil {
		t.Errorf("the directory mounted over with --force lost its file: %v", err)
	}

	ok(t, store, "umount", mp)
	if _, err := os.Stat(mp); !os.IsNotExist(err) {
		t.Errorf("the mountpoint mount created is still there after umount: %v", err)
	}
}

// freePort is a TCP port on 127.0.0.1 free a moment ago.
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrape reads the metrics endpoint: sample name with labels -> value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// TestMetricsStatusAndInterrupt: the metrics move with a workload through
// the mount; status shows a running sync; SIGINT stops the sync, says what
// finished and what resumes (exit 130), the region lists the unfinished
// snapshot as copying, and the next sync finishes it.
func TestMetricsStatusAndInterrupt(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "st"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	addr := freePort(t)
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	out := ok(t, store, "--json", "mount", "--background", "--metrics", addr, mp)
	var m struct{ PID string }
	jsonLine(t, out, "mount", &m)
	t.Cleanup(func() { stopDaemon(t, store, mp, m.PID) })

	ok(t, store, "disk", "create", "d", "--size", "128M")
	// No scrape before the workload: the counters of a new daemon start at
	// zero, and the first scrape makes the usage pass the next minute's use.
	const n = 96 << 20
	data := randBytes(t, n) // incompressible: the sync below takes a while
	writeAt(t, filepath.Join(mp, "disks", "d"), 0, data)
	buf := make([]byte, 1<<20)
	f, err := os.Open(filepath.Join(mp, "disks", "d"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ok(t, store, "snapshot", "create", "s1", "--disk", "d")
	after := scrape(t, addr)
	w := `snapfs_io_bytes_total{kind="disk",op="write"}`
	if got := after[w]; got < n {
		t.Errorf("%s moved by %v, want >= %d", w, got, n)
	}
	if after[`snapfs_io_ops_total{kind="disk",op="flush"}`] < 1 {
		t.Errorf("no flush counted")
	}
	if after[`snapfs_io_bytes_total{kind="disk",op="read"}`] < 1<<20 && after[`snapfs_io_seconds_count{kind="disk",op="read"}`] < 1 {
		t.Errorf("reads not counted")
	}
	if after[`snapfs_snapshots{disk="d"}`] != 1 || after[`snapfs_disk_allocated_bytes{disk="d"}`] < n {
		t.Errorf("snapshots/allocated: %v %v", after[`snapfs_snapshots{disk="d"}`], after[`snapfs_disk_allocated_bytes{disk="d"}`])
	}
	// The live figure comes from the store's background recount, which the
	// snapshot just started: a stale pass is asked again at the next scrape.
	live := `snapfs_store_bytes{kind="live"}`
	for end := time.Now().Add(time.Minute); after[live] < n && time.Now().Before(end); after = scrape(t, addr) {
		time.Sleep(100 * time.Millisecond)
	}
	if after[live] < n {
		t.Errorf("store bytes live %v after a minute, want >= %d", after[live], n)
	}

	key := filepath.Join(tmp, "key")
	if err := os.WriteFile(key, randBytes(t, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"r1", "r2"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ok(t, store, "region", "add", "dr", "--data", "1", "--parity", "1", "--key-file", key,
		"--store", "file://"+filepath.Join(tmp, "r1"), "--store", "file://"+filepath.Join(tmp, "r2"))
	if lag := scrape(t, addr)[`snapfs_region_pending_snapshots{region="dr"}`]; lag != 1 {
		t.Errorf("pending snapshots before sync: %v", lag)
	}

	// A sync, interrupted after its first pack; status shows it meanwhile.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--json", "sync", "--region", "dr")
	cmd.Env = append(os.Environ(), "SNAPFS_STORE="+store)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	sawStatus := false
	for sc.Scan() {
		var e struct{ Type string }
		_ = json.Unmarshal(sc.Bytes(), &e)
		if e.Type == "pack" || e.Type == "blocks" {
			if !sawStatus {
				var st struct {
					Jobs []struct{ Op, Region, Snapshot string }
				}
				jsonLine(t, ok(t, store, "--json", "status"), "status", &st)
				if len(st.Jobs) != 1 || st.Jobs[0].Op != "sync" || st.Jobs[0].Region != "dr" {
					t.Errorf("status during the sync: jobs %+v", st.Jobs)
				}
				text := ok(t, store, "status")
				if !strings.Contains(text, "sync  dr") {
					t.Errorf("status text during the sync:\n%s", text)
				}
				if scrape(t, addr)[`snapfs_region_job_running{op="sync",region="dr"}`] != 1 {
					t.Errorf("metrics do not show the running sync")
				}
				sawStatus = true
			}
			if e.Type == "pack" {
				break
			}
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	ee, isExit := err.(*exec.ExitError)
	if !isExit || ee.ExitCode() != 130 {
		t.Fatalf("interrupted sync: %v (stderr %q), want exit 130", err, errb.String())
	}
	want := "snapfs: interrupted: no snapshots finished; s1 was in progress; the next snapfs sync --region dr resumes, reusing what was shipped " +
		"(until then the region lists the unfinished snapshot as copying; snapfs region unlock dr clears that)\n"
	if errb.String() != want {
		t.Errorf("interrupted sync said\n %q\nwant\n %q", errb.String(), want)
	}
	if rs := ok(t, store, "region", "snapshots", "dr"); !regexp.MustCompile(`s1 .* copying`).MatchString(rs) {
		t.Errorf("after the interrupt the region lists:\n%s", rs)
	}
	ok(t, store, "sync", "--region", "dr", "--progress", "plain")
	if rs := ok(t, store, "region", "snapshots", "dr"); !regexp.MustCompile(`s1 .* available`).MatchString(rs) {
		t.Errorf("after the resumed sync the region lists:\n%s", rs)
	}
	final := scrape(t, addr)
	if final[`snapfs_region_jobs_total{op="sync",region="dr",result="ok"}`] != 1 ||
		final[`snapfs_region_jobs_total{op="sync",region="dr",result="error"}`] != 1 ||
		final[`snapfs_region_job_last_success_timestamp_seconds{op="sync",region="dr"}`] <= 0 {
		t.Errorf("sync results not counted")
	}
	ok(t, store, "gc")
	if gc := scrape(t, addr)[`snapfs_gc_runs_total{result="ok"}`]; gc < 1 {
		t.Errorf("gc not counted: %v", gc)
	}
	if final[`snapfs_region_pending_snapshots{region="dr"}`] != 0 || final[`snapfs_region_job_bytes_total{op="sync",region="dr"}`] < n {
		t.Errorf("lag after sync %v, bytes %v", final[`snapfs_region_pending_snapshots{region="dr"}`], final[`snapfs_region_job_bytes_total{op="sync",region="dr"}`])
	}
}

// TestFstabHelper mounts and unmounts a store through scripts/mount.snapfs
// and scripts/umount.fuse.snapfs, as mount(8) and umount(8) run them for
// an fstab line "STORE MP snapfs defaults,_netdev,metrics=ADDR 0 0".
func TestFstabHelper(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "st"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	helper := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join("..", "scripts", name), args...)
		cmd.Env = append(os.Environ(), "SNAPFS="+bin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v: %s", name, args, err, out)
		}
	}
	t.Cleanup(func() { stopDaemon(t, store, mp, "") })
	helper("mount.snapfs", store, mp, "-o", "defaults,_netdev,noauto,x-systemd.automount,metrics="+addr)
	if !isMounted(mp) {
		t.Fatal("mount.snapfs did not mount")
	}
	if _, err := os.Stat(filepath.Join(mp, "disks")); err != nil {
		t.Fatal(err)
	}
	if scrape(t, addr)["snapfs_disks"] != 0 {
		t.Error("metrics option not passed")
	}
	cmd := exec.Command(filepath.Join("..", "scripts", "mount.snapfs"), store, mp, "-o", "frob")
	cmd.Env = append(os.Environ(), "SNAPFS="+bin)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "unknown option frob") {
		t.Errorf("unknown option: %v %s", err, out)
	}
	helper("umount.fuse.snapfs", mp)
	if isMounted(mp) {
		t.Fatal("umount.fuse.snapfs did not unmount")
	}
	// The daemon has exited (the store's lock is free): a direct command works.
	ok(t, store, "disk", "list")
}

// TestUnitsVerify: systemd-analyze verify passes on the units in scripts/,
// and scripts/install.sh installs everything into a staging root.
func TestUnitsVerify(t *testing.T) {
	needRoot(t)
	cmd := exec.Command("bash", filepath.Join("..", "scripts", "verify-units.sh"))
	cmd.Env = append(os.Environ(), "SNAPFS_BIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("verify-units.sh: %v\n%s", err, out)
	}
	root := t.TempDir()
	cmd = exec.Command("bash", filepath.Join("..", "scripts", "install.sh"))
	cmd.Env = append(os.Environ(), "DESTDIR="+root, "SNAPFS_VERSION=v0.0.0-test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	for _, p := range []string{"usr/local/bin/snapfs", "sbin/mount.snapfs", "sbin/umount.fuse.snapfs", "etc/systemd/system/snapfs@.service",
		"etc/systemd/system/snapfs-sync@.timer", "usr/local/share/man/man8/snapfs.8", "etc/bash_completion.d/snapfs", "etc/snapfs/example.env"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("install.sh: %v", err)
		}
	}
	if out, err := exec.Command(filepath.Join(root, "usr/local/bin/snapfs"), "--version").Output(); err != nil || !strings.Contains(string(out), "v0.0.0-test") {
		t.Errorf("installed snapfs --version: %q, %v", out, err)
	}
	// Another prefix: the fstab helpers look there first.
	root = t.TempDir()
	cmd = exec.Command("bash", filepath.Join("..", "scripts", "install.sh"), "/opt/snapfs")
	cmd.Env = append(os.Environ(), "DESTDIR="+root, "SNAPFS_VERSION=v0.0.0-test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install.sh /opt/snapfs: %v\n%s", err, out)
	}
	for _, h := range []string{"sbin/mount.snapfs", "sbin/umount.fuse.snapfs"} {
		b, err := os.ReadFile(filepath.Join(root, h))
		if err != nil || !strings.Contains(string(b), "for c in /opt/snapfs/bin/snapfs ") {
			t.Errorf("install.sh /opt/snapfs: %s does not look in /opt/snapfs/bin first (%v)", h, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "opt/snapfs/lib/snapfs/snapfs-full")); err != nil {
		t.Errorf("install.sh /opt/snapfs: %v", err)
	}
}

// TestSystemdNotify runs the daemon as snapfs@.service does (foreground,
// NOTIFY_SOCKET and WATCHDOG_USEC set): it reports READY=1 once the mount
// serves, pings the watchdog, and on SIGTERM says STOPPING=1, flushes,
// unmounts and exits 0 with the store closed.
func TestSystemdNotify(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "st"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(tmp, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	cmd := exec.Command(bin, "--store", store, "mount", mp)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = exec.Command("umount", "-l", mp).Run()
			_ = cmd.Wait()
		}
	})
	wait := func(prefix string) {
		t.Helper()
		deadline := time.After(time.Minute)
		for {
			select {
			case m := <-msgs:
				if strings.HasPrefix(m, prefix) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q from the daemon; its log:\n%s", prefix, errb.String())
			}
		}
	}
	wait("READY=1")
	if !isMounted(mp) {
		t.Fatal("READY=1 before the mount")
	}
	ok(t, store, "disk", "create", "d", "--size", "1M")
	wait("WATCHDOG=1")
	// A write acknowledged by close only (no fsync) survives the stop.
	data := randBytes(t, 64<<10)
	f, err := os.OpenFile(filepath.Join(mp, "disks", "d"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wait("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("daemon after SIGTERM: %v\n%s", err, errb.String())
	}
	if isMounted(mp) {
		t.Fatal("still mounted after SIGTERM")
	}
	var d diskInfo
	jsonLine(t, ok(t, store, "--json", "disk", "info", "d"), "disk", &d)
	if d.Allocated < int64(len(data)) {
		t.Fatalf("after the stop disk d holds %d bytes, want %d", d.Allocated, len(data))
	}
}
