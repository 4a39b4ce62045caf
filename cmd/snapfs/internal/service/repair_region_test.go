package service

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/rowstore"
)

// TestRepairFromRegion is issue 7's end-to-end repair: blocks synced to a
// region, bytes flipped in the local segments, `check --read-data` finds
// every flip (exit 6), no read returns wrong data, and `repair
// --from-region` (through the control socket, as the CLI with a daemon)
// restores every disk and snapshot byte for byte; check is clean after.
func TestRepairFromRegion(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	opts := rowstore.Options{GCInterval: -1, SyncInterval: -1, ReserveBytes: -1}
	if err := rowstore.Create(storeDir, opts); err != nil {
		t.Fatal(err)
	}
	st, err := rowstore.Open(storeDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLocal(st, storeDir)
	defer l.Close()
	c := serve(t, l)

	req := fileRegion(t, dir)
	if _, err := c.AddRegion(ctx, req); err != nil {
		t.Fatal(err)
	}
	// Two disks of random data with holes, two snapshots with changes between.
	rng := rand.New(rand.NewSource(1))
	want := map[string][]byte{}
	for _, d := range []string{"d1", "d2"} {
		if _, err := c.CreateDisk(ctx, CreateDiskRequest{Name: d, Size: 4 << 20, BlockSize: 4 << 10}); err != nil {
			t.Fatal(err)
		}
	}
	write := func(snap string) {
		for _, d := range []string{"d1", "d2"} {
			h, err := st.OpenDisk(d)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 64; i++ {
				buf := make([]byte, 4<<10*(1+rng.Intn(8)))
				rng.Read(buf)
				if _, err := h.WriteAt(buf, int64(rng.Intn(900))*4096); err != nil {
					t.Fatal(err)
				}
			}
			if err := h.Sync(); err != nil {
				t.Fatal(err)
			}
			h.Close()
		}
		if _, err := c.CreateSnapshot(ctx, snap, []string{"d1", "d2"}); err != nil {
			t.Fatal(err)
		}
	}
	write("s1")
	write("s2")
	read := func(what string, open func() (interface {
		ReadAt([]byte, int64) (int, error)
		Close() error
	}, error)) []byte {
		r, err := open()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		buf := make([]byte, 4<<20)
		if _, err := r.ReadAt(buf, 0); err != nil {
			return nil // a corrupt block: an error, never data
		}
		return buf
	}
	type rc = interface {
		ReadAt([]byte, int64) (int, error)
		Close() error
	}
	readAll := func() map[string][]byte {
		got := map[string][]byte{}
		for _, s := range []string{"s1", "s2"} {
			for _, d := range []string{"d1", "d2"} {
				got[s+"/"+d] = read(s+"/"+d, func() (rc, error) { return st.OpenSnapshotDisk(s, d) })
			}
		}
		return got
	}
	want = readAll()
	if _, err := c.Sync(ctx, SyncRequest{Region: "dr"}, nil); err != nil {
		t.Fatal(err)
	}

	// Flip bytes in the segments (behind the engine's back, as a bad disk would).
	segs, _ := filepath.Glob(filepath.Join(storeDir, "segments", "*.seg"))
	flips := 0
	for _, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) < 1<<16 {
			continue
		}
		for i := 0; i < 3; i++ {
			b[4096+rng.Intn(len(b)-4096)] ^= 0x5a
			flips++
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if flips == 0 {
		t.Fatal("no segment to corrupt")
	}
	for k, v := range readAll() {
		if v != nil && !bytes.Equal(v, want[k]) {
			t.Fatalf("%s: read returned wrong data instead of an error", k)
		}
	}
	rep, err := c.CheckStore(ctx, CheckStoreRequest{ReadData: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatalf("check found none of %d flips", flips)
	}
	t.Logf("%d flips: %d problems", flips, len(rep.Problems))

	rr, err := c.RepairFromRegion(ctx, "dr", nil)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	t.Logf("repaired %d, left %+v", rr.Repaired, rr.Unrepaired)
	if rr.Repaired == 0 {
		t.Fatal("repair repaired nothing")
	}
	for k, v := range readAll() {
		if !bytes.Equal(v, want[k]) {
			t.Fatalf("%s differs after repair", k)
		}
	}
	rep, err = c.CheckStore(ctx, CheckStoreRequest{ReadData: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems { // repair cleaned the segments holding bad records
		t.Errorf("after repair: %+v", p)
	}
	if len(rr.Unrepaired) != 0 {
		t.Errorf("left after repair: %+v", rr.Unrepaired)
	}

	// Bad input changes nothing and says so.
	if _, err := c.RepairFromRegion(ctx, "nope", nil); exitcode.Of(err) != exitcode.NotFound {
		t.Errorf("repair from a missing region: %v (exit %d)", err, exitcode.Of(err))
	}
}
