package rowstore

import (
	"bytes"
	"math/rand"
	"sync"
	"testing"
)

// TestWriteCombined runs many concurrent writers of whole blocks (combined,
// writecombine.go: more writers than combineMax, so combiners hand off),
// with partial writes, reads and syncs beside them, and checks every
// block holds its last write, before and after a reopen.
func TestWriteCombined(t *testing.T) {
	const bs, blocks, writers, rounds = 4096, 256, 3 * combineMax, 40
	s, dir := newTestStore(t, testOptions())
	if _, err := s.CreateDisk("a", blocks*bs, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("a")
	if err != nil {
		t.Fatal(err)
	}
	// Writer w owns the blocks b with b % writers == w (so the last write
	// of a block is known); a multi-block write covers two of them when
	// they are adjacent modulo the ownership, here never: one block each.
	want := make([][]byte, blocks)
	for b := range want {
		want[b] = make([]byte, bs)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers+2)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for i := 0; i < rounds; i++ {
				b := w + writers*rng.Intn((blocks-w+writers-1)/writers)
				p := make([]byte, bs)
				rng.Read(p)
				if i%7 == 3 {
					p = make([]byte, bs) // zeros: not combined, a hole
				}
				if _, err := h.WriteAt(p, int64(b*bs)); err != nil {
					errs <- err
					return
				}
				want[b] = p
				if i%10 == 9 {
					if err := h.Sync(); err != nil {
						errs <- err
						return
					}
				}
			}
		}(w)
	}
	stop := make(chan struct{})
	var side sync.WaitGroup
	side.Add(1)
	go func() { // reads beside the writers
		defer side.Done()
		buf := make([]byte, 16*bs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := h.ReadAt(buf, 0); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	side.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	check := func(h *Disk, what string) {
		got := make([]byte, blocks*bs)
		if _, err := h.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		for b := 0; b < blocks; b++ {
			if !bytes.Equal(got[b*bs:(b+1)*bs], want[b]) {
				t.Fatalf("%s: block %d is not its last write", what, b)
			}
		}
	}
	check(h, "before the reopen")
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	h2, err := s2.OpenDisk("a")
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	check(h2, "after the reopen")
	if err := s2.verifyAccounting(); err != nil {
		t.Fatal(err)
	}
}
