package rowstore

// Regression tests from a review of the engine: each reproduced a bug
// (cleaner removing a segment with uncommitted records, a repoint too big for
// one Badger transaction, a deleted disk coming back through a racing open,
// a rebuild resurrecting data under a dropped hole, an overflowing write).

import (
	"bytes"
	"testing"
)

func fill(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// Deterministic replay of GC's body with the interleaving that happens when
// a writer appends and the log rotates while GC's own commit (syncAllDisks)
// is in its fsync/Badger phase: records pending in a segment < active.
func TestRegressCleanerDropsPending(t *testing.T) {
	opts := testOptions()
	opts.SegmentSize = 64 << 10
	s, _ := newTestStore(t, opts)
	const bs = 4096
	if _, err := s.CreateDisk("d", 64*bs, bs); err != nil {
		t.Fatal(err)
	}
	h, _ := s.OpenDisk("d")
	defer h.Close()
	for i := 0; i < 8; i++ { // committed, then overwritten: segment mostly dead
		h.WriteAt(fill(1, bs), 0)
	}
	h.Sync()
	s.seg.Rotate()
	for i := 0; i < 8; i++ {
		h.WriteAt(fill(2, bs), 0)
	}
	// --- GC starts: syncAllDisks() ---
	if err := s.syncAllDisks(); err != nil {
		t.Fatal(err)
	}
	// --- a writer appends right after GC's commit captured pending, and the
	// log rotates before GC calls Active() ---
	h.WriteAt(fill(3, bs), 1*bs) // pending, in the segment about to become old
	h.WriteAt(fill(4, bs), 2*bs)
	s.seg.Rotate()
	// --- rest of GC() verbatim ---
	active := s.seg.Active()
	res, err := s.scan()
	if err != nil {
		t.Fatal(err)
	}
	st := GCStats{}
	if err := s.deleteVersions(res.dead); err != nil {
		t.Fatal(err)
	}
	if err := s.clean(active, res.segLive, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("cleaned %d segments", st.SegmentsCleaned)
	if err := h.Sync(); err != nil { // acknowledges blocks 1 and 2
		t.Fatal(err)
	}
	p := make([]byte, bs)
	for b := 1; b <= 2; b++ {
		if _, err := h.ReadAt(p, int64(b)*bs); err != nil || p[0] != byte(b+2) {
			t.Errorf("block %d after acknowledged Sync: err=%v first byte %d", b, err, p[0])
		}
	}
}

// The cleaner repoints every relocated record of a segment in ONE Badger
// transaction; with the default index options and 4 KiB blocks a sparse
// 256 MiB segment exceeds Badger's transaction limit.
func TestRegressCleanerTxnTooBig(t *testing.T) {
	opts := Options{SyncInterval: -1, GCInterval: -1} // defaults: 256 MiB segments, 16 MiB memtable
	s, _ := newTestStore(t, opts)
	const bs = 4096
	const n = 64000
	if _, err := s.CreateDisk("d", n*bs, bs); err != nil {
		t.Fatal(err)
	}
	h, _ := s.OpenDisk("d")
	defer h.Close()
	buf := make([]byte, 256*bs)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	for off := 0; off < n*bs; off += len(buf) {
		h.WriteAt(buf, int64(off))
	}
	h.Sync()
	s.seg.Rotate()
	// overwrite 70%: 30% of the first segment stays live (< CleanBelow 0.5)
	for off := 0; off < n*bs*7/10; off += len(buf) {
		h.WriteAt(buf, int64(off))
	}
	h.Sync()
	segBytes := func() (t int64) {
		for _, si := range s.seg.Segments() {
			t += si.Size
		}
		return
	}
	for i := 0; i < 3; i++ {
		st, err := s.GC()
		t.Logf("GC %d: err=%v stats=%+v segment bytes=%d MiB", i, err, st, segBytes()>>20)
	}
}

func TestRegressZombieDisk(t *testing.T) {
	s, _ := newTestStore(t, testOptions())
	zombies := 0
	for i := 0; i < 3000 && zombies == 0; i++ {
		if _, err := s.CreateDisk("x", 1<<20, 4096); err != nil {
			t.Fatal(err)
		}
		var h *Disk
		var oerr, derr error
		done := make(chan struct{})
		go func() { h, oerr = s.OpenDisk("x"); close(done) }()
		derr = s.DeleteDisk("x", false)
		<-done
		if oerr == nil && derr == nil {
			// the delete succeeded (not ErrBusy) yet we hold a working handle
			_, werr := h.WriteAt(fill(9, 4096), 0)
			serr := h.Sync()
			t.Logf("iteration %d: DeleteDisk ok, OpenDisk ok; write err=%v sync err=%v", i, werr, serr)
			zombies++
			h.Close()
		} else if oerr == nil {
			h.Close()
			s.DeleteDisk("x", true)
		}
	}
	if zombies > 0 {
		t.Errorf("a handle on a deleted disk accepted and acknowledged writes")
	}
}

func TestRegressRebuildResurrects(t *testing.T) {
	opts := testOptions()
	opts.SegmentSize = 1 << 20
	s, dir := newTestStore(t, opts)
	const bs = 4096
	s.CreateDisk("d", 64*bs, bs)
	h, _ := s.OpenDisk("d")
	h.WriteAt(fill(0xAA, bs), 0) // D: block 0, epoch 1
	for b := 1; b < 12; b++ {    // keep segment A mostly live
		h.WriteAt(fill(byte(b), bs), int64(b)*bs)
	}
	h.Sync()
	s.CreateSnapshot("s1", []string{"d"}, "")
	s.seg.Rotate()
	h.PunchHole(0, bs) // H: hole at epoch 2, in segment B
	h.Sync()
	s.seg.Rotate()
	s.CreateSnapshot("s2", []string{"d"}, "")
	s.DeleteSnapshot("s1")
	st, err := s.GC()
	t.Logf("gc %+v %v", st, err)
	p := make([]byte, bs)
	h.ReadAt(p, 0)
	t.Logf("before rebuild: block 0 first byte %#x", p[0])
	h.Close()
	s.Close()
	opts.RebuildIndex = true
	s2, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	h2, _ := s2.OpenDisk("d")
	defer h2.Close()
	h2.ReadAt(p, 0)
	r, _ := s2.OpenSnapshotDisk("s2", "d")
	q := make([]byte, bs)
	r.ReadAt(q, 0)
	r.Close()
	if p[0] != 0 || q[0] != 0 {
		t.Errorf("after RebuildIndex: punched block 0 reads %#x (head) / %#x (snapshot s2), want zeros", p[0], q[0])
	}
}

func TestRegressWriteOverflow(t *testing.T) {
	s, _ := newTestStore(t, testOptions())
	s.CreateDisk("d", 1<<20, 4096)
	h, _ := s.OpenDisk("d")
	defer h.Close()
	n, err := h.WriteAt(fill(1, 4096), (1<<63-1)-100)
	t.Logf("write at MaxInt64-100: n=%d err=%v", n, err)
	err = h.Sync()
	t.Logf("sync err=%v alloc=%d", err, h.Allocated())
}
