package rowstore

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// Tests of the write-back that hashes copies of its blocks without the
// disk's lock (writeback.go, testHookWriteBackHashing), beside
// TestWriteBackWriteWhileHashing: other interleavings (a whole-block write,
// a snapshot) during the hash.

func rev9HashRaceStore(t *testing.T) (*Store, string, Options, *Disk) {
	dir := fastTempDir(t)
	opts := testOptions()
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDisk("d", 4*rev9BS, rev9BS); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	return s, dir, opts, h
}

func rev9Expect(t *testing.T, what string, r interface {
	ReadAt([]byte, int64) (int, error)
}, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := r.ReadAt(got, 0); err != nil {
		t.Fatalf("%s: read: %v", what, err)
	}
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: byte %d is %q, want %q", what, i, got[i], want[i])
			}
		}
	}
}

// TestRev9HashRaceWholeThenPartial: while a batch hashes its copy of a
// cached block, the block is written whole (its cache entry dropped, the
// block stored at once) and then partly again (a new entry). The batch must
// store neither its old copy over the whole write nor lose the new entry.
func TestRev9HashRaceWholeThenPartial(t *testing.T) {
	s, dir, opts, h := rev9HashRaceStore(t)
	want := make([]byte, 4*rev9BS)
	write := func(p []byte, off int64) {
		if _, err := h.WriteAt(p, off); err != nil {
			t.Error(err)
		}
		copy(want[off:], p)
	}
	write(bytes.Repeat([]byte{'a'}, 100), 50)
	write(bytes.Repeat([]byte{'b'}, 100), rev9BS+50)
	var once sync.Once
	hooked := false
	testHookWriteBackHashing = func() {
		once.Do(func() {
			hooked = true
			write(bytes.Repeat([]byte{'W'}, rev9BS), 0)
			write(bytes.Repeat([]byte{'p'}, 10), 1000)
		})
	}
	defer func() { testHookWriteBackHashing = nil }()
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	testHookWriteBackHashing = nil
	if !hooked {
		t.Fatal("no batch hashed")
	}
	rev9Expect(t, "after sync", h, want)
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	rev9Expect(t, "after a second sync", h, want)
	h.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h, err = s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rev9Expect(t, "after reopen", h, want)
	rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
}

// TestRev9HashRaceSnapshot: a snapshot is taken while a batch hashes its
// copies (the cache is frozen under it): the snapshot holds the writes made
// before it, the head the later ones too, and nothing is stored twice at
// the wrong epoch.
func TestRev9HashRaceSnapshot(t *testing.T) {
	s, dir, opts, h := rev9HashRaceStore(t)
	want := make([]byte, 4*rev9BS)
	write := func(p []byte, off int64) {
		if _, err := h.WriteAt(p, off); err != nil {
			t.Error(err)
		}
		copy(want[off:], p)
	}
	write(bytes.Repeat([]byte{'a'}, 100), 50)
	write(bytes.Repeat([]byte{'b'}, 100), rev9BS+50)
	snapWant := bytes.Clone(want)
	var once sync.Once
	snapDone := make(chan error, 1)
	testHookWriteBackHashing = func() {
		once.Do(func() {
			go func() {
				_, err := s.CreateSnapshot("s1", []string{"d"}, "")
				snapDone <- err
			}()
			time.Sleep(100 * time.Millisecond) // the snapshot freezes the cache meanwhile, if it can
			t.Logf("snapshot ended during the hash: %v", len(snapDone) == 1)
		})
	}
	defer func() { testHookWriteBackHashing = nil }()
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	testHookWriteBackHashing = nil
	select {
	case err := <-snapDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("snapshot did not end")
	}
	write(bytes.Repeat([]byte{'z'}, 100), 120)
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	rev9Expect(t, "head", h, want)
	r, err := s.OpenSnapshotDisk("s1", "d")
	if err != nil {
		t.Fatal(err)
	}
	rev9Expect(t, "snapshot", r, snapWant)
	r.Close()
	h.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h, err = s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rev9Expect(t, "head after reopen", h, want)
	r, err = s.OpenSnapshotDisk("s1", "d")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rev9Expect(t, "snapshot after reopen", r, snapWant)
	rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
}
