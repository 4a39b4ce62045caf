package rowstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand"
	"testing"

	"github.com/snapfs/snapfs/index"
)

// TestDigestBlocks: the digests shared between the caller and its helpers
// are each block's SHA-256, none for a zero block, for every count of
// blocks (serial below 8, shared from there), many times over so the race
// detector sees helpers that start late, early and never.
func TestDigestBlocks(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for _, n := range []int{0, 1, 7, 8, 9, 64, 65, 256} {
		for round := 0; round < 50; round++ {
			datas := make([][]byte, n)
			zero := make([]bool, n)
			for i := range datas {
				datas[i] = make([]byte, 4096)
				if zero[i] = rng.Intn(5) == 0; !zero[i] {
					rng.Read(datas[i])
				}
			}
			got := digestBlocks(datas, zero)
			if len(got) != n {
				t.Fatalf("%d blocks: %d digests", n, len(got))
			}
			for i := range datas {
				want := index.Version{}
				if !zero[i] {
					want.Digest = sha256.Sum256(datas[i])
				}
				if got[i] != want {
					t.Fatalf("%d blocks, round %d: block %d digest %x, want %x", n, round, i, got[i].Digest, want.Digest)
				}
			}
		}
	}
}

// TestLargeWriteDigests: the records of a large write are appended while
// their digests are computed (storeLocked); once synced, the index keeps
// every stored block's SHA-256 (Check with ReadData reads each block and
// verifies it), blocks of zeros written among data ones stay holes, what
// the writes left reads back before and after the sync and after a
// reopen, and so for writers on two disks at once.
func TestLargeWriteDigests(t *testing.T) {
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	const bs, size = 16 << 10, 8 << 20
	rng := rand.New(rand.NewSource(7))
	want := map[string][]byte{}
	for _, name := range []string{"a", "b"} {
		if _, err := s.CreateDisk(name, size, bs); err != nil {
			t.Fatal(err)
		}
		want[name] = make([]byte, size)
	}
	type write struct {
		disk string
		off  int64
		p    []byte
	}
	var writes []write
	for i := 0; i < 24; i++ {
		p := make([]byte, 1<<20)
		rng.Read(p)
		for b := rng.Intn(7); b < len(p)/bs; b += 7 { // some blocks of zeros among the data
			clear(p[b*bs : (b+1)*bs])
		}
		w := write{disk: []string{"a", "b"}[i%2], off: int64(rng.Intn(size/bs-len(p)/bs)) * bs, p: p}
		writes = append(writes, w)
		copy(want[w.disk][w.off:], p)
	}
	errs := make(chan error, 2)
	for _, name := range []string{"a", "b"} {
		go func() {
			h, err := s.OpenDisk(name)
			if err != nil {
				errs <- err
				return
			}
			defer h.Close()
			for _, w := range writes {
				if w.disk == name {
					if _, err := h.WriteAt(w.p, w.off); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	readBack := func(s *Store, when string) {
		t.Helper()
		for name, w := range want {
			got := make([]byte, size)
			h, err := s.OpenDisk(name)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			h.Close()
			if !bytes.Equal(got, w) {
				t.Fatalf("%s: disk %s does not read back what was written", when, name)
			}
		}
	}
	readBack(s, "before the sync")
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	readBack(s, "after the sync")
	check := func(s *Store, when string) {
		t.Helper()
		rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.DataChecked == 0 {
			t.Fatalf("%s: check with the data read: %d blocks read, problems %+v", when, rep.DataChecked, rep.Problems)
		}
	}
	check(s, "after the sync")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	readBack(s, "after a reopen")
	check(s, "after a reopen")
}
