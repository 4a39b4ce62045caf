package rowstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// repair15Source is a snapshot source with injected faults: it has no
// block by digest, fails for the snapshots in down (an unreachable copy)
// and gives, for the others, the block as it was written; it records what
// it is asked for.
type repair15Source struct {
	bs   int
	down map[string]bool
	asks []repair15Ask
}

type repair15Ask struct {
	snap    string
	id      uint64
	created time.Time
	disk    string
	block   int64
}

func (s *repair15Source) FetchBlock(context.Context, [32]byte, []byte) (bool, error) {
	return false, nil
}

func (s *repair15Source) SnapshotBlock(_ context.Context, snap SnapshotInfo, disk string, b int64, dst []byte) (bool, error) {
	s.asks = append(s.asks, repair15Ask{snap.Name, snap.ID, snap.Created, disk, b})
	if s.down[snap.Name] {
		return false, errors.New("injected: the copy cannot be read")
	}
	copy(dst, blockData(s.bs, int(b), 1))
	return true, nil
}

// plainSource is a source by digest only (not a SnapshotSource).
type plainSource struct{}

func (plainSource) FetchBlock(context.Context, [32]byte, []byte) (bool, error) { return false, nil }

// TestRepair15UnknownDigestSources: a block whose record an index rebuild
// indexed with no digest is asked of the source as block b of disk d of a
// snapshot that sees it, with that snapshot's identity (id and creation
// time); a copy that fails is passed over for the next snapshot (any one
// suffices); a source by digest only, or a version no snapshot sees, leaves
// the block unrepaired saying why.
func TestRepair15UnknownDigestSources(t *testing.T) {
	ctx := context.Background()
	const bs, n = 4096, 8
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	h := createWrittenDisk(t, s, "d", 4*n*bs, bs, n) // generation 1 (blockData)
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if _, err := s.CreateSnapshot(name, []string{"d"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []struct{ b, gen int }{{7, 2}, {9, 2}} { // block 7 again (only the disk sees it), then 9 after it
		if _, err := h.WriteAt(blockData(bs, g.b, g.gen), int64(g.b*bs)); err != nil {
			t.Fatal(err)
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
	for _, want := range [][]byte{blockData(bs, 3, 1), blockData(bs, 7, 2)} {
		found := false
		for _, p := range segs {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if i := bytes.Index(b, want[:64]); i >= 0 {
				b[i+100] ^= 0x5a
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
				found = true
				break
			}
		}
		if !found {
			t.Fatal("record not found")
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	rb, err := Rebuild(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rb.CorruptBlocks != 2 {
		t.Fatalf("rebuild: %d corrupt blocks, want 2", rb.CorruptBlocks)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	why := func(rep RepairReport) map[int64]string {
		out := map[int64]string{}
		for _, p := range rep.Unrepaired {
			if p.Kind == "data" {
				out[p.Block] = p.Message
			}
		}
		return out
	}

	rep, err := s.Repair(ctx, plainSource{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := why(rep); rep.Repaired != 0 || !strings.Contains(w[3], "holds no snapshots") || !strings.Contains(w[7], "no snapshot sees this version") {
		t.Fatalf("from a source by digest only: repaired %d, why %v", rep.Repaired, w)
	}

	src := &repair15Source{bs: bs, down: map[string]bool{"a": true}}
	if rep, err = s.Repair(ctx, src, nil); err != nil {
		t.Fatal(err)
	}
	if w := why(rep); rep.Repaired != 1 || len(w) != 1 || !strings.Contains(w[7], "no snapshot sees this version") {
		t.Fatalf("repaired %d, why %v: want block 3 repaired, block 7 left", rep.Repaired, w)
	}
	var asks []repair15Ask
	for _, name := range []string{"a", "b"} {
		si, err := s.GetSnapshot(name)
		if err != nil {
			t.Fatal(err)
		}
		asks = append(asks, repair15Ask{name, si.ID, si.Created, "d", 3})
	}
	if len(src.asks) != 2 || src.asks[0] != asks[0] || src.asks[1] != asks[1] {
		t.Errorf("source asked for %+v, want %+v", src.asks, asks)
	}
	for _, name := range []string{"a", "b"} {
		r, err := s.OpenSnapshotDisk(name, "d")
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, bs)
		_, err = r.ReadAt(got, 3*bs)
		r.Close()
		if err != nil || !bytes.Equal(got, blockData(bs, 3, 1)) {
			t.Errorf("snapshot %s block 3 after repair: %v", name, err)
		}
	}
}
