package replicate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
)

// baseOnlyRegion makes a 4+2 region in which snapshot s2 of vol1 (8
// blocks) is all deltas, in one pack D, over s1's blocks, in one pack A
// that s2 needs only as bases; A's index homes are not D's (the pack ids
// are random: a layout where they are the same is made again). It
// returns A's homes and s2's bytes, and a second host b whose stores can
// be taken down.
func baseOnlyRegion(t *testing.T) (b *fleetHost, baseHomes []int, want []byte) {
	t.Helper()
	ctx := context.Background()
	for try := range 8 {
		a := newHost(t, replicate.Options{PackSize: 1 << 20})
		_, urls := storeDirs(t, testK+testM)
		key := keyFile(t, 11)
		if _, err := a.rs.CreateDisk("vol1", 8*bs, bs); err != nil {
			t.Fatal(err)
		}
		writeBlocks(t, a, "vol1", uint64(20+try), span(0, 8))
		snapshot(t, a, "s1", "vol1")
		addRegion(t, a, urls, key)
		if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
			t.Fatal(err)
		}
		rng := rand.NewChaCha8([32]byte{5, byte(try)})
		piece := make([]byte, 4096)
		for blk := int64(0); blk < 8; blk++ {
			rng.Read(piece)
			writeAt(t, a, "vol1", blk*bs+4096, piece)
		}
		snapshot(t, a, "s2", "vol1")
		if st, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil || st.Deltas != 8 {
			t.Fatalf("sync of s2: %+v %v (want 8 deltas)", st, err)
		}
		packA, _, err := a.mgr.PackOfBlock(ctx, "r1", "s1", "vol1", 0)
		if err != nil {
			t.Fatal(err)
		}
		var packD string
		for blk := range uint64(8) {
			p, base, err := a.mgr.PackOfBlock(ctx, "r1", "s2", "vol1", blk)
			if err != nil {
				t.Fatal(err)
			}
			if pa, _, _ := a.mgr.PackOfBlock(ctx, "r1", "s1", "vol1", blk); base != pa || pa != packA {
				t.Fatalf("block %d of s2: base pack %q, s1's block in %q, want both %s", blk, base, pa, packA)
			}
			if packD != "" && p != packD {
				t.Fatalf("s2's deltas in two packs: %s %s", packD, p)
			}
			packD = p
		}
		homesA := replicate.IndexHomes(testK, testM, packA)
		homesD := replicate.IndexHomes(testK, testM, packD)
		if !slices.ContainsFunc(homesD, func(i int) bool { return !slices.Contains(homesA, i) }) {
			t.Logf("try %d: packs %s and %s have the same index homes %v; again", try, packA, packD, homesA)
			continue
		}
		b = newFleetHost(t, "b", testK+testM, replicate.Options{})
		addRegion(t, b.host, urls, key)
		return b, homesA, readSnapshot(t, a, "s2", "vol1")
	}
	t.Fatal("8 regions in a row with the same homes for both packs")
	return nil, nil, nil
}

