package replicate_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/rowstore"
)

const (
	bs        = 64 << 10
	testK     = 4
	testM     = 2
	knownText = "SNAPFS-KNOWN-PLAINTEXT-7f3a9c-do-not-leak"
)

// host is one local snapfs store with a replicate.Manager.
type host struct {
	dir string
	rs  *rowstore.Store
	mgr *replicate.Manager
}

func tmpDir(t testing.TB) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "replicate-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

func newHost(t testing.TB, opts replicate.Options) *host {
	t.Helper()
	dir := filepath.Join(tmpDir(t), "store")
	if err := rowstore.Create(dir, rowstore.Options{}); err != nil {
		t.Fatal(err)
	}
	rs, err := rowstore.Open(dir, rowstore.Options{SyncInterval: -1, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if opts.PackSize == 0 {
		opts.PackSize = 4 << 20
	}
	mgr, err := replicate.New(dir, rs, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close(); rs.Close() })
	return &host{dir: dir, rs: rs, mgr: mgr}
}

func keyFile(t testing.TB, seed byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "region.key")
	if err := os.WriteFile(p, bytes.Repeat([]byte{seed}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func storeDirs(t testing.TB, n int) (dirs, urls []string) {
	t.Helper()
	root := tmpDir(t)
	for i := range n {
		d := filepath.Join(root, "store"+string(rune('0'+i)))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
		urls = append(urls, "file://"+d)
	}
	return dirs, urls
}

// writeBlocks writes random blocks (seeded) at the given block numbers.
func writeBlocks(t testing.TB, h *host, disk string, seed uint64, blocks []uint64) {
	t.Helper()
	d, err := h.rs.OpenDisk(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
	buf := make([]byte, bs)
	for _, b := range blocks {
		rng.Read(buf)
		if _, err := d.WriteAt(buf, int64(b)*bs); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for b := from; b < to; b++ {
		out = append(out, b)
	}
	return out
}

func writeAt(t testing.TB, h *host, disk string, off int64, p []byte) {
	t.Helper()
	d, err := h.rs.OpenDisk(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func snapshot(t testing.TB, h *host, name string, disks ...string) {
	t.Helper()
	if _, err := h.rs.CreateSnapshot(name, disks, "manual"); err != nil {
		t.Fatal(err)
	}
}

func readSnapshot(t testing.TB, h *host, snap, disk string) []byte {
	t.Helper()
	r, err := h.rs.OpenSnapshotDisk(snap, disk)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b := make([]byte, r.Size())
	if _, err := r.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func readDisk(t testing.TB, h *host, disk string) []byte {
	t.Helper()
	d, err := h.rs.OpenDisk(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b := make([]byte, d.Size())
	if _, err := d.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func diskNames(t testing.TB, h *host) []string {
	t.Helper()
	ds, err := h.rs.ListDisks()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}

func addRegion(t testing.TB, h *host, urls []string, key string) replicate.RegionInfo {
	t.Helper()
	info, err := h.mgr.AddRegion(context.Background(), replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// storeBytes sums every object's size in the store directories.
func storeBytes(t testing.TB, dirs []string) int64 {
	t.Helper()
	var n int64
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				if fi, err := e.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
	}
	return n
}

// sourceHost makes a host with disk vol1 (64 MiB) and three snapshots.
func sourceHost(t testing.TB) *host {
	a := newHost(t, replicate.Options{})
	if _, err := a.rs.CreateDisk("vol1", 64<<20, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 1, span(0, 200))
	writeAt(t, a, "vol1", 300*bs+17, []byte(strings.Repeat(knownText, 100)))
	snapshot(t, a, "s1", "vol1")
	writeBlocks(t, a, "vol1", 2, span(50, 80))
	snapshot(t, a, "s2", "vol1")
	writeBlocks(t, a, "vol1", 3, span(500, 540))
	d, _ := a.rs.OpenDisk("vol1")
	if err := d.PunchHole(10*bs, 5*bs); err != nil {
		t.Fatal(err)
	}
	d.Close()
	snapshot(t, a, "s3", "vol1")
	return a
}

func TestRegionEndToEnd(t *testing.T) {
	ctx := context.Background()
	a := sourceHost(t)
	dirs, urls := storeDirs(t, testK+testM)
	key := keyFile(t, 7)
	if info := addRegion(t, a, urls, key); info.Attached {
		t.Fatal("a fresh region reports attached")
	}
	var events atomic.Int64
	st, err := a.mgr.Sync(ctx, "r1", nil, replicate.ProgressFunc(func(replicate.Event) { events.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sync: %+v", st)
	// s1: 201 blocks (200 + the known-text block), s2: 30, s3: 40.
	if st.Snapshots != 3 || st.BlocksRead != 201+30+40 || events.Load() == 0 {
		t.Fatalf("stats %+v, %d events", st, events.Load())
	}
	again, err := a.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil || again.Snapshots != 0 || again.BlocksRead != 0 || again.Skipped != 3 {
		t.Fatalf("second sync: %+v %v", again, err)
	}
	remote, err := a.mgr.ListRemote(ctx, "r1")
	if err != nil || len(remote) != 3 || remote[0].Name != "s1" || remote[2].State != replicate.StateAvailable || !remote[2].Disks[0].Delta {
		t.Fatalf("remote: %+v %v", remote, err)
	}
	if rs, err := a.mgr.RemoteState(ctx, "r1", "s2"); err != nil || rs.State != replicate.StateAvailable {
		t.Fatalf("remote state: %+v %v", rs, err)
	}

	// No store object holds the known plaintext, or a snapshot name.
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return nil
			}
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte(knownText[:16])) || strings.Contains(p, "s1") && strings.Contains(filepath.Base(p), "s1") && len(filepath.Base(p)) < 4 {
				t.Errorf("%s leaks plaintext", p)
			}
			return nil
		})
	}

	// Another host attaches with the same key and restores every snapshot.
	b := newHost(t, replicate.Options{})
	if info := addRegion(t, b, urls, key); !info.Attached {
		t.Fatal("second host did not attach")
	}
	for _, s := range []string{"s1", "s2", "s3"} {
		want := readSnapshot(t, a, s, "vol1")
		rst, err := b.mgr.Restore(ctx, "r1", s, "vol1", "restored-"+s, nil)
		if err != nil {
			t.Fatalf("restore %s: %v", s, err)
		}
		if got := readDisk(t, b, "restored-"+s); !bytes.Equal(got, want) {
			t.Fatalf("restore %s: content differs", s)
		}
		t.Logf("restore %s: %+v", s, rst)
	}
	// Any two stores gone: still byte-identical.
	for _, pair := range [][2]int{{0, 1}, {2, 5}, {1, 4}} {
		c := newHost(t, replicate.Options{})
		addRegion(t, c, urls, key)
		saved := []string{dirs[pair[0]] + ".away", dirs[pair[1]] + ".away"}
		for j, i := range pair {
			if err := os.Rename(dirs[i], saved[j]); err != nil {
				t.Fatal(err)
			}
		}
		_, err := c.mgr.Restore(ctx, "r1", "s3", "vol1", "v", nil)
		if err != nil {
			t.Fatalf("restore without stores %v: %v", pair, err)
		}
		if !bytes.Equal(readDisk(t, c, "v"), readSnapshot(t, a, "s3", "vol1")) {
			t.Fatalf("restore without stores %v differs", pair)
		}
		for j, i := range pair {
			os.RemoveAll(dirs[i])
			if err := os.Rename(saved[j], dirs[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Three gone: a clear error and no disk left behind.
	for _, i := range []int{0, 3, 5} {
		if err := os.Rename(dirs[i], dirs[i]+".away"); err != nil {
			t.Fatal(err)
		}
	}
	before := diskNames(t, b)
	_, err = b.mgr.Restore(ctx, "r1", "s2", "vol1", "nope", nil)
	if !errors.Is(err, replicate.ErrTooFewShards) {
		t.Fatalf("restore with three stores gone: %v", err)
	}
	t.Logf("three stores gone: %v", err)
	if after := diskNames(t, b); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("disks %v after failed restore, had %v", after, before)
	}
	// Store 0 comes back; stores 3 and 5 are lost for good and rebuilt
	// by repair from the four others.
	if err := os.Rename(dirs[0]+".away", dirs[0]); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{3, 5} { // new, empty disks in their place
		if err := os.Mkdir(dirs[i], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Issue 9: a store without the region marker is written to only when
	// named a new store.
	if rep, err := b.mgr.Repair(ctx, "r1", nil); err != nil || len(rep.Failed) != 2 {
		t.Fatalf("repair onto empty stores not named new: %+v %v", rep.Failed, err)
	}
	if ents, _ := os.ReadDir(dirs[3]); len(ents) != 0 {
		t.Fatalf("repair wrote to an empty store not named new: %v", ents)
	}
	rep, err := b.mgr.RepairWith(ctx, "r1", replicate.RepairOptions{NewStores: []int{3, 5}}, nil)
	if err != nil || len(rep.Failed) > 0 {
		t.Fatalf("repair: %+v %v", rep.Failed, err)
	}
	chk, err := b.mgr.Check(ctx, "r1", true, nil)
	if err != nil || !chk.OK() {
		t.Fatalf("check after repair: %+v %v", chk, err)
	}
	if _, err := b.mgr.Restore(ctx, "r1", "s2", "vol1", "after-repair", nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readDisk(t, b, "after-repair"), readSnapshot(t, a, "s2", "vol1")) {
		t.Fatal("restore after repair differs")
	}
}

func TestCheckRepairCorruptShard(t *testing.T) {
	ctx := context.Background()
	a := sourceHost(t)
	dirs, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 9))
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(dirs[2], "packs", "*"))
	if len(packs) == 0 {
		t.Fatal("no packs")
	}
	b, _ := os.ReadFile(packs[0])
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(packs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	var idx []string // an index copy on store 4, or the first store holding one (its homes)
	for _, i := range []int{4, 0, 1, 2, 3, 5} {
		if idx, _ = filepath.Glob(filepath.Join(dirs[i], "index", "*")); len(idx) > 0 {
			break
		}
	}
	os.Remove(idx[0])
	rep, err := a.mgr.Check(ctx, "r1", false, nil)
	if err != nil || len(rep.Problems) != 1 || rep.Problems[0].Kind != replicate.ProblemMissing {
		t.Fatalf("check without data: %+v %v", rep, err)
	}
	rep, err = a.mgr.Check(ctx, "r1", true, nil)
	if err != nil || len(rep.Problems) != 2 || len(rep.Degraded) == 0 {
		t.Fatalf("check with data: %+v %v", rep, err)
	}
	remote, _ := a.mgr.ListRemote(ctx, "r1")
	degraded := 0
	for _, r := range remote {
		if r.State == replicate.StateDegraded {
			degraded++
		}
	}
	if degraded == 0 {
		t.Fatalf("no degraded snapshot listed: %+v", remote)
	}
	// Restore works on the damaged region, and after repair.
	if _, err := a.mgr.Restore(ctx, "r1", "s3", "vol1", "x1", nil); err != nil {
		t.Fatal(err)
	}
	fix, err := a.mgr.Repair(ctx, "r1", nil)
	if err != nil || len(fix.Repaired) != 2 || len(fix.Failed) != 0 {
		t.Fatalf("repair: %+v %v", fix, err)
	}
	if rep, err := a.mgr.Check(ctx, "r1", true, nil); err != nil || !rep.OK() {
		t.Fatalf("check after repair: %+v %v", rep, err)
	}
	if _, err := a.mgr.Restore(ctx, "r1", "s3", "vol1", "x2", nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readDisk(t, a, "x2"), readSnapshot(t, a, "s3", "vol1")) {
		t.Fatal("restore after repair differs")
	}
}

func TestAttachErrors(t *testing.T) {
	ctx := context.Background()
	a := newHost(t, replicate.Options{})
	_, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 1))
	b := newHost(t, replicate.Options{})
	_, err := b.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: keyFile(t, 2)})
	if !errors.Is(err, replicate.ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	_, err = b.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: 3, M: 3, Stores: urls, KeyFile: keyFile(t, 1)})
	if !errors.Is(err, replicate.ErrMismatch) {
		t.Fatalf("k/m mismatch: %v", err)
	}
	short := filepath.Join(t.TempDir(), "short.key")
	os.WriteFile(short, []byte("0123"), 0o600)
	_, err = b.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: short})
	if !errors.Is(err, format.ErrBadKeyFile) {
		t.Fatalf("short key: %v", err)
	}
	swapped := append([]string{urls[1], urls[0]}, urls[2:]...)
	_, err = b.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: swapped, KeyFile: keyFile(t, 1)})
	if !errors.Is(err, replicate.ErrMismatch) {
		t.Fatalf("swapped stores: %v", err)
	}
	if _, err := a.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: testK, M: testM, Stores: urls, KeyFile: keyFile(t, 1)}); !errors.Is(err, replicate.ErrExists) {
		t.Fatalf("add twice: %v", err)
	}
	regs, err := a.mgr.ListRegions()
	if err != nil || len(regs) != 1 || regs[0].K != testK {
		t.Fatalf("list: %+v %v", regs, err)
	}
	cfg, _ := os.ReadFile(filepath.Join(a.dir, "regions", "r1.json"))
	if bytes.Contains(cfg, bytes.Repeat([]byte{1}, 32)) {
		t.Fatal("config holds the key")
	}
	if err := a.mgr.RemoveRegion("r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.mgr.RegionInfo("r1"); !errors.Is(err, replicate.ErrNotFound) {
		t.Fatalf("after remove: %v", err)
	}
}

func TestSyncInterruptedResumes(t *testing.T) {
	ctx := context.Background()
	faults := store.NewFaults()
	a := newHost(t, replicate.Options{PackSize: 1 << 20, OpenStore: func(ctx context.Context, i int, url string, o store.Options) (store.Store, error) {
		s, err := store.Open(ctx, url, o)
		if err != nil || i != 3 {
			return s, err
		}
		return store.Wrap(s, store.WrapOptions{Faults: faults}), nil
	}})
	if _, err := a.rs.CreateDisk("vol1", 64<<20, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 5, span(0, 320)) // 20 MiB: about 20 packs
	snapshot(t, a, "s1", "vol1")
	dirs, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 3))
	faults.FailNth(store.MethodPut, 12, nil) // puts on store 3: marker, then a shard per pack and the index of those it is a home of
	st1, err := a.mgr.Sync(ctx, "r1", nil, nil)
	if err == nil {
		t.Fatal("sync with a failing store succeeded")
	}
	t.Logf("interrupted: %v; %+v", err, st1)
	if st1.PacksWritten == 0 {
		t.Fatal("no pack completed before the fault")
	}
	rs, _ := a.mgr.RemoteState(ctx, "r1", "s1")
	if rs.State != replicate.StateCopying {
		t.Fatalf("state after interruption: %v", rs.State)
	}
	mid := storeBytes(t, dirs)
	st2, err := a.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("resumed: %+v", st2)
	// 1 MiB packs of incompressible 64 KiB blocks hold 16 blocks each: the
	// complete packs of the first run are not read again.
	if st2.BlocksRead > 320-16*int64(st1.PacksWritten) {
		t.Fatalf("resume re-read too much: first %d, second %d", st1.BlocksRead, st2.BlocksRead)
	}
	full := storeBytes(t, dirs)
	// Shipped in the second run: at most what was missing plus a pack or two.
	perPack := mid / int64(st1.PacksWritten+1)
	if st2.TotalWritten() > full-mid+2*perPack {
		t.Fatalf("second run wrote %d, grew the region by %d", st2.TotalWritten(), full-mid)
	}
	b := newHost(t, replicate.Options{})
	addRegion(t, b, urls, keyFile(t, 3))
	if _, err := b.mgr.Restore(ctx, "r1", "s1", "vol1", "v", nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readDisk(t, b, "v"), readSnapshot(t, a, "s1", "vol1")) {
		t.Fatal("restore after resumed sync differs")
	}
}

