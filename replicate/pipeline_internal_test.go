package replicate

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/replicate/erasure"
	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/rowstore"
)

// TestIncompressible: the sample heuristic skips random data and tries
// text, sparse and repetitive data.
func TestIncompressible(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	random := make([]byte, 1<<20)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog; ", 400))[:16<<10]
	sparse := make([]byte, 16<<10)
	for i := 0; i < len(sparse); i += 97 {
		sparse[i] = byte(i)
	}
	hexText := make([]byte, 16<<10) // 4 bits of entropy per byte: compresses to about half
	for i := range hexText {
		hexText[i] = "0123456789abcdef"[rng.IntN(16)]
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"random 16 KiB", random[:16<<10], true},
		{"random 4 KiB", random[:4096], true},
		{"random 1 MiB", random, true},
		{"16 KiB of random repeated", bytes.Repeat(random[:16<<10], 64), false}, // the sample sees the repeats
		{"text", text, false},
		{"sparse", sparse, false},
		{"hex digits", hexText, false},
		{"tiny", random[:100], false},
	} {
		if got := incompressible(tc.b); got != tc.want {
			t.Errorf("%s: incompressible = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRestoreChecksEveryBlock: a pack that authenticates (written with the
// region key) but holds a block that is not its chunk id's content makes
// the restore fail with ErrCorrupt, and no disk is left behind.
func TestRestoreChecksEveryBlock(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	rs, m, _, _ := newInternalRegion(t, root, Options{PackSize: 1 << 20}, 2, 1, 9)
	const bs = 16 << 10
	if _, err := rs.CreateDisk("d", 64*bs, bs); err != nil {
		t.Fatal(err)
	}
	h, err := rs.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	buf := make([]byte, 8*bs)
	for i := range buf {
		buf[i] = byte(rng.Uint32()) // random: stored uncompressed
	}
	if _, err := h.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.CreateSnapshot("s", []string{"d"}, "manual"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(ctx, "r", nil, nil); err != nil {
		t.Fatal(err)
	}
	// A good restore first.
	if _, err := m.Restore(ctx, "r", "s", "d", "good", nil); err != nil {
		t.Fatal(err)
	}
	// Flip a byte of one chunk and seal the pack again with the region key.
	r, err := m.openRegion(ctx, "r", true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	packs, err := r.list(ctx, packDir)
	if err != nil || len(packs) != 1 {
		t.Fatalf("%d packs, %v", len(packs), err)
	}
	var id string
	for id = range packs {
	}
	cs, err := m.loadChunks(ctx, r, chunksRead)
	if err != nil {
		t.Fatal(err)
	}
	pid := mustPackID(id)
	sealed, _, _, err := m.fetchPack(ctx, r, pid, cs.packs[pid].SealedSize)
	if err != nil {
		t.Fatal(err)
	}
	pt, es, err := format.OpenPackTable(r.keys, id, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if es[3].Comp != format.CompNone {
		t.Fatalf("chunk stored compressed (%d): the test flips a raw byte", es[3].Comp)
	}
	pb := format.NewPackBuilder(len(pt))
	for i, e := range es {
		c, err := format.Chunk(pt, e)
		if err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			c[100] ^= 0x40
		}
		pb.Add(e.ID, c, int(e.RawLen), e.Comp)
	}
	resealed, err := pb.Seal(r.keys, id)
	if err != nil {
		t.Fatal(err)
	}
	shards, err := erasure.Encode(resealed, r.k, r.m)
	if err != nil {
		t.Fatal(err)
	}
	for i, sh := range shards {
		if err := r.stores[i].Put(ctx, packDir+id, sh); err != nil {
			t.Fatal(err)
		}
	}
	_, err = m.Restore(ctx, "r", "s", "d", "bad", nil)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("restore of a pack with a wrong block: %v, want ErrCorrupt naming the digest", err)
	}
	ds, err := rs.ListDisks()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Name != "d" && d.Name != "good" {
			t.Fatalf("disk %q left behind by the failed restore", d.Name)
		}
	}
}

// TestEncryptedDiskRoundTrip: an encrypted disk syncs as its plaintext
// (chunk ids from the plaintext's SHA-256, as for a plain disk) and
// restores, full and incremental, into an encrypted disk byte for byte.
func TestEncryptedDiskRoundTrip(t *testing.T) {
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
	if _, err := rs.CreateEncryptedDisk("sec", 32*bs, bs, dkey); err != nil {
		t.Fatal(err)
	}
	write := func(seed uint64, blocks ...int64) {
		h, err := rs.OpenDisk("sec")
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, seed))
		buf := make([]byte, bs)
		for _, b := range blocks {
			for i := range buf {
				buf[i] = byte(rng.Uint32() % 7) // compressible
			}
			if _, err := h.WriteAt(buf, b*bs); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Close(); err != nil {
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
	write(1, 0, 1, 2, 7, 20)
	if _, err := rs.CreateSnapshot("e1", []string{"sec"}, "manual"); err != nil {
		t.Fatal(err)
	}
	write(2, 1, 30)
	if _, err := rs.CreateSnapshot("e2", []string{"sec"}, "manual"); err != nil {
		t.Fatal(err)
	}
	st, err := m.Sync(ctx, "r", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshots != 2 || st.BlocksRead != 7 {
		t.Fatalf("synced %d snapshots, %d blocks read; want 2 and 7", st.Snapshots, st.BlocksRead)
	}
	for i, snap := range []string{"e1", "e2"} {
		to := "back" + snap
		// The region records that the disk was encrypted: a restore into a
		// plain disk is refused and leaves nothing (the delta e2 too).
		if _, err := m.RestoreFrom(ctx, "r", "", snap, "sec", to+"-plain", nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("restore of encrypted %s without a key: %v, want ErrInvalid", snap, err)
		}
		if _, err := rs.GetDisk(to + "-plain"); !errors.Is(err, rowstore.ErrNotFound) {
			t.Fatalf("refused restore left disk %s-plain: %v", to, err)
		}
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
			t.Fatalf("restore %d of %s differs from the snapshot", i, snap)
		}
	}
}
