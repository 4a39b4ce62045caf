package service

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/replicate"
)

// TestRegionsSameOnBothPaths runs the region operations in-process and
// through the control socket: same results, progress events on both paths
// (streamed over the socket), same exit codes for errors.
func TestRegionsSameOnBothPaths(t *testing.T) {
	both(t, func(t *testing.T, s Service) {
		ctx := context.Background()
		dir := t.TempDir()
		req := fileRegion(t, dir)
		added, err := s.AddRegion(ctx, req)
		if err != nil || added.Attached {
			t.Fatalf("AddRegion: %+v %v", added, err)
		}
		if _, err := s.AddRegion(ctx, req); exitcode.Of(err) != exitcode.Exists {
			t.Fatalf("AddRegion again: %v (exit %d)", err, exitcode.Of(err))
		}
		if _, err := s.CreateDisk(ctx, CreateDiskRequest{Name: "d", Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateSnapshot(ctx, "s1", []string{"d"}); err != nil {
			t.Fatal(err)
		}
		snap, err := s.GetSnapshot(ctx, "s1")
		if err != nil || len(snap.Copies) != 1 || snap.Copies[0].State != replicate.StateAbsent {
			t.Fatalf("copies before sync: %+v %v", snap.Copies, err)
		}
		var events atomic.Int64
		st, err := s.Sync(ctx, SyncRequest{Region: "dr"}, func(replicate.Event) { events.Add(1) })
		if err != nil || st.Snapshots != 1 || events.Load() < 2 {
			t.Fatalf("Sync: %+v %v, %d events", st, err, events.Load())
		}
		snap, err = s.GetSnapshot(ctx, "s1")
		if err != nil || len(snap.Copies) != 1 || snap.Copies[0].State != replicate.StateAvailable {
			t.Fatalf("copies after sync: %+v %v", snap.Copies, err)
		}
		if _, err := s.Restore(ctx, RestoreRequest{Region: "dr", Snapshot: "s1", Disk: "d", To: "d2"}, nil); err != nil {
			t.Fatal(err)
		}
		rep, err := s.CheckRegion(ctx, "dr", true, nil)
		if err != nil || !rep.OK() {
			t.Fatalf("CheckRegion: %+v %v", rep, err)
		}
		for _, tc := range []struct {
			err  error
			code int
		}{
			{func() error {
				_, err := s.Restore(ctx, RestoreRequest{Region: "dr", Snapshot: "nope", Disk: "d", To: "d3"}, nil)
				return err
			}(), exitcode.NotFound},
			{func() error {
				_, err := s.Restore(ctx, RestoreRequest{Region: "dr", Snapshot: "s1", Disk: "d", To: "d2"}, nil)
				return err
			}(), exitcode.Exists},
			{func() error { _, err := s.Sync(ctx, SyncRequest{Region: "nope"}, nil); return err }(), exitcode.NotFound},
			{func() error { _, err := s.PruneRegion(ctx, PruneRequest{Region: "dr"}); return err }(), exitcode.Usage},
		} {
			if got := exitcode.Of(tc.err); got != tc.code {
				t.Errorf("%v: exit %d, want %d", tc.err, got, tc.code)
			}
		}
		if err := s.RemoveRegion(ctx, "dr"); err != nil {
			t.Fatal(err)
		}
		if snap, _ := s.GetSnapshot(ctx, "s1"); len(snap.Copies) != 0 {
			t.Fatalf("copies after region remove: %+v", snap.Copies)
		}
	})
}
