package replicate

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

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
