package rowstore

import (
	"bytes"
	"fmt"
	"math/rand"
	"sync"
	"testing"

	"github.com/snapfs/snapfs/index"
)

// mustAccount fails the test if the space accounting differs from a full
// count, or if what the API reports (GetDisk, ListSnapshots, ListImages)
// differs from the running counts.
func mustAccount(t testing.TB, s *Store, what string) {
	t.Helper()
	if err := s.verifyAccounting(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	disks, err := s.ListDisks()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for _, d := range disks {
		ds, err := s.diskByName(d.Name)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		ds.mu.Lock()
		n, err := s.countVisible(ds.chain, blockCount(ds.size.Load(), ds.bs))
		ds.mu.Unlock()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if d.Allocated != n*int64(d.BlockSize) {
			t.Fatalf("%s: disk %s reports %d allocated bytes, a full count %d", what, d.Name, d.Allocated, n*int64(d.BlockSize))
		}
	}
}

// acctRun is a random workload for the accounting tests.
type acctRun struct {
	t     *testing.T
	rng   *rand.Rand
	s     *Store
	disks []string
	snaps []string
	n     int
}

func (r *acctRun) name(p string) string { r.n++; return fmt.Sprintf("%s%d", p, r.n) }

func (r *acctRun) pick(xs []string) string { return xs[r.rng.Intn(len(xs))] }

func (r *acctRun) must(err error, what string) {
	r.t.Helper()
	if err != nil {
		r.t.Fatalf("%s: %v", what, err)
	}
}

// step does one random operation; every kind that moves a count is here.
func (r *acctRun) step() {
	s := r.s
	switch x := r.rng.Intn(100); {
	case x < 40 && len(r.disks) > 0: // writes: whole, partial, zeros, over data or holes
		d := r.pick(r.disks)
		h, err := s.OpenDisk(d)
		r.must(err, "open")
		size, bs := h.Size(), int64(h.BlockSize())
		for i := 0; i < 1+r.rng.Intn(8); i++ {
			n := 1 + r.rng.Int63n(4*bs)
			off := r.rng.Int63n(size - n + 1)
			if r.rng.Intn(3) == 0 {
				off = off / bs * bs
				n = min(bs*(1+r.rng.Int63n(3)), size-off)
			}
			p := make([]byte, n)
			if r.rng.Intn(4) != 0 {
				r.rng.Read(p)
			}
			_, err := h.WriteAt(p, off)
			r.must(err, "write")
		}
		if r.rng.Intn(3) == 0 {
			r.must(h.Sync(), "sync")
		}
		h.Close()
	case x < 50 && len(r.disks) > 0:
		h, err := s.OpenDisk(r.pick(r.disks))
		r.must(err, "open")
		off := r.rng.Int63n(h.Size())
		r.must(h.PunchHole(off, r.rng.Int63n(h.Size()-off+1)), "punch")
		h.Close()
	case x < 60 && len(r.disks) > 0:
		n := r.name("s")
		ds := []string{r.pick(r.disks)}
		if o := r.pick(r.disks); o != ds[0] && r.rng.Intn(2) == 0 {
			ds = append(ds, o)
		}
		_, err := s.CreateSnapshot(n, ds, "")
		r.must(err, "snapshot")
		r.snaps = append(r.snaps, n)
	case x < 66 && len(r.snaps) > 0:
		sn, err := s.GetSnapshot(r.pick(r.snaps))
		r.must(err, "get snapshot")
		n := r.name("c")
		_, err = s.CloneDisk(n, sn.Name, sn.Disks[0].Name)
		r.must(err, "clone")
		r.disks = append(r.disks, n)
	case x < 70 && len(r.snaps) > 0:
		sn, err := s.GetSnapshot(r.pick(r.snaps))
		r.must(err, "get snapshot")
		im := r.name("i")
		_, err = s.CreateImage(im, sn.Name, sn.Disks[0].Name)
		r.must(err, "image")
		if r.rng.Intn(2) == 0 {
			n := r.name("f")
			_, err = s.CreateDiskFromImage(n, im)
			r.must(err, "disk from image")
			r.disks = append(r.disks, n)
		}
	case x < 76 && len(r.snaps) > 0:
		sn, err := s.GetSnapshot(r.pick(r.snaps))
		r.must(err, "get snapshot")
		d := sn.Disks[0]
		if di, err := s.GetDisk(d.Name); err == nil && di.ID == d.DiskID {
			r.must(s.RollbackDisk(d.Name, sn.Name, true), "rollback")
		}
	case x < 82:
		if len(r.snaps) > 0 && r.rng.Intn(2) == 0 {
			i := r.rng.Intn(len(r.snaps))
			r.must(s.DeleteSnapshot(r.snaps[i]), "delete snapshot")
			r.snaps = append(r.snaps[:i:i], r.snaps[i+1:]...)
		} else if len(r.disks) > 1 {
			i := r.rng.Intn(len(r.disks))
			r.must(s.DeleteDisk(r.disks[i], true), "delete disk")
			r.disks = append(r.disks[:i:i], r.disks[i+1:]...)
		}
	case x < 87:
		_, err := s.GC()
		r.must(err, "gc")
	case x < 90 && len(r.disks) < 6:
		n := r.name("d")
		_, err := s.CreateDisk(n, int64(16+r.rng.Intn(48))*4096, []int{4096, 16384}[r.rng.Intn(2)])
		r.must(err, "create disk")
		r.disks = append(r.disks, n)
	case x < 93 && len(r.disks) > 0:
		d := r.pick(r.disks)
		di, err := s.GetDisk(d)
		r.must(err, "get disk")
		r.must(s.ResizeDisk(d, di.Size+int64(di.BlockSize)*int64(r.rng.Intn(8))), "resize")
	default:
		r.must(s.Sync(), "sync all")
	}
}

// TestAccounting: after random writes, punched holes, snapshots, clones,
// images, rollbacks, deletes, resizes and GCs, every disk's, snapshot's and
// image's allocation equals a full count of its visible blocks; so it does
// after a clean reopen (the counts are persisted, not recounted) and after
// an index rebuild (recounted).
func TestAccounting(t *testing.T) {
	for _, seed := range []int64{1, 2, 3, 4} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			dir := fastTempDir(t)
			opts := testOptions()
			if err := Create(dir, opts); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			r := &acctRun{t: t, rng: rand.New(rand.NewSource(seed)), s: s}
			_, err = s.CreateDisk("d0", 64*4096, 4096)
			r.must(err, "create")
			r.disks = []string{"d0"}
			for i := 0; i < 300; i++ {
				r.step()
				if i%10 == 9 {
					mustAccount(t, s, fmt.Sprintf("seed %d op %d", seed, i))
				}
				if i%100 == 99 {
					r.must(s.Close(), "close")
					s, err = Open(dir, opts)
					r.must(err, "reopen")
					r.s = s
					if n := s.acct.counted.Load(); n != 0 {
						t.Fatalf("a clean reopen counted %d disks; the persisted counts should do", n)
					}
					mustAccount(t, s, fmt.Sprintf("seed %d after reopen %d", seed, i))
				}
			}
			r.must(s.Close(), "close")
			rep, err := Rebuild(dir, opts)
			r.must(err, "rebuild")
			_ = rep
			s, err = Open(dir, opts)
			r.must(err, "open after rebuild")
			mustAccount(t, s, "after rebuild")
		})
	}
}

