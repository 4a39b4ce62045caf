package rowstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newTestStore creates and opens a store on tmpfs (fastTempDir), closed
// when the test ends.
func newTestStore(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	dir := filepath.Join(fastTempDir(t), "store")
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// TestCorruptBlock flips a byte of a stored block: reading that block fails
// with an error that wraps ErrCorrupt and names the block; other blocks read.
func TestCorruptBlock(t *testing.T) {
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	const bs = 4096
	if _, err := s.CreateDisk("vol", 16*bs, bs); err != nil {
		t.Fatal(err)
	}
	h, _ := s.OpenDisk("vol")
	for b := 0; b < 4; b++ {
		if _, err := h.WriteAt(bytes.Repeat([]byte{byte('A' + b)}, bs), int64(b*bs)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Flip the byte holding the first 'C' in the segment files.
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*"))
	flipped := false
	for _, f := range segs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, bytes.Repeat([]byte{'C'}, 64)); i >= 0 {
			b[i+10] ^= 0xff
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
			flipped = true
			break
		}
	}
	if !flipped {
		t.Fatal("block C not found in any segment")
	}
	s2, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	h2, _ := s2.OpenDisk("vol")
	defer h2.Close()
	buf := make([]byte, bs)
	_, err = h2.ReadAt(buf, 2*bs)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of corrupt block: %v, want ErrCorrupt", err)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "block 2") {
		t.Fatalf("error does not name the block: %v", err)
	}
	for _, b := range []int{0, 1, 3} {
		if _, err := h2.ReadAt(buf, int64(b*bs)); err != nil {
			t.Fatalf("block %d: %v", b, err)
		}
		if buf[0] != byte('A'+b) {
			t.Fatalf("block %d reads %q", b, buf[0])
		}
	}
}

// TestNewerFormatRefused: a store with a newer superblock version is refused.
func TestNewerFormatRefused(t *testing.T) {
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	s.Close()
	sb := newSuperblock()
	sb.Version = FormatVersion + 1
	if err := os.WriteFile(filepath.Join(dir, superblockName), sb.encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, opts); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("open of a newer store: %v, want ErrIncompatible", err)
	}
	sb.Version, sb.Incompat = FormatVersion, 1<<7
	os.WriteFile(filepath.Join(dir, superblockName), sb.encode(), 0o600)
	if _, err := Open(dir, opts); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("open with unknown feature: %v, want ErrIncompatible", err)
	}
	if err := Create(dir, opts); !errors.Is(err, ErrExists) {
		t.Fatalf("create over a store: %v, want ErrExists", err)
	}
}

func FuzzSuperblock(f *testing.F) {
	f.Add(newSuperblock().encode())
	f.Add([]byte("SNAPFSSB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := decodeSuperblock(b)
		if err != nil {
			return
		}
		if !bytes.Equal(sb.encode(), b) {
			t.Fatalf("decoded superblock re-encodes differently")
		}
	})
}

// TestBadInput: bad names, sizes and unknown objects are clear errors that
// change nothing.
func TestBadInput(t *testing.T) {
	s, _ := newTestStore(t, testOptions())
	if _, err := s.CreateDisk("ok", 1<<20, 0); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"empty name", func() error { _, err := s.CreateDisk("", 1<<20, 0); return err }(), ErrInvalid},
		{"dot name", func() error { _, err := s.CreateDisk(".x", 1<<20, 0); return err }(), ErrInvalid},
		{"slash name", func() error { _, err := s.CreateDisk("a/b", 1<<20, 0); return err }(), ErrInvalid},
		{"long name", func() error { _, err := s.CreateDisk(strings.Repeat("a", 65), 1<<20, 0); return err }(), ErrInvalid},
		{"zero size", func() error { _, err := s.CreateDisk("z", 0, 0); return err }(), ErrInvalid},
		{"odd size", func() error { _, err := s.CreateDisk("z", 1000, 0); return err }(), ErrInvalid},
		{"block size", func() error { _, err := s.CreateDisk("z", 1<<20, 3000); return err }(), ErrInvalid},
		{"big block", func() error { _, err := s.CreateDisk("z", 1<<20, 2<<20); return err }(), ErrInvalid},
		{"dup disk", func() error { _, err := s.CreateDisk("ok", 1<<20, 0); return err }(), ErrExists},
		{"shrink", s.ResizeDisk("ok", 512), ErrInvalid},
		{"unknown snap", func() error { _, err := s.CloneDisk("c", "nosnap", "ok"); return err }(), ErrNotFound},
		{"snap unknown disk", func() error { _, err := s.CreateSnapshot("s", []string{"nodisk"}, ""); return err }(), ErrNotFound},
		{"snap no disk", func() error { _, err := s.CreateSnapshot("s", nil, ""); return err }(), ErrInvalid},
		{"snap twice same disk", func() error { _, err := s.CreateSnapshot("s", []string{"ok", "ok"}, ""); return err }(), ErrInvalid},
		{"rollback unknown", s.RollbackDisk("ok", "nosnap", false), ErrNotFound},
		{"delete unknown snap", s.DeleteSnapshot("nosnap"), ErrNotFound},
		{"unknown image", func() error { _, err := s.CreateDiskFromImage("c", "noimg"); return err }(), ErrNotFound},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	disks, _ := s.ListDisks()
	snaps, _ := s.ListSnapshots()
	if len(disks) != 1 || len(snaps) != 0 {
		t.Fatalf("bad input changed the store: %d disks, %d snapshots", len(disks), len(snaps))
	}
	h, _ := s.OpenDisk("ok")
	defer h.Close()
	if _, err := h.WriteAt([]byte{1}, 1<<20); !errors.Is(err, ErrInvalid) {
		t.Fatalf("write past the end: %v", err)
	}
	if _, err := s.CreateSnapshot("s1", []string{"ok"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.RollbackDisk("ok", "s1", false); !errors.Is(err, ErrBusy) {
		t.Fatalf("rollback of an open disk: %v, want ErrBusy", err)
	}
	if err := s.DeleteDisk("ok", false); !errors.Is(err, ErrBusy) {
		t.Fatalf("delete of an open disk: %v, want ErrBusy", err)
	}
}

// TestOpenTwice: a store open in one place is refused elsewhere with ErrBusy.
func TestOpenTwice(t *testing.T) {
	opts := testOptions()
	_, dir := newTestStore(t, opts)
	if _, err := Open(dir, opts); !errors.Is(err, ErrBusy) {
		t.Fatalf("second open: %v, want ErrBusy", err)
	}
}
