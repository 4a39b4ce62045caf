package rowstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// Stripes: every block of the disk is cut into rev9Stripes stripes; writer
// w alone writes stripe w of every block (a partial-block write, so it goes
// through the write-back cache), and a whole-block writer rewrites all the
// stripes of a block at once (the block's stripe writers excluded meanwhile).
// Each stripe holds a stamp: (stripe, block, version, crc), repeated. A
// stripe's versions only grow, so a reader can tell an old version
// (resurrected) from the current one, and a stamp that does not check
// (wrong bytes, a mix of two versions) from both.
const (
	rev9BS      = 4096
	rev9Blocks  = 24
	rev9Stripes = 8
	rev9Stripe  = rev9BS / rev9Stripes
)

func rev9Stamp(dst []byte, w, b int, ver uint64) {
	var h [20]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(w))
	binary.LittleEndian.PutUint32(h[4:], uint32(b))
	binary.LittleEndian.PutUint64(h[8:], ver)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:16]))
	for i := 0; i < len(dst); i += len(h) {
		copy(dst[i:], h[:])
	}
}

// rev9Parse returns the version a stripe holds (0 for a never-written,
// all-zero stripe) or an error if it is not one whole stamp of (w, b).
func rev9Parse(p []byte, w, b int) (uint64, error) {
	allZero := true
	for _, c := range p {
		if c != 0 {
			allZero = false
			break
		}
	}
	if allZero {
		return 0, nil
	}
	ver := binary.LittleEndian.Uint64(p[8:])
	var want [rev9Stripe]byte
	rev9Stamp(want[:], w, b, ver)
	if string(want[:]) != string(p) {
		return 0, fmt.Errorf("stripe %d of block %d: not a whole stamp (version field %d)", w, b, ver)
	}
	return ver, nil
}

