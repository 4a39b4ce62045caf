package rowstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWriteBackConcurrent: writers make partial-block writes at full speed
// through a tiny write-back cache (so the background write-back, writers
// at the bound, Sync and snapshots all write blocks back while others
// write), readers read, and snapshots are taken meanwhile. Each writer owns
// 4 KiB slots and writes a counter into them; every snapshot must show, for
// every slot, a counter at least the last one acknowledged before the
// snapshot began and at most the last one begun before it returned
// (invariant 3); the disk must read each slot's last acknowledged counter
// at every moment (reads see the cache and what is being written back);
// after a reopen every synced counter is there, and the space accounting
// equals a full count.
func TestWriteBackConcurrent(t *testing.T) {
	dir := fastTempDir(t)
	opts := testOptions()
	opts.CacheBytes = 48 << 10 // three 16 KiB blocks: constant write-back
	// The background write-back and commit run (and the background sync).
	opts.SyncInterval = 20 * time.Millisecond
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	const (
		bs      = 16 << 10
		writers = 4
		slots   = 64 // per writer; slot i of writer w at (i*writers+w)*4 KiB
		slot    = 4 << 10
	)
	if _, err := s.CreateDisk("d", writers*slots*slot, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	off := func(w, i int) int64 { return int64(i*writers+w) * slot }
	// acked[w][i]: last counter acknowledged; begun[w][i]: last started.
	var acked, begun [writers][slots]atomic.Uint64
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
		stop.Store(true)
	}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			buf := make([]byte, slot)
			for n := uint64(1); !stop.Load(); n++ {
				i := rng.Intn(slots)
				for j := 0; j < slot; j += 8 {
					binary.LittleEndian.PutUint64(buf[j:], n)
				}
				begun[w][i].Store(n)
				if _, err := h.WriteAt(buf, off(w, i)); err != nil {
					fail(fmt.Errorf("write: %w", err))
					return
				}
				acked[w][i].Store(n)
				if n%97 == 0 {
					if err := h.Sync(); err != nil {
						fail(fmt.Errorf("sync: %w", err))
						return
					}
				}
			}
		}(w)
	}
	// A reader checks every slot it reads: whole (one counter) and at
	// least what was acknowledged before the read.
	readSlot := func(r interface {
		ReadAt([]byte, int64) (int, error)
	}, w, i int, buf []byte) (uint64, error) {
		if _, err := r.ReadAt(buf, off(w, i)); err != nil {
			return 0, err
		}
		v := binary.LittleEndian.Uint64(buf)
		for j := 8; j < slot; j += 8 {
			if x := binary.LittleEndian.Uint64(buf[j:]); x != v {
				return 0, fmt.Errorf("slot %d/%d torn: %d and %d", w, i, v, x)
			}
		}
		return v, nil
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewSource(99))
		buf := make([]byte, slot)
		for !stop.Load() {
			w, i := rng.Intn(writers), rng.Intn(slots)
			lo := acked[w][i].Load()
			v, err := readSlot(h, w, i, buf)
			if err != nil {
				fail(err)
				return
			}
			if hi := begun[w][i].Load(); v < lo || v > hi {
				fail(fmt.Errorf("disk slot %d/%d reads %d, acknowledged %d, begun %d", w, i, v, lo, hi))
				return
			}
		}
	}()
	deadline := time.Now().Add(3 * time.Second)
	if testing.Short() {
		deadline = time.Now().Add(time.Second)
	}
	buf := make([]byte, slot)
	for n := 0; time.Now().Before(deadline) && !stop.Load(); n++ {
		var lo [writers][slots]uint64
		for w := range lo {
			for i := range lo[w] {
				lo[w][i] = acked[w][i].Load()
			}
		}
		name := fmt.Sprintf("s%d", n)
		if _, err := s.CreateSnapshot(name, []string{"d"}, ""); err != nil {
			fail(err)
			break
		}
		var hi [writers][slots]uint64
		for w := range hi {
			for i := range hi[w] {
				hi[w][i] = begun[w][i].Load()
			}
		}
		r, err := s.OpenSnapshotDisk(name, "d")
		if err != nil {
			fail(err)
			break
		}
		for w := 0; w < writers; w++ {
			for i := 0; i < slots; i++ {
				v, err := readSlot(r, w, i, buf)
				if err == nil && (v < lo[w][i] || v > hi[w][i]) {
					err = fmt.Errorf("snapshot %s slot %d/%d reads %d, acknowledged before %d, begun before its end %d", name, w, i, v, lo[w][i], hi[w][i])
				}
				if err != nil {
					fail(err)
				}
			}
		}
		r.Close()
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := s.verifyAccounting(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	if h, err = s.OpenDisk("d"); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for w := 0; w < writers; w++ {
		for i := 0; i < slots; i++ {
			v, err := readSlot(h, w, i, buf)
			if err != nil {
				t.Fatal(err)
			}
			if want := acked[w][i].Load(); v != want {
				t.Fatalf("after reopen slot %d/%d reads %d, want %d", w, i, v, want)
			}
		}
	}
	if err := s.verifyAccounting(); err != nil {
		t.Fatal(err)
	}
}

// TestWriteBackWriteWhileHashing: a batch of write-back hashes copies of its
// blocks without the disk's lock; a write into one of them meanwhile is
// neither lost nor stored under a digest of the older content: the block
// reads with both writes, before and after a reopen, and a check that reads
// every record against its digest is clean.
func TestWriteBackWriteWhileHashing(t *testing.T) {
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
	const bs = 16 << 10
	if _, err := s.CreateDisk("d", 4*bs, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 4*bs)
	write := func(p []byte, off int64) {
		t.Helper()
		if _, err := h.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], p)
	}
	// Two blocks partly written: cached, read-modify-written at the sync.
	write(bytes.Repeat([]byte{'a'}, 4096), 100)
	write(bytes.Repeat([]byte{'b'}, 4096), bs+200)
	var once sync.Once
	hooked := false
	testHookWriteBackHashing = func() {
		once.Do(func() {
			hooked = true
			// Into both blocks of the batch, while it hashes its copies.
			write(bytes.Repeat([]byte{'c'}, 1000), 5000)
			write(bytes.Repeat([]byte{'d'}, 1000), bs+9000)
		})
	}
	defer func() { testHookWriteBackHashing = nil }()
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	testHookWriteBackHashing = nil
	if !hooked {
		t.Fatal("the sync wrote back no batch")
	}
	if err := h.Sync(); err != nil { // whatever the first one left cached
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := h.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read: %v, equal %v", err, bytes.Equal(got, want))
	}
	h.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	h, err = s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read after reopen: %v, equal %v", err, bytes.Equal(got, want))
	}
	rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
}
