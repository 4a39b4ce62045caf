package integration

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/store/s3test"
)

// TestRmend10SyncJobRecreatedName (rmend10 item 1): a snapshot deleted
// and re-created under the same name after its first copy reached the
// region. Sync cannot ship the new one under that name (the region's copy
// is never replaced: it may be the only one left of the old snapshot), but
// the job must not stop there for good: every other snapshot ships, prune
// and check still run, the job exits 9 (not 1), and once retention has
// pruned the old copy the job is clean again.
//
// Seen on main 4b908c1: the sync refused with snapfs exit 4 on every run
// and snapfs-sync.sh stopped at the sync (exit 1): prune and check never
// ran again, retention was never applied.
func TestRmend10SyncJobRecreatedName(t *testing.T) {
	tmp := t.TempDir()
	store := filepath.Join(tmp, "host")
	ok(t, store, "init")
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("cd", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"region", "add", "dr", "--data", "2", "--parity", "1", "--key-file", key, "--keep-last", "2", "--create"}
	for i := range 3 {
		add = append(add, "--store", "file://"+filepath.Join(tmp, "store", string(rune('a'+i))))
	}
	ok(t, store, add...)
	ok(t, store, "disk", "create", "v", "--size", "1M")
	lockDir := filepath.Join(tmp, "locks")
	if err := os.Mkdir(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"SNAPFS=" + bin, "SNAPFS_STORE=" + store, "SNAPFS_LOCK_DIR=" + lockDir}
	job := repoFile(t, "scripts/snapfs-sync.sh") + " dr"
	remote := func() string {
		t.Helper()
		return ok(t, store, "region", "snapshots", "dr")
	}

	ok(t, store, "snapshot", "create", "daily", "--disk", "v")
	if code, out := bare(t, job, env...); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, out)
	}
	ok(t, store, "snapshot", "delete", "daily")
	ok(t, store, "snapshot", "create", "daily", "--disk", "v")
	ok(t, store, "snapshot", "create", "x", "--disk", "v")

	code, out := bare(t, job, env...)
	if code != 9 {
		t.Fatalf("run with a re-created name: exit %d, want 9 (name taken; prune and check ran): %s", code, out)
	}
	for _, want := range []string{"holds another snapshot of that name", "pruned", "removed 0 snapshot(s)", "pruned and checked", "not shipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("run with a re-created name: output lacks %q: %s", want, out)
		}
	}
	if r := remote(); !strings.Contains(r, "x") {
		t.Fatalf("the other snapshot was not shipped: %s", r)
	}

	// A newer snapshot pushes the old "daily" out of retention (keep 2):
	// prune, which the job still runs, removes it, and the job is clean
	// again (the new "daily" is older than the two retention keeps, so
	// sync does not ship it to be pruned).
	ok(t, store, "snapshot", "create", "y", "--disk", "v")
	code, out = bare(t, job, env...)
	if code != 0 || !strings.Contains(out, "removed 1 snapshot(s) (daily)") {
		t.Fatalf("run after y: exit %d, want 0 with the old daily pruned: %s", code, out)
	}
	if r := remote(); strings.Contains(r, "daily") {
		t.Fatalf("region still lists a daily: %s", r)
	}
}

// stallProxy is an HTTP proxy in front of the real S3 server (versitygw):
// while stalled is set, a PUT of more than 64 KiB gets 16 KiB of its body
// read and then nothing more, until its client gives up (fault injection:
// a server or network that stops mid-transfer). Everything else passes.
// (A stalled answer body is TestRmend10S3StalledBodyFails's: S3 answers a
// put with no body.)
type stallProxy struct {
	upstream string
	stalled  atomic.Bool
	stalls   atomic.Int64
	release  chan struct{}
}

