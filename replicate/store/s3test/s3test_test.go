package s3test

import (
	"fmt"
	"net/http"
	"runtime"
	"testing"

	"github.com/snapfs/snapfs/integration/testutil"
)

// fakeTB records how Start ended when it cannot run a server.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func runStart(t *testing.T) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(f)
	}()
	<-done
	return f
}

func TestMissingBinary(t *testing.T) {
	t.Setenv("SNAPFS_VERSITYGW", "/nonexistent/versitygw")
	t.Setenv("SNAPFS_REQUIRE_S3", "")
	t.Setenv(testutil.DisallowSkipEnv, "")
	if f := runStart(t); !f.skipped || f.failed {
		t.Fatalf("without binary: skipped=%v failed=%v %s", f.skipped, f.failed, f.msg)
	}
	t.Setenv("SNAPFS_REQUIRE_S3", "1")
	if f := runStart(t); !f.failed {
		t.Fatalf("without binary and SNAPFS_REQUIRE_S3=1: skipped=%v failed=%v %s", f.skipped, f.failed, f.msg)
	}
}

func TestStartAnswers(t *testing.T) {
	endpoint, access, secret := Start(t)
	if access == "" || secret == "" {
		t.Fatal("empty keys")
	}
	resp, err := http.Get(endpoint + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Logf("anonymous request answered %s", resp.Status)
	}
}
