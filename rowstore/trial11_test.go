package rowstore

import (
	"context"
	"math/rand"
	"path/filepath"
	"testing"
	"time"
)

// Trial 11: `snapfs check --read-data` while fio rewrote a disk and
// `snapfs gc` ran reported "record unreadable: segment N: file does not
// exist" for blocks of the disk's head and exited 6 (corrupt); the next
// check, unraced, was clean. A block rewritten in the head's own epoch
// replaces its index entry (same key, a newer sequence number) and the
// cleaner then removes the old record's segment: that is not corruption.
// Unlike TestCheckDuringGC, no snapshot separates the rewrites, so every
// rewrite lands on the same key.
func TestTrial11CheckDuringHeadRewritesAndGC(t *testing.T) {
	dir := filepath.Join(fastTempDir(t), "store")
	opts := Options{SyncInterval: -1, GCInterval: -1, SegmentSize: 64 << 10, CleanBelow: 1.01}
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const nb = 256
	if _, err := s.CreateDisk("d", nb*4096, 4096); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewSource(11))
		d, err := s.OpenDisk("d")
		if err != nil {
			done <- err
			return
		}
		defer d.Close()
		buf := make([]byte, 4096)
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			for j := 0; j < 64; j++ {
				rng.Read(buf)
				if _, err := d.WriteAt(buf, int64(rng.Intn(nb))*4096); err != nil {
					done <- err
					return
				}
			}
			if err := d.Sync(); err != nil {
				done <- err
				return
			}
			if _, err := s.GC(); err != nil {
				done <- err
				return
			}
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	n := 0
	for time.Now().Before(deadline) {
		rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			close(stop)
			<-done
			t.Fatalf("check %d during head rewrites and gc: %d problem(s), first %+v", n, len(rep.Problems), rep.Problems[0])
		}
		n++
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d clean checks during head rewrites and gc", n)
}
