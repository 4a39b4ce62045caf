package testutil

import (
	"fmt"
	"os"
	"testing"
)

// DisallowSkipEnv is the environment variable that turns every Skipf into
// a failure.
const DisallowSkipEnv = "SNAPFS_TEST_DISALLOW_SKIP"

// SkipDisallowed reports whether skips are failures in this run.
func SkipDisallowed() bool {
	v := os.Getenv(DisallowSkipEnv)
	return v != "" && v != "0"
}

// Skipf skips t with the reason given, or fails it with that reason when
// SNAPFS_TEST_DISALLOW_SKIP is set. Every skip in snapfs goes through here.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if SkipDisallowed() {
		t.Fatalf("test cannot run and %s=1 forbids skipping: %s", DisallowSkipEnv, reason)
		return
	}
	t.Skipf("skipping: %s (set %s=1 to make this a failure)", reason, DisallowSkipEnv)
}
