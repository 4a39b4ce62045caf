package service

// Trial 8: an operator's adversarial trial of the local store. Each test is
// one finding: what a user saw, as a test that fails while the defect is
// there.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore/policy"
)

// TestTrial8PolicyNameCollision: policy "a" on disk "b-c" and policy "a-b"
// on disk "c" name their snapshots alike ("a-b-c-YYYYMMDD-HHMM"); so does a
// manual snapshot a user happened to call that. The second policy to run
// took the name's existence for its own snapshot "taken before", recorded
// it as its last snapshot, and its disk silently got no automatic snapshot
// at all. A policy now counts a snapshot as its own only if it is its
// automatic snapshot of that disk, and names its own apart otherwise. And a
// policy and disk whose names leave no room for the time in a snapshot
// name (64 characters) failed every run: apply now refuses them.
func TestTrial8PolicyNameCollision(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	for _, d := range []string{"b-c", "c", "x"} {
		if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: d, Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC().Truncate(time.Hour).Add(time.Hour + time.Minute)
	due := now.Truncate(time.Hour)
	// A manual snapshot of another disk with the name policy "p" will give
	// its snapshot of x.
	if _, err := l.CreateSnapshot(ctx, policy.SnapshotName("p", "x", due), []string{"c"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []Policy{
		{Name: "a", Disks: []string{"b-c"}},
		{Name: "a-b", Disks: []string{"c"}},
		{Name: "p", Disks: []string{"x"}},
	} {
		p.At, p.Every, p.Retain = []string{"00:00"}, time.Hour, policy.Retention{Count: 2}
		if _, err := l.CreatePolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if r := l.RunPolicies(ctx, now); len(r.Failed) > 0 {
			t.Fatalf("run %d: %v", i, r.Failed)
		}
		sis, err := l.store.ListSnapshots()
		if err != nil {
			t.Fatal(err)
		}
		for _, pd := range [][2]string{{"a", "b-c"}, {"a-b", "c"}, {"p", "x"}} {
			n := 0
			for _, si := range sis {
				if si.Policy == pd[0] && si.Kind == policy.KindAutomatic && hasDisk(si, pd[1]) {
					n++
				}
			}
			if want := min(i+1, 2); n != want {
				t.Fatalf("run %d: policy %s has %d automatic snapshots of disk %s, want %d", i, pd[0], n, pd[1], want)
			}
		}
		// Run again at the same time: nothing new (the runs are done).
		if r := l.RunPolicies(ctx, now.Add(time.Minute)); len(r.Taken) != 0 || len(r.Failed) != 0 {
			t.Fatalf("run %d again: took %v, failed %v", i, r.Taken, r.Failed)
		}
		now = now.Add(time.Hour)
	}

	// Names too long for the time: refused when applied, with the reason.
	long := strings.Repeat("d", 50)
	if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: long, Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	_, err := l.CreatePolicy(ctx, Policy{Name: "nightly", At: []string{"00:00"}, Retain: policy.Retention{Count: 1}, Disks: []string{long}})
	if err == nil || !strings.Contains(err.Error(), "64") {
		t.Fatalf("a policy whose snapshot names would be too long: %v", err)
	}
	if _, err := l.CreatePolicy(ctx, Policy{Name: "nightly", At: []string{"00:00"}, Retain: policy.Retention{Count: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ApplyPolicy(ctx, "nightly", []string{long}); err == nil || !strings.Contains(err.Error(), "64") {
		t.Fatalf("apply of a policy whose snapshot names would be too long: %v", err)
	}
}

// TestTrial8PolicyRemoteRetention: a policy's remote retention (copy-retain)
// picked its copies in a region by name prefix "<policy>-<disk>-": policy
// "a" on disk "b" also counted, and pruned, its copies of disk "b-c"
// ("a-b-c-<time>"), and policy "a-b"'s copies of disk "c". Only this host's
// automatic copies of that disk alone, named "<policy>-<disk>-<time>[-N]",
// are the policy's.
func TestTrial8PolicyRemoteRetention(t *testing.T) {
	mk := func(name, disk string) RemoteSnapshot {
		return RemoteSnapshot{Name: name, Mine: true, Kind: policy.KindAutomatic, Disks: []replicate.RemoteDiskInfo{{Name: disk}}}
	}
	for _, c := range []struct {
		pol, disk string
		r         RemoteSnapshot
		want      bool
	}{
		{"a", "b", mk("a-b-20261207-0100", "b"), true},
		{"a", "b", mk("a-b-20261207-0100-2", "b"), true},
		{"a", "b", mk("a-b-c-20261207-0100", "b-c"), false}, // the same policy's copy of disk b-c
		{"a", "b-c", mk("a-b-c-20261207-0100", "c"), false}, // policy a-b's copy of disk c
		{"a-b", "c", mk("a-b-c-20261207-0100", "c"), true},
		{"a", "b", mk("a-b-20261207-0100-x", "b"), false},
		{"a", "b", mk("a-b-20261207-0100-", "b"), false},
		{"a", "b", mk("a-b-20261207-0100-2-3", "b"), false},
		{"a", "b", mk("a-b-2026120", "b"), false},
		{"a", "b", RemoteSnapshot{Name: "a-b-20261207-0100", Mine: false, Kind: policy.KindAutomatic, Disks: []replicate.RemoteDiskInfo{{Name: "b"}}}, false},
		{"a", "b", RemoteSnapshot{Name: "a-b-20261207-0100", Mine: true, Kind: "manual", Disks: []replicate.RemoteDiskInfo{{Name: "b"}}}, false},
	} {
		if got := policyOwnsRemote(c.pol, c.disk, c.r); got != c.want {
			t.Errorf("policy %s disk %s, region snapshot %s of %v: owns %v, want %v", c.pol, c.disk, c.r.Name, c.r.Disks, got, c.want)
		}
	}
}
