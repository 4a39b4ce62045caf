package replicate_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/rowstore"
)

// repair15Flip flips one byte of the payload of the record holding block
// content want (found in the store's segments by its first 64 bytes, 100
// bytes in: the header stays intact, so an index rebuild indexes the record
// as its block's version with no digest).
func repair15Flip(t *testing.T, dir string, want []byte) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; {
			j := bytes.Index(b[i:], want[:64])
			if j < 0 {
				break
			}
			b[i+j+100] ^= 0x5a
			found++
			i += j + 64
		}
		if found > 0 {
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if found != 1 {
		t.Fatalf("block content found %d times in the segments, want once", found)
	}
}

// repair15Rebuild closes the host, removes its index and rebuilds it from
// the log, and opens the host again.
func repair15Rebuild(t *testing.T, h *host, corrupt int) *host {
	t.Helper()
	closeHost(h)
	if err := os.RemoveAll(filepath.Join(h.dir, "index")); err != nil {
		t.Fatal(err)
	}
	rep, err := rowstore.Rebuild(h.dir, rowstore.Options{SyncInterval: -1, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CorruptBlocks != corrupt {
		t.Fatalf("rebuild indexed %d corrupt blocks, want %d: %+v", rep.CorruptBlocks, corrupt, rep)
	}
	return reopen(t, h.dir)
}

func block(img []byte, b int) []byte { return img[b*bs : (b+1)*bs] }

// TestBlockSourceRepair15UnknownDigest: a block record of a synced
// snapshot damaged, the index rebuilt from the log (the block is indexed
// with no digest and reads EIO), `repair --from-region` fetches the block
// as the region's copy of a snapshot that sees that very version holds it
// (s0, which sees it too, has no copy: any one snapshot suffices; of a
// snapshot of two disks, the disk that sees it), and writes it back with
// its digest: every reader reads what was written,
// check is clean, and a second rebuild from the log is whole.
func TestBlockSourceRepair15UnknownDigest(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a")
	a := hs[0].host
	mkDisk(t, a, "v", 32)
	mkDisk(t, a, "w", 32)
	writeBlocks(t, a, "v", 1, span(0, 20))
	writeBlocks(t, a, "w", 5, span(0, 8))
	snapshot(t, a, "s1", "v", "w")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	snapshot(t, a, "s0", "v", "w") // after the sync: not in the region, listed before s1
	writeBlocks(t, a, "v", 2, []uint64{12})
	s1 := readSnapshot(t, a, "s1", "v")
	w := readSnapshot(t, a, "s1", "w")
	head := readDisk(t, a, "v")
	repair15Flip(t, a.dir, block(s1, 3))  // seen by s0, s1 and the disk
	repair15Flip(t, a.dir, block(s1, 12)) // seen by s0 and s1 only
	repair15Flip(t, a.dir, block(w, 2))   // disk w of s0 and s1: block 2 of w, not of v
	a = repair15Rebuild(t, a, 3)

	if _, err := a.rs.OpenSnapshotDisk("s1", "v"); err != nil {
		t.Fatal(err)
	}
	r, _ := a.rs.OpenSnapshotDisk("s1", "v")
	if _, err := r.ReadAt(make([]byte, bs), 3*bs); err == nil {
		t.Fatal("the damaged block read without an error after the rebuild")
	}
	r.Close()
	chk, err := a.rs.Check(ctx, rowstore.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if chk.OK() {
		t.Fatal("check found no damage after the rebuild")
	}

	src, done, err := a.mgr.BlockSource(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := a.rs.Repair(ctx, src, nil)
	done()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repaired %d, cleaned %d segments, unrepaired %+v", rep.Repaired, rep.SegmentsCleaned, rep.Unrepaired)
	if rep.Repaired != 3 || len(rep.Unrepaired) != 0 {
		t.Fatalf("repaired %d, left %+v; want 3 and none", rep.Repaired, rep.Unrepaired)
	}
	verify := func(h *host) {
		t.Helper()
		for _, s := range []string{"s0", "s1"} {
			if got := readSnapshot(t, h, s, "v"); !bytes.Equal(got, s1) {
				t.Errorf("snapshot %s disk v differs from what was written", s)
			}
			if got := readSnapshot(t, h, s, "w"); !bytes.Equal(got, w) {
				t.Errorf("snapshot %s disk w differs from what was written", s)
			}
		}
		if got := readDisk(t, h, "v"); !bytes.Equal(got, head) {
			t.Error("disk v differs from what was written")
		}
		chk, err := h.rs.Check(ctx, rowstore.CheckOptions{ReadData: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range chk.Problems { // a zero digest left in the index would be one
			t.Errorf("check: %+v", p)
		}
	}
	verify(a)
	// The repaired records are in the log, whole: a rebuild finds them.
	a = repair15Rebuild(t, a, 0)
	verify(a)
}

// TestBlockSourceRepair15Unrepairable: a damaged version no snapshot in
// the region sees is reported unrepaired with the reason: one only the
// disk's head sees, and one seen only by a snapshot whose name the region
// holds a copy of, but of another snapshot (deleted, its name reused):
// never mended from it.
func TestBlockSourceRepair15Unrepairable(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a")
	a := hs[0].host
	mkDisk(t, a, "v", 32)
	writeBlocks(t, a, "v", 1, span(0, 8))
	snapshot(t, a, "s3", "v")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.rs.DeleteSnapshot("s3"); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "v", 2, []uint64{5})
	snapshot(t, a, "s3", "v") // the name reused: the region's s3 is the old one
	s3 := readSnapshot(t, a, "s3", "v")
	writeBlocks(t, a, "v", 3, []uint64{5, 6})
	head := readDisk(t, a, "v")
	writeBlocks(t, a, "v", 4, []uint64{9}) // a valid record after block 6's: not a torn tail
	repair15Flip(t, a.dir, block(s3, 5))   // seen only by the new s3
	repair15Flip(t, a.dir, block(head, 6)) // seen only by the disk
	a = repair15Rebuild(t, a, 2)

	src, done, err := a.mgr.BlockSource(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := a.rs.Repair(ctx, src, nil)
	done()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repaired != 0 {
		t.Errorf("repaired %d, want 0", rep.Repaired)
	}
	why := map[int64]string{}
	for _, p := range rep.Unrepaired {
		if p.Kind == "data" {
			why[p.Block] = p.Message
		}
	}
	for b, want := range map[int64]string{5: `snapshot "s3"`, 6: "no snapshot sees this version"} {
		if !strings.Contains(why[b], want) || !strings.Contains(why[b], "not repaired") {
			t.Errorf("block %d: %q does not say %q", b, why[b], want)
		}
	}
	if !strings.Contains(why[5], "no copy of it") {
		t.Errorf("block 5: %q does not say the region has no copy of this s3", why[5])
	}
	t.Logf("unrepaired: %+v", rep.Unrepaired)
	r, err := a.rs.OpenSnapshotDisk("s3", "v")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.ReadAt(make([]byte, bs), 5*bs); err == nil {
		t.Error("block 5 of s3 reads without an error: mended from another snapshot's copy")
	}
}

// repair15Mark runs write and returns a place in the payload of the last
// record it appended (to damage later, for records whose bytes cannot be
// searched for: an encrypted disk's).
func repair15Mark(t *testing.T, dir string, write func()) (string, int64) {
	t.Helper()
	sizes := func() map[string]int64 {
		out := map[string]int64{}
		segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
		for _, p := range segs {
			if fi, err := os.Stat(p); err == nil {
				out[p] = fi.Size()
			}
		}
		return out
	}
	before := sizes()
	write()
	grown := ""
	var at int64
	for p, n := range sizes() {
		if n > before[p] {
			if grown != "" {
				t.Fatalf("two segments grew: %s and %s", grown, p)
			}
			grown, at = p, n-200
		}
	}
	if grown == "" {
		t.Fatal("no segment grew")
	}
	return grown, at
}

func repair15FlipAt(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// TestBlockSourceRepair15Encrypted: the region holds an encrypted disk's
// blocks as plaintext (sealed with the region key); a damaged record of
// it, indexed with no digest by a rebuild, is mended from the region's
// copy of the snapshot, sealed again with the disk's key, once the disk
// is unlocked. While it is locked, repair leaves it, saying the key is
// locked, and changes nothing.
func TestBlockSourceRepair15Encrypted(t *testing.T) {
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a")
	a := hs[0].host
	kf := filepath.Join(t.TempDir(), "disk.key")
	if err := os.WriteFile(kf, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := rowstore.LoadKeyFile(kf, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.rs.CreateEncryptedDisk("sec", 32*bs, bs, key); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "sec", 1, span(0, 4))
	path, at := repair15Mark(t, a.dir, func() { writeBlocks(t, a, "sec", 2, []uint64{4}) })
	writeBlocks(t, a, "sec", 3, span(5, 8))
	snapshot(t, a, "s1", "sec")
	want := readSnapshot(t, a, "s1", "sec")
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	repair15FlipAt(t, path, at)
	a = repair15Rebuild(t, a, 1)

	repair := func() rowstore.RepairReport {
		t.Helper()
		src, done, err := a.mgr.BlockSource(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		defer done()
		rep, err := a.rs.Repair(ctx, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := repair() // the disk's key locked (the store was just opened)
	t.Logf("locked: repaired %d, unrepaired %+v", rep.Repaired, rep.Unrepaired)
	if rep.Repaired != 0 || len(rep.Unrepaired) == 0 {
		t.Fatalf("with the key locked: repaired %d, left %+v", rep.Repaired, rep.Unrepaired)
	}
	if err := a.rs.UnlockDisk("sec", key); err != nil {
		t.Fatal(err)
	}
	rep = repair()
	if rep.Repaired != 1 || len(rep.Unrepaired) != 0 {
		t.Fatalf("unlocked: repaired %d, left %+v; want 1 and none", rep.Repaired, rep.Unrepaired)
	}
	if got := readSnapshot(t, a, "s1", "sec"); !bytes.Equal(got, want) {
		t.Error("s1 differs from what was written after repair")
	}
	chk, err := a.rs.Check(ctx, rowstore.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range chk.Problems {
		t.Errorf("check after repair: %+v", p)
	}
	a = repair15Rebuild(t, a, 0)
	if err := a.rs.UnlockDisk("sec", key); err != nil {
		t.Fatal(err)
	}
	if got := readSnapshot(t, a, "s1", "sec"); !bytes.Equal(got, want) {
		t.Error("s1 differs from what was written after a second rebuild")
	}
	if chk, err = a.rs.Check(ctx, rowstore.CheckOptions{ReadData: true}); err != nil || !chk.OK() {
		t.Errorf("check after a second rebuild: %v %+v", err, chk.Problems)
	}
}

// TestBlockSourceRepair15CopiedStore: a store copied elsewhere (cp -a)
// takes a new host identity; its snapshots synced before the copy are in
// the region under the previous one, and are the same snapshots (same id
// and creation time): a block of one, damaged in the copy and rebuilt
// with no digest, is mended from that copy.
func TestBlockSourceRepair15CopiedStore(t *testing.T) {
	ctx := context.Background()
	a, _, _ := skewedPair(t, 0) // a1 of disk va synced to r1 by a
	want := readSnapshot(t, a.host, "a1", "va")
	closeHost(a.host)
	cp := a.dir + "-copy"
	if out, err := exec.Command("cp", "-a", a.dir, cp).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	t.Cleanup(func() { os.RemoveAll(cp) })
	c := reopen(t, cp)
	if len(c.mgr.Host().Previous) != 1 {
		t.Fatalf("the copy's identity: %+v", c.mgr.Host())
	}
	writeBlocks(t, c, "va", 2, []uint64{9}) // a valid record after the damaged one
	repair15Flip(t, cp, block(want, 3))
	c = repair15Rebuild(t, c, 1)
	src, done, err := c.mgr.BlockSource(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := c.rs.Repair(ctx, src, nil)
	done()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repaired != 1 || len(rep.Unrepaired) != 0 {
		t.Fatalf("repaired %d, left %+v; want 1 and none", rep.Repaired, rep.Unrepaired)
	}
	if got := readSnapshot(t, c, "a1", "va"); !bytes.Equal(got, want) {
		t.Error("a1 differs from what was written after repair")
	}
}
