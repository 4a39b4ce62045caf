package rowstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// streamStore makes a store with small segments (so the cleaner has
// several to move).
func streamStore(t *testing.T) *Store {
	t.Helper()
	dir := filepath.Join(fastTempDir(t), "s")
	if err := Create(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{SyncInterval: -1, GCInterval: -1, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func streamWrite(t *testing.T, s *Store, disk string, rng *rand.Rand, blocks []uint64, bs int) {
	t.Helper()
	d, err := s.OpenDisk(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	buf := make([]byte, bs)
	for _, b := range blocks {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := d.WriteAt(buf, int64(b)*int64(bs)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// streamAll streams a diff and returns the data of every block read, the
// changes visited, and the number of batches.
func streamAll(t *testing.T, s *Store, from *Point, to Point, o StreamOptions, want func(Change) bool) (map[uint64][]byte, []Change, int) {
	t.Helper()
	got := map[uint64][]byte{}
	var seen []Change
	batches := 0
	o.Visit = func(c Change) (bool, error) {
		seen = append(seen, c)
		return want(c), nil
	}
	o.Data = func(b *BlockBatch) error {
		defer b.Release()
		batches++
		for i, blk := range b.Blocks {
			if sha256.Sum256(b.Data[i]) != b.Digests[i] {
				t.Errorf("block %d: data does not match its digest", blk)
			}
			if _, dup := got[blk]; dup {
				t.Errorf("block %d handed out twice", blk)
			}
			got[blk] = bytes.Clone(b.Data[i])
		}
		return nil
	}
	if _, err := s.StreamDiff(context.Background(), from, to, o); err != nil {
		t.Fatal(err)
	}
	return got, seen, batches
}

// TestStreamDiffMatchesDiff: StreamDiff visits exactly Diff's changes, in
// block order, and hands out each wanted block with the snapshot's data,
// for a full diff, an incremental one and one across a clone, with small
// batches and few buffers.
func TestStreamDiffMatchesDiff(t *testing.T) {
	s := streamStore(t)
	const bs = 4096
	rng := rand.New(rand.NewPCG(1, 2))
	if _, err := s.CreateDisk("d", 512*bs, bs); err != nil {
		t.Fatal(err)
	}
	var all []uint64
	for b := uint64(0); b < 400; b++ {
		all = append(all, b)
	}
	streamWrite(t, s, "d", rng, all, bs)
	if _, err := s.CreateSnapshot("s1", []string{"d"}, "manual"); err != nil {
		t.Fatal(err)
	}
	streamWrite(t, s, "d", rng, []uint64{3, 4, 5, 100, 250, 399, 450, 451}, bs)
	d, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.PunchHole(10*bs, 4*bs); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := s.CreateSnapshot("s2", []string{"d"}, "manual"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloneDisk("c", "s1", "d"); err != nil {
		t.Fatal(err)
	}
	streamWrite(t, s, "c", rng, []uint64{7, 8, 300}, bs)
	if _, err := s.CreateSnapshot("s3", []string{"c"}, "manual"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		from *Point
		to   Point
	}{
		{"full", nil, Point{Snapshot: "s2", Disk: "d"}},
		{"incremental", &Point{Snapshot: "s1", Disk: "d"}, Point{Snapshot: "s2", Disk: "d"}},
		{"clone", &Point{Snapshot: "s2", Disk: "d"}, Point{Snapshot: "s3", Disk: "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []Change
			if _, err := s.Diff(tc.from, tc.to, func(c Change) error { want = append(want, c); return nil }); err != nil {
				t.Fatal(err)
			}
			r, err := s.OpenSnapshotDisk(tc.to.Snapshot, tc.to.Disk)
			if err != nil {
				t.Fatal(err)
			}
			img := make([]byte, r.Size())
			if _, err := r.ReadAt(img, 0); err != nil {
				t.Fatal(err)
			}
			r.Close()
			// Every other non-zero change is wanted.
			n := 0
			wanted := func(c Change) bool { n++; return !c.Zero && n%2 == 0 }
			got, seen, batches := streamAll(t, s, tc.from, tc.to, StreamOptions{BatchBytes: 5 * bs, Buffers: 2}, wanted)
			if len(seen) != len(want) {
				t.Fatalf("visited %d changes, Diff gives %d", len(seen), len(want))
			}
			reads := 0
			for i := range want {
				if seen[i] != want[i] {
					t.Fatalf("change %d: visited %+v, Diff gives %+v", i, seen[i], want[i])
				}
				if !want[i].Zero && (i+1)%2 == 0 {
					reads++
					b := want[i].Block
					if !bytes.Equal(got[b], img[b*bs:(b+1)*bs]) {
						t.Fatalf("block %d: data differs from the snapshot's", b)
					}
				}
			}
			if len(got) != reads {
				t.Fatalf("%d blocks handed out, %d wanted", len(got), reads)
			}
			if reads > 5 && batches < 2 {
				t.Fatalf("%d blocks in %d batch(es) of at most 5", reads, batches)
			}
		})
	}
	if _, err := s.StreamDiff(context.Background(), nil, Point{Disk: "d"}, StreamOptions{Visit: func(Change) (bool, error) { return true, nil }, Data: func(b *BlockBatch) error { b.Release(); return nil }}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("stream of a disk's head: %v, want ErrInvalid", err)
	}
}

// TestStreamDiffSurvivesCleaner: the cleaner moves every record a batch
// was about to read (and removes their segments) between the diff and the
// read; the stream looks the blocks up again and reads the right data.
func TestStreamDiffSurvivesCleaner(t *testing.T) {
	s := streamStore(t)
	const bs = 4096
	rng := rand.New(rand.NewPCG(3, 4))
	for _, d := range []string{"keep", "junk"} {
		if _, err := s.CreateDisk(d, 1200*bs, bs); err != nil {
			t.Fatal(err)
		}
	}
	// One block of "keep" for two of "junk", interleaved in the log, so
	// that once "junk" is deleted every segment is a third live.
	for b := uint64(0); b < 600; b++ {
		streamWrite(t, s, "keep", rng, []uint64{b}, bs)
		streamWrite(t, s, "junk", rng, []uint64{2 * b, 2*b + 1}, bs)
	}
	if _, err := s.CreateSnapshot("s", []string{"keep"}, "manual"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDisk("junk", true); err != nil {
		t.Fatal(err)
	}
	r, err := s.OpenSnapshotDisk("s", "keep")
	if err != nil {
		t.Fatal(err)
	}
	img := make([]byte, r.Size())
	if _, err := r.ReadAt(img, 0); err != nil {
		t.Fatal(err)
	}
	r.Close()
	var gc GCStats
	first := true
	got, _, _ := streamAll(t, s, nil, Point{Snapshot: "s", Disk: "keep"}, StreamOptions{BatchBytes: 64 << 20}, func(c Change) bool {
		if first {
			first = false
			var err error
			if gc, err = s.GC(); err != nil {
				t.Error(err)
			}
		}
		return true
	})
	if gc.SegmentsCleaned == 0 || gc.BytesRelocated == 0 {
		t.Fatalf("the cleaner moved nothing (%+v): the test proves nothing", gc)
	}
	if len(got) != 600 {
		t.Fatalf("%d blocks read, want 600", len(got))
	}
	for b, data := range got {
		if !bytes.Equal(data, img[b*bs:(b+1)*bs]) {
			t.Fatalf("block %d differs from the snapshot's", b)
		}
	}
}

// TestStreamDiffEncrypted: a streamed diff of an encrypted disk hands out
// plaintext and the plaintext's SHA-256, as Diff and reads do.
func TestStreamDiffEncrypted(t *testing.T) {
	s := streamStore(t)
	_, key := writeKeyFile(t, "k", "correct horse battery staple\n", 0o600)
	const bs = 4096
	if _, err := s.CreateEncryptedDisk("sec", 64*bs, bs, key); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	streamWrite(t, s, "sec", rng, []uint64{0, 1, 2, 5, 9, 10, 11, 40}, bs)
	if _, err := s.CreateSnapshot("e1", []string{"sec"}, "manual"); err != nil {
		t.Fatal(err)
	}
	streamWrite(t, s, "sec", rng, []uint64{1, 30}, bs)
	if _, err := s.CreateSnapshot("e2", []string{"sec"}, "manual"); err != nil {
		t.Fatal(err)
	}
	for _, from := range []*Point{nil, {Snapshot: "e1", Disk: "sec"}} {
		to := Point{Snapshot: "e2", Disk: "sec"}
		var want []Change
		if _, err := s.Diff(from, to, func(c Change) error { want = append(want, c); return nil }); err != nil {
			t.Fatal(err)
		}
		r, err := s.OpenSnapshotDisk("e2", "sec")
		if err != nil {
			t.Fatal(err)
		}
		img := make([]byte, r.Size())
		if _, err := r.ReadAt(img, 0); err != nil {
			t.Fatal(err)
		}
		r.Close()
		got, seen, _ := streamAll(t, s, from, to, StreamOptions{BatchBytes: 3 * bs}, func(c Change) bool { return !c.Zero })
		if len(seen) != len(want) || len(got) != len(want) {
			t.Fatalf("from %v: visited %d, read %d, Diff gives %d", from, len(seen), len(got), len(want))
		}
		for i, c := range want {
			if seen[i] != c {
				t.Fatalf("change %d: %+v, Diff gives %+v", i, seen[i], c)
			}
			if !bytes.Equal(got[c.Block], img[c.Block*bs:(c.Block+1)*bs]) {
				t.Fatalf("block %d: data differs from the snapshot's", c.Block)
			}
		}
	}
}
