package replicate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
)

// TestRev15trialNewStoreNotForeign: repair --new-store writes the region
// into a store only when it is empty: a store that holds no region marker
// but holds objects (a typo in the URL naming another application's
// bucket or directory, a file system mounted at the wrong place) is
// refused, nothing written there, and the region is unchanged. It was
// adopted: the marker written, then every pack shard, index and manifest
// put beside the foreign data.
func TestRev15trialNewStoreNotForeign(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a")
	a := hs[0]
	mkDisk(t, a.host, "v", 32)
	writeBlocks(t, a.host, "v", 1, span(0, 20))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	// Store 2 lost; in its place a directory of someone else's files.
	if err := os.RemoveAll(dirs[2]); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dirs[2], "photos"), 0o700); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dirs[2], "photos", "2026.jpg")
	if err := os.WriteFile(foreign, []byte("not the region's"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := a.mgr.RepairWith(ctx, "r1", replicate.RepairOptions{NewStores: []int{2}}, nil)
	if !errors.Is(err, replicate.ErrInvalid) {
		t.Fatalf("repair --new-store onto a store holding foreign objects: %v, want refused (invalid)", err)
	}
	t.Logf("refused: %v", err)
	var names []string
	_ = filepath.Walk(dirs[2], func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	if len(names) != 1 || names[0] != foreign {
		t.Fatalf("store 2 after the refused repair holds %v, want only the foreign file", names)
	}
	// Emptied, it is taken (a new file system's root: lost+found, empty).
	if err := os.RemoveAll(dirs[2]); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dirs[2], "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	rep, err := a.mgr.RepairWith(ctx, "r1", replicate.RepairOptions{NewStores: []int{2}}, nil)
	if err != nil || len(rep.Failed) > 0 {
		t.Fatalf("repair --new-store onto an empty store: %+v %v", rep.Failed, err)
	}
	chk, err := a.mgr.Check(ctx, "r1", true, nil)
	if err != nil || !chk.OK() {
		t.Fatalf("check after repair: %+v %v", chk, err)
	}
}

// TestRev15trialReleaseDeadHolderWithoutForce: region release keeps the
// hold of a holder whose lock on the region is live (its lazy disk open),
// and releases it without --force once that host is gone: its lock no
// longer refreshed goes stale after LockStale, and release is for exactly
// those holds (5d846a3 must not make a dead host's holds need --force).
func TestRev15trialReleaseDeadHolderWithoutForce(t *testing.T) {
	ctx := context.Background()
	hs, _, clk := clockFleet(t, 1, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 32)
	writeBlocks(t, a.host, "v", 1, span(0, 20))
	snapshot(t, a.host, "s1", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.mgr.PutHold(ctx, "r1", "a", "s1", "v", 7, "lz"); err != nil {
		t.Fatal(err)
	}
	rd, err := b.mgr.OpenRemoteDiskOf(ctx, "r1", "a", "s1", "v")
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	all := replicate.HoldMatch("s1", "", "")
	if _, err := a.mgr.ReleaseHoldsByHand(ctx, "r1", all, false); !errors.Is(err, replicate.ErrLocked) {
		t.Fatalf("release of a live holder's hold: %v, want refused (locked)", err)
	}
	// b is gone: its lock is never refreshed again, and time passes.
	for _, f := range b.faults {
		f.FailMatching(func(m store.Method, name string) error {
			if m == store.MethodPut || m == store.MethodDelete {
				return errors.New("host b is gone")
			}
			return nil
		})
	}
	clk.advance(replicate.DefaultLockStale + time.Hour)
	rel, err := a.mgr.ReleaseHoldsByHand(ctx, "r1", all, false)
	if err != nil || len(rel) != 1 {
		t.Fatalf("release of a dead holder's hold without --force: %v %v, want 1 released", rel, err)
	}
	if left, err := a.mgr.Holds(ctx, "r1"); err != nil || len(left) != 0 {
		t.Fatalf("holds after the release: %v %v", left, err)
	}
}
