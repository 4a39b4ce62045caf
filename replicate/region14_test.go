package replicate_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// TestRegion14IndexHomeAwayUnavailable: the index of a pack s2 needs is
// deleted (or corrupt) on every usable home while its last home is away:
// a good copy may be there, so every reader says unavailable (exit 11,
// naming the away store), never lost/corrupt (exit 6/12), and repair
// deletes nothing. With the store back, s2 restores and repair leaves the
// region clean.
func TestRegion14IndexHomeAwayUnavailable(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		name := "deleted"
		if corrupt {
			name = "corrupt"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			a, b, dirs, want := v4Host(t)
			pack, _, err := a.mgr.PackOfBlock(ctx, "r1", "s2", "vol1", 10)
			if err != nil {
				t.Fatal(err)
			}
			homes := replicate.IndexHomes(testK, testM, pack)
			away := homes[len(homes)-1]
			for _, i := range homes[:len(homes)-1] {
				p := filepath.Join(dirs[i], "index", pack)
				if corrupt {
					raw, err := os.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					raw[len(raw)/2] ^= 0x40
					err = os.WriteFile(p, raw, 0o644)
				} else {
					err = os.Remove(p)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			b.faults[away].SetDown(true)
			packs0 := objectsOn(t, dirs, "packs")
			unavail := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, replicate.ErrUnavailable) || errors.Is(err, replicate.ErrCorrupt) {
					t.Fatalf("%s with index %s bad on its usable homes and store %d (a home) away: %v (want unavailable)", what, pack, away, err)
				}
			}
			_, err = b.mgr.Restore(ctx, "r1", "s2", "vol1", "v", nil)
			unavail("restore", err)
			if !strings.Contains(err.Error(), fmt.Sprintf("store %d (", away)) {
				t.Fatalf("restore's error does not name store %d, the home away: %v", away, err)
			}
			d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s2", "vol1")
			if err == nil {
				buf := make([]byte, d.Size())
				_, err = d.ReadAt(buf, 0)
				d.Close()
			}
			unavail("lazy read", err)
			rep, err := b.mgr.Check(ctx, "r1", false, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Deleted: unavailable (a good copy may be away); corrupt:
			// degraded as well (repair rebuilds the index from the pack
			// over the corrupt copies). Never lost.
			if (rep.Verdict != "unavailable" && !(corrupt && rep.Verdict == "degraded")) || len(rep.Lost) > 0 {
				t.Fatalf("check with index %s bad on its usable homes and store %d away: verdict %q lost %v (want unavailable)", pack, away, rep.Verdict, rep.Lost)
			}
			_, err = b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 10, AllHosts: true})
			unavail("prune", err)
			_, err = b.mgr.Repair(ctx, "r1", nil)
			if err != nil && !errors.Is(err, replicate.ErrUnavailable) {
				t.Fatalf("repair with store %d away: %v", away, err)
			}
			if p := objectsOn(t, dirs, "packs"); !mapsEqual(p, packs0) {
				t.Fatalf("with index %s bad on its usable homes and store %d away, shards were deleted", pack, away)
			}
			b.faults[away].SetDown(false)
			if _, err := b.mgr.Repair(ctx, "r1", nil); err != nil {
				t.Fatal(err)
			}
			if err := restoreEq(t, b.host, "", "s2", "vol1", want); err != nil {
				t.Fatal(err)
			}
			mustClean(t, b.host)
		})
	}
}

// treeOf is every file under the store directories with its content.
func treeOf(t *testing.T, dirs []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			out[p] = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestRegion14PruneDryRun: prune --dry-run says what prune then does
// (snapshots, rewrites, packs, bytes per store) and changes nothing on
// any store; the real prune's stats are the same.
func TestRegion14PruneDryRun(t *testing.T) {
	ctx := context.Background()
	a, dirs, _, _ := deltaHost(t)
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	// A snapshot of its own whose packs nothing else needs: its chunks
	// are new (s3), then dropped by keeping the newest 1 per disk set.
	writeBlocks(t, a, "vol1", 0x77, span(100, 200))
	snapshot(t, a, "s3", "vol1")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 0x78, span(100, 200))
	snapshot(t, a, "s4", "vol1")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	before := treeOf(t, dirs)
	o := replicate.PruneOptions{KeepLast: 1}
	o.DryRun = true
	dry, err := a.mgr.Prune(ctx, "r1", o)
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || len(dry.Deleted) == 0 || dry.PacksDeleted == 0 || dry.BytesFreed == 0 || len(dry.BytesPerStore) != testK+testM {
		t.Fatalf("dry run: %+v", dry)
	}
	t.Logf("dry run: %+v", dry)
	after := treeOf(t, dirs)
	if !mapsEqual2(before, after) {
		t.Fatalf("prune --dry-run changed the stores")
	}
	real, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1})
	if err != nil {
		t.Fatal(err)
	}
	real.DryRun = true
	if fmt.Sprintf("%+v", real) != fmt.Sprintf("%+v", dry) {
		t.Fatalf("dry run said %+v, prune did %+v", dry, real)
	}
	mustClean(t, a)
}

func mapsEqual2(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRegion14PruneBlockedByOwnRemoteDisk: this host's own region disk
// (a lazy disk, a .files view, a read under regions/) holds the shared
// lock: prune's error names the snapshot disk it reads and how to let it
// go, and does not send the engineer to region unlock (which keeps a live
// lock). On main it said "run `snapfs region unlock r1` on this host".
func TestRegion14PruneBlockedByOwnRemoteDisk(t *testing.T) {
	ctx := context.Background()
	a, _, _, _ := v4Host(t)
	d, err := a.mgr.OpenRemoteDisk(ctx, "r1", "s2", "vol1")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1})
	if !errors.Is(err, replicate.ErrLocked) {
		t.Fatalf("prune with this host's region disk open: %v (want locked)", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "s2/vol1") || !strings.Contains(msg, "restore --lazy") || strings.Contains(msg, "run `snapfs region unlock") {
		t.Fatalf("prune blocked by this host's region disk: %s", msg)
	}
}

// TestRegion14RestoreOtherHostNamed: a snapshot name the region holds
// only under another host, asked for under a host that has none (here
// this host's own name): the error says whose it is and to choose it
// with --host, for restore and a lazy open alike. On main: "snapshot "s1"
// of host "b" in region "r1"" and nothing more.
func TestRegion14RestoreOtherHostNamed(t *testing.T) {
	ctx := context.Background()
	a, b, _, _ := v4Host(t)
	want := "--host " + a.mgr.Host().Name
	_, err := b.mgr.RestoreFrom(ctx, "r1", "b", "s1", "vol1", "x", nil)
	if !errors.Is(err, replicate.ErrNotFound) || !strings.Contains(err.Error(), want) {
		t.Fatalf("restore of another host's snapshot under this host's name: %v", err)
	}
	_, err = b.mgr.OpenRemoteDiskOf(ctx, "r1", "b", "s1", "vol1")
	if !errors.Is(err, replicate.ErrNotFound) || !strings.Contains(err.Error(), want) {
		t.Fatalf("lazy open of another host's snapshot under this host's name: %v", err)
	}
}