// TestAccountingCrash crashes the store (vfs.CrashFS: unsynced log data
// randomly kept or lost) in the middle of a random workload and checks the
// counts after the reopen, with and without a rebuild of the index.
func TestAccountingCrash(t *testing.T) {
	for k := 0; k < 12; k++ {
		seed := int64(500 + k)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s, dir, opts, cfs := newCrashStore(t)
			r := &acctRun{t: t, rng: rand.New(rand.NewSource(seed)), s: s}
			_, err := s.CreateDisk("d0", 64*4096, 4096)
			r.must(err, "create")
			r.disks = []string{"d0"}
			for i := 0; i < 40+r.rng.Intn(120); i++ {
				r.step()
			}
			s2 := reopenAfterCrash(t, s, dir, opts, cfs.Crash(seed), k%3 == 2)
			mustAccount(t, s2, fmt.Sprintf("seed %d after crash (rebuild %v)", seed, k%3 == 2))
			// And it keeps counting.
			r.s = s2
			r.disks = nil
			ds, err := s2.ListDisks()
			r.must(err, "list")
			for _, d := range ds {
				r.disks = append(r.disks, d.Name)
			}
			r.snaps = nil
			ss, err := s2.ListSnapshots()
			r.must(err, "list snapshots")
			for _, sn := range ss {
				r.snaps = append(r.snaps, sn.Name)
			}
			for i := 0; i < 30; i++ {
				r.step()
			}
			mustAccount(t, s2, "after more work")
		})
	}
}

