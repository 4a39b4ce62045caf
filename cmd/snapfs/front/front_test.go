package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/integration/testutil"
)

// heavy are the packages the front binary and the light packages must
// never link: the engine, regions, index, Badger, FUSE, S3, metrics.
var heavy = []string{
	"github.com/snapfs/snapfs/rowstore",
	"github.com/snapfs/snapfs/replicate",
	"github.com/snapfs/snapfs/index",
	"github.com/snapfs/snapfs/fs",
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service",
	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode",
	"github.com/dgraph-io/",
	"github.com/hanwen/go-fuse",
	"github.com/minio/",
	"github.com/prometheus/",
	// package wire's client speaks HTTP/1.1 itself: net/http's package
	// init (HTTP/2 bundle, crypto/tls, x509) would cost every command.
	"net/http",
	"crypto/tls",
	"crypto/x509",
}

func goTool(t *testing.T) string {
	t.Helper()
	g := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(g); err == nil {
		return g
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go tool: %v", err)
	}
	return p
}

// TestLight: the front and the light packages import nothing heavy, with
// and without the urfave_cli_no_docs tag the install builds it with.
func TestLight(t *testing.T) {
	for _, tags := range []string{"", "urfave_cli_no_docs"} {
		cmd := exec.Command(goTool(t), "list", "-deps", "-tags="+tags,
			"github.com/snapfs/snapfs/cmd/snapfs/front",
			"github.com/snapfs/snapfs/cmd/snapfs/internal/hot",
			"github.com/snapfs/snapfs/cmd/snapfs/internal/wire")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list -deps printed %d packages", len(deps))
		}
		for _, d := range deps {
			for _, h := range heavy {
				if strings.HasPrefix(d, h) {
					t.Errorf("tags %q: the front links %s", tags, d)
				}
			}
			if tags != "" && strings.Contains(d, "blackfriday") {
				t.Errorf("tags %q: the front links %s", tags, d)
			}
		}
	}
}

// TestLightCheckSees: the check of TestLight sees the heavy packages where
// they are (the full binary links them).
func TestLightCheckSees(t *testing.T) {
	out, err := exec.Command(goTool(t), "list", "-deps", "github.com/snapfs/snapfs/cmd/snapfs").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, h := range []string{"github.com/snapfs/snapfs/rowstore", "github.com/dgraph-io/", "github.com/hanwen/go-fuse", "github.com/minio/", "github.com/prometheus/"} {
		if !strings.Contains(string(out), "\n"+h) {
			t.Errorf("the full binary does not link %s: the check is wrong", h)
		}
	}
}

