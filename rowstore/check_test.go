package rowstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// mapSource is a BlockSource over a map from digest to block.
type mapSource map[[32]byte][]byte

func (m mapSource) FetchBlock(_ context.Context, d [32]byte, dst []byte) (bool, error) {
	b, ok := m[d]
	if !ok {
		return false, nil
	}
	copy(dst, b)
	return true, nil
}

// checkStore makes a store with two disks (4 KiB and 16 KiB blocks),
// snapshots, a clone, an image and holes, of whole-block writes only; it
// returns the directory and every block written, by digest.
func checkStore(t *testing.T) (string, mapSource) {
	t.Helper()
	dir := filepath.Join(fastTempDir(t), "store")
	opts := Options{SyncInterval: -1, GCInterval: -1, SegmentSize: 128 << 10}
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	src := mapSource{}
	rng := rand.New(rand.NewSource(1))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, bs, n int) {
		d, err := s.OpenDisk(name)
		must(err)
		for i := 0; i < n; i++ {
			b := make([]byte, bs)
			rng.Read(b)
			src[sha256.Sum256(b)] = b
			_, err := d.WriteAt(b, int64(rng.Intn(64))*int64(bs))
			must(err)
		}
		must(d.Sync())
		d.Close()
	}
	_, err = s.CreateDisk("a", 64*4096, 4096)
	must(err)
	_, err = s.CreateDisk("b", 64*16384, 16384)
	must(err)
	write("a", 4096, 40)
	write("b", 16384, 20)
	_, err = s.CreateSnapshot("s1", []string{"a", "b"}, "")
	must(err)
	write("a", 4096, 20)
	d, _ := s.OpenDisk("a")
	must(d.PunchHole(0, 8*4096))
	d.Close()
	_, err = s.CreateSnapshot("s2", []string{"a"}, "")
	must(err)
	_, err = s.CreateImage("img", "s1", "b")
	must(err)
	_, err = s.CloneDisk("c", "s1", "a")
	must(err)
	write("c", 4096, 10)
	must(s.Close())
	return dir, src
}

// readAll reads every disk, snapshot and image: its hash, or the error.
func readAll(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	hash := func(name string, r io.ReaderAt, size int64) {
		h := sha256.New()
		buf := make([]byte, 4096)
		for off := int64(0); off < size; off += 4096 {
			if _, err := r.ReadAt(buf, off); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("%s at %d: error %v does not wrap ErrCorrupt", name, off, err)
				}
				out[name] = "error"
				return
			}
			h.Write(buf)
		}
		out[name] = fmt.Sprintf("%x", h.Sum(nil))
	}
	disks, _ := s.ListDisks()
	for _, di := range disks {
		d, err := s.OpenDisk(di.Name)
		if err != nil {
			t.Fatal(err)
		}
		hash("disk "+di.Name, d, d.Size())
		d.Close()
	}
	snaps, _ := s.ListSnapshots()
	for _, sn := range snaps {
		for _, sd := range sn.Disks {
			r, err := s.OpenSnapshotDisk(sn.Name, sd.Name)
			if err != nil {
				t.Fatal(err)
			}
			hash("snapshot "+sn.Name+"/"+sd.Name, r, r.Size())
			r.Close()
		}
	}
	imgs, _ := s.ListImages()
	for _, im := range imgs {
		r, err := s.OpenImage(im.Name)
		if err != nil {
			t.Fatal(err)
		}
		hash("image "+im.Name, r, r.Size())
		r.Close()
	}
	return out
}

