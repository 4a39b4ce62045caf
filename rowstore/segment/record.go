package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/snapfs/snapfs/rowstore/ids"
)

// Kind is the type of a record.
type Kind uint8

// Record kinds. A decoder refuses any other value.
const (
	// KindData: the payload is the block's bytes.
	KindData Kind = 1
	// KindZero: the payload is a uint64 LE count n; blocks [Block, Block+n)
	// read as zeros at Epoch.
	KindZero Kind = 2
	// KindPad is reserved for later use; scanners accept and skip it.
	KindPad Kind = 3
	// KindCatalog: the payload is a catalog change (package index encodes
	// it, with its own version and checksum); Layer, Block and Epoch are 0.
	// The catalog of disks, snapshots and images is rebuilt from these.
	KindCatalog Kind = 4
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindZero:
		return "zero"
	case KindPad:
		return "pad"
	case KindCatalog:
		return "catalog"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Sizes and limits of the format.
const (
	HeaderSize     = 48 // record header
	FileHeaderSize = 32 // segment file header
	// MaxPayload is the largest payload a record may carry (a 16 MiB block
	// with room to spare); a larger length field is corruption.
	MaxPayload = 16<<20 + 64
	// Version is the format version of records this package writes (every
	// record header). It only ever moves up.
	Version = 1
	// FileVersion is the format version of the segment file header this
	// package writes. Version 2 gives the header's flags a meaning
	// (FlagCleanerStream); version 1 files (flags 0) are still read, as
	// foreground segments. It only ever moves up.
	FileVersion = 2
)

// File header flags (format version 2).
const (
	// FlagCleanerStream marks a segment of the cleaner's append stream
	// (see "Two append streams" in the package doc).
	FlagCleanerStream uint16 = 1
)

const (
	recordMagic = 0x52505346 // "FSPR" as little-endian bytes
	fileMagic   = "SNAPSEG\x00"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one entry of the log.
type Record struct {
	Kind    Kind
	Flags   uint16
	Layer   ids.Layer
	Block   ids.Block
	Epoch   ids.Epoch
	Seq     ids.Seq // > 0 (except for KindPad)
	Payload []byte
}

// Pos locates a record: its segment, the offset of its header in the file, and
// its total length (header + payload).
type Pos struct {
	Segment ids.Segment
	Offset  int64
	Length  uint32
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d+%d", p.Segment, p.Offset, p.Length) }

// Before reports whether p comes before q in the numbering of the log.
func (p Pos) Before(q Pos) bool {
	return p.Segment < q.Segment || (p.Segment == q.Segment && p.Offset < q.Offset)
}

// Errors of the record decoder.
var (
	ErrCorrupt = errors.New("segment: corrupt record")
	ErrShort   = errors.New("segment: truncated record")
	// ErrInvalid is returned by Append for a record that cannot be written
	// (unknown kind, zero sequence number, oversized or malformed payload).
	ErrInvalid = errors.New("segment: invalid record")
	// ErrIncompatible marks data written by a newer format version.
	ErrIncompatible = errors.New("segment: written by a newer, incompatible format version")
)

// Encode appends the encoded record to dst and returns it. It encodes r as
// given; Append validates records before encoding them.
func Encode(dst []byte, r *Record) []byte {
	var h [HeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:], recordMagic)
	h[4] = Version
	h[5] = byte(r.Kind)
	binary.LittleEndian.PutUint16(h[6:], r.Flags)
	binary.LittleEndian.PutUint64(h[8:], uint64(r.Layer))
	binary.LittleEndian.PutUint64(h[16:], uint64(r.Block))
	binary.LittleEndian.PutUint64(h[24:], uint64(r.Epoch))
	binary.LittleEndian.PutUint64(h[32:], uint64(r.Seq))
	binary.LittleEndian.PutUint32(h[40:], uint32(len(r.Payload)))
	crc := crc32.Update(0, castagnoli, h[:44])
	crc = crc32.Update(crc, castagnoli, r.Payload)
	binary.LittleEndian.PutUint32(h[44:], crc)
	dst = append(dst, h[:]...)
	dst = append(dst, r.Payload...)
	return dst
}

// validate checks the rules a record must obey beyond its checksum.
func validate(r *Record) error { return validateHeader(r, len(r.Payload)) }

// validateHeader is validate for a record whose payload is plen bytes (its
// header alone: scan's BadRecord, segReader.badHeader).
func validateHeader(r *Record, plen int) error {
	switch r.Kind {
	case KindData:
	case KindZero:
		if plen != 8 {
			return fmt.Errorf("zero record with a %d-byte payload", plen)
		}
	case KindPad:
		return nil
	case KindCatalog:
		if plen == 0 {
			return errors.New("catalog record without payload")
		}
		if r.Layer != 0 || r.Block != 0 || r.Epoch != 0 {
			return errors.New("catalog record with a layer, block or epoch")
		}
	default:
		return fmt.Errorf("unknown kind %d", uint8(r.Kind))
	}
	if r.Seq == 0 {
		return errors.New("sequence number 0")
	}
	return nil
}

// headerFields decodes the fields of the record header h (HeaderSize
// bytes) that name the record; nothing is checked.
func headerFields(h []byte) Record {
	return Record{
		Kind:  Kind(h[5]),
		Flags: binary.LittleEndian.Uint16(h[6:]),
		Layer: ids.Layer(binary.LittleEndian.Uint64(h[8:])),
		Block: ids.Block(binary.LittleEndian.Uint64(h[16:])),
		Epoch: ids.Epoch(binary.LittleEndian.Uint64(h[24:])),
		Seq:   ids.Seq(binary.LittleEndian.Uint64(h[32:])),
	}
}

// frame checks the frame of the record header h (HeaderSize bytes): the
// fields every record version keeps in place so that any reader can verify
// a record's checksum (package doc, "Versions"): the magic, a version that
// is not 0, a payload length within MaxPayload. It returns the version and
// the payload length. Decode and the scanner's judgement of a bad record's
// header (segReader.badHeader) both start here.
func frame(h []byte) (version byte, plen int, err error) {
	if m := binary.LittleEndian.Uint32(h[0:]); m != recordMagic {
		return 0, 0, fmt.Errorf("%w: bad magic %#08x", ErrCorrupt, m)
	}
	if h[4] == 0 {
		return 0, 0, fmt.Errorf("%w: record version 0", ErrCorrupt)
	}
	if n := binary.LittleEndian.Uint32(h[40:]); n > MaxPayload {
		return 0, 0, fmt.Errorf("%w: payload length %d", ErrCorrupt, n)
	}
	return h[4], int(binary.LittleEndian.Uint32(h[40:])), nil
}

// checkCRC reports whether the CRC field of the record b (header and
// payload, exactly) matches its bytes once the header fields whose value
// is implied are restored: the magic, the version (Version), the payload
// length (len(b) - HeaderSize), and the kind read as kind. The scanner
// uses it to prove the header of a record whose checksum fails
// (segReader.prove): a damaged magic, version, kind or length field is
// repaired in memory only, and only a CRC match (a false one has a chance
// of 2^-32 per try) makes it believed.
func checkCRC(b []byte, kind Kind) bool {
	var h [44]byte
	copy(h[:], b[:44])
	binary.LittleEndian.PutUint32(h[0:], recordMagic)
	h[4], h[5] = Version, byte(kind)
	binary.LittleEndian.PutUint32(h[40:], uint32(len(b)-HeaderSize))
	crc := crc32.Update(0, castagnoli, h[:])
	crc = crc32.Update(crc, castagnoli, b[HeaderSize:])
	return crc == binary.LittleEndian.Uint32(b[44:])
}

// attributable reports whether a header (its fields and payload length)
// names something a bad record can be attributed to: what Decode would
// accept of it, and no padding or empty data record.
func attributable(r *Record, plen int) bool {
	return validateHeader(r, plen) == nil && r.Kind != KindPad && !(r.Kind == KindData && plen == 0)
}

// Decode decodes one record from b (which starts at a record header). It
// returns the record (Payload aliases b) and its encoded length, or an error
// wrapping ErrCorrupt (bad magic, crc, length, kind, version) or ErrShort (b
// too short to hold the whole record: a torn tail). A record of a version
// newer than Version whose checksum is valid (a record a newer snapfs
// wrote) wraps ErrIncompatible too, and its encoded length is returned
// with the error; with a bad checksum it is damage like any other
// (package doc, "Versions").
func Decode(b []byte) (Record, int, error) {
	if len(b) < HeaderSize {
		return Record{}, 0, fmt.Errorf("%w: %d bytes, header needs %d", ErrShort, len(b), HeaderSize)
	}
	v, plen, err := frame(b)
	if err != nil {
		return Record{}, 0, err
	}
	n := HeaderSize + plen
	if len(b) < n {
		return Record{}, 0, fmt.Errorf("%w: %d bytes, record needs %d", ErrShort, len(b), n)
	}
	crc := crc32.Update(0, castagnoli, b[:44])
	crc = crc32.Update(crc, castagnoli, b[HeaderSize:n])
	if want := binary.LittleEndian.Uint32(b[44:]); crc != want {
		if v != Version {
			return Record{}, 0, fmt.Errorf("%w: record version %d with checksum %#08x, want %#08x: damaged", ErrCorrupt, v, crc, want)
		}
		return Record{}, 0, fmt.Errorf("%w: checksum %#08x, want %#08x", ErrCorrupt, crc, want)
	}
	if v > Version {
		return Record{}, n, fmt.Errorf("%w: %w: record version %d (this build reads %d), checksum valid: written by a newer snapfs", ErrCorrupt, ErrIncompatible, v, Version)
	}
	r := headerFields(b)
	r.Payload = b[HeaderSize:n:n]
	if err := validate(&r); err != nil {
		return Record{}, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return r, n, nil
}

// CorruptError names the place of a record that failed to decode or verify.
// It wraps ErrCorrupt and the underlying decode error.
type CorruptError struct {
	Segment ids.Segment
	Offset  int64
	Err     error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("segment: corrupt record in segment %d at offset %d: %v", e.Segment, e.Offset, e.Err)
}

// Unwrap returns ErrCorrupt and Err.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// fileHeader encodes the header of segment n.
func fileHeader(n ids.Segment, flags uint16) []byte {
	h := make([]byte, FileHeaderSize)
	copy(h, fileMagic)
	binary.LittleEndian.PutUint16(h[8:], FileVersion)
	binary.LittleEndian.PutUint16(h[10:], flags)
	binary.LittleEndian.PutUint64(h[16:], uint64(n))
	binary.LittleEndian.PutUint32(h[28:], crc32.Checksum(h[:28], castagnoli))
	return h
}

// headerFlags returns the flags of a header checkFileHeader accepted.
func headerFlags(h []byte) uint16 { return binary.LittleEndian.Uint16(h[10:]) }

// checkFileHeader verifies the header of segment n.
func checkFileHeader(h []byte, n ids.Segment) error {
	if len(h) < FileHeaderSize {
		return fmt.Errorf("%w: file header of %d bytes", ErrShort, len(h))
	}
	if string(h[:8]) != fileMagic {
		return fmt.Errorf("%w: bad file magic %q", ErrCorrupt, h[:8])
	}
	if got, want := crc32.Checksum(h[:28], castagnoli), binary.LittleEndian.Uint32(h[28:]); got != want {
		return fmt.Errorf("%w: file header checksum %#08x, want %#08x", ErrCorrupt, got, want)
	}
	switch v, fl := binary.LittleEndian.Uint16(h[8:]), binary.LittleEndian.Uint16(h[10:]); {
	case v > FileVersion:
		return fmt.Errorf("%w: file format version %d, this build reads %d", ErrIncompatible, v, FileVersion)
	case v == 0:
		return fmt.Errorf("%w: file format version %d", ErrCorrupt, v)
	case v == 1 && fl != 0, fl&^FlagCleanerStream != 0:
		return fmt.Errorf("%w: file header flags %#x in format version %d", ErrCorrupt, fl, v)
	}
	if got := ids.Segment(binary.LittleEndian.Uint64(h[16:])); got != n {
		return fmt.Errorf("%w: file header names segment %d", ErrCorrupt, got)
	}
	return nil
}
