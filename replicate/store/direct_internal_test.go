package store

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/integration/testutil"
)

// TestPutDirect: objects of directMin bytes or more are written with
// direct I/O on a file system that takes it (the test directory is on
// ext4 here), read back byte for byte whatever their length (a multiple of
// the alignment or not) and the buffer's alignment (the bounce path), and
// leave no temporary file; likewise on tmpfs (which refused O_DIRECT
// before Linux 6.6: then Put falls back to a buffered write).
func TestPutDirect(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	big := make([]byte, 3<<20+directAlign+1)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	cases := []struct {
		name    string
		skip, n int // the object is big[skip : skip+n]
	}{
		{"aligned", 0, directMin},
		{"tail", 0, directMin + 64 + 5},
		{"unaligned-buffer", 1, 2<<20 + 77},
		{"unaligned-buffer-exact", 64, 3 << 20},
		{"small", 0, directMin - 1},
	}
	for _, c := range cases {
		data := big[c.skip : c.skip+c.n]
		name := "packs/" + c.name
		if err := l.Put(ctx, name, data); err != nil {
			t.Fatalf("%s: put: %v", c.name, err)
		}
		got, err := l.Get(ctx, name, 0, -1)
		if err != nil {
			t.Fatalf("%s: get: %v", c.name, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes, differ from the %d put", c.name, len(got), len(data))
		}
	}
	ents, err := os.ReadDir(filepath.Join(dir, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(cases) {
		t.Fatalf("packs/ holds %d files, want %d (a temporary file left?)", len(ents), len(cases))
	}
	if l.noDirect.Load() {
		t.Fatalf("direct I/O was refused on %s", dir)
	}

	const shm = "/dev/shm"
	if _, err := os.Stat(shm); err != nil {
		testutil.Skipf(t, "no %s: %v", shm, err)
	}
	sd, err := os.MkdirTemp(shm, "snapfs-direct-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sd) })
	m, err := OpenLocal(sd)
	if err != nil {
		t.Fatal(err)
	}
	data := big[:directMin+3]
	if err := m.Put(ctx, "packs/x", data); err != nil {
		t.Fatalf("tmpfs: put: %v", err)
	}
	if got, err := m.Get(ctx, "packs/x", 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("tmpfs: read back: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(sd, "packs")); len(ents) != 1 {
		t.Fatalf("tmpfs: packs/ holds %d files, want 1", len(ents))
	}
}
