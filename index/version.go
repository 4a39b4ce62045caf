package index

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/snapfs/snapfs/rowstore/ids"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Version flags.
const (
	// FlagZero marks a hole: the block reads as zeros at this version and
	// nothing is stored for it. Segment, Offset, Length and Digest are 0.
	FlagZero uint8 = 1 << 0
)

// Version is one stored version of a block: where its record is in the
// segment log and what its plaintext is.
type Version struct {
	Segment ids.Segment // segment number of the record
	Offset  int64       // offset of the record header in the segment
	Length  uint32      // record length, header and payload
	Digest  [32]byte    // SHA-256 of the block's plaintext
	Seq     ids.Seq     // sequence number of the record; relocation keeps it
	Flags   uint8
}

// Zero reports whether the version is a hole.
func (v Version) Zero() bool { return v.Flags&FlagZero != 0 }

const (
	versionValueV1  = 1
	versionValueV2  = 2
	versionValueLen = 1 + 8 + 8 + 4 + 4 + 32 + 8 + 1 + 4 // format 1

	v2HasDigest = 1 << 0 // format 2 layout bit: the digest follows
)

// MarshalBinary encodes v in value format 2 (see the package doc): format
// version, flags, layout, uvarints of segment, offset, length and sequence
// number, the digest unless it is all zeros (holes), CRC32C of what
// precedes.
func (v Version) MarshalBinary() ([]byte, error) { return v.append(nil), nil }

func (v Version) append(dst []byte) []byte {
	var b [3 + 4*binary.MaxVarintLen64 + 32 + 4]byte
	b[0] = versionValueV2
	b[1] = v.Flags
	n := 3
	n += binary.PutUvarint(b[n:], uint64(v.Segment))
	n += binary.PutUvarint(b[n:], uint64(v.Offset))
	n += binary.PutUvarint(b[n:], uint64(v.Length))
	n += binary.PutUvarint(b[n:], uint64(v.Seq))
	if v.Digest != ([32]byte{}) {
		b[2] |= v2HasDigest
		n += copy(b[n:], v.Digest[:])
	}
	binary.LittleEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
	return append(dst, b[:n+4]...)
}

// UnmarshalBinary decodes a value made by MarshalBinary, or by a snapfs
// that wrote format 1 (its CRC field, redundant with the digest, is
// skipped). A wrong length, version, layout or checksum, or a varint not in
// its shortest form, is an error wrapping ErrCorrupt.
func (v *Version) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty version value", ErrCorrupt)
	}
	switch b[0] {
	case versionValueV1:
		return v.unmarshalV1(b)
	case versionValueV2:
	default:
		return fmt.Errorf("%w: version value format %d", ErrCorrupt, b[0])
	}
	if len(b) < 3+4+4 {
		return fmt.Errorf("%w: version value of %d bytes", ErrCorrupt, len(b))
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return fmt.Errorf("%w: version value checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	if b[2]&^v2HasDigest != 0 {
		return fmt.Errorf("%w: version value layout %#x", ErrCorrupt, b[2])
	}
	var w Version
	w.Flags = b[1]
	n := 3
	var fields [4]uint64
	for i := range fields {
		x, k := binary.Uvarint(body[n:])
		if k <= 0 || k != uvarintLen(x) {
			return fmt.Errorf("%w: version value field %d", ErrCorrupt, i)
		}
		fields[i] = x
		n += k
	}
	if fields[1] > math.MaxInt64 || fields[2] > math.MaxUint32 {
		return fmt.Errorf("%w: version value offset %d or length %d out of range", ErrCorrupt, fields[1], fields[2])
	}
	w.Segment, w.Offset, w.Length, w.Seq = ids.Segment(fields[0]), int64(fields[1]), uint32(fields[2]), ids.Seq(fields[3])
	if b[2]&v2HasDigest != 0 {
		if len(body)-n != 32 {
			return fmt.Errorf("%w: version value of %d bytes", ErrCorrupt, len(b))
		}
		copy(w.Digest[:], body[n:])
		if w.Digest == ([32]byte{}) {
			return fmt.Errorf("%w: version value with an explicit zero digest", ErrCorrupt)
		}
	} else if len(body) != n {
		return fmt.Errorf("%w: version value of %d bytes", ErrCorrupt, len(b))
	}
	*v = w
	return nil
}

func uvarintLen(x uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], x)
}

// unmarshalV1 decodes format 1 (70 bytes, fixed fields).
func (v *Version) unmarshalV1(b []byte) error {
	if len(b) != versionValueLen {
		return fmt.Errorf("%w: version value of %d bytes", ErrCorrupt, len(b))
	}
	if got, want := crc32.Checksum(b[:66], castagnoli), binary.LittleEndian.Uint32(b[66:]); got != want {
		return fmt.Errorf("%w: version value checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	v.Segment = ids.Segment(binary.LittleEndian.Uint64(b[1:]))
	v.Offset = int64(binary.LittleEndian.Uint64(b[9:]))
	v.Length = binary.LittleEndian.Uint32(b[17:])
	copy(v.Digest[:], b[25:57])
	v.Seq = ids.Seq(binary.LittleEndian.Uint64(b[57:]))
	v.Flags = b[65]
	return nil
}