// TestAccountingLegacyRecords: snapshot and image records written before
// the accounting (format version 1, no allocation) are counted once when
// asked, and clones and rollbacks from them start from that count.
func TestAccountingLegacyRecords(t *testing.T) {
	s, _ := newTestStore(t, testOptions())
	_, err := s.CreateDisk("a", 32*4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(bytes.Repeat([]byte{1}, 5*4096), 4096); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if _, err := s.CreateSnapshot("s", []string{"a"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateImage("i", "s", "a"); err != nil {
		t.Fatal(err)
	}
	// Strip the allocation, as an older snapfs wrote them.
	if err := s.idx.Update(func(t *index.Txn) error {
		var sn index.Snapshot
		if err := t.Get(index.KindSnapshot, "s", &sn); err != nil {
			return err
		}
		sn.Members[0].Allocated = nil
		if err := t.Put(index.KindSnapshot, "s", sn); err != nil {
			return err
		}
		var im index.Image
		if err := t.Get(index.KindImage, "i", &im); err != nil {
			return err
		}
		im.Allocated = nil
		return t.Put(index.KindImage, "i", im)
	}); err != nil {
		t.Fatal(err)
	}
	sn, err := s.GetSnapshot("s")
	if err != nil || sn.Disks[0].Allocated != 5*4096 {
		t.Fatalf("legacy snapshot: %+v, %v", sn, err)
	}
	im, err := s.GetImage("i")
	if err != nil || im.Allocated != 5*4096 {
		t.Fatalf("legacy image: %+v, %v", im, err)
	}
	if _, err := s.CloneDisk("c", "s", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDiskFromImage("f", "i"); err != nil {
		t.Fatal(err)
	}
	if err := s.RollbackDisk("a", "s", false); err != nil {
		t.Fatal(err)
	}
	mustAccount(t, s, "legacy records")
	for _, n := range []string{"a", "c", "f"} {
		if d, err := s.GetDisk(n); err != nil || d.Allocated != 5*4096 {
			t.Fatalf("disk %s: %+v, %v", n, d, err)
		}
	}
}

// TestCatalogChangeLostByIndex: a catalog change is acknowledged once its
// record is synced in the log; the index's transaction is synced later
// (catalogUpdateSync). Writes and commits after it must not move the
// checkpoint past the record, so that a crash losing the index's unsynced
// transaction replays it: the snapshot and its epoch come back.
func TestCatalogChangeLostByIndex(t *testing.T) {
	s, dir := newTestStore(t, testOptions())
	const bs = 4096
	if _, err := s.CreateDisk("a", 16*bs, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("a")
	if err != nil {
		t.Fatal(err)
	}
	old := bytes.Repeat([]byte{1}, 4*bs)
	if _, err := h.WriteAt(old, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	var before []index.CatalogChange
	var cst index.CatalogState
	view := func() {
		if err := s.idx.View(func(t *index.Txn) error {
			var err error
			if before, err = t.CatalogDump(); err != nil {
				return err
			}
			cst, err = t.CatalogState()
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	view()
	if _, err := s.CreateSnapshot("s", []string{"a"}, ""); err != nil {
		t.Fatal(err)
	}
	// Later writes, committed: the checkpoint moves, but not past "s".
	cur := bytes.Repeat([]byte{2}, 4*bs)
	if _, err := h.WriteAt(cur, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	h.Close()
	// The index loses what it did not sync: the snapshot's transaction.
	var after []index.CatalogChange
	if err := s.idx.View(func(t *index.Txn) error {
		var err error
		after, err = t.CatalogDump()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	b := s.idx.NewBatch()
	had := map[string]bool{}
	for _, c := range before {
		had[string(c.Key)] = true
		if err := b.ApplyCatalog(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range after {
		if !had[string(c.Key)] {
			if err := b.ApplyCatalog(index.CatalogChange{Key: c.Key}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.SetCatalogState(cst); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	s.crashForTest()
	s2, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	r, err := s2.OpenSnapshotDisk("s", "a")
	if err != nil {
		t.Fatalf("acknowledged snapshot lost with the index's unsynced transaction: %v", err)
	}
	got := make([]byte, 4*bs)
	if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("snapshot reads %v..., err %v; want its content when taken", got[:4], err)
	}
	r.Close()
	h2, err := s2.OpenDisk("a")
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if _, err := h2.ReadAt(got, 0); err != nil || !bytes.Equal(got, cur) {
		t.Fatalf("disk reads %v..., err %v; want the writes after the snapshot", got[:4], err)
	}
	mustAccount(t, s2, "after the lost transaction")
}

// TestAccountingConcurrent: writers, punchers, snapshots, clones and
// commits at once (run with -race); the counts equal a full count at the
// end, and again after a clean reopen, which trusts the persisted counts.
func TestAccountingConcurrent(t *testing.T) {
	dir := fastTempDir(t)
	opts := testOptions()
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	const bs = 4096
	for _, n := range []string{"a", "b"} {
		if _, err := s.CreateDisk(n, 128*bs, bs); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			h, err := s.OpenDisk([]string{"a", "b"}[w%2])
			if err != nil {
				errs <- err
				return
			}
			defer h.Close()
			for i := 0; i < 150; i++ {
				off := rng.Int63n(120 * bs)
				var err error
				switch rng.Intn(5) {
				case 0:
					err = h.PunchHole(off, rng.Int63n(8*bs))
				case 1:
					_, err = h.WriteAt(make([]byte, 1+rng.Intn(3*bs)), off)
				case 2:
					err = h.Sync()
				default:
					p := make([]byte, 1+rng.Intn(3*bs))
					rng.Read(p)
					_, err = h.WriteAt(p, off)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 15; i++ {
			n := fmt.Sprint("s", i)
			if _, err := s.CreateSnapshot(n, []string{"a", "b"}, ""); err != nil {
				errs <- err
				return
			}
			if _, err := s.CloneDisk(fmt.Sprint("c", i), n, "a"); err != nil {
				errs <- err
				return
			}
			if err := s.Sync(); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mustAccount(t, s, "after the concurrent work")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := s.acct.counted.Load(); n != 0 {
		t.Fatalf("a clean reopen counted %d disks", n)
	}
	mustAccount(t, s, "after reopen")
}