func (p *stallProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.stalled.Load() && r.Method == http.MethodPut && r.ContentLength > 64<<10 {
		p.stalls.Add(1)
		_, _ = io.CopyN(io.Discard, r.Body, 16<<10)
		select { // until the test ends: the server reads no more of the
		case <-p.release: // body, so it does not see the client leave
		case <-r.Context().Done():
		}
		return
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.RequestURI = "http", p.upstream, ""
	out.Host = r.Host // the client signed its requests for the proxy's host
	if r.ContentLength == 0 {
		out.Body = nil
	}
	res, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	_, _ = io.Copy(w, res.Body)
}

// TestRmend10SyncJobStalledUpload (rmend10 item 2): the scheduled job
// whose uploads stall mid-body (S3 behind a proxy that stops reading)
// fails instead of hanging for ever with its lock held: exit 1, "sync
// FAILED", the lock released; the next run, with the stall gone, ships the
// snapshot.
//
// On main 4b908c1 this run fails too, but only through the 30 s limit
// for headers (the stalled rest of a 2 MiB shard fits in the loopback
// socket buffers): 91 s there, about 21 s here. A body that does not fit,
// or a stalled answer body, hung main for ever (the store test).
func TestRmend10SyncJobStalledUpload(t *testing.T) {
	needRoot(t)
	endpoint, access, secret := s3test.Start(t)
	p := &stallProxy{upstream: strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://")}
	p.release = make(chan struct{})
	srv := httptest.NewServer(p)
	defer srv.Close()
	defer close(p.release) // first: the stalled handlers return
	// The daemon inherits these: its S3 calls go idle-timed at 1 s.
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("SNAPFS_S3_IDLE_TIMEOUT", "1s")

	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "host"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("ef", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"region", "add", "dr", "--data", "2", "--parity", "1", "--key-file", key, "--keep-last", "5",
		"--s3-endpoint", srv.URL, "--s3-path-style"}
	for _, s := range []string{"a", "b", "c"} {
		add = append(add, "--store", "s3://rmend10/"+s)
	}
	ok(t, store, add...)
	ok(t, store, "disk", "create", "v", "--size", "8M")
	f, err := os.OpenFile(filepath.Join(mp, "disks", "v"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(randBytes(t, 4<<20), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ok(t, store, "snapshot", "create", "s1", "--disk", "v")

	lockDir := filepath.Join(tmp, "locks")
	if err := os.Mkdir(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"SNAPFS=" + bin, "SNAPFS_STORE=" + store, "SNAPFS_LOCK_DIR=" + lockDir}
	job := repoFile(t, "scripts/snapfs-sync.sh") + " dr"

	p.stalled.Store(true)
	start := time.Now()
	code, out := jobWithin(t, 4*time.Minute, job, env...)
	took := time.Since(start)
	p.stalled.Store(false)
	t.Logf("stalled run: exit %d after %v, %d stalled put(s)", code, took.Round(time.Millisecond), p.stalls.Load())
	if p.stalls.Load() == 0 {
		t.Fatalf("no upload stalled: the test tested nothing: %s", out)
	}
	if code != 1 || !strings.Contains(out, "sync FAILED") {
		t.Fatalf("job with stalled uploads: exit %d, want 1 and sync FAILED: %s", code, out)
	}
	t.Logf("stalled run's log: %s", out)
	// The lock is free: the next run runs (not exit 3) and ships s1.
	code, out = jobWithin(t, 90*time.Second, job, env...)
	if code != 0 || !strings.Contains(out, "1 snapshot(s) copied") {
		t.Fatalf("run after the stall: exit %d, want 0 with s1 shipped: %s", code, out)
	}
	if r := ok(t, store, "region", "snapshots", "dr"); !strings.Contains(r, "s1") {
		t.Fatalf("s1 not in the region after the run: %s", r)
	}
}

// jobWithin runs a job line as bare does, but gives up after limit with
// what it printed so far (WaitDelay: a child left holding the output pipe
// does not keep Wait waiting), as exit -1.
func jobWithin(t *testing.T, limit time.Duration, line string, env ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/env", append(append([]string{"-i", "PATH=/usr/bin:/bin"}, env...), "/bin/sh", "-c", line)...)
	cmd.WaitDelay = 5 * time.Second
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return -1, out.String()
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return 0, out.String()
}

type syncBuf struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}
