package service

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore/policy"
)

// TestRev15trialPolicyCopyBehindLongSync: a policy's copy due while
// another sync of this daemon to the same region runs (an hour-long
// 'snapfs sync --region dr', the hourly job) does not wait for that sync
// (syncTurn): the policy scheduler is one loop, so waiting there held
// every other policy's snapshots back for as long as the other sync ran.
// The copy stays pending, is not counted a failure, and the next run once
// the sync ended ships it.
func TestRev15trialPolicyCopyBehindLongSync(t *testing.T) {
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
	for _, d := range []string{"big", "v", "w"} {
		if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: d, Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.CreatePolicy(ctx, Policy{Name: "a-copy", At: []string{"00:00"}, Every: time.Hour, Retain: policy.Retention{Count: 4},
		CopyTo: "dr", Disks: []string{"v"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreatePolicy(ctx, Policy{Name: "b-local", At: []string{"00:00"}, Every: time.Hour, Retain: policy.Retention{Count: 4},
		Disks: []string{"w"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateSnapshotWith(ctx, CreateSnapshotRequest{Name: "manual", Disks: []string{"big"}}); err != nil {
		t.Fatal(err)
	}
	// The long sync: it holds its turn until release is closed.
	started, release := make(chan struct{}), make(chan struct{})
	var once bool
	syncDone := make(chan error, 1)
	go func() {
		_, err := l.Sync(ctx, SyncRequest{Region: "dr", Disks: []string{"big"}}, func(e replicate.Event) {
			if e.Type == replicate.EventSnapshot && !once {
				once = true
				close(started)
				<-release
			}
		})
		syncDone <- err
	}()
	<-started

	now := time.Now().UTC().Truncate(time.Hour).Add(time.Hour + time.Minute)
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	t0 := time.Now()
	run := l.RunPolicies(rctx, now)
	took := time.Since(t0)
	cancel()
	if took > 15*time.Second {
		t.Errorf("the policy run waited %s for the other sync", took.Round(time.Second))
	}
	if len(run.Failed) > 0 {
		t.Errorf("policy run failed while another sync ran: %v", run.Failed)
	}
	if len(run.Taken) != 2 {
		t.Errorf("policy run took %v, want a snapshot of v and of w", run.Taken)
	}
	if len(run.Copied) != 0 {
		t.Errorf("copied %v while the other sync held the region", run.Copied)
	}
	close(release)
	if err := <-syncDone; err != nil {
		t.Fatalf("the long sync: %v", err)
	}
	run = l.RunPolicies(ctx, now.Add(time.Minute))
	if len(run.Failed) > 0 || len(run.Copied) != 1 {
		t.Fatalf("the next run after the sync ended: %+v", run)
	}
	remote, err := l.RemoteSnapshots(ctx, "dr")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range remote {
		names = append(names, r.Name)
	}
	if !slices.Contains(names, "manual") || !slices.Contains(names, run.Copied[0]) {
		t.Fatalf("region holds %v, want manual and %s", names, run.Copied[0])
	}
}
