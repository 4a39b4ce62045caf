package index

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Version flags.
const (
	// FlagZero marks a hole: the block reads as zeros at this version and
	// nothing is stored for it. Segment, Offset, Length, CRC and Digest are 0.
	FlagZero uint8 = 1 << 0
)

// Version is one stored version of a block: where its record is in the
// segment log and what its plaintext is.
type Version struct {
	Segment uint64   // segment number of the record
	Offset  int64    // offset of the record header in the segment
	Length  uint32   // record length, header and payload
	CRC     uint32   // CRC32C of the record (as stored in its header)
	Digest  [32]byte // SHA-256 of the block's plaintext
	Seq     uint64   // sequence number of the record; relocation keeps it
	Flags   uint8
}

// Zero reports whether the version is a hole.
func (v Version) Zero() bool { return v.Flags&FlagZero != 0 }

const (
	versionValueV1  = 1
	versionValueLen = 1 + 8 + 8 + 4 + 4 + 32 + 8 + 1 + 4
)

// MarshalBinary encodes v as: format version (1 byte), segment, offset,
// length, crc, digest, seq, flags, CRC32C of what precedes.
func (v Version) MarshalBinary() ([]byte, error) { return v.append(nil), nil }

func (v Version) append(dst []byte) []byte {
	b := make([]byte, versionValueLen)
	b[0] = versionValueV1
	binary.LittleEndian.PutUint64(b[1:], v.Segment)
	binary.LittleEndian.PutUint64(b[9:], uint64(v.Offset))
	binary.LittleEndian.PutUint32(b[17:], v.Length)
	binary.LittleEndian.PutUint32(b[21:], v.CRC)
	copy(b[25:57], v.Digest[:])
	binary.LittleEndian.PutUint64(b[57:], v.Seq)
	b[65] = v.Flags
	binary.LittleEndian.PutUint32(b[66:], crc32.Checksum(b[:66], castagnoli))
	return append(dst, b...)
}

// UnmarshalBinary decodes a value made by MarshalBinary. A wrong length,
// version or checksum is an error wrapping ErrCorrupt.
func (v *Version) UnmarshalBinary(b []byte) error {
	if len(b) != versionValueLen {
		return fmt.Errorf("%w: version value of %d bytes", ErrCorrupt, len(b))
	}
	if b[0] != versionValueV1 {
		return fmt.Errorf("%w: version value format %d", ErrCorrupt, b[0])
	}
	if got, want := crc32.Checksum(b[:66], castagnoli), binary.LittleEndian.Uint32(b[66:]); got != want {
		return fmt.Errorf("%w: version value checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	v.Segment = binary.LittleEndian.Uint64(b[1:])
	v.Offset = int64(binary.LittleEndian.Uint64(b[9:]))
	v.Length = binary.LittleEndian.Uint32(b[17:])
	v.CRC = binary.LittleEndian.Uint32(b[21:])
	copy(v.Digest[:], b[25:57])
	v.Seq = binary.LittleEndian.Uint64(b[57:])
	v.Flags = b[65]
	return nil
}