func TestSyncCancelledResumes(t *testing.T) {
	a := newHost(t, replicate.Options{PackSize: 1 << 20})
	if _, err := a.rs.CreateDisk("vol1", 64<<20, bs); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 6, span(0, 160))
	snapshot(t, a, "s1", "vol1")
	_, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 3))
	ctx, cancel := context.WithCancel(context.Background())
	var packs atomic.Int64
	_, err := a.mgr.Sync(ctx, "r1", nil, replicate.ProgressFunc(func(e replicate.Event) {
		if e.Type == replicate.EventPack {
			if packs.Add(1) == 3 {
				cancel()
			}
		}
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sync: %v", err)
	}
	st, err := a.mgr.Sync(context.Background(), "r1", nil, nil)
	if err != nil || st.BlocksRead >= 160 || st.BlocksExamined != 160 {
		t.Fatalf("resume: %+v %v", st, err)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	a := sourceHost(t)
	dirs, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 4))
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	before := storeBytes(t, dirs)
	// Drop s2 locally and overwrite s1's data: only s3 stays remote.
	if _, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 0, KeepWithin: 0, AllHosts: true}); !errors.Is(err, replicate.ErrInvalid) {
		t.Fatalf("prune without policy: %v", err)
	}
	st, err := a.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: 1, KeepWithin: 0, AllHosts: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prune: %+v", st)
	if len(st.Deleted) != 2 || len(st.Rewritten) != 1 || st.Rewritten[0] != "s3" {
		t.Fatalf("prune: %+v", st)
	}
	remote, _ := a.mgr.ListRemote(ctx, "r1")
	if len(remote) != 1 || remote[0].Name != "s3" || remote[0].Disks[0].Delta {
		t.Fatalf("remote after prune: %+v", remote)
	}
	b := newHost(t, replicate.Options{})
	addRegion(t, b, urls, keyFile(t, 4))
	if _, err := b.mgr.Restore(ctx, "r1", "s3", "vol1", "v", nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readDisk(t, b, "v"), readSnapshot(t, a, "s3", "vol1")) {
		t.Fatal("restore after prune differs")
	}
	if _, err := b.mgr.Restore(ctx, "r1", "s1", "vol1", "w", nil); !errors.Is(err, replicate.ErrNotFound) {
		t.Fatalf("restore pruned snapshot: %v", err)
	}
	t.Logf("region bytes %d -> %d", before, storeBytes(t, dirs))
	// Deleting local snapshots never forces a full resend.
	if err := a.rs.DeleteSnapshot("s1"); err != nil {
		t.Fatal(err)
	}
	if err := a.rs.DeleteSnapshot("s2"); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, a, "vol1", 8, span(600, 605))
	snapshot(t, a, "s4", "vol1")
	st4, err := a.mgr.Sync(ctx, "r1", nil, nil)
	if err != nil || st4.BlocksRead != 5 || st4.Snapshots != 1 {
		t.Fatalf("sync after prune: %+v %v", st4, err)
	}
	_ = time.Second
}