// bins builds the full binary and the front into a directory laid out as
// install.sh lays them out (bin/snapfs, lib/snapfs/snapfs-full).
func bins(t *testing.T) (front, full string) {
	t.Helper()
	dir := t.TempDir()
	front = filepath.Join(dir, "bin", "snapfs")
	full = filepath.Join(dir, "lib", "snapfs", "snapfs-full")
	for _, b := range []struct{ out, pkg, tags string }{
		{front, "github.com/snapfs/snapfs/cmd/snapfs/front", "urfave_cli_no_docs"},
		{full, "github.com/snapfs/snapfs/cmd/snapfs", ""},
	} {
		cmd := exec.Command(goTool(t), "build", "-tags="+b.tags, "-o", b.out, b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return front, full
}

type result struct {
	stdout, stderr string
	code           int
}

func runBin(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	return runBinCtx(t, time.Minute, bin, env, nil, args...)
}

// volatile are the parts of an answer that differ between two stores
// given the same history: times, pids, and the host file system's free
// space (a warning names it; other writers on the machine move it between
// the two runs).
var volatile = regexp.MustCompile(`"(created|modified|started|as_of|last_snapshot_time)":"[^"]*"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|` +
	`[0-9hms.]+ ago|pid \d+|"pid":\d+|has [0-9.]+ [KMGTPE]?i?B free`)

func normalize(s string, sd side) string {
	s = strings.ReplaceAll(s, sd.store, "STORE")
	if sd.mnt != "" {
		s = strings.ReplaceAll(s, sd.mnt, "MNT")
	}
	return volatile.ReplaceAllString(s, "VOLATILE")
}

type side struct {
	bin, store, mnt string
	env             []string
}

// TestSameAsFull runs every hot command, and command lines the front hands
// over, through the front on one store and through the full binary on
// another with the same history, each served by a real daemon (and, for
// the fallback, by none): stdout, stderr and exit code must be the same.
func TestSameAsFull(t *testing.T) {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = append(missing, "/dev/fuse")
	}
	if len(missing) > 0 {
		testutil.Skipf(t, "missing %v", missing)
	}
	front, full := bins(t)
	root := t.TempDir()
	// The front finds the full binary relative to itself (no SNAPFS_FULL).
	sides := [2]side{{bin: front}, {bin: full}}
	offline := [2]side{{bin: front}, {bin: full}}
	for i := range sides {
		for _, s := range []*side{&sides[i], &offline[i]} {
			s.store = filepath.Join(root, "store-"+filepath.Base(s.bin)+map[bool]string{true: "-daemon", false: "-offline"}[s == &sides[i]])
			r := runBin(t, full, nil, "--store", s.store, "init")
			if r.code != 0 {
				t.Fatalf("init: %+v", r)
			}
			if r := runBin(t, full, nil, "--store", s.store, "disk", "create", "vol1", "--size", "64M"); r.code != 0 {
				t.Fatalf("disk create: %+v", r)
			}
			if r := runBin(t, full, nil, "--store", s.store, "disk", "create", "vol2", "--size", "64M", "--block-size", "64K"); r.code != 0 {
				t.Fatalf("disk create: %+v", r)
			}
		}
		s := &sides[i]
		s.mnt = filepath.Join(root, "mnt-"+filepath.Base(s.bin))
		if err := os.Mkdir(s.mnt, 0o755); err != nil {
			t.Fatal(err)
		}
		if r := runBin(t, full, nil, "--store", s.store, "mount", s.mnt, "--background"); r.code != 0 {
			t.Fatalf("mount: %+v", r)
		}
		t.Cleanup(func() {
			if r := runBin(t, full, nil, "--store", s.store, "umount", s.mnt); r.code != 0 {
				t.Errorf("umount: %+v", r)
			}
		})
	}
	key := filepath.Join(root, "key")
	if err := os.WriteFile(key, []byte("a passphrase of the test, long enough"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		code int // the exit code both give
		args []string
	}{
		// Hot commands through the daemon: success, --json, errors.
		{0, []string{"snapshot", "create", "s1", "--disk", "vol1"}},
		{4, []string{"snapshot", "create", "s1", "--disk", "vol1"}},                   // exists
		{3, []string{"snapshot", "create", "s2", "--disk", "nodisk"}},                 // unknown disk
		{2, []string{"snapshot", "create", "bad/name", "--disk", "vol1"}},             // bad name (the daemon's check)
		{0, []string{"snapshot", "create", "g1", "--disk", "vol1", "--disk", "vol2"}}, // a consistency group
		{0, []string{"--json", "snapshot", "create", "s3", "--disk", "vol1"}},
		{0, []string{"snapshot", "create", "s4", "--disk", "vol2", "--json"}},
		{0, []string{"snapshot", "create", "--disk", "vol1", "s5"}},
		{2, []string{"snapshot", "create", "s6"}},                            // usage: no --disk (the full binary says it)
		{2, []string{"snapshot", "create", "s6", "--disk", "vol1", "extra"}}, // usage
		{2, []string{"snapshot", "create", "s6", "--disk", "vol1", "--on-pre-hook-failure", "x"}},
		{0, []string{"disk", "create", "c1", "--from-snapshot", "s1", "--disk", "vol1"}},
		{0, []string{"--json", "disk", "create", "c2", "--from-snapshot", "s1", "--disk", "vol1"}},
		{4, []string{"disk", "create", "c1", "--from-snapshot", "s1", "--disk", "vol1"}},     // exists
		{3, []string{"disk", "create", "c3", "--from-snapshot", "nosnap", "--disk", "vol1"}}, // not found
		{3, []string{"disk", "create", "c3", "--from-snapshot", "s1", "--disk", "vol2"}},     // vol2 not in s1
		{2, []string{"disk", "create", "c3", "--from-snapshot", "s1"}},                       // usage
		{0, []string{"disk", "create", "e1", "--size", "1G"}},
		{0, []string{"disk", "create", "e2", "--size", "100T"}}, // larger than free: a warning on stderr
		{2, []string{"disk", "create", "e3", "--size", "12Q"}},
		{2, []string{"disk", "create", "bad/name", "--size", "1M"}},
		{0, []string{"disk", "create", "enc1", "--size", "1M", "--encrypt", "--key-file", key}},
		{2, []string{"--json", "disk", "create", "enc2", "--size", "1M", "--encrypt", "--key-file", filepath.Join(root, "nokey")}},
		{2, []string{"disk", "create", "enc3", "--size", "1M", "--key-file", key}}, // usage: --key-file without --encrypt
		{0, []string{"snapshot", "create", "se1", "--disk", "enc1"}},
		{0, []string{"disk", "create", "ec1", "--from-snapshot", "se1", "--disk", "enc1"}},
		{0, []string{"image", "create", "im1", "--snapshot", "s1", "--disk", "vol1"}},
		{0, []string{"--json", "image", "create", "im2", "--snapshot", "s1", "--disk", "vol1"}},
		{4, []string{"image", "create", "im1", "--snapshot", "s1", "--disk", "vol1"}}, // exists
		{3, []string{"image", "create", "im3", "--snapshot", "nosnap", "--disk", "vol1"}},
		{2, []string{"image", "create", "im3", "--snapshot", "s1"}},
		{0, []string{"disk", "create", "c4", "--from-image", "im1"}},
		{0, []string{"disk", "rollback", "vol1", "--snapshot", "s3"}},
		{0, []string{"--json", "disk", "rollback", "vol1", "--snapshot", "s1"}},
		{3, []string{"disk", "rollback", "nodisk", "--snapshot", "s1"}},
		{3, []string{"disk", "rollback", "vol1", "--snapshot", "nosnap"}},
		{2, []string{"disk", "rollback", "vol1"}},
		{0, []string{"status"}},
		{0, []string{"--json", "status"}},
		{2, []string{"status", "extra"}},
		{0, []string{"disk", "list"}},
		{0, []string{"--json", "disk", "list"}},
		{2, []string{"disk", "list", "x"}},
		{0, []string{"image", "list"}},
		{0, []string{"image", "list", "--json"}},
		{0, []string{"snapshot", "list"}},
		{0, []string{"snapshot", "list", "--disk", "vol2"}},
		{0, []string{"--json", "snapshot", "list"}},
		{2, []string{"snapshot", "list", "x"}},
		// Handed to the full binary.
		{0, []string{"snapshot", "info", "s1"}},
		{3, []string{"image", "delete", "nosuch"}},
		{0, []string{"snapshot", "create", "--help"}},
		{0, []string{"help", "disk", "create"}},
		{0, []string{"--help"}},
		{0, []string{}},
		{2, []string{"snapshot"}},
		{2, []string{"snapshot", "create", "s7", "--disk", "vol1", "--frobnicate"}},
		{2, []string{"nosuchcommand"}},
		{0, []string{"--version"}},
		{2, []string{"--progress", "nonsense", "snapshot", "create", "s8", "--disk", "vol1"}},
		{2, []string{"--log-level", "loud", "snapshot", "create", "s8", "--disk", "vol1"}},
		{0, []string{"snapshot", "create", "s8", "--disk", "vol1", "--generate-bash-completion"}},
	}
	compare := func(t *testing.T, sides [2]side, args []string) result {
		t.Helper()
		var got [2]result
		for i, s := range sides {
			r := runBin(t, s.bin, s.env, append([]string{"--store", s.store}, args...)...)
			r.stdout, r.stderr = normalize(r.stdout, s), normalize(r.stderr, s)
			got[i] = r
		}
		if got[0] != got[1] {
			t.Errorf("snapfs %s:\nfront: exit %d\nstdout %q\nstderr %q\nfull: exit %d\nstdout %q\nstderr %q",
				strings.Join(args, " "), got[0].code, got[0].stdout, got[0].stderr, got[1].code, got[1].stdout, got[1].stderr)
		}
		return got[0]
	}
	for _, tc := range cases {
		if r := compare(t, sides, tc.args); r.code != tc.code {
			t.Errorf("snapfs %s: exit %d, want %d (stderr %q)", strings.Join(tc.args, " "), r.code, tc.code, r.stderr)
		}
	}
	// No daemon: the front hands every command to the full binary, which
	// opens the store itself.
	for _, args := range [][]string{
		{"snapshot", "create", "s1", "--disk", "vol1"},
		{"--json", "snapshot", "create", "s2", "--disk", "vol1"},
		{"snapshot", "create", "s1", "--disk", "vol1"},
		{"disk", "create", "c1", "--from-snapshot", "s1", "--disk", "vol1"},
		{"image", "create", "im1", "--snapshot", "s1", "--disk", "vol1"},
		{"disk", "rollback", "vol1", "--snapshot", "s2"},
		{"snapshot", "list"},
		{"status"},
		{"status", "--json"},
		{"disk", "list"},
		{"--json", "image", "list"},
	} {
		compare(t, offline, args)
	}
	// The front serves the hot commands itself when a daemon answers: they
	// work without the full binary, and the other commands need it.
	noFull := []string{"SNAPFS_FULL=" + filepath.Join(root, "no-such-binary")}
	for _, args := range [][]string{
		{"snapshot", "create", "f1", "--disk", "vol1"},
		{"disk", "create", "fc1", "--from-snapshot", "f1", "--disk", "vol1"},
		{"disk", "create", "fe1", "--size", "1M"},
		{"image", "create", "fi1", "--snapshot", "f1", "--disk", "vol1"},
		{"--json", "disk", "rollback", "vol1", "--snapshot", "f1"},
		{"status"},
		{"disk", "list"},
		{"image", "list"},
		{"snapshot", "list", "--json"},
		{"snapshot", "create", "f1", "--disk", "vol1"}, // an error of the daemon, too
	} {
		r := runBin(t, front, noFull, append([]string{"--store", sides[0].store}, args...)...)
		if strings.Contains(r.stderr, "no-such-binary") || r.stdout == "" && r.code == 0 {
			t.Errorf("front %v did not serve it itself: %+v", args, r)
		}
	}
	// The store from SNAPFS_STORE.
	if r := runBin(t, front, append(noFull, "SNAPFS_STORE="+sides[0].store), "snapshot", "create", "f2", "--disk", "vol1"); r.code != 0 || r.stdout != "created snapshot f2 of vol1 (crash-consistent)\n" {
		t.Errorf("front with SNAPFS_STORE: %+v", r)
	}
	if r := runBin(t, front, noFull, "--store", sides[0].store, "snapshot", "info", "f1"); !strings.Contains(r.stderr, "no-such-binary") {
		t.Errorf("front snapshot info did not exec the full binary: %+v", r)
	}

	// The snapshots the front made are the daemon's: listed by the full binary.
	r := runBin(t, full, nil, "--store", sides[0].store, "snapshot", "list")
	for _, name := range []string{"s1", "g1", "s3", "s4", "s5"} {
		if !strings.Contains(r.stdout, name+" ") {
			t.Errorf("snapshot %s missing from the list:\n%s", name, r.stdout)
		}
	}
}

// TestNoFullBinary: without the full binary the front says where it looked.
func TestNoFullBinary(t *testing.T) {
	front, _ := bins(t)
	lone := filepath.Join(t.TempDir(), "snapfs")
	data, err := os.ReadFile(front)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, lone, []string{"SNAPFS_FULL="}, "--store", t.TempDir(), "usage")
	if r.code != 1 || !strings.Contains(r.stderr, "full snapfs binary is not installed") || !strings.Contains(r.stderr, "SNAPFS_FULL") {
		t.Fatalf("%+v", r)
	}
	// SNAPFS_FULL naming the front itself (directly or through a
	// symlink): an error, not an endless exec of itself.
	link := filepath.Join(t.TempDir(), "snapfs-full")
	if err := os.Symlink(lone, link); err != nil {
		t.Fatal(err)
	}
	for _, full := range []string{lone, link} {
		r := runBinCtx(t, 20*time.Second, lone, []string{"SNAPFS_FULL=" + full}, nil, "--store", t.TempDir(), "usage")
		if r.code != 1 || !strings.Contains(r.stderr, "is this light front, not the full snapfs binary") {
			t.Errorf("SNAPFS_FULL=%s: %+v", full, r)
		}
	}
}

// hungDaemon is a control socket in a new store directory whose listener
// accepts connections, reads what comes and never answers (a stopped or
// hung daemon). It returns the store directory.
func hungDaemon(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "control.sock"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return dir
}

// TestHungDaemon: a daemon that takes connections but never answers makes
// no command wait forever. Both binaries give up after the bound
// (wire.AnswerTimeout): a command that changes nothing is "busy" (exit 5);
// a mutating one is a failure (exit 1) that says it may or may not have
// happened, never "busy" (which a script may retry blindly); SIGINT while
// waiting is "interrupted" (130), saying the same.
func TestHungDaemon(t *testing.T) {
	front, full := bins(t)
	store := hungDaemon(t)
	cases := []struct {
		code int
		args []string
		say  string
	}{
		{5, []string{"status"}, "gave no answer within 5s"},
		{5, []string{"--json", "disk", "list"}, "gave no answer within 5s"},
		{5, []string{"snapshot", "list"}, "gave no answer within 5s"},
		{1, []string{"snapshot", "create", "s1", "--disk", "vol1"}, "request of snapfs snapshot create but gave no answer within 5s (a daemon hung?): it may or may not have taken effect"},
		{1, []string{"disk", "create", "d1", "--size", "1M"}, "request of snapfs disk create but gave no answer within 5s (a daemon hung?): it may or may not have taken effect"},
		{1, []string{"disk", "rollback", "vol1", "--snapshot", "s1"}, "request of snapfs disk rollback but gave no answer within 5s (a daemon hung?): it may or may not have taken effect"},
	}
	type out struct {
		bin  string
		i    int
		r    result
		took time.Duration
	}
	ch := make(chan out)
	for i, tc := range cases {
		for _, bin := range []string{front, full} {
			go func() {
				start := time.Now()
				r := runBinCtx(t, 30*time.Second, bin, nil, nil, append([]string{"--store", store}, tc.args...)...)
				ch <- out{bin, i, r, time.Since(start)}
			}()
		}
	}
	got := map[int][2]result{}
	for range 2 * len(cases) {
		o := <-ch
		tc := cases[o.i]
		if o.r.code != tc.code || !strings.Contains(o.r.stderr, tc.say) || o.took > 20*time.Second {
			t.Errorf("%s %v: exit %d after %v, stderr %q; want exit %d saying %q", filepath.Base(o.bin), tc.args, o.r.code, o.took, o.r.stderr, tc.code, tc.say)
		}
		g := got[o.i]
		g[map[bool]int{true: 0, false: 1}[o.bin == front]] = o.r
		got[o.i] = g
	}
	for i, g := range got {
		if g[0] != g[1] {
			t.Errorf("%v: front %+v, full %+v", cases[i].args, g[0], g[1])
		}
	}

	// SIGINT while snapshot create waits for the daemon: interrupted,
	// and honest about the request the daemon got.
	for _, bin := range []string{front, full} {
		r := runBinCtx(t, 30*time.Second, bin, nil, func(p *os.Process) {
			time.Sleep(time.Second)
			_ = p.Signal(os.Interrupt)
		}, "--store", store, "snapshot", "create", "s1", "--disk", "vol1")
		if r.code != 130 || !strings.Contains(r.stderr, "may or may not have taken effect") {
			t.Errorf("%s snapshot create, SIGINT: %+v", filepath.Base(bin), r)
		}
	}
}

// runBinCtx is runBin with a timeout, and started (when not nil) run with
// the process once it runs.
func runBinCtx(t *testing.T, timeout time.Duration, bin string, env []string, started func(*os.Process), args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Errorf("%s %v: %v", bin, args, err)
		return result{code: -1}
	}
	if started != nil {
		go started(cmd.Process)
	}
	err := cmd.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Errorf("%s %v: %v", bin, args, err)
	}
	if ctx.Err() != nil {
		code = -1 // killed: it waited past the timeout
	}
	return result{out.String(), errb.String(), code}
}
