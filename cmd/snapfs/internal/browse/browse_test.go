package browse

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/snapfs/snapfs/rowstore"
)

const mib = 1 << 20

// image is an in-memory disk image for the probe.
type image []byte

func (im image) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(im)) {
		return 0, errors.New("EOF")
	}
	return copy(p, im[off:]), nil
}

func putFS(im image, off int64, fstype string) {
	switch fstype {
	case "ext4":
		binary.LittleEndian.PutUint16(im[off+1024+56:], 0xEF53)
	case "xfs":
		copy(im[off:], "XFSB")
	case "btrfs":
		copy(im[off+0x10040:], "_BHRfS_M")
	}
}

// gpt writes a protective MBR and a GPT with partitions (first, last LBA).
func gpt(im image, parts [][2]uint64) {
	im[510], im[511] = 0x55, 0xAA
	im[446+4] = 0xEE
	ents := make([]byte, 128*128)
	for i, p := range parts {
		e := ents[i*128:]
		e[0] = 0xAF // any non-zero type GUID
		binary.LittleEndian.PutUint64(e[32:], p[0])
		binary.LittleEndian.PutUint64(e[40:], p[1])
	}
	copy(im[2*sector:], ents)
	h := im[sector : 2*sector]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
	binary.LittleEndian.PutUint32(h[16:], 0)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
}

func TestProbe(t *testing.T) {
	for _, fstype := range []string{"ext4", "xfs", "btrfs"} {
		im := make(image, 4*mib)
		putFS(im, 0, fstype)
		l := Probe(im, int64(len(im)))
		if l.Scheme != "whole" || len(l.Parts) != 1 || l.Parts[0].FSType != fstype || l.Parts[0].Name != "" {
			t.Errorf("%s on the whole disk: %+v", fstype, l)
		}
	}
	if l := Probe(make(image, mib), mib); l.Browsable() || l.Reason == "" {
		t.Errorf("zeros: %+v", l)
	}

	// GPT: p1 ext4, p2 nothing, p3 xfs.
	im := make(image, 8*mib)
	gpt(im, [][2]uint64{{2048, 4095}, {4096, 6143}, {6144, 16383 - 34}})
	putFS(im, 2048*sector, "ext4")
	putFS(im, 6144*sector, "xfs")
	l := Probe(im, int64(len(im)))
	if l.Scheme != "gpt" || len(l.Parts) != 2 || l.Parts[0].Name != "p1" || l.Parts[1].Name != "p3" ||
		l.Parts[0].Offset != 2048*sector || l.Parts[0].Size != 2048*sector || l.Parts[1].FSType != "xfs" {
		t.Errorf("gpt: %+v", l)
	}
	// A wrong checksum: nothing shown, and why.
	im[sector+24] ^= 1 // inside the 92 bytes the checksum covers
	if l := Probe(im, int64(len(im))); l.Browsable() || l.Reason == "" {
		t.Errorf("gpt with a bad header checksum: %+v", l)
	}

	// MBR: slot 2 holds btrfs.
	im = make(image, 8*mib)
	im[510], im[511] = 0x55, 0xAA
	e := im[446+16:]
	e[4] = 0x83
	binary.LittleEndian.PutUint32(e[8:], 2048)
	binary.LittleEndian.PutUint32(e[12:], 8192)
	putFS(im, 2048*sector, "btrfs")
	if l := Probe(im, int64(len(im))); l.Scheme != "mbr" || len(l.Parts) != 1 || l.Parts[0].Name != "p2" || l.Parts[0].FSType != "btrfs" {
		t.Errorf("mbr: %+v", l)
	}
}

// FuzzProbe: any image probes without panicking, and every part found lies
// inside the image.
func FuzzProbe(f *testing.F) {
	im := make(image, 128<<10)
	gpt(im, [][2]uint64{{40, 200}})
	putFS(im, 40*sector, "ext4")
	f.Add([]byte(im[:8<<10]))
	f.Add(bytes.Repeat([]byte{0x55, 0xAA}, 300))
	f.Fuzz(func(t *testing.T, data []byte) {
		buf := make(image, 128<<10)
		copy(buf, data)
		l := Probe(buf, int64(len(buf)))
		for _, p := range l.Parts {
			if p.Offset < 0 || p.Size < 0 || p.Offset+p.Size > int64(len(buf)) {
				t.Fatalf("part outside the image: %+v", p)
			}
		}
		if !l.Browsable() && l.Reason == "" {
			t.Fatalf("nothing browsable and no reason: %+v", l)
		}
	})
}

