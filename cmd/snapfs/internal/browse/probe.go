package browse

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
)

// Layout is what Probe found inside a disk image: the filesystems .files
// shows. Whole is set for a filesystem on the whole disk (no partition
// table); otherwise Parts lists the partitions that hold one, in partition
// number order. A Layout with neither has Reason set.
type Layout struct {
	Scheme string `json:"scheme"` // "whole", "gpt", "mbr" or "" (nothing browsable)
	Parts  []Part `json:"parts,omitempty"`
	Reason string `json:"reason,omitempty"` // why nothing is browsable
}

// Browsable says whether the layout holds a filesystem .files can show.
func (l Layout) Browsable() bool { return len(l.Parts) > 0 }

// Part is one filesystem of a disk: the whole disk (Name "") or partition
// number N of a partition table (Name "pN", the kernel's numbering: the GPT
// entry index + 1, or the MBR primary slot + 1).
type Part struct {
	Name   string `json:"name"`
	Number int    `json:"number"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
	FSType string `json:"fstype"` // "ext4" (ext2/3/4), "xfs" or "btrfs": the kernel driver
}

// Find returns the part named name.
func (l Layout) Find(name string) (Part, bool) {
	for _, p := range l.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return Part{}, false
}

// sector is the logical sector size the partition tables are read with (a
// loop device's default, and what VM disk images use).
const sector = 512

// fsType names the filesystem whose superblock starts the range at off of
// r (of size n), or "" when none of the kinds .files reads is there.
func fsType(r io.ReaderAt, off, n int64) string {
	var b [8]byte
	read := func(at int64, p []byte) bool {
		if at+int64(len(p)) > n {
			return false
		}
		_, err := r.ReadAt(p, off+at)
		return err == nil || (errors.Is(err, io.EOF))
	}
	// ext2/3/4: superblock at 1024, s_magic (le16 0xEF53) at its offset 56.
	if read(1024+56, b[:2]) && binary.LittleEndian.Uint16(b[:2]) == 0xEF53 {
		return "ext4"
	}
	if read(0, b[:4]) && string(b[:4]) == "XFSB" {
		return "xfs"
	}
	// btrfs: primary superblock at 64 KiB, magic at its offset 0x40.
	if read(0x10000+0x40, b[:8]) && string(b[:8]) == "_BHRfS_M" {
		return "btrfs"
	}
	return ""
}

// Probe reads the partition table and filesystem signatures of a disk
// image of size n through r. It reads a few sectors only (never the whole
// disk) and never fails: an unreadable disk is a Layout with a Reason.
func Probe(r io.ReaderAt, n int64) Layout {
	if t := fsType(r, 0, n); t != "" {
		return Layout{Scheme: "whole", Parts: []Part{{Name: "", Offset: 0, Size: n, FSType: t}}}
	}
	mbr := make([]byte, sector)
	if _, err := r.ReadAt(mbr, 0); err != nil && !errors.Is(err, io.EOF) {
		return Layout{Reason: fmt.Sprintf("the first sector cannot be read: %v", err)}
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		if bytes.Count(mbr, []byte{0}) == len(mbr) {
			return Layout{Reason: "no filesystem: the disk starts with zeros (no ext4, xfs or btrfs superblock, no partition table)"}
		}
		return Layout{Reason: "no ext4, xfs or btrfs superblock and no partition table"}
	}
	protective := false
	for i := 0; i < 4; i++ {
		if mbr[446+16*i+4] == 0xEE {
			protective = true
		}
	}
	var l Layout
	var none string
	if protective {
		l, none = probeGPT(r, n)
	} else {
		l, none = probeMBR(r, n, mbr)
	}
	if !l.Browsable() {
		l.Reason = none
	}
	return l
}

func probeMBR(r io.ReaderAt, n int64, mbr []byte) (Layout, string) {
	l := Layout{Scheme: "mbr"}
	seen := 0
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i:]
		typ := e[4]
		start := int64(binary.LittleEndian.Uint32(e[8:])) * sector
		size := int64(binary.LittleEndian.Uint32(e[12:])) * sector
		if typ == 0 || size == 0 {
			continue
		}
		seen++
		switch typ {
		case 0x05, 0x0F, 0x85: // extended: logical partitions are not shown
			continue
		}
		if start <= 0 || start >= n {
			continue
		}
		size = min(size, n-start)
		if t := fsType(io.NewSectionReader(r, start, size), 0, size); t != "" {
			l.Parts = append(l.Parts, Part{Name: "p" + strconv.Itoa(i+1), Number: i + 1, Offset: start, Size: size, FSType: t})
		}
	}
	if seen == 0 {
		return l, "an MBR partition table with no partitions"
	}
	return l, fmt.Sprintf("an MBR partition table whose %d primary partition(s) hold no ext4, xfs or btrfs filesystem", seen)
}

func probeGPT(r io.ReaderAt, n int64) (Layout, string) {
	l := Layout{Scheme: "gpt"}
	h := make([]byte, sector)
	if _, err := r.ReadAt(h, sector); err != nil && !errors.Is(err, io.EOF) {
		return l, fmt.Sprintf("the GPT header cannot be read: %v", err)
	}
	if string(h[:8]) != "EFI PART" {
		return l, "a protective MBR without a GPT header"
	}
	hsize := binary.LittleEndian.Uint32(h[12:])
	if hsize < 92 || hsize > sector {
		return l, "a GPT header of invalid size"
	}
	crc := binary.LittleEndian.Uint32(h[16:])
	hc := append([]byte(nil), h[:hsize]...)
	binary.LittleEndian.PutUint32(hc[16:], 0)
	if crc32.ChecksumIEEE(hc) != crc {
		return l, "a GPT header whose checksum is wrong"
	}
	entLBA := int64(binary.LittleEndian.Uint64(h[72:]))
	count := binary.LittleEndian.Uint32(h[80:])
	esize := binary.LittleEndian.Uint32(h[84:])
	if count == 0 || count > 256 || esize < 128 || esize > 1024 || entLBA <= 1 || entLBA*sector >= n {
		return l, "a GPT header with an invalid partition array"
	}
	ents := make([]byte, int(count)*int(esize))
	if _, err := r.ReadAt(ents, entLBA*sector); err != nil && !errors.Is(err, io.EOF) {
		return l, fmt.Sprintf("the GPT partition array cannot be read: %v", err)
	}
	if crc32.ChecksumIEEE(ents) != binary.LittleEndian.Uint32(h[88:]) {
		return l, "a GPT partition array whose checksum is wrong"
	}
	seen := 0
	for i := 0; i < int(count); i++ {
		e := ents[i*int(esize):]
		if bytes.Count(e[:16], []byte{0}) == 16 {
			continue // unused entry
		}
		seen++
		first, last := int64(binary.LittleEndian.Uint64(e[32:])), int64(binary.LittleEndian.Uint64(e[40:]))
		start, size := first*sector, (last-first+1)*sector
		if first <= 0 || last < first || start >= n {
			continue
		}
		size = min(size, n-start)
		if t := fsType(io.NewSectionReader(r, start, size), 0, size); t != "" {
			l.Parts = append(l.Parts, Part{Name: "p" + strconv.Itoa(i+1), Number: i + 1, Offset: start, Size: size, FSType: t})
		}
	}
	if seen == 0 {
		return l, "a GPT partition table with no partitions"
	}
	return l, fmt.Sprintf("a GPT partition table whose %d partition(s) hold no ext4, xfs or btrfs filesystem", seen)
}