// TestRev12MetaBaseHomesAway: with the homes of the index of the pack
// that holds only the bases of s2's deltas away (fewer than k stores),
// while the deltas' own index is listed, a restore of s2 fails with
// ErrUnavailable (exit 11), not ErrCorrupt (exit 12: "its base chunk is
// in no pack"); a lazy disk opens and a read is unavailable, its buffer
// cleared; check calls nothing lost; repair deletes nothing; and once the
// stores are back the lazy disk, still open, reads s2 byte for byte.
// Before: restore and the lazy read said corrupt, and the lazy disk kept
// saying so with every store back (it reloaded the indexes only when a
// chunk of its own, not a base, was in no listed index).
func TestRev12MetaBaseHomesAway(t *testing.T) {
	defer replicate.SetStoreRetry(100 * time.Millisecond)()
	ctx := context.Background()
	b, homes, want := baseOnlyRegion(t)
	for _, i := range homes {
		b.faults[i].SetDown(true)
	}
	if _, err := b.mgr.Restore(ctx, "r1", "s2", "vol1", "v", nil); !errors.Is(err, replicate.ErrUnavailable) || errors.Is(err, replicate.ErrCorrupt) {
		t.Fatalf("restore with the bases' index homes %v away: %v (want unavailable, not corrupt)", homes, err)
	}
	rep, err := b.mgr.Check(ctx, "r1", false, nil)
	if err != nil || len(rep.Lost) > 0 || len(rep.Unindexed) > 0 || rep.Verdict != "unavailable" {
		t.Fatalf("check with the bases' index homes away: %+v %v", rep, err)
	}
	rrep, err := b.mgr.Repair(ctx, "r1", nil)
	if err != nil || rrep.OrphansDeleted != 0 || rrep.DeadPacksDeleted != 0 || rrep.IndexesDeleted != 0 {
		t.Fatalf("repair with the bases' index homes away: %+v %v", rrep, err)
	}
	d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s2", "vol1")
	if err != nil {
		t.Fatalf("lazy open with the bases' index homes %v away: %v", homes, err)
	}
	defer d.Close()
	buf := bytes.Repeat([]byte{1}, bs)
	if err := d.ReadBlock(ctx, 3, buf); !errors.Is(err, replicate.ErrUnavailable) || errors.Is(err, replicate.ErrCorrupt) {
		t.Fatalf("lazy read with the bases' index homes away: %v (want unavailable, not corrupt)", err)
	}
	if !bytes.Equal(buf, make([]byte, bs)) {
		t.Fatal("a failed read left bytes in the buffer")
	}
	storesBack(b, homes)
	if err := d.ReadBlock(ctx, 3, buf); err != nil || !bytes.Equal(buf, want[3*bs:4*bs]) {
		t.Fatalf("lazy read of block 3 with the stores back: %v", err)
	}
	got := make([]byte, d.Size())
	if _, err := d.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("lazy read with the stores back: %v", err)
	}
	if err := restoreEq(t, b.host, "", "s2", "vol1", want); err != nil {
		t.Fatal(err)
	}
}

// TestRev12MetaCorruptIndexCopyHomesAway: with m of the three homes of an
// index away (k stores usable: within what a region survives) and the
// copy on its last usable home corrupt, nothing can read that index, but
// its good copies may be on the stores away: a restore fails with
// ErrUnavailable (exit 11), not ErrCorrupt (exit 12), and with the stores
// back it restores byte for byte (the good copies are read) and repair
// puts the bad copy right.
func TestRev12MetaCorruptIndexCopyHomesAway(t *testing.T) {
	ctx := context.Background()
	a, b, dirs, want := v4Host(t)
	pack, _, err := a.mgr.PackOfBlock(ctx, "r1", "s2", "vol1", 10) // b has no index cached
	if err != nil {
		t.Fatal(err)
	}
	homes := replicate.IndexHomes(testK, testM, pack)
	p := filepath.Join(dirs[homes[0]], "index", pack)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x40
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, i := range homes[1:] {
		b.faults[i].SetDown(true)
	}
	_, err = b.mgr.Restore(ctx, "r1", "s2", "vol1", "v", nil)
	if !errors.Is(err, replicate.ErrUnavailable) {
		t.Fatalf("restore with index %s corrupt on store %d and its other homes %v away: %v (want unavailable)", pack, homes[0], homes[1:], err)
	}
	for _, i := range homes[1:] {
		b.faults[i].SetDown(false)
	}
	if err := restoreEq(t, b.host, "", "s2", "vol1", want); err != nil {
		t.Fatal(err)
	}
	if _, err := b.mgr.Repair(ctx, "r1", nil); err != nil {
		t.Fatal(err)
	}
	mustClean(t, b.host)
}

// TestRev12MetaFailedReadClears: a lazy read that fails before any chunk
// is fetched (here: the disk is closed; so too a region lock that could
// not be taken again after a cached copy failed its check) leaves no
// bytes in the caller's buffer. (Before, the buffer was left as it was.)
func TestRev12MetaFailedReadClears(t *testing.T) {
	ctx := context.Background()
	a, _, _, _ := v4Host(t)
	d, err := a.mgr.OpenRemoteDisk(ctx, "r1", "s2", "vol1")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, bs)
	if err := d.ReadBlock(ctx, 10, buf); err != nil || bytes.Equal(buf, make([]byte, bs)) {
		t.Fatalf("block 10: %v", err)
	}
	d.Close()
	if err := d.ReadBlock(ctx, 10, buf); !errors.Is(err, replicate.ErrUnavailable) {
		t.Fatalf("read of a closed disk: %v", err)
	}
	if !bytes.Equal(buf, make([]byte, bs)) {
		t.Fatal("a failed read left bytes in the buffer")
	}
}

