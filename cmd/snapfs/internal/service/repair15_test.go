package service

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/rowstore"
)

// TestRepair15FromRegionAfterRebuild: a block record of snapshot s1 (synced
// to a 2+1 region) damaged and the index rebuilt from the log, so the
// block is indexed with no digest and reads EIO in the disk and the
// snapshot; RepairFromRegion, through the control socket as the CLI with a
// daemon, mends it from the region's copy of s1: both read back what was
// written and check is clean. A damaged version only the disk's head sees
// is reported unrepaired, saying no snapshot sees it.
func TestRepair15FromRegionAfterRebuild(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	opts := rowstore.Options{GCInterval: -1, SyncInterval: -1, ReserveBytes: -1}
	if err := rowstore.Create(storeDir, opts); err != nil {
		t.Fatal(err)
	}
	open := func() (*rowstore.Store, *Local, *Client) {
		st, err := rowstore.Open(storeDir, opts)
		if err != nil {
			t.Fatal(err)
		}
		l := NewLocal(st, storeDir)
		t.Cleanup(func() { l.Close() })
		return st, l, serve(t, l)
	}
	st, l, c := open()
	if _, err := c.AddRegion(ctx, fileRegion(t, dir)); err != nil {
		t.Fatal(err)
	}
	const bs = 4 << 10
	if _, err := c.CreateDisk(ctx, CreateDiskRequest{Name: "d", Size: 1 << 20, BlockSize: bs}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(15))
	write := func(off int64, n int) []byte {
		t.Helper()
		buf := make([]byte, n)
		rng.Read(buf)
		h, err := st.OpenDisk("d")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if _, err := h.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
		return buf
	}
	data := write(0, 16*bs)
	if _, err := c.CreateSnapshot(ctx, "s1", []string{"d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sync(ctx, SyncRequest{Region: "dr"}, nil); err != nil {
		t.Fatal(err)
	}
	headOnly := write(20*bs, bs)
	write(21*bs, bs) // a valid record after it: its damage is not a torn tail
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	flip := func(content []byte) {
		t.Helper()
		segs, _ := filepath.Glob(filepath.Join(storeDir, "segments", "*.seg"))
		n := 0
		for _, p := range segs {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if i := bytes.Index(b, content[:64]); i >= 0 {
				b[i+100] ^= 0x5a
				n++
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n != 1 {
			t.Fatalf("content found in %d segments", n)
		}
	}
	flip(data[5*bs : 6*bs])
	flip(headOnly)
	if err := os.RemoveAll(filepath.Join(storeDir, "index")); err != nil {
		t.Fatal(err)
	}
	rb, err := rowstore.Rebuild(storeDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rb.CorruptBlocks != 2 {
		t.Fatalf("rebuild: %d corrupt blocks indexed, want 2: %+v", rb.CorruptBlocks, rb)
	}
	st, _, c = open()
	read := func(snap string) ([]byte, error) {
		t.Helper()
		var r interface {
			ReadAt([]byte, int64) (int, error)
			Close() error
		}
		var err error
		if snap == "" {
			r, err = st.OpenDisk("d")
		} else {
			r, err = st.OpenSnapshotDisk(snap, "d")
		}
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		buf := make([]byte, 16*bs)
		_, err = r.ReadAt(buf, 0)
		return buf, err
	}
	for _, s := range []string{"", "s1"} {
		if _, err := read(s); err == nil {
			t.Fatalf("%q: the damaged block read without an error after the rebuild", s)
		}
	}

	rr, err := c.RepairFromRegion(ctx, "dr", nil)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	t.Logf("repaired %d, left %+v", rr.Repaired, rr.Unrepaired)
	if rr.Repaired != 1 || len(rr.Unrepaired) != 1 || rr.Unrepaired[0].Block != 20 ||
		!strings.Contains(rr.Unrepaired[0].Message, "no snapshot sees this version") {
		t.Fatalf("repaired %d, left %+v; want block 5 repaired and block 20 left, saying no snapshot sees it", rr.Repaired, rr.Unrepaired)
	}
	for _, s := range []string{"", "s1"} {
		got, err := read(s)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%q after repair: err %v, equal %v", s, err, bytes.Equal(got, data))
		}
	}
	rep, err := c.CheckStore(ctx, CheckStoreRequest{ReadData: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		if p.Block != 20 && p.Kind == "data" {
			t.Errorf("after repair: %+v", p)
		}
	}
}
