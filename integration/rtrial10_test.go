package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRtrial10SyncJobSyslogFallback (trial 10, the scheduled job as
// shipped): with --syslog (the cron line) and no syslog to take the log
// (no /dev/log: logger fails), the job's log must still reach its stderr,
// which cron mails, instead of vanishing: a failing job left no trace
// at all.
//
// Seen on main e1f8edc: `env -i PATH=/usr/bin:/bin snapfs-sync.sh
// --syslog rk` on a host without /dev/log exited 1 and printed nothing;
// the same run without --syslog said "sync FAILED (snapfs exit 4)" and
// why.
func TestRtrial10SyncJobSyslogFallback(t *testing.T) {
	stub := t.TempDir()
	if err := os.WriteFile(filepath.Join(stub, "logger"), []byte("#!/bin/sh\necho 'logger: socket /dev/log: No such file or directory' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	job := repoFile(t, "scripts/snapfs-sync.sh")
	code, out := bare(t, job+" --syslog dr", "PATH="+stub+":/usr/bin:/bin", "SNAPFS=/nonexistent/snapfs", "SNAPFS_LOCK_DIR="+t.TempDir())
	if code != 8 || !strings.Contains(out, "snapfs not found") {
		t.Fatalf("job with --syslog and no syslog: exit %d, output %q; want exit 8 and the reason on stderr", code, out)
	}
}