// TestRev12MetaBlockSourceHomesAway: local repair's BlockSource over a
// region whose index homes of a pack are all away does not say "the
// region has no such block" (found false, no error: the local repair
// then reports the block as having no good copy anywhere) for a block
// whose index is out of sight, nor "corrupt" for a delta whose base's
// index is: both are unavailable, dst cleared; with the stores back both
// are fetched byte for byte. (Before: false with no error, and corrupt.)
func TestRev12MetaBlockSourceHomesAway(t *testing.T) {
	ctx := context.Background()
	b, homes, want := baseOnlyRegion(t)
	// s1's block 3 (in pack A: the base of s2's block 3), read while
	// every store is up.
	s1 := make([]byte, bs)
	d, err := b.mgr.OpenRemoteDisk(ctx, "r1", "s1", "vol1")
	if err != nil {
		t.Fatal(err)
	}
	err = d.ReadBlock(ctx, 3, s1)
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range homes {
		b.faults[i].SetDown(true)
	}
	fetch := func(what string, digest [32]byte) (bool, error) {
		src, done, err := b.mgr.BlockSource(ctx, "r1")
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer done()
		dst := bytes.Repeat([]byte{1}, bs)
		found, err := src.FetchBlock(ctx, digest, dst)
		if err != nil && !bytes.Equal(dst, make([]byte, bs)) {
			t.Fatalf("%s: a failed fetch left bytes in dst", what)
		}
		return found, err
	}
	if found, err := fetch("s1's block 3 (its index away)", sha256.Sum256(s1)); !errors.Is(err, replicate.ErrUnavailable) || errors.Is(err, replicate.ErrCorrupt) || found {
		t.Fatalf("block whose index is out of sight: found %v, %v (want unavailable)", found, err)
	}
	if found, err := fetch("s2's block 3 (its base's index away)", sha256.Sum256(want[3*bs:4*bs])); !errors.Is(err, replicate.ErrUnavailable) || errors.Is(err, replicate.ErrCorrupt) || found {
		t.Fatalf("delta whose base's index is out of sight: found %v, %v (want unavailable)", found, err)
	}
	for _, i := range homes {
		b.faults[i].SetDown(false)
	}
	for _, blk := range [][]byte{s1, want[3*bs : 4*bs]} {
		src, done, err := b.mgr.BlockSource(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]byte, bs)
		found, err := src.FetchBlock(ctx, sha256.Sum256(blk), dst)
		done()
		if err != nil || !found || !bytes.Equal(dst, blk) {
			t.Fatalf("with the stores back: found %v, %v", found, err)
		}
	}
}

// TestRev12MetaLazyReloadRetried: a lazy disk opened with the homes of an
// index away loads the indexes again when the stores are back; when that
// load fails (here: one listing of index/ fails), it is tried again later,
// and the disk reads byte for byte. (Before, the load was tried only in
// the call that found the stores back: after one failure the disk's
// blocks in that index stayed unavailable until it was closed.)
func TestRev12MetaLazyReloadRetried(t *testing.T) {
	ctx := context.Background()
	b, d, homes, want := lazyDiskHomesAway(t)
	buf := make([]byte, bs)
	if err := d.ReadBlock(ctx, 10, buf); !errors.Is(err, replicate.ErrUnavailable) {
		t.Fatalf("block 10 with its index's homes away: %v", err)
	}
	var failed atomic.Int32
	b.faults[homes[0]].FailMatching(func(m store.Method, name string) error {
		if m == store.MethodList && strings.HasPrefix(name, "index") && failed.Add(1) == 1 {
			return store.ErrInjected
		}
		return nil
	})
	defer b.faults[homes[0]].FailMatching(nil)
	storesBack(b, homes)
	if err := d.ReadBlock(ctx, 10, buf); err == nil || failed.Load() != 1 {
		t.Fatalf("block 10 read while the indexes' load failed: %v (%d listings failed)", err, failed.Load())
	}
	time.Sleep(300 * time.Millisecond)
	if err := d.ReadBlock(ctx, 10, buf); err != nil || !bytes.Equal(buf, want[10*bs:11*bs]) {
		t.Fatalf("block 10 after a failed load of the indexes, tried again: %v", err)
	}
	got := make([]byte, d.Size())
	if _, err := d.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("lazy read: %v", err)
	}
}
