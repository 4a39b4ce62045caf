package replicate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/rowstore"
)

// TestEncryptedDiskDeltas: a disk encrypted at rest makes deltas too (its
// parent's plaintext is read through the snapshot's Reader, as the new
// blocks are), and the incremental snapshot restores into an encrypted
// disk byte for byte; an explicit copy of a later snapshot whose parent in
// the region is not the newest local one (CopySnapshot of e3 over e1: e2
// is not in the region) makes its deltas over e1's blocks and restores
// byte for byte; e2, synced after, deduplicates against e3's delta chunks
// and restores byte for byte.
func TestEncryptedDiskDeltas(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	rs, m, _, _ := newInternalRegion(t, root, Options{PackSize: 1 << 20}, 2, 1, 3)
	dkeyFile := filepath.Join(root, "disk.key")
	if err := os.WriteFile(dkeyFile, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dkey, err := rowstore.LoadKeyFile(dkeyFile, false)
	if err != nil {
		t.Fatal(err)
	}
	const bs = 16 << 10
	if _, err := rs.CreateEncryptedDisk("sec", 64*bs, bs, dkey); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	write := func(off int64, n int) {
		h, err := rs.OpenDisk("sec")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := h.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	snap := func(name string) {
		if _, err := rs.CreateSnapshot(name, []string{"sec"}, "manual"); err != nil {
			t.Fatal(err)
		}
	}
	image := func(snap string) []byte {
		r, err := rs.OpenSnapshotDisk(snap, "sec")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		b := make([]byte, r.Size())
		if _, err := r.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		return b
	}
	restore := func(snap string) {
		t.Helper()
		to := "back-" + snap
		if _, err := m.RestoreEncrypted(ctx, "r", "", snap, "sec", to, dkey, nil); err != nil {
			t.Fatal(err)
		}
		r, err := rs.OpenDisk(to)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, r.Size())
		if _, err := r.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		r.Close()
		if !bytes.Equal(got, image(snap)) {
			t.Fatalf("restore of %s differs from the snapshot", snap)
		}
	}
	write(0, 40*bs)
	snap("e1")
	if _, err := m.Sync(ctx, "r", nil, nil); err != nil {
		t.Fatal(err)
	}
	for b := range int64(10) {
		write(b*bs+4096, 4096)
	}
	snap("e2")
	for b := int64(20); b < 25; b++ {
		write(b*bs, 4096)
	}
	snap("e3")
	st, err := m.CopySnapshot(ctx, "r", "e3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Deltas != 15 {
		t.Fatalf("explicit copy of e3 over e1: %+v, want 15 deltas", st)
	}
	restore("e3")
	// e2's changed blocks are e3's first ten: deduplicated against those
	// delta chunks (whose bases are readable), nothing read.
	st, err = m.Sync(ctx, "r", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshots != 1 || st.BlocksRead != 0 || st.BlocksExamined != 10 {
		t.Fatalf("sync of e2: %+v, want its 10 blocks deduplicated", st)
	}
	restore("e2")
}

// TestReadChunkClearsDst: readChunk, the one rebuild of a delta every
// reader uses, leaves no bytes in dst when anything fails after the base
// was read into it: the payload does not read, does not apply, or
// rebuilds to another block; nor when the base is not its id. A delta
// that rebuilds reads byte for byte; the base comes from cached when that
// has a copy that is its id, and is fetched when the copy is not.
func TestReadChunkClearsDst(t *testing.T) {
	ctx := context.Background()
	keys, err := format.DeriveKeys([format.KeySize]byte{1}, [16]byte{2})
	if err != nil {
		t.Fatal(err)
	}
	const bs = 4 * format.DeltaPiece
	base := bytes.Repeat([]byte{7}, bs)
	block := bytes.Clone(base)
	block[5] = 8
	other := bytes.Clone(base)
	other[5] = 9
	payload, ok := format.MakeDelta(nil, base, block)
	otherPayload, ok2 := format.MakeDelta(nil, base, other)
	if !ok || !ok2 {
		t.Fatal("no delta")
	}
	bid, id := keys.ChunkID(sha256.Sum256(base)), keys.ChunkID(sha256.Sum256(block))
	x := &format.Index{Pack: [16]byte{1}, Entries: []format.Entry{
		{ID: bid, RawLen: bs, Sealed: true},
		{ID: id, RawLen: bs, Sealed: true, Base: &bid},
	}}
	cs := &chunkSet{chunks: map[format.ChunkID]chunkLoc{bid: {x: x, i: 0}, id: {x: x, i: 1}}, packs: map[packID]*format.Index{packID(x.Pack): x}}
	fetcher := func(baseBytes, payloadBytes []byte, payloadErr error) chunkFetch {
		return func(_ context.Context, loc chunkLoc, buf []byte) ([]byte, error) {
			if !loc.entry().IsDelta() {
				return baseBytes, nil
			}
			return payloadBytes, payloadErr
		}
	}
	for _, c := range []struct {
		name  string
		fetch chunkFetch
		ok    bool
	}{
		{"rebuilds", fetcher(base, payload, nil), true},
		{"payload-fails", fetcher(base, nil, errors.New("store down")), false},
		{"payload-garbage", fetcher(base, []byte{0xff, 1, 2, 3}, nil), false},
		{"rebuilds-another-block", fetcher(base, otherPayload, nil), false},
		{"base-not-its-id", fetcher(other, payload, nil), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := bytes.Repeat([]byte{1}, bs)
			err := readChunk(ctx, keys, cs, cs.chunks[id], dst, c.fetch, nil)
			if c.ok {
				if err != nil || !bytes.Equal(dst, block) {
					t.Fatalf("delta read: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("a failed delta read gave no error")
			}
			if !bytes.Equal(dst, make([]byte, bs)) {
				t.Fatalf("a failed delta read (%v) left bytes in dst", err)
			}
		})
	}
	// The base from the cache: used when it is its id, fetched when not.
	fetched := 0
	count := func(_ context.Context, loc chunkLoc, buf []byte) ([]byte, error) {
		if !loc.entry().IsDelta() {
			fetched++
			return base, nil
		}
		return payload, nil
	}
	for _, c := range []struct {
		cached    []byte
		wantFetch int
	}{{base, 0}, {other, 1}} {
		fetched = 0
		dst := make([]byte, bs)
		cached := func(_ format.ChunkID, d []byte) bool { copy(d, c.cached); return true }
		if err := readChunk(ctx, keys, cs, cs.chunks[id], dst, count, cached); err != nil || !bytes.Equal(dst, block) || fetched != c.wantFetch {
			t.Fatalf("cached base %v: err %v, equal %v, base fetched %d times, want %d", c.cached[5], err, bytes.Equal(dst, block), fetched, c.wantFetch)
		}
	}
}
