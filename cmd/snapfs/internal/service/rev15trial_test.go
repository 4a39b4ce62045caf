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

// TestRev15trialLostCopyNotMarkedPruned: a copy of ours whose manifest
// became unreadable on every store (the region lost it: listed by its
// name id, lost) is not recorded as pruned: status's lag would leave it
// out and snapshot info say pruned, while no prune removed it and the
// next sync ships it again (a tombstone is what proves a prune).
func TestRev15trialLostCopyNotMarkedPruned(t *testing.T) {
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
	if _, err := l.CreateSnapshotWith(ctx, CreateSnapshotRequest{Name: "s1", Disks: []string{"v"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Sync(ctx, SyncRequest{Region: "dr"}, nil); err != nil {
		t.Fatal(err)
	}
	stateOf := func() replicate.State {
		t.Helper()
		sn, err := l.GetSnapshot(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range sn.Copies {
			if c.Region == "dr" {
				return c.State
			}
		}
		return ""
	}
	if st := stateOf(); st != replicate.StateAvailable {
		t.Fatalf("s1 in dr after sync: %q", st)
	}
	// Every copy of the manifest damaged.
	damaged := 0
	for _, n := range []string{"a", "b"} {
		files, _ := filepath.Glob(filepath.Join(dir, n, "snapshots", "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil || len(b) == 0 {
				continue
			}
			for i := len(b) / 2; i < len(b); i++ {
				b[i] ^= 0xff
			}
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
			damaged++
		}
	}
	if damaged != 2 {
		t.Fatalf("damaged %d manifest copies, want 2", damaged)
	}
	remote, err := l.RemoteSnapshots(ctx, "dr")
	if err != nil {
		t.Fatal(err)
	}
	if len(remote) != 1 || remote[0].State != replicate.StateLost {
		t.Fatalf("listing: %+v, want one lost", remote)
	}
	if st := stateOf(); st == replicate.StatePruned {
		t.Fatalf("s1 recorded %q in dr: nothing pruned it, the region lost it", st)
	}
	lag := Lag("dr", SnapshotStates(mustSnaps(t, l)), time.Now())
	if lag.Snapshots != 1 || lag.Oldest != "s1" {
		t.Fatalf("lag %+v: s1 is pending (the next sync ships it again)", lag)
	}
	// The next sync ships it again, and the record says so.
	st, err := l.Sync(ctx, SyncRequest{Region: "dr"}, nil)
	if err != nil || st.Snapshots != 1 {
		t.Fatalf("sync after the loss: %+v %v", st, err)
	}
	if st := stateOf(); st != replicate.StateAvailable {
		t.Fatalf("s1 in dr after the sync: %q", st)
	}
}

func mustSnaps(t *testing.T, l *Local) []Snapshot {
	t.Helper()
	s, err := l.ListSnapshots(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRev15trialSyncTurnCancelled: a sync waiting for its turn behind
// another sync of this process to the region returns when its caller
// gives up (the command interrupted, the daemon stopping), having written
// nothing, and the turn is not leaked: once the first sync ends, the
// next one runs and ships what is left.
func TestRev15trialSyncTurnCancelled(t *testing.T) {
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
	for _, d := range []string{"v", "w"} {
		if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: d, Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.CreateSnapshotWith(ctx, CreateSnapshotRequest{Name: "sv", Disks: []string{"v"}}); err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	var once bool
	first := make(chan error, 1)
	go func() {
		_, err := l.Sync(ctx, SyncRequest{Region: "dr", Disks: []string{"v"}}, func(e replicate.Event) {
			if e.Type == replicate.EventSnapshot && !once {
				once = true
				close(started)
				<-release
			}
		})
		first <- err
	}()
	<-started
	if _, err := l.CreateSnapshotWith(ctx, CreateSnapshotRequest{Name: "sw", Disks: []string{"w"}}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	st, err := l.Sync(cctx, SyncRequest{Region: "dr"}, nil)
	cancel()
	if err == nil || cctx.Err() == nil || st.Snapshots != 0 {
		t.Fatalf("a sync waiting for its turn, cancelled: %+v %v", st, err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		st, err = l.Sync(ctx, SyncRequest{Region: "dr"}, nil)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the sync after the first ended never got its turn")
	}
	if err != nil || len(st.Copied) != 1 || st.Copied[0] != "sw" {
		t.Fatalf("the next sync: copied %v, %v; want sw", st.Copied, err)
	}
}
