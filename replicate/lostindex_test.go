package replicate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/replicate/store/s3test"
)

// A pack's index lost on every store that holds it (deleted by hand, a
// bucket lifecycle rule, a bad disk on its m+1 homes) or with no good copy
// left (every copy corrupt). The pack still holds its own sealed table of
// the same entries, so nothing is lost: readers go on without the index
// (only the snapshots that need it fail, with an error that says repair
// rebuilds it), sync sends its chunks again, prune keeps the pack, check
// reports it, and repair rebuilds it from the pack instead of deleting the
// pack as garbage of an interrupted sync.

// loseIndex makes the index of the pack of s2's block 10 (deltas over
// s1's chunks) unusable on every store: deleted, or every copy corrupt.
// It is found through host a, whose index cache keeps it: the tests use
// host b, which has read no index yet.
func loseIndex(t *testing.T, a *host, dirs []string, corrupt bool) string {
	t.Helper()
	pack, _, err := a.mgr.PackOfBlock(context.Background(), "r1", "s2", "vol1", 10)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		p := filepath.Join(d, "index", pack)
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if corrupt {
			data[len(data)/2] ^= 0x55
			err = os.WriteFile(p, data, 0o644)
		} else {
			err = os.Remove(p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n == 0 {
		t.Fatalf("index of pack %s on no store", pack)
	}
	return pack
}

func TestLostIndex(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		name := "deleted"
		if corrupt {
			name = "corrupt"
		}
		t.Run(name, func(t *testing.T) { testLostIndex(t, corrupt) })
	}
}

func testLostIndex(t *testing.T, corrupt bool) {
	ctx := context.Background()
	a, b, dirs, want2 := v4Host(t)
	want1 := readSnapshot(t, a, "s1", "vol1")
	pack := loseIndex(t, a, dirs, corrupt)
	packs0 := objectsOn(t, dirs, "packs")

	// Readers: s1 needs nothing of that pack and restores; s2 fails for
	// itself only, saying what to do.
	if err := restoreEq(t, b.host, "", "s1", "vol1", want1); err != nil {
		t.Fatalf("restore of s1, which needs nothing of pack %s: %v", pack, err)
	}
	err := restoreEq(t, b.host, "", "s2", "vol1", want2)
	if err == nil || !strings.Contains(err.Error(), pack) || !strings.Contains(err.Error(), "region repair") {
		t.Fatalf("restore of s2 without the index of pack %s: want an error naming it and region repair, got %v", pack, err)
	}

	// Lazily too: s1 opens and reads, s2 does not open.
	d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "vol1")
	if err != nil {
		t.Fatalf("lazy open of s1 with the index of pack %s lost: %v", pack, err)
	}
	got := make([]byte, d.Size())
	_, err = d.ReadAt(got, 0)
	d.Close()
	if err != nil || !bytes.Equal(got, want1) {
		t.Fatalf("lazy read of s1 with the index of pack %s lost differs (%v)", pack, err)
	}
	if d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s2", "vol1"); err == nil || !strings.Contains(err.Error(), "region repair") {
		if d != nil {
			d.Close()
		}
		t.Fatalf("lazy open of s2 without the index of pack %s: %v", pack, err)
	}

	// Check: the index is a problem, s2 degraded (repair can rebuild it),
	// nothing lost.
	for _, readData := range []bool{false, true} {
		rep, err := b.mgr.Check(ctx, "r1", readData, nil)
		if err != nil {
			t.Fatalf("check (read data %v): %v", readData, err)
		}
		if rep.Verdict != "degraded" || len(rep.Lost) > 0 || !slices.ContainsFunc(rep.Degraded, func(l string) bool { return strings.Contains(l, "s2") }) ||
			!slices.Contains(rep.RebuildableIndexes, pack) || slices.Contains(rep.Unindexed, pack) {
			t.Fatalf("check (read data %v) with the index of pack %s lost: %+v", readData, pack, rep)
		}
		found := false
		for _, p := range rep.Problems {
			if p.Object == "index/"+pack && p.Store < 0 && strings.Contains(p.Err, "s2") && strings.Contains(p.Err, "repair") {
				found = true
			}
		}
		if !found {
			t.Fatalf("check (read data %v): no problem names index/%s, the snapshot needing it and repair: %+v", readData, pack, rep.Problems)
		}
	}

	// Prune keeps the pack: it cannot know what the pack holds.
	if _, err := b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 10, AllHosts: true}); err != nil {
		t.Fatalf("prune keeping everything with the index of pack %s lost: %v", pack, err)
	}
	if p := objectsOn(t, dirs, "packs"); !mapsEqual(p, packs0) {
		t.Fatalf("prune with the index of pack %s lost deleted shards", pack)
	}

	// Repair rebuilds the index from the pack, on its homes, and deletes
	// no pack.
	rr, err := b.mgr.Repair(ctx, "r1", nil)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	if !slices.Contains(rr.IndexesRebuilt, pack) || len(rr.Failed) > 0 || rr.OrphansDeleted > 0 {
		t.Fatalf("repair with the index of pack %s lost: %+v", pack, rr)
	}
	if p := objectsOn(t, dirs, "packs"); !mapsEqual(p, packs0) {
		t.Fatalf("repair with the index of pack %s lost deleted shards", pack)
	}
	assertIndexesAtHomes(t, dirs)
	mustClean(t, b.host)
	if err := restoreEq(t, b.host, "", "s2", "vol1", want2); err != nil {
		t.Fatalf("restore of s2 after repair: %v", err)
	}
	if err := restoreEq(t, a, "", "s2", "vol1", want2); err != nil {
		t.Fatalf("restore of s2 on its own host after repair: %v", err)
	}
}

