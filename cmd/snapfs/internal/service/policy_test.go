package service

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/rowstore"
	"github.com/snapfs/snapfs/rowstore/policy"
)

func newLocal(t *testing.T) *Local {
	t.Helper()
	dir := t.TempDir()
	if err := rowstore.Create(dir, rowstore.Options{}); err != nil {
		t.Fatal(err)
	}
	st, err := rowstore.Open(dir, rowstore.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLocal(st, dir)
	t.Cleanup(func() { l.Close() })
	return l
}

// fileRegion is the request adding a 2+1 region "dr" on three new file://
// stores under dir, with a new key file there.
func fileRegion(t *testing.T, dir string) AddRegionRequest {
	t.Helper()
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	req := AddRegionRequest{Name: "dr", K: 2, M: 1, KeyFile: key}
	for _, n := range []string{"a", "b", "c"} {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil { // a region never creates it on /
			t.Fatal(err)
		}
		req.Stores = append(req.Stores, "file://"+filepath.Join(dir, n))
	}
	return req
}

func snapNames(t *testing.T, l *Local, kind string) []string {
	t.Helper()
	sis, err := l.store.ListSnapshots()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range sis {
		if kind == "" || s.Kind == kind {
			out = append(out, s.Name)
		}
	}
	return out
}

// The policy commands behave the same in-process and through the daemon.
func TestPoliciesSameOnBothPaths(t *testing.T) {
	both(t, func(t *testing.T, s Service) {
		ctx := context.Background()
		if _, err := s.CreateDisk(ctx, CreateDiskRequest{Name: "d", Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
		p := Policy{Name: "daily", At: []string{"03:00"}, Retain: policy.Retention{Days: 7}}
		info, err := s.CreatePolicy(ctx, p)
		if err != nil || info.Name != "daily" || len(info.Status) != 0 {
			t.Fatalf("create: %+v %v", info, err)
		}
		if _, err := s.CreatePolicy(ctx, p); exitcode.Of(err) != exitcode.Exists {
			t.Fatalf("create twice: %v", err)
		}
		if _, err := s.CreatePolicy(ctx, Policy{Name: "bad", At: []string{"25:00"}, Retain: policy.Retention{Count: 1}}); exitcode.Of(err) != exitcode.Usage {
			t.Fatalf("bad policy: %v (exit %d)", err, exitcode.Of(err))
		}
		if _, err := s.ApplyPolicy(ctx, "daily", []string{"nope"}); exitcode.Of(err) != exitcode.NotFound {
			t.Fatalf("apply to a missing disk: %v", err)
		}
		info, err = s.ApplyPolicy(ctx, "daily", []string{"d"})
		if err != nil || len(info.Status) != 1 || info.Status[0].Next.IsZero() {
			t.Fatalf("apply: %+v %v", info, err)
		}
		ps, err := s.ListPolicies(ctx)
		if err != nil || len(ps) != 1 || ps[0].Disks[0] != "d" {
			t.Fatalf("list: %+v %v", ps, err)
		}
		if info, err = s.CancelPolicy(ctx, "daily", []string{"d"}); err != nil || len(info.Disks) != 0 {
			t.Fatalf("cancel: %+v %v", info, err)
		}
		if err := s.DeletePolicy(ctx, "daily"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetPolicy(ctx, "daily"); exitcode.Of(err) != exitcode.NotFound {
			t.Fatalf("get deleted: %v", err)
		}
		sn, err := s.CreateSnapshotWith(ctx, CreateSnapshotRequest{Name: "m", Disks: []string{"d"}, PreHook: "true", PostHook: "true"})
		if err != nil || sn.Consistency != policy.ConsistencyApplication || sn.Kind != "manual" {
			t.Fatalf("snapshot with hooks: %+v %v", sn, err)
		}
		if pl, err := s.DeleteSnapshotPlan(ctx, "m"); err != nil || pl.Snapshot != "m" {
			t.Fatalf("delete plan: %+v %v", pl, err)
		}
		if _, err := s.GetSnapshot(ctx, "m"); err != nil {
			t.Fatalf("dry run deleted: %v", err)
		}
	})
}

// RunPolicies with an injected clock: two policies on two disks, names
// from policy, disk and UTC time, automatic kind, retention of automatic
// snapshots only, one catch-up after downtime, quota eviction (own oldest
// first), failures recorded and retried.
func TestRunPoliciesClock(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	for _, d := range []string{"a", "b"} {
		if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: d, Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.CreateSnapshot(ctx, "manual-a", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreatePolicy(ctx, Policy{Name: "hourly", At: []string{"00:00"}, Every: time.Hour, Retain: policy.Retention{Count: 3}, Disks: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreatePolicy(ctx, Policy{Name: "daily", At: []string{"03:00"}, Retain: policy.Retention{Count: 2}, Disks: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Hour).Add(time.Hour + time.Minute)
	for i := range 6 {
		r := l.RunPolicies(ctx, now)
		if len(r.Failed) > 0 {
			t.Fatalf("run %d: %v", i, r.Failed)
		}
		want := policy.SnapshotName("hourly", "a", now.Truncate(time.Hour))
		if !slices.Contains(r.Taken, want) {
			t.Fatalf("run %d at %s took %v, want %s", i, now, r.Taken, want)
		}
		if r2 := l.RunPolicies(ctx, now.Add(time.Minute)); len(r2.Taken) != 0 {
			t.Fatalf("run %d again: took %v", i, r2.Taken)
		}
		now = now.Add(time.Hour)
	}
	auto := snapNames(t, l, policy.KindAutomatic)
	var hourlyA, hourlyB, daily int
	for _, n := range auto {
		switch {
		case strings.HasPrefix(n, "hourly-a-"):
			hourlyA++
		case strings.HasPrefix(n, "hourly-b-"):
			hourlyB++
		case strings.HasPrefix(n, "daily-a-"):
			daily++
		}
	}
	if hourlyA != 3 || hourlyB != 3 || daily > 1 {
		t.Fatalf("automatic snapshots %v", auto)
	}
	if m := snapNames(t, l, "manual"); !slices.Equal(m, []string{"manual-a"}) {
		t.Fatalf("manual snapshots %v", m)
	}
	// Down for 30 hours: one catch-up per policy and disk, not 30.
	now = now.Add(30 * time.Hour)
	r := l.RunPolicies(ctx, now)
	if len(r.Taken) != 3 { // hourly a, hourly b, daily a
		t.Fatalf("catch-up took %v", r.Taken)
	}
	// Quota: 4 automatic per disk; disk a holds 3 hourly + daily ones.
	q := filepath.Join(l.dir, "policies", "quota.json")
	if err := os.WriteFile(q, []byte(`{"automatic": 4}`), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapNames(t, l, policy.KindAutomatic)
	now = now.Add(time.Hour)
	r = l.RunPolicies(ctx, now)
	if len(r.Failed) > 0 || len(r.Evicted) == 0 {
		t.Fatalf("quota run: %+v", r)
	}
	for _, e := range r.Evicted {
		if !slices.Contains(before, e) {
			t.Fatalf("evicted %v: not automatic snapshots", r.Evicted)
		}
		// Each policy evicts its own oldest first.
		pol := e[:strings.IndexByte(e, '-')]
		for _, b := range before {
			if strings.HasPrefix(b, pol+"-a-") && b < e && !slices.Contains(r.Evicted, b) {
				t.Fatalf("evicted %s while %s of the same policy is older", e, b)
			}
		}
	}
	nA := 0
	for _, n := range snapNames(t, l, policy.KindAutomatic) {
		if strings.Contains(n, "-a-") {
			nA++
		}
	}
	if nA > 4 {
		t.Fatalf("disk a holds %d automatic snapshots, quota 4", nA)
	}
	if m := snapNames(t, l, "manual"); !slices.Equal(m, []string{"manual-a"}) {
		t.Fatalf("manual snapshots after eviction %v", m)
	}
	// A failing pre-hook: recorded, retried with backoff, cleared on success.
	if _, err := l.CreatePolicy(ctx, Policy{Name: "app", At: []string{"00:00"}, Every: time.Hour, Retain: policy.Retention{Count: 1},
		Consistency: "app", Hooks: policy.Hooks{PreHook: "exit 3"}, Disks: []string{"b"}}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	r = l.RunPolicies(ctx, now)
	if len(r.Failed) != 1 || !strings.Contains(r.Failed[0], "pre-hook") {
		t.Fatalf("failing pre-hook: %+v", r)
	}
	info, _ := l.GetPolicy(ctx, "app")
	if st := info.Status[0]; st.Failures != 1 || st.LastError == "" || !st.RetryAt.After(now) {
		t.Fatalf("status after a failure: %+v", st)
	}
	if r := l.RunPolicies(ctx, now.Add(10*time.Second)); len(r.Failed) != 0 {
		t.Fatalf("retried before its backoff: %+v", r)
	}
	if r := l.RunPolicies(ctx, now.Add(2*time.Minute)); len(r.Failed) != 1 {
		t.Fatalf("not retried after its backoff: %+v", r)
	}
	if err := l.DeletePolicy(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	// Manual quota: a clear error.
	if err := os.WriteFile(q, []byte(`{"manual": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := l.CreateSnapshotWith(ctx, CreateSnapshotRequest{Name: "manual-a2", Disks: []string{"a"}})
	if !errors.Is(err, policy.ErrQuota) {
		t.Fatalf("manual over quota: %v", err)
	}
}

// A hanging pre-hook is killed at its timeout, its whole process group,
// and the post-hook still runs.
func TestHookTimeout(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "a", Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	mark := filepath.Join(t.TempDir(), "post")
	start := time.Now()
	_, err := l.CreateSnapshotWith(ctx, CreateSnapshotRequest{Name: "s", Disks: []string{"a"}, PreHook: "sleep 60 & sleep 60", PostHook: "touch " + mark + "; test $SNAPFS_RESULT = failed",
		HookTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "timeout") || time.Since(start) > 10*time.Second {
		t.Fatalf("hanging pre-hook: %v after %s", err, time.Since(start))
	}
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("post-hook did not run: %v", err)
	}
	if _, err := l.store.GetSnapshot("s"); !errors.Is(err, rowstore.ErrNotFound) {
		t.Fatalf("snapshot taken after an aborting pre-hook: %v", err)
	}
	sn, err := l.CreateSnapshotWith(ctx, CreateSnapshotRequest{Name: "s", Disks: []string{"a"}, PreHook: "exit 1", OnPreHookFailure: "crash"})
	if err != nil || sn.Consistency != policy.ConsistencyCrash {
		t.Fatalf("fallback to crash-consistent: %+v %v", sn, err)
	}
}

// A policy copies each new snapshot to its region, where its own
// retention applies (remote retention with an injected clock); what it
// removed there is never shipped again by sync.
func TestRunPoliciesCopies(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	req := AddRegionRequest{Name: "dr", K: 1, M: 1, KeyFile: key, Create: true}
	for _, n := range []string{"a", "b"} {
		req.Stores = append(req.Stores, "file://"+filepath.Join(dir, n))
	}
	if _, err := l.AddRegion(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "v", Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreatePolicy(ctx, Policy{Name: "h", At: []string{"00:00"}, Every: time.Hour, Retain: policy.Retention{Count: 4},
		CopyTo: "dr", CopyRetain: policy.Retention{Count: 2}, Disks: []string{"v"}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Hour).Add(time.Hour + time.Minute)
	copied := 0
	for range 5 {
		r := l.RunPolicies(ctx, now)
		if len(r.Failed) > 0 || len(r.Copied) != 1 {
			t.Fatalf("run at %s: %+v", now, r)
		}
		copied++
		now = now.Add(time.Hour)
	}
	remote, err := l.RemoteSnapshots(ctx, "dr")
	if err != nil {
		t.Fatal(err)
	}
	if len(remote) != 2 {
		t.Fatalf("region holds %d copies, want 2 (copy retention)", len(remote))
	}
	if local := snapNames(t, l, policy.KindAutomatic); len(local) != 4 {
		t.Fatalf("local automatic snapshots %v, want 4", local)
	}
	st, err := l.Sync(ctx, SyncRequest{Region: "dr"}, nil)
	if err != nil || st.Snapshots != 0 {
		t.Fatalf("sync after the policy's remote retention re-shipped %v: %v", st.Copied, err)
	}
}
