package replicate_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
)

// Regression tests of issue 9 (a sync job safe to schedule).

// Issue 9 finding 1: sync and retention agree. With the region's
// retention set, sync never ships what prune would remove at once; without
// one, what prune removed is not shipped again (tombstones). Either way
// running sync and prune again ships nothing.
func TestSyncRetentionShipsOnce(t *testing.T) {
	ctx := context.Background()
	for _, withRetention := range []bool{true, false} {
		t.Run(fmt.Sprint("retention=", withRetention), func(t *testing.T) {
			h := newHost(t, replicate.Options{})
			_, urls := storeDirs(t, 3)
			cfg := replicate.RegionConfig{Name: "r1", K: 2, M: 1, Stores: urls, KeyFile: keyFile(t, 3)}
			if withRetention {
				cfg.Retention = replicate.Retention{KeepLast: 2}
			}
			if _, err := h.mgr.AddRegion(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			mkDisk(t, h, "v", 32)
			for i := range 5 {
				writeBlocks(t, h, "v", uint64(i+1), span(uint64(i), uint64(i+2)))
				snapshot(t, h, fmt.Sprintf("s%d", i), "v")
			}
			prune := replicate.PruneOptions{}
			if !withRetention {
				prune.KeepLast = 2
			}
			copied := 0
			for run := range 3 {
				st, err := h.mgr.Sync(ctx, "r1", nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				copied += st.Snapshots
				if run > 0 && st.Snapshots != 0 {
					t.Fatalf("run %d: sync copied %v again", run, st.Copied)
				}
				if withRetention && run == 0 && (st.Snapshots != 2 || st.Expired != 3) {
					t.Fatalf("first sync with keep-last 2: %+v", st)
				}
				ps, err := h.mgr.Prune(ctx, "r1", prune)
				if err != nil {
					t.Fatal(err)
				}
				if withRetention && len(ps.Deleted) != 0 {
					t.Fatalf("run %d: prune removed %v that sync had just copied", run, ps.Deleted)
				}
				if run > 0 && len(ps.Deleted) != 0 {
					t.Fatalf("run %d: prune removed %v again", run, ps.Deleted)
				}
			}
			// A new snapshot is copied once; the oldest kept one ages out.
			writeBlocks(t, h, "v", 9, span(20, 22))
			snapshot(t, h, "s5", "v")
			for run := range 2 {
				st, err := h.mgr.Sync(ctx, "r1", nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				if want := 1 - run; st.Snapshots != want {
					t.Fatalf("after s5, run %d: copied %v, want %d", run, st.Copied, want)
				}
				if _, err := h.mgr.Prune(ctx, "r1", prune); err != nil {
					t.Fatal(err)
				}
			}
			rs, err := h.mgr.ListRemote(ctx, "r1")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range rs {
				names = append(names, r.Name)
			}
			if fmt.Sprint(names) != "[s4 s5]" && fmt.Sprint(names) != "[s5 s4]" {
				t.Fatalf("region holds %v, want s4 s5", names)
			}
		})
	}
}

// A prune without keep options and no retention is refused; SetRetention
// validates.
func TestRetentionRequired(t *testing.T) {
	ctx := context.Background()
	h := newHost(t, replicate.Options{})
	_, urls := storeDirs(t, 2)
	if _, err := h.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: 1, M: 1, Stores: urls, KeyFile: keyFile(t, 3)}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.mgr.Prune(ctx, "r1", replicate.PruneOptions{}); !errors.Is(err, replicate.ErrInvalid) {
		t.Fatalf("prune without retention: %v", err)
	}
	if _, err := h.mgr.SetRetention("r1", replicate.Retention{KeepLast: -1}); !errors.Is(err, replicate.ErrInvalid) {
		t.Fatalf("negative retention: %v", err)
	}
	c, err := h.mgr.SetRetention("r1", replicate.Retention{KeepLast: 3})
	if err != nil || c.Retention.KeepLast != 3 {
		t.Fatalf("set retention: %+v %v", c, err)
	}
	if c, err := h.mgr.RegionInfo("r1"); err != nil || c.Retention.KeepLast != 3 {
		t.Fatalf("retention not saved: %+v %v", c, err)
	}
	if _, err := h.mgr.Prune(ctx, "r1", replicate.PruneOptions{}); err != nil {
		t.Fatalf("prune with the region's retention: %v", err)
	}
}

// Issue 9 finding 3: a file:// store must exist at region add (Create makes
// it); a store without the region's marker (an unmounted file system: an
// empty mount point) is never written to, by region add, sync or repair,
// and check reports it unreachable (exit 11), never lost.
func TestStoreMarker(t *testing.T) {
	ctx := context.Background()
	h := newHost(t, replicate.Options{})
	root := tmpDir(t)
	urls := []string{"file://" + filepath.Join(root, "a"), "file://" + filepath.Join(root, "b", "c")}
	key := keyFile(t, 3)
	_, err := h.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: 1, M: 1, Stores: urls, KeyFile: key})
	if !errors.Is(err, store.ErrMissing) || !errors.Is(err, replicate.ErrNotFound) {
		t.Fatalf("region add on missing directories: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("region add without create made a directory")
	}
	if _, err := h.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: 1, M: 1, Stores: urls, KeyFile: key, Create: true}); err != nil {
		t.Fatalf("region add --create: %v", err)
	}
	for _, d := range []string{"a", "b/c"} {
		if _, err := os.Stat(filepath.Join(root, d, "config")); err != nil {
			t.Fatalf("no marker in store %s: %v", d, err)
		}
	}
	mkDisk(t, h, "v", 16)
	writeBlocks(t, h, "v", 1, span(0, 4))
	snapshot(t, h, "s1", "v")
	if _, err := h.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	// Store b is "unmounted": its mount point is an empty directory.
	b := filepath.Join(root, "b", "c")
	if err := os.Rename(b, b+".nas"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(b, 0o755); err != nil {
		t.Fatal(err)
	}
	snapshot(t, h, "s2", "v")
	_, err = h.mgr.Sync(ctx, "r1", nil, nil)
	if !errors.Is(err, replicate.ErrUnavailable) || !errors.Is(err, replicate.ErrNoMarker) {
		t.Fatalf("sync onto a store without marker: %v", err)
	}
	rep, err := h.mgr.Check(ctx, "r1", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Lost) != 0 || len(rep.Degraded) != 0 || len(rep.Unreachable) != 1 || rep.Verdict != "unavailable" {
		t.Fatalf("check with an unmounted store: lost %v degraded %v unreachable %v verdict %s", rep.Lost, rep.Degraded, rep.Unreachable, rep.Verdict)
	}
	if _, err := h.mgr.Repair(ctx, "r1", nil); err != nil {
		t.Logf("repair: %v", err)
	}
	if err := h.mgr.RemoveRegion("r1"); err != nil {
		t.Fatal(err)
	}
	// Attaching with the empty store refused too.
	_, err = h.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: 1, M: 1, Stores: urls, KeyFile: key})
	if !errors.Is(err, replicate.ErrNoMarker) {
		t.Fatalf("attach with a store without marker: %v", err)
	}
	if ents, err := os.ReadDir(b); err != nil || len(ents) != 0 {
		t.Fatalf("the empty mount point was written to: %v %v", ents, err)
	}
	// Mounted again: all is well.
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(b+".nas", b); err != nil {
		t.Fatal(err)
	}
	if _, err := h.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: 1, M: 1, Stores: urls, KeyFile: key}); err != nil {
		t.Fatal(err)
	}
	if st, err := h.mgr.Sync(ctx, "r1", nil, nil); err != nil || st.Snapshots != 1 {
		t.Fatalf("sync once mounted: %+v %v", st, err)
	}
}