// TestLostIndexSyncSendsAgain: with a pack's index lost, a sync of a
// disk holding the same blocks never deduplicates against that pack (it
// cannot be read through the lost index): its chunks are sent again and
// the new snapshot restores before any repair.
func TestLostIndexSyncSendsAgain(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		name := "deleted"
		if corrupt {
			name = "corrupt"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			a, b, dirs, want2 := v4Host(t)
			pack := loseIndex(t, a, dirs, corrupt)
			if _, err := b.rs.CreateDisk("vol2", int64(len(want2)), bs); err != nil {
				t.Fatal(err)
			}
			writeAt(t, b.host, "vol2", 0, want2)
			snapshot(t, b.host, "s3", "vol2")
			st, err := b.mgr.Sync(ctx, "r1", nil, nil)
			if err != nil {
				t.Fatalf("sync with the index of pack %s lost: %v", pack, err)
			}
			if st.PacksWritten == 0 {
				t.Fatalf("sync with the index of pack %s lost wrote no pack: %+v", pack, st)
			}
			if err := restoreEq(t, b.host, "", "s3", "vol2", want2); err != nil {
				t.Fatalf("restore of s3 (synced after the index of pack %s was lost): %v", pack, err)
			}
		})
	}
}

// TestLostIndexUnreadablePackKept: a pack whose index is lost and whose
// own table cannot be read either (fewer than k shards) while a snapshot
// needs it is never deleted by repair (it is reported, not rebuilt).
func TestLostIndexUnreadablePackKept(t *testing.T) {
	ctx := context.Background()
	a, b, dirs, _ := v4Host(t)
	pack := loseIndex(t, a, dirs, false)
	for _, i := range []int{0, 1, 2} { // m+1 = 3 shards gone: k = 4 of 6 do not remain
		if err := os.Remove(filepath.Join(dirs[i], "packs", pack)); err != nil {
			t.Fatal(err)
		}
	}
	packs0 := objectsOn(t, dirs, "packs")
	rr, err := b.mgr.Repair(ctx, "r1", nil)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	if p := objectsOn(t, dirs, "packs"); !mapsEqual(p, packs0) || rr.OrphansDeleted > 0 {
		t.Fatalf("repair deleted the unreadable pack %s a snapshot needs: %+v", pack, rr)
	}
	if slices.Contains(rr.IndexesRebuilt, pack) {
		t.Fatalf("repair rebuilt the index of pack %s from fewer than k shards: %+v", pack, rr)
	}
}

// TestLostIndexPruneKeepsBases: with the index of a pack of s2's deltas
// lost, a prune that drops s1 keeps s1's chunks the deltas are based on:
// it reads the lost pack's own table to learn them (an index it cannot
// read names no base). After repair s2 restores byte for byte.
func TestLostIndexPruneKeepsBases(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		name := "deleted"
		if corrupt {
			name = "corrupt"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			a, b, dirs, want2 := v4Host(t)
			pack := loseIndex(t, a, dirs, corrupt)
			st, err := b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true})
			if err != nil || len(st.Deleted) != 1 {
				t.Fatalf("prune of s1 with the index of pack %s lost: %+v %v", pack, st, err)
			}
			if _, err := b.mgr.Repair(ctx, "r1", nil); err != nil {
				t.Fatalf("repair: %v", err)
			}
			if err := restoreEq(t, b.host, "", "s2", "vol1", want2); err != nil {
				t.Fatalf("restore of s2 after a prune of s1 with the index of pack %s lost, and repair: %v", pack, err)
			}
			mustClean(t, b.host)
		})
	}
}