// TestRev9StripesUnderCleaner: partial writers (the write-back cache,
// hashed outside the disk's lock), whole-block writers (which drop cached
// entries a write-back batch may be hashing), readers, syncs and the
// cleaner (relocating records under the readers and the block map, and
// repointing the index from the live map) all at once, on small segments.
// Every read must give, per stripe, a whole stamp no older than the last
// write of it that returned before the read began and no newer than the
// last one begun; at the end, after a Sync, a close and a reopen, and after
// a power failure past that Sync, exactly the last version of every stripe.
func TestRev9StripesUnderCleaner(t *testing.T) {
	cfs := vfs.NewCrashFS()
	dir := filepath.Join(t.TempDir(), "store")
	opts := testOptions()
	opts.FS = cfs
	opts.SegmentSize = 16 << 10              // many small segments: many relocations
	opts.CacheBytes = 8 * rev9BS             // write-back all the time
	opts.SyncInterval = 2 * time.Millisecond // the background write-back and commits
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDisk("a", rev9Blocks*rev9BS, rev9BS); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("a")
	if err != nil {
		t.Fatal(err)
	}

	var begun, done [rev9Stripes][rev9Blocks]atomic.Uint64
	var blockMu [rev9Blocks]sync.RWMutex // whole-block writes exclude the stripe writers of the block
	stop := make(chan struct{})
	var failed atomic.Bool
	fail := func(format string, a ...any) {
		if failed.CompareAndSwap(false, true) {
			t.Errorf(format, a...)
		}
		select {
		case <-stop:
		default:
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return failed.Load()
		}
	}
	var wg sync.WaitGroup
	var writes, reads, cleans atomic.Int64
	for w := 0; w < rev9Stripes; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			p := make([]byte, rev9Stripe)
			for i := 0; !stopped(); i++ {
				b := (i*7 + w*5) % rev9Blocks
				blockMu[b].RLock()
				v := begun[w][b].Load() + 1
				begun[w][b].Store(v)
				rev9Stamp(p, w, b, v)
				_, err := h.WriteAt(p, int64(b*rev9BS+w*rev9Stripe))
				if err == nil {
					done[w][b].Store(v)
				}
				blockMu[b].RUnlock()
				if err != nil {
					fail("write stripe %d of block %d: %v", w, b, err)
					return
				}
				writes.Add(1)
			}
		}(w)
	}
	wg.Add(1)
	go func() { // whole blocks
		defer wg.Done()
		p := make([]byte, rev9BS)
		for i := 0; !stopped(); i++ {
			b := (i * 11) % rev9Blocks
			blockMu[b].Lock()
			var vs [rev9Stripes]uint64
			for w := range vs {
				vs[w] = begun[w][b].Load() + 1
				begun[w][b].Store(vs[w])
				rev9Stamp(p[w*rev9Stripe:(w+1)*rev9Stripe], w, b, vs[w])
			}
			_, err := h.WriteAt(p, int64(b*rev9BS))
			if err == nil {
				for w := range vs {
					done[w][b].Store(vs[w])
				}
			}
			blockMu[b].Unlock()
			if err != nil {
				fail("write block %d: %v", b, err)
				return
			}
			writes.Add(1)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			n := 1 + r*3 // blocks a read spans
			p := make([]byte, n*rev9BS)
			for i := 0; !stopped(); i++ {
				b0 := (i*13 + r) % (rev9Blocks - n + 1)
				var lo [rev9Stripes][4]uint64
				for k := 0; k < n; k++ {
					for w := 0; w < rev9Stripes; w++ {
						lo[w][k] = done[w][b0+k].Load()
					}
				}
				if _, err := h.ReadAt(p, int64(b0*rev9BS)); err != nil {
					fail("read blocks %d-%d: %v", b0, b0+n-1, err)
					return
				}
				for k := 0; k < n; k++ {
					b := b0 + k
					for w := 0; w < rev9Stripes; w++ {
						hi := begun[w][b].Load()
						off := k*rev9BS + w*rev9Stripe
						v, err := rev9Parse(p[off:off+rev9Stripe], w, b)
						if err != nil {
							fail("read %d: %v", i, err)
							return
						}
						if v < lo[w][k] || v > hi {
							fail("read %d: stripe %d of block %d holds version %d, want %d to %d (an old version came back)", i, w, b, v, lo[w][k], hi)
							return
						}
					}
				}
				reads.Add(1)
			}
		}(r)
	}
	wg.Add(1)
	go func() { // syncs
		defer wg.Done()
		for !stopped() {
			if err := h.Sync(); err != nil {
				fail("sync: %v", err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Add(1)
	go func() { // the cleaner, hard
		defer wg.Done()
		plan := &cleanPlan{targetRatio: 1, maxLive: 0.95, batch: 8 << 10}
		for !stopped() {
			s.gcMu.Lock()
			st, err := s.gcLocked(plan)
			s.gcMu.Unlock()
			if err != nil {
				fail("clean: %v", err)
				return
			}
			cleans.Add(int64(st.SegmentsCleaned))
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d writes, %d reads, %d segments cleaned", writes.Load(), reads.Load(), cleans.Load())
	if failed.Load() {
		return
	}
	if cleans.Load() == 0 {
		t.Error("the cleaner cleaned no segment: the test did not race relocations")
	}

	check := func(s *Store, what string) {
		t.Helper()
		h, err := s.OpenDisk("a")
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer h.Close()
		p := make([]byte, rev9Blocks*rev9BS)
		if _, err := h.ReadAt(p, 0); err != nil {
			t.Fatalf("%s: read: %v", what, err)
		}
		for b := 0; b < rev9Blocks; b++ {
			for w := 0; w < rev9Stripes; w++ {
				off := b*rev9BS + w*rev9Stripe
				v, err := rev9Parse(p[off:off+rev9Stripe], w, b)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if want := done[w][b].Load(); v != want {
					t.Fatalf("%s: stripe %d of block %d holds version %d, want %d", what, w, b, v, want)
				}
			}
		}
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	check(s, "after the workload")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	// A GC more (relocations of what the last writes left), then a power
	// failure: everything was synced.
	if _, err := s.GC(); err != nil {
		t.Fatal(err)
	}
	crashed := cfs.Crash(1)
	s2 := reopenAfterCrash(t, s, dir, opts, crashed, false)
	check(s2, "after a crash")
	if _, err := s2.GC(); err != nil {
		t.Fatal(err)
	}
	check(s2, "after a crash and a GC")
}
