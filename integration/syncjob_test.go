package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/store/s3test"
)

// repoFile is a file of the repository, by its path from the top.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	_, me, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(me), "..", rel)
}

// bare runs a shell command line as cron would: env -i with only
// PATH=/usr/bin:/bin and the given variables. It returns the exit code
// and what it printed.
func bare(t *testing.T, line string, env ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/env", append(append([]string{"-i", "PATH=/usr/bin:/bin"}, env...), "/bin/sh", "-c", line)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return 0, out.String()
}

// cronJob reads scripts/snapfs-sync.cron: its variable lines and the
// command of its job line, with the installed script path replaced by the
// repository's.
func cronJob(t *testing.T) (env []string, command string) {
	t.Helper()
	f, err := os.Open(repoFile(t, "scripts/snapfs-sync.cron"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) >= 7 && !strings.Contains(fs[0], "=") {
			command = strings.Join(fs[6:], " ") // 5 time fields, the user
			continue
		}
		env = append(env, line)
	}
	if command == "" || strings.Contains(command, "|") {
		t.Fatalf("cron job line %q: missing, or a pipe (hides the job's exit status)", command)
	}
	return env, strings.Replace(command, "/usr/local/lib/snapfs/snapfs-sync.sh", repoFile(t, "scripts/snapfs-sync.sh"), 1)
}

// Issue 9 findings 1 and 2: the sync job works from a bare cron
// environment (cron line and systemd unit as shipped), fails with a
// non-zero exit when it cannot work, and three runs ship each snapshot
// once, with the region's retention applied.
func TestSyncJobFromCron(t *testing.T) {
	tmp := t.TempDir()
	store := filepath.Join(tmp, "host")
	ok(t, store, "init")
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"region", "add", "dr", "--data", "2", "--parity", "1", "--key-file", key, "--keep-last", "2"}
	var dirs []string
	for i := range 3 {
		d := filepath.Join(tmp, fmt.Sprintf("store%d", i))
		dirs = append(dirs, d)
		add = append(add, "--store", "file://"+d)
	}
	// Finding 3: a missing directory is refused; --create makes it.
	if r := snapfs(t, store, add...); r.code == 0 || !strings.Contains(r.stderr, "--create") {
		t.Fatalf("region add on missing directories: exit %d %q", r.code, r.stderr)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			t.Fatalf("region add without --create made %s", d)
		}
	}
	ok(t, store, append(add, "--create")...)
	ok(t, store, "disk", "create", "v", "--size", "1M")
	for i := range 4 {
		ok(t, store, "snapshot", "create", fmt.Sprintf("s%d", i), "--disk", "v")
	}
	cronEnv, command := cronJob(t)
	lockDir := filepath.Join(tmp, "locks")
	if err := os.Mkdir(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	jobEnv := []string{"SNAPFS_STORE=" + store, "SNAPFS_LOCK_DIR=" + lockDir}
	command = strings.Replace(command, "--syslog ", "", 1) // the log to the test's output
	command = strings.Replace(command, "dr-east", "dr", 1)

	// As shipped, without snapfs where the job looks: a clear failure.
	if _, err := os.Stat("/usr/local/bin/snapfs"); err != nil {
		code, out := bare(t, command, jobEnv...)
		if code != 8 || !strings.Contains(out, "snapfs not found") {
			t.Fatalf("job without a snapfs binary: exit %d: %s", code, out)
		}
	}
	// The cron file's variables, with SNAPFS pointing at this build.
	var env []string
	for _, e := range cronEnv {
		if strings.HasPrefix(e, "SNAPFS=") {
			e = "SNAPFS=" + bin
		}
		env = append(env, e)
	}
	env = append(env, jobEnv...)
	copied := 0
	for run := range 3 {
		code, out := bare(t, command, env...)
		if code != 0 {
			t.Fatalf("run %d: exit %d: %s", run, code, out)
		}
		m := regexp.MustCompile(`(?m)^region dr: (\d+) snapshot\(s\) copied`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("run %d: no sync line: %s", run, out)
		}
		n, _ := strconv.Atoi(m[1])
		if run > 0 && n != 0 {
			t.Fatalf("run %d shipped %d snapshot(s) again: %s", run, n, out)
		}
		copied += n
		if strings.Contains(out, "removed 0 snapshot(s)") == false {
			t.Fatalf("run %d: prune removed what sync copied: %s", run, out)
		}
	}
	if copied != 2 {
		t.Fatalf("3 runs copied %d snapshots, want 2 (the region keeps the last 2)", copied)
	}
	// The systemd unit's command and environment, bare, work too.
	unit, err := os.ReadFile(repoFile(t, "scripts/snapfs-sync.service"))
	if err != nil {
		t.Fatal(err)
	}
	var unitEnv []string
	var exec string
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "Environment="); ok {
			if strings.HasPrefix(v, "SNAPFS=") {
				v = "SNAPFS=" + bin
			}
			unitEnv = append(unitEnv, v)
		}
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			exec = strings.Replace(strings.Replace(v, "%i", "dr", 1), "/usr/local/lib/snapfs/snapfs-sync.sh", repoFile(t, "scripts/snapfs-sync.sh"), 1)
		}
	}
	if code, out := bare(t, exec, append(unitEnv, jobEnv...)...); code != 0 || !strings.Contains(out, "region dr: 0 snapshot(s) copied") {
		t.Fatalf("systemd unit's job: exit %d: %s", code, out)
	}
	// A new snapshot ships once, and the oldest copy ages out.
	ok(t, store, "snapshot", "create", "s4", "--disk", "v")
	if code, out := bare(t, command, env...); code != 0 || !strings.Contains(out, "region dr: 1 snapshot(s) copied") || !strings.Contains(out, "removed 1 snapshot(s)") {
		t.Fatalf("after s4: exit %d: %s", code, out)
	}
	// A store gone (an unmounted NAS): the job fails, and says so.
	if err := os.Rename(dirs[1], dirs[1]+".away"); err != nil {
		t.Fatal(err)
	}
	ok(t, store, "snapshot", "create", "s5", "--disk", "v")
	if code, out := bare(t, command, env...); code != 1 || !strings.Contains(out, "sync FAILED") {
		t.Fatalf("job with a store gone: exit %d: %s", code, out)
	}
	if _, err := os.Stat(dirs[1]); err == nil {
		t.Fatal("the job re-created a missing store directory")
	}
}

// Issue 9 finding 5: with a daemon started without S3 credentials, a
// command given them in its own environment fails with exit 11 and says
// they must be set in the daemon's environment.
func TestS3CredentialsOfTheDaemon(t *testing.T) {
	needRoot(t)
	endpoint, access, secret := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("ef", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(tmp, "nas")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "region", "add", "cr", "--data", "1", "--parity", "1", "--key-file", key,
		"--store", "file://"+d, "--store", "s3://creds/p", "--s3-endpoint", endpoint, "--s3-path-style")
	cmd.Env = append(os.Environ(), "SNAPFS_STORE="+store, "AWS_ACCESS_KEY_ID="+access, "AWS_SECRET_ACCESS_KEY="+secret)
	out, err := cmd.CombinedOutput()
	ee, isExit := err.(*exec.ExitError)
	if !isExit || ee.ExitCode() != 11 || !strings.Contains(string(out), "daemon's environment") {
		t.Fatalf("region add through a daemon without credentials: %v: %s", err, out)
	}
	if ents, _ := os.ReadDir(d); len(ents) != 0 {
		t.Fatalf("the failed region add wrote to the file store: %v", ents)
	}
}