func TestCompare(t *testing.T) {
	f := func(ino uint64, size int64, mtime int64) Entry {
		return Entry{Ino: ino, Btime: int64(ino) * 7, Mode: unix.S_IFREG | 0o644, Size: size, Mtime: mtime, Ctime: mtime}
	}
	old := TreeEntries{
		"same": f(1, 1, 1), "grown": f(2, 1, 1), "gone": f(3, 1, 1), "moved": f(4, 1, 1),
		"link1": f(5, 1, 1), "link2": f(5, 1, 1), "reused": f(6, 1, 1),
	}
	cur := TreeEntries{
		"same": f(1, 1, 1), "grown": f(2, 9, 2), "new": f(9, 1, 1), "dir/moved2": f(4, 1, 1),
		"link1": f(5, 1, 1), "link3": f(5, 1, 1),
	}
	reused := f(6, 1, 1)
	reused.Btime = 999 // the inode number of a deleted file, given to a new one
	cur["reused"] = reused
	got := map[string]Change{}
	for _, c := range Compare(old, cur) {
		got[c.Kind+" "+c.Path] = c
	}
	want := []string{"modified grown", "deleted gone", "created new", "renamed dir/moved2", "renamed link3", "deleted reused", "created reused"}
	for _, w := range want {
		if _, ok := got[w]; !ok {
			t.Errorf("missing %q in %v", w, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d changes, want %d: %v", len(got), len(want), got)
	}
	if c := got["renamed dir/moved2"]; c.From != "moved" || c.Modified {
		t.Errorf("rename: %+v", c)
	}
}

// TestCopy: a tree copied with its metadata; a destination that exists or
// a canceled copy leaves the target as it was.
func TestCopy(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "d/e"), 0o750))
	must(os.WriteFile(filepath.Join(src, "d/f"), []byte("data"), 0o640))
	must(os.Link(filepath.Join(src, "d/f"), filepath.Join(src, "d/e/g")))
	must(os.Symlink("../f", filepath.Join(src, "d/e/l")))
	sp, err := os.Create(filepath.Join(src, "d/sparse"))
	must(err)
	_, err = sp.WriteAt([]byte("x"), 8*mib)
	must(err)
	must(sp.Close())
	xattr := unix.Setxattr(filepath.Join(src, "d/f"), "user.k", []byte("v"), 0) == nil

	st, err := Copy(context.Background(), []string{filepath.Join(src, "d")}, dst, CopyOptions{})
	must(err)
	if st.Files != 2 || st.HardLinks != 1 || st.Symlinks != 1 || st.Dirs != 2 {
		t.Errorf("stats %+v", st)
	}
	var a, b unix.Stat_t
	must(unix.Lstat(filepath.Join(dst, "d/f"), &a))
	must(unix.Lstat(filepath.Join(dst, "d/e/g"), &b))
	if a.Ino != b.Ino || a.Mode&0o7777 != 0o640 {
		t.Errorf("hard link or mode lost: %+v %+v", a, b)
	}
	var s unix.Stat_t
	must(unix.Lstat(filepath.Join(dst, "d/sparse"), &s))
	if s.Size != 8*mib+1 || s.Blocks*512 > mib {
		t.Errorf("sparse: size %d, %d bytes allocated", s.Size, s.Blocks*512)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "d/e/l")); l != "../f" {
		t.Errorf("symlink -> %q", l)
	}
	if xattr {
		v := make([]byte, 8)
		if n, err := unix.Getxattr(filepath.Join(dst, "d/f"), "user.k", v); err != nil || string(v[:n]) != "v" {
			t.Errorf("xattr: %q %v", v[:max(n, 0)], err)
		}
	}
	if _, err := Copy(context.Background(), []string{filepath.Join(src, "d")}, dst, CopyOptions{}); !errors.Is(err, rowstore.ErrExists) {
		t.Errorf("copy over an existing directory: %v, want ErrExists", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dst2 := t.TempDir()
	if _, err := Copy(ctx, []string{filepath.Join(src, "d")}, dst2, CopyOptions{}); err == nil {
		t.Error("canceled copy succeeded")
	}
	if es, _ := os.ReadDir(dst2); len(es) != 0 {
		t.Errorf("a failed copy left %v", es)
	}
	if _, err := Copy(context.Background(), []string{filepath.Join(src, "nope")}, dst2, CopyOptions{}); !errors.Is(err, rowstore.ErrNotFound) {
		t.Errorf("missing source: %v, want ErrNotFound", err)
	}
}
