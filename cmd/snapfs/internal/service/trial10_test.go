package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/rowstore/policy"
)

// Trial 10: a policy applied to a disk that is then deleted failed every
// run for ever ("snapshot: not found: disk"), with backoff, an error in
// the log and a failure in `policy list` and the metrics each time, and
// never expired the automatic snapshots it had taken of that disk (the
// failing snapshot step returned before retention): a retain-days policy
// kept them for ever. Now a deleted disk's run takes nothing, fails
// nothing, and retention still applies to what the policy took.
func TestTrial10PolicyOnDeletedDisk(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	for _, d := range []string{"a", "b"} {
		if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: d, Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.CreatePolicy(ctx, Policy{Name: "h", At: []string{"00:00"}, Every: time.Hour, Retain: policy.Retention{Days: 1}, Disks: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Hour).Add(time.Hour + time.Minute)
	for range 2 {
		if r := l.RunPolicies(ctx, now); len(r.Failed) > 0 || len(r.Taken) != 2 {
			t.Fatalf("run at %s: %+v", now, r)
		}
		now = now.Add(time.Hour)
	}
	if err := l.DeleteDisk(ctx, "b", false); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r := l.RunPolicies(ctx, now)
		if len(r.Failed) > 0 || slices.ContainsFunc(r.Taken, func(n string) bool { return strings.HasPrefix(n, "h-b-") }) {
			t.Fatalf("run at %s after disk b was deleted: %+v", now, r)
		}
		now = now.Add(time.Hour)
	}
	info, err := l.GetPolicy(ctx, "h")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range info.Status {
		if st.Failures != 0 || st.LastError != "" {
			t.Fatalf("policy status of disk %s: %+v", st.Disk, st)
		}
	}
	// A day later the policy's snapshots of b are past its retention.
	now = now.Add(24 * time.Hour)
	if r := l.RunPolicies(ctx, now); len(r.Failed) > 0 {
		t.Fatalf("run a day later: %+v", r)
	}
	for _, n := range snapNames(t, l, policy.KindAutomatic) {
		if strings.HasPrefix(n, "h-b-") {
			t.Fatalf("%s kept past the policy's retention of 1 day: %v", n, snapNames(t, l, policy.KindAutomatic))
		}
	}
}

// Trial 10: after the clock went back (an NTP step, a wrong time fixed),
// a policy took no snapshot until the clock reached its last run again (a
// day back: a day without snapshots; from a clock once set years ahead:
// years), and a snapshot it took then was expired at once by a count
// retention, which ordered snapshots by their (future) creation times.
// Now the schedule goes on from the current time (the next point is due),
// and count retention and quota eviction keep the snapshots taken last
// (catalog order, not creation times).
func TestTrial10PolicyClockBack(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "a", Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreatePolicy(ctx, Policy{Name: "h", At: []string{"00:00"}, Every: time.Hour, Retain: policy.Retention{Count: 3}, Disks: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Hour).Add(time.Hour + time.Minute)
	for range 3 {
		if r := l.RunPolicies(ctx, now); len(r.Failed) > 0 || len(r.Taken) != 1 {
			t.Fatalf("run at %s: %+v", now, r)
		}
		now = now.Add(time.Hour)
	}
	now = now.Add(-24 * time.Hour) // the clock goes back a day
	if r := l.RunPolicies(ctx, now); len(r.Failed) > 0 || len(r.Taken) != 0 {
		t.Fatalf("run at %s, just after the clock went back: %+v (want: nothing until the next point of the schedule)", now, r)
	}
	now = now.Add(time.Hour)
	for i := range 2 {
		r := l.RunPolicies(ctx, now)
		if len(r.Failed) > 0 || len(r.Taken) != 1 {
			t.Fatalf("run %d at %s, after the clock went back: %+v", i, now, r)
		}
		auto := snapNames(t, l, policy.KindAutomatic)
		if !slices.Contains(auto, r.Taken[0]) || len(auto) != 3 {
			t.Fatalf("run %d: took %s; automatic snapshots now %v (retain 3, the last taken)", i, r.Taken[0], auto)
		}
		now = now.Add(time.Hour)
	}
}

// Trial 10 (lead's note): a manual snapshot over its disk's count quota
// said "no space left: policy: snapshot quota reached ..." on a store with
// room to spare. It still exits 7 (the policy quota's help says so) but
// the message names the quota only.
func TestTrial10QuotaMessage(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "a", Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(l.quotaPath()), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.quotaPath(), []byte(`{"manual": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateSnapshotWith(ctx, CreateSnapshotRequest{Name: "s1", Disks: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	_, err := l.CreateSnapshotWith(ctx, CreateSnapshotRequest{Name: "s2", Disks: []string{"a"}})
	if exitcode.Of(err) != exitcode.NoSpace || !errors.Is(err, policy.ErrQuota) ||
		strings.Contains(err.Error(), "no space") || !strings.HasPrefix(err.Error(), "snapshot quota reached: disk \"a\" has 1 manual snapshots, its quota is 1") {
		t.Fatalf("over the manual quota: %v (exit %d)", err, exitcode.Of(err))
	}
}