// TestListErrorUnavailable: a store that is open but fails to list is
// unavailable (ErrUnavailable: exit 11), as one that cannot be opened,
// for check, repair, restore and prune; not a bare failure (exit 1).
func TestListErrorUnavailable(t *testing.T) {
	ctx := context.Background()
	_, b, _, _ := v4Host(t)
	b.faults[2].FailMatching(func(m store.Method, name string) error {
		if m == store.MethodList {
			return errors.New("injected: list refused")
		}
		return nil
	})
	_, err := b.mgr.Check(ctx, "r1", false, nil)
	if !errors.Is(err, replicate.ErrUnavailable) {
		t.Errorf("check with a store failing to list: %v (want unavailable)", err)
	}
	_, err = b.mgr.Repair(ctx, "r1", nil)
	if !errors.Is(err, replicate.ErrUnavailable) {
		t.Errorf("repair with a store failing to list: %v (want unavailable)", err)
	}
	_, err = b.mgr.Restore(ctx, "r1", "s2", "vol1", "x", nil)
	if !errors.Is(err, replicate.ErrUnavailable) {
		t.Errorf("restore with a store failing to list: %v (want unavailable)", err)
	}
	_, err = b.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, AllHosts: true})
	if !errors.Is(err, replicate.ErrUnavailable) {
		t.Errorf("prune with a store failing to list: %v (want unavailable)", err)
	}
}

// TestLostIndexS3: TestLostIndex's deleted case over S3 stores (versitygw
// on 127.0.0.1): the index of a pack of s2 deleted from every bucket
// (as a lifecycle rule would), another host restores s1, repair rebuilds
// the index and s2 restores byte for byte.
func TestLostIndexS3(t *testing.T) {
	endpoint, access, secret := s3test.Start(t)
	ctx := context.Background()
	open := func(ctx context.Context, i int, u string, o store.Options) (store.Store, error) {
		o.AccessKey, o.SecretKey = access, secret
		return store.Open(ctx, u, o)
	}
	var urls []string
	for i := range testK + testM {
		urls = append(urls, fmt.Sprintf("s3://bucket%d/lost/st%d", i%3, i))
	}
	cfg := replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: keyFile(t, 7),
		S3: replicate.S3Options{Endpoint: endpoint, PathStyle: true, Insecure: true}}
	a := newHost(t, replicate.Options{PackSize: 1 << 20, OpenStore: open})
	deltaScenario(t, a, func() {
		if _, err := a.mgr.AddRegion(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	want1, want2 := readSnapshot(t, a, "s1", "vol1"), readSnapshot(t, a, "s2", "vol1")
	pack, _, err := a.mgr.PackOfBlock(ctx, "r1", "s2", "vol1", 10)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range urls {
		s, err := open(ctx, i, u, store.Options{Endpoint: endpoint, PathStyle: true, Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Delete(ctx, "index/"+pack)
		s.Close()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
	}
	b := newHost(t, replicate.Options{OpenStore: open})
	if _, err := b.mgr.AddRegion(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := restoreEq(t, b, "", "s1", "vol1", want1); err != nil {
		t.Fatal(err)
	}
	if err := restoreEq(t, b, "", "s2", "vol1", want2); err == nil || !strings.Contains(err.Error(), pack) {
		t.Fatalf("restore of s2 with the index of pack %s deleted: %v", pack, err)
	}
	rr, err := b.mgr.Repair(ctx, "r1", nil)
	if err != nil || !slices.Contains(rr.IndexesRebuilt, pack) || rr.OrphansDeleted > 0 || len(rr.Failed) > 0 {
		t.Fatalf("repair with the index of pack %s deleted: %+v %v", pack, rr, err)
	}
	if err := restoreEq(t, b, "", "s2", "vol1", want2); err != nil {
		t.Fatal(err)
	}
	mustClean(t, b)
}
