package rowstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// crashModel tracks, per disk block, every content the block may have after
// a crash: what it held at the last acknowledged sync, and what it held
// after each write since.
type crashModel struct {
	bs       int
	data     map[string][]byte           // current content
	allowed  map[string]map[int][][]byte // block -> contents allowed after a crash
	snaps    map[string]map[string][]byte
	snapList []string
}

func (m *crashModel) block(disk string, b int) []byte {
	d := m.data[disk]
	return bytes.Clone(d[b*m.bs : (b+1)*m.bs])
}

func (m *crashModel) ack(disk string) {
	m.allowed[disk] = map[int][][]byte{}
}

// crashWorkload runs random writes, punches, syncs, snapshots and clones
// against s, recording in m what must survive; it stops after ops operations
// or at the first error (returned).
func crashWorkload(s *Store, m *crashModel, rng *rand.Rand, ops int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	handles := map[string]*Disk{}
	defer func() {
		for _, h := range handles {
			h.Close()
		}
	}()
	open := func(name string) (*Disk, error) {
		if h, ok := handles[name]; ok {
			return h, nil
		}
		h, err := s.OpenDisk(name)
		if err == nil {
			handles[name] = h
		}
		return h, err
	}
	disks := func() []string { return sortedKeys(m.data) }
	for i := 0; i < ops; i++ {
		names := disks()
		name := names[rng.Intn(len(names))]
		h, err := open(name)
		if err != nil {
			return err
		}
		d := m.data[name]
		switch x := rng.Intn(20); {
		case x < 12:
			off := rng.Intn(len(d))
			n := 1 + rng.Intn(min(len(d)-off, 2*m.bs))
			p := make([]byte, n)
			if rng.Intn(4) > 0 {
				rng.Read(p)
			}
			// Before the write, remember the block contents as candidates.
			for b := off / m.bs; b*m.bs < off+n; b++ {
				if _, ok := m.allowed[name][b]; !ok {
					m.allowed[name][b] = [][]byte{m.block(name, b)}
				}
			}
			// The new contents are allowed before the call: a failed write
			// may have reached some of its blocks.
			copy(d[off:], p)
			for b := off / m.bs; b*m.bs < off+n; b++ {
				m.allowed[name][b] = append(m.allowed[name][b], m.block(name, b))
			}
			if _, err := h.WriteAt(p, int64(off)); err != nil {
				return err
			}
		case x < 13:
			off := rng.Intn(len(d))
			n := 1 + rng.Intn(len(d)-off)
			for b := off / m.bs; b*m.bs < off+n; b++ {
				if _, ok := m.allowed[name][b]; !ok {
					m.allowed[name][b] = [][]byte{m.block(name, b)}
				}
			}
			clear(d[off : off+n])
			for b := off / m.bs; b*m.bs < off+n; b++ {
				m.allowed[name][b] = append(m.allowed[name][b], m.block(name, b))
			}
			if err := h.PunchHole(int64(off), int64(n)); err != nil {
				return err
			}
		case x < 16:
			if err := h.Sync(); err != nil {
				return err
			}
			m.ack(name)
		case x < 18:
			sn := fmt.Sprintf("s%d", len(m.snapList)+1)
			if _, err := s.CreateSnapshot(sn, []string{name}, ""); err != nil {
				return err
			}
			m.snaps[sn] = map[string][]byte{name: bytes.Clone(d)}
			m.snapList = append(m.snapList, sn)
			m.ack(name)
		default:
			if len(m.snapList) == 0 || len(m.data) > 4 {
				continue
			}
			sn := m.snapList[rng.Intn(len(m.snapList))]
			src := sortedKeys(m.snaps[sn])[0]
			cn := fmt.Sprintf("c%d", len(m.data))
			if _, err := s.CloneDisk(cn, sn, src); err != nil {
				return err
			}
			m.data[cn] = bytes.Clone(m.snaps[sn][src])
			m.allowed[cn] = map[int][][]byte{}
		}
	}
	return nil
}