// TestCheckFindsFlipsRepairRestores flips random bytes in the segments
// (many seeds): check --read-data finds every one, no read returns wrong
// bytes, and Repair from a source of good blocks restores every disk,
// snapshot and image byte for byte, cleaning the segments that held bad
// records; check is then clean, and so is a rebuild from the log.
func TestCheckFindsFlipsRepairRestores(t *testing.T) {
	base, src := checkStore(t)
	opts := Options{SyncInterval: -1, GCInterval: -1}
	s, err := Open(base, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := readAll(t, s)
	rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
	if err != nil || !rep.OK() || !rep.Complete {
		t.Fatalf("clean store: %v %+v", err, rep)
	}
	s.Close()
	t.Logf("clean: %d versions, %d blocks read, %d segments", rep.Versions, rep.DataChecked, rep.Segments)
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	for seed := 1; seed <= seeds; seed++ {
		dir := filepath.Join(fastTempDir(t), "store")
		copyTree(t, base, dir)
		rng := rand.New(rand.NewSource(int64(seed)))
		all, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
		var segs []string
		for _, p := range all {
			if fi, err := os.Stat(p); err == nil && fi.Size() > 32 {
				segs = append(segs, p)
			}
		}
		flips := 1 + rng.Intn(4)
		for i := 0; i < flips; i++ {
			p := segs[rng.Intn(len(segs))]
			b, _ := os.ReadFile(p)
			off := 32 + rng.Intn(len(b)-32)
			b[off] ^= byte(1 << rng.Intn(8))
			t.Logf("seed %d: flip %s at %d of %d", seed, filepath.Base(p), off, len(b))
			os.WriteFile(p, b, 0o600)
		}
		s, err := Open(dir, opts)
		if err != nil {
			t.Fatalf("seed %d: open: %v", seed, err)
		}
		got := readAll(t, s)
		bad := 0
		for k, v := range got {
			if v != want[k] {
				if v != "error" {
					t.Fatalf("seed %d: %s read wrong bytes", seed, k)
				}
				bad++
			}
		}
		rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
		if err != nil {
			t.Fatalf("seed %d: check: %v", seed, err)
		}
		if rep.OK() {
			t.Fatalf("seed %d: %d flips not found", seed, flips)
		}
		for _, p := range rep.Problems {
			if p.Kind == "data" && len(p.Disks)+len(p.Snapshots)+len(p.Images) == 0 {
				t.Errorf("seed %d: data problem names no reader: %+v", seed, p)
			}
		}
		if bad > 0 && !hasKind(rep, "data") {
			t.Fatalf("seed %d: reads failed but check found no bad block: %+v", seed, rep.Problems)
		}
		rr, err := s.Repair(context.Background(), src, nil)
		if err != nil {
			t.Fatalf("seed %d: repair: %v", seed, err)
		}
		for _, p := range rr.Unrepaired {
			t.Errorf("seed %d: not repaired: %+v", seed, p)
		}
		if after := readAll(t, s); fmt.Sprint(after) != fmt.Sprint(want) {
			t.Fatalf("seed %d: after repair:\n%v\nwant\n%v", seed, after, want)
		}
		rep2, err := s.Check(context.Background(), CheckOptions{ReadData: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range rep2.Problems {
			t.Errorf("seed %d: check after repair: %+v", seed, p)
		}
		s.Close()
		// The repaired copies survive a reopen and an index rebuild.
		if _, err := Rebuild(dir, opts); err != nil {
			t.Fatalf("seed %d: rebuild: %v", seed, err)
		}
		s, err = Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		if after := readAll(t, s); fmt.Sprint(after) != fmt.Sprint(want) {
			t.Errorf("seed %d: after rebuild:\n%v\nwant\n%v", seed, after, want)
		}
		s.Close()
		t.Logf("seed %d: %d flips, %d problems, %d repaired, %d segments cleaned", seed, flips, len(rep.Problems), rr.Repaired, rr.SegmentsCleaned)
	}
}

func hasKind(r CheckReport, kind string) bool {
	for _, p := range r.Problems {
		if p.Kind == kind {
			return true
		}
	}
	return false
}

// TestCheckMaxDurationResumes: a data pass stopped by MaxDuration saves a
// cursor; the next check continues from it and finishes.
func TestCheckMaxDurationResumes(t *testing.T) {
	dir, _ := checkStore(t)
	s, err := Open(dir, Options{SyncInterval: -1, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := s.Check(context.Background(), CheckOptions{ReadData: true, MaxDuration: time.Nanosecond})
	if err != nil || rep.Complete {
		t.Fatalf("first pass: %v complete=%v", err, rep.Complete)
	}
	if _, err := os.Stat(filepath.Join(dir, checkCursorName)); err != nil {
		t.Fatal(err)
	}
	var total int64 = rep.DataChecked
	for i := 0; i < 1000; i++ {
		rep, err = s.Check(context.Background(), CheckOptions{ReadData: true, MaxDuration: 200 * time.Microsecond})
		if err != nil {
			t.Fatal(err)
		}
		if rep.ResumedFrom == "" {
			t.Fatalf("run %d did not resume", i)
		}
		total += rep.DataChecked
		if rep.Complete {
			break
		}
	}
	if !rep.Complete || !rep.OK() {
		t.Fatalf("never completed: %+v", rep)
	}
	full, _ := s.Check(context.Background(), CheckOptions{ReadData: true})
	if full.ResumedFrom != "" || total < full.DataChecked {
		t.Errorf("resumed runs read %d versions, a full run %d (resumed from %q)", total, full.DataChecked, full.ResumedFrom)
	}
	if _, err := os.Stat(filepath.Join(dir, checkCursorName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cursor left after a complete pass: %v", err)
	}
	_ = bytes.Equal
}

// TestCheckDuringGC: checks running while writes, snapshot deletions and
// the cleaner (relocating every record, removing segments) go on report no
// problem: what GC moved or freed under the check's view is not corruption.
func TestCheckDuringGC(t *testing.T) {
	n := checkWhileRewriting(t, 3, 32, 3*time.Second, func(s *Store, i int) error {
		if _, err := s.CreateSnapshot(fmt.Sprintf("s%d", i), []string{"d"}, ""); err != nil {
			return err
		}
		if i > 2 {
			s.DeleteSnapshot(fmt.Sprintf("s%d", i-2))
		}
		return nil
	})
	t.Logf("%d clean checks during writes, snapshots and gc", n)
}

// checkWhileRewriting runs check --read-data again and again for dur while
// a writer rewrites random blocks of a 256-block disk "d" (perRound 4 KiB
// writes a round, then a sync, then between, then GC, which cleans every
// segment: CleanBelow 1.01), and fails the test at the first check that
// reports a problem. It returns the number of clean checks.
func checkWhileRewriting(t *testing.T, seed int64, perRound int, dur time.Duration, between func(s *Store, round int) error) int {
	t.Helper()
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
		rng := rand.New(rand.NewSource(seed))
		d, err := s.OpenDisk("d")
		if err != nil {
			done <- err
			return
		}
		defer d.Close()
		buf := make([]byte, 4096)
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			for j := 0; j < perRound; j++ {
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
			if between != nil {
				if err := between(s, i); err != nil {
					done <- err
					return
				}
			}
			if _, err := s.GC(); err != nil {
				done <- err
				return
			}
		}
	}()
	deadline := time.Now().Add(dur)
	n := 0
	for time.Now().Before(deadline) {
		rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
		if err != nil {
			close(stop)
			<-done
			t.Fatal(err)
		}
		if !rep.OK() {
			close(stop)
			<-done
			t.Fatalf("check %d during writes and gc: %d problem(s), first %+v", n, len(rep.Problems), rep.Problems[0])
		}
		n++
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return n
}
