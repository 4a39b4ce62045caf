package rowstore

import (
	"bytes"
	"errors"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// smallFullStore creates and opens a store on a simulated 32 MiB
// filesystem with 1 MiB segments, a 4 MiB reserve and a 1 MiB floor: the
// setting of the full-disk tests.
func smallFullStore(t *testing.T) (s *Store, cfs *vfs.CrashFS, dir string, opts Options) {
	t.Helper()
	const MiB = 1 << 20
	cfs = vfs.NewCrashFS()
	cfs.SetCapacity(32 * MiB)
	dir = filepath.Join(fastTempDir(t), "store")
	opts = testOptions()
	opts.FS = cfs
	opts.SegmentSize = MiB
	opts.ReserveBytes = 4 * MiB
	opts.MinFreeBytes = MiB
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, cfs, dir, opts
}

// TestFullDisk fills the store's (simulated) filesystem through a disk: new
// writes get ErrNoSpace, with the one message, before the reserve is
// touched. Then another program takes every free byte, and still Sync,
// Usage, snapshot delete, GC and Close work (GC gives the reserve back to
// move records); afterwards the store writes again, re-arms its reserve,
// and every synced byte reads back after a reopen. No outside help: the
// other program's file stays.
func TestFullDisk(t *testing.T) {
	const (
		MiB = 1 << 20
		bs  = 4096
	)
	s, cfs, dir, opts := smallFullStore(t)
	var err error
	defer func() { s.Close() }()
	if !s.ReserveArmed() {
		t.Fatal("no reserve on a filesystem with room for it")
	}
	const size = 12 * MiB
	if _, err := s.CreateDisk("a", size, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("a")
	if err != nil {
		t.Fatal(err)
	}
	model := make([]byte, size) // what the last successful Sync made durable
	cur := make([]byte, size)   // what was written
	rng := rand.New(rand.NewSource(1))
	chunk := make([]byte, 64<<10)
	write := func(off int64) error {
		rng.Read(chunk)
		if _, err := h.WriteAt(chunk, off); err != nil {
			return err
		}
		copy(cur[off:], chunk)
		return nil
	}
	sync := func() error {
		if err := h.Sync(); err != nil {
			return err
		}
		copy(model, cur)
		return nil
	}
	for off := int64(0); off < size; off += int64(len(chunk)) {
		if err := write(off); err != nil {
			t.Fatal(err)
		}
	}
	if err := sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSnapshot("s1", []string{"a"}, ""); err != nil {
		t.Fatal(err)
	}
	// Overwrite until the store refuses.
	var full error
	for i := 0; i < 10000 && full == nil; i++ {
		if full = write(rng.Int63n(size/int64(len(chunk))) * int64(len(chunk))); full == nil && i%16 == 15 {
			full = sync()
		}
	}
	if full == nil {
		t.Fatal("a 32 MiB filesystem never filled")
	}
	t.Logf("full: %v", full)
	if !errors.Is(full, ErrNoSpace) || !strings.Contains(full.Error(), "delete snapshots or disks, then snapfs gc") {
		t.Fatalf("full store: %v", full)
	}
	if !s.ReserveArmed() {
		t.Fatal("the reserve was used by new writes")
	}
	// The writes acknowledged before the refused one commit (the refused one
	// changed nothing).
	if err := sync(); err != nil {
		t.Fatalf("sync of acknowledged writes on a full store: %v", err)
	}
	// Another program takes every free byte.
	sp, _ := cfs.Statfs(dir)
	other, err := cfs.Create("/other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.WriteAt(make([]byte, sp.Free), 0); err != nil {
		t.Fatal(err)
	}
	other.Close()
	if err := write(0); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("write on a full filesystem: %v", err)
	}
	if _, err := s.Usage(); err != nil {
		t.Fatalf("usage on a full filesystem: %v", err)
	}
	if err := s.DeleteSnapshot("s1"); err != nil {
		t.Fatalf("snapshot delete on a full filesystem: %v", err)
	}
	st, err := s.GC()
	if err != nil {
		t.Fatalf("gc on a full filesystem: %v", err)
	}
	t.Logf("gc on a full filesystem: %+v", st)
	if st.BytesFreed == 0 {
		t.Fatal("gc freed nothing")
	}
	if s.space.released == 0 {
		t.Fatal("gc on a full filesystem did not use the reserve")
	}
	// The store writes again and re-arms its reserve, on its own.
	for i := 0; i < 32; i++ {
		if err := write(int64(i) * int64(len(chunk))); err != nil {
			t.Fatalf("write after gc: %v", err)
		}
	}
	if err := sync(); err != nil {
		t.Fatalf("sync after gc: %v", err)
	}
	if !s.ReserveArmed() {
		t.Fatal("the reserve was not re-armed after gc freed space")
	}
	check := func(when string) {
		t.Helper()
		got := make([]byte, size)
		if _, err := h.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		for off := 0; off < size; off += bs {
			if !bytes.Equal(got[off:off+bs], model[off:off+bs]) {
				t.Fatalf("%s: synced data differs at block %d", when, off/bs)
			}
		}
	}
	check("before reopen")
	h.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	h, err = s.OpenDisk("a")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	check("after reopen")
}