// checkCrashState verifies invariants 1-3 on a reopened store: every block
// of every disk holds its acknowledged content or one written after it;
// every snapshot reads exactly as when it was taken.
func checkCrashState(t *testing.T, s *Store, m *crashModel, what string) {
	t.Helper()
	for _, name := range sortedKeys(m.data) {
		h, err := s.OpenDisk(name)
		if err != nil {
			t.Fatalf("%s: open disk %s: %v", what, name, err)
		}
		got := make([]byte, len(m.data[name]))
		if _, err := h.ReadAt(got, 0); err != nil {
			t.Fatalf("%s: read disk %s: %v (invariant 2: never an error)", what, name, err)
		}
		h.Close()
		for b := 0; b*m.bs < len(got); b++ {
			gb := got[b*m.bs : (b+1)*m.bs]
			cands, changed := m.allowed[name][b]
			if !changed {
				if !bytes.Equal(gb, m.data[name][b*m.bs:(b+1)*m.bs]) {
					t.Fatalf("%s: disk %s block %d lost acknowledged content (invariant 1)", what, name, b)
				}
				continue
			}
			ok := false
			for _, c := range cands {
				if bytes.Equal(gb, c) {
					ok = true
					break
				}
			}
			if !ok {
				t.Fatalf("%s: disk %s block %d holds neither its old nor any new content (invariant 2)", what, name, b)
			}
		}
	}
	for _, sn := range m.snapList {
		for dn, want := range m.snaps[sn] {
			r, err := s.OpenSnapshotDisk(sn, dn)
			if err != nil {
				t.Fatalf("%s: snapshot %s lost (invariant 3/4): %v", what, sn, err)
			}
			got := make([]byte, len(want))
			if _, err := r.ReadAt(got, 0); err != nil {
				t.Fatalf("%s: read snapshot %s: %v", what, sn, err)
			}
			r.Close()
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: snapshot %s disk %s differs from when it was taken (invariant 3)", what, sn, dn)
			}
		}
	}
	// The space accounting survived the crash exactly (accounting.go).
	if err := s.verifyAccounting(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	mustExclusive(t, s, what) // and the exclusive figures (exclusive.go)
}

func newCrashModel(bs int) *crashModel {
	return &crashModel{bs: bs, data: map[string][]byte{}, allowed: map[string]map[int][][]byte{}, snaps: map[string]map[string][]byte{}}
}

// TestCrash crashes the store at many points of a random workload, reopens
// it from a possible post-crash state of the segment log, and checks
// invariants 1-5; half of the runs also rebuild the index from the log.
func TestCrash(t *testing.T) {
	const bs = 4096
	runs := 60
	if testing.Short() {
		runs = 15
	}
	for k := 0; k < runs; k++ {
		seed := int64(1000 + k)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			s, dir, opts, cfs := newCrashStore(t)
			m := newCrashModel(bs)
			if _, err := s.CreateDisk("a", 64*bs, bs); err != nil {
				t.Fatal(err)
			}
			m.data["a"], m.allowed["a"] = make([]byte, 64*bs), map[int][][]byte{}
			if err := crashWorkload(s, m, rng, 20+rng.Intn(200)); err != nil {
				t.Fatalf("seed %d: workload: %v", seed, err)
			}
			s2 := reopenAfterCrash(t, s, dir, opts, cfs.Crash(seed), k%2 == 1)
			checkCrashState(t, s2, m, fmt.Sprintf("seed %d (rebuild %v)", seed, k%2 == 1))
			// The store keeps working after recovery.
			h, err := s2.OpenDisk("a")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.WriteAt(bytes.Repeat([]byte{7}, bs), 0); err != nil {
				t.Fatal(err)
			}
			if err := h.Sync(); err != nil {
				t.Fatal(err)
			}
			h.Close()
		})
	}
}

// TestFailEveryOp fails the i-th file operation for i = 0, 1, 2, … until a
// run succeeds. Every failure must come back as an error (no panic), and a
// reopen without faults must show every acknowledged write and snapshot.
func TestFailEveryOp(t *testing.T) {
	const bs = 4096
	for i := int64(0); ; i++ {
		mem := vfs.NewCrashFS()
		efs := vfs.NewErrorFS(mem, vfs.FailAt(i))
		dir := filepath.Join(t.TempDir(), "store")
		opts := testOptions()
		opts.FS = efs
		m := newCrashModel(bs)
		var s *Store
		err := func() error {
			if err := Create(dir, opts); err != nil {
				return err
			}
			var err error
			if s, err = Open(dir, opts); err != nil {
				return err
			}
			if _, err := s.CreateDisk("a", 32*bs, bs); err != nil {
				return err
			}
			m.data["a"], m.allowed["a"] = make([]byte, 32*bs), map[int][][]byte{}
			if err := crashWorkload(s, m, rand.New(rand.NewSource(i)), 60); err != nil {
				return err
			}
			return s.Close()
		}()
		if err == nil {
			t.Logf("a run with no failed operation after %d ops", efs.Ops())
			if i < 50 {
				t.Fatalf("only %d operations were failed in turn; the workload is too small", i)
			}
			return
		}
		if !errors.Is(err, vfs.ErrInjected) {
			t.Fatalf("op %d: error does not wrap the injected fault: %v", i, err)
		}
		if s != nil {
			s.crashForTest()
		}
		if _, statErr := mem.Stat(filepath.Join(dir, superblockName)); statErr != nil {
			continue // the store was never created
		}
		opts.FS = mem
		s2, err := Open(dir, opts)
		if err != nil {
			if _, statErr := mem.Stat(filepath.Join(dir, "index")); statErr != nil {
				continue
			}
			t.Fatalf("op %d: reopen after a failed operation: %v", i, err)
		}
		if _, err := s2.GetDisk("a"); err == nil {
			checkCrashState(t, s2, m, fmt.Sprintf("fail op %d", i))
		}
		s2.Close()
	}
}
