// Package s3test runs a real S3-compatible server for tests: versitygw
// (Apache-2.0) with its posix backend, on a free 127.0.0.1 port, storing
// into a temporary directory.
//
// The binary is $SNAPFS_VERSITYGW, else <repo root>/.bin/versitygw, which
// scripts/versitygw.sh installs at the version pinned by scripts/tools/versitygw.
// Without a binary the test is skipped, unless SNAPFS_REQUIRE_S3=1 (CI),
// when it fails.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/integration/testutil"
)

// Start starts a versitygw server for the test and stops it in t.Cleanup.
// It returns the endpoint as "http://127.0.0.1:PORT" and the root user's
// keys. The server is ready (answers HTTP) when Start returns.
func Start(t testing.TB) (endpoint, access, secret string) {
	t.Helper()
	bin, why := binary()
	if bin == "" {
		if os.Getenv("SNAPFS_REQUIRE_S3") == "1" {
			t.Fatalf("s3test: no versitygw binary (%s) and SNAPFS_REQUIRE_S3=1: run scripts/versitygw.sh", why)
		}
		testutil.Skipf(t, "s3test: no versitygw binary (%s); run scripts/versitygw.sh or set SNAPFS_VERSITYGW", why)
	}
	access, secret = "snapfs-"+randHex(4), randHex(16)
	root := t.TempDir()
	var lastErr error
	for range 3 { // a free port can be taken between probe and bind
		port, err := freePort()
		if err != nil {
			t.Fatalf("s3test: %v", err)
		}
		endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
		lastErr = start(t, bin, root, port, endpoint, access, secret)
		if lastErr == nil {
			return endpoint, access, secret
		}
	}
	t.Fatalf("s3test: %v", lastErr)
	return "", "", ""
}

// start runs the server and waits for it; on failure the process is gone.
func start(t testing.TB, bin, root string, port int, endpoint, access, secret string) error {
	var out syncBuffer
	cmd := exec.Command(bin,
		"--port", "127.0.0.1:"+strconv.Itoa(port),
		"--quiet",
		// --disableotmp: with O_TMPFILE, a put can fail with
		// ExistingObjectIsDirectory when a concurrent delete in the same
		// bucket removes the now empty parent directory before the put
		// links its temporary file (versitygw issue #1988; seen in
		// TestRemoteDiskS3's probe puts, six stores over three buckets).
		"posix", "--disableotmp", root)
	// Keys go through the environment, not argv, so ps does not show them.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+access, "ROOT_SECRET_ACCESS_KEY="+secret)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	if err := waitReady(endpoint, exited, 30*time.Second); err != nil {
		stop()
		return fmt.Errorf("versitygw on port %d: %w; output:\n%s", port, err, out.String())
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			stop()
		}
	})
	return nil
}

// waitReady polls the endpoint until it answers any HTTP response (an
// unauthenticated request gets 403, which is an answer).
func waitReady(endpoint string, exited <-chan error, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited before answering: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("no answer within %v: %w", timeout, err)
		case <-time.After(delay):
		}
	}
}

// binary finds versitygw, or says why not.
func binary() (path, why string) {
	if p := os.Getenv("SNAPFS_VERSITYGW"); p != "" {
		if isExec(p) {
			return p, ""
		}
		return "", fmt.Sprintf("SNAPFS_VERSITYGW=%s is not an executable file", p)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err.Error()
	}
	p := filepath.Join(root, ".bin", "versitygw")
	if isExec(p) {
		return p, ""
	}
	return "", p + " not found"
}

// repoRoot walks up from the working directory (a package directory under
// go test) to the directory holding the main module's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/snapfs/snapfs\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod of github.com/snapfs/snapfs) not found above the working directory")
		}
		dir = parent
	}
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// syncBuffer collects the server's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
