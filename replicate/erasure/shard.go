package erasure

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/zeebo/xxh3"
)

// Header format constants; see the package doc for the layout.
const (
	// HeaderSize is the size of a shard header in bytes (every version).
	HeaderSize = 64
	// Version is the newest shard format version, the one Encode writes.
	Version = 2
	// ChecksumSHA256 is the payload checksum algorithm of version 1
	// (and allowed in version 2): SHA-256, 32 bytes.
	ChecksumSHA256 = 1
	// ChecksumXXH3 is XXH3-128 of the payload (version 2 only, the one
	// Encode writes): 16 bytes, big-endian, followed by 16 zero bytes.
	ChecksumXXH3 = 2

	magic     = "SFEC"
	crcOffset = 60
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Sentinel errors, checked with errors.Is.
var (
	// ErrTooFewShards: fewer than k good shards were given.
	ErrTooFewShards = errors.New("erasure: too few good shards")
	// ErrCorruptShard: a shard's header or payload failed verification.
	ErrCorruptShard = errors.New("erasure: corrupt shard")
	// ErrUnsupportedVersion: a shard of a format version newer than this package.
	ErrUnsupportedVersion = errors.New("erasure: unsupported shard version")
	// ErrInvalidParams: k, m or a length out of range.
	ErrInvalidParams = errors.New("erasure: invalid parameters")
	// ErrInconsistent: good shards disagree on k, m or length and no
	// group of them is large enough to decide.
	ErrInconsistent = errors.New("erasure: shards disagree")
)

// Header is the decoded header of one shard.
type Header struct {
	Version    int
	Checksum   byte // payload checksum algorithm: ChecksumSHA256 or ChecksumXXH3
	K, M       int
	Index      int      // position of the shard: 0..K-1 data, K..K+M-1 parity
	DataLen    int64    // original data length
	PayloadLen int64    // payload bytes following the header
	Sum        [32]byte // checksum of the payload (XXH3-128: 16 bytes, zero padded)
}

// Layout returns the layout the header describes.
func (h Header) Layout() Layout { return Layout{K: h.K, M: h.M, DataLen: h.DataLen} }

// sameObject reports whether two headers describe shards of the same
// encoding. The version and checksum algorithm are not compared: they say
// how a shard is verified, not what it holds, and a region repaired by a
// newer build holds old and new shards of one object side by side.
func (h Header) sameObject(o Header) bool {
	return h.K == o.K && h.M == o.M &&
		h.DataLen == o.DataLen && h.PayloadLen == o.PayloadLen
}

// checksumOK reports whether version v may carry checksum algorithm alg.
func checksumOK(v int, alg byte) bool {
	switch alg {
	case ChecksumSHA256:
		return v == 1 || v == 2
	case ChecksumXXH3:
		return v == 2
	}
	return false
}

// payloadSum is the checksum alg of a payload, in the header's 32-byte
// field. alg must be known (checksumOK).
func payloadSum(alg byte, p []byte) [32]byte {
	if alg == ChecksumXXH3 {
		var s [32]byte
		b := xxh3.Hash128(p).Bytes()
		copy(s[:], b[:])
		return s
	}
	return sha256.Sum256(p)
}

// checksumName names a checksum algorithm in errors.
func checksumName(alg byte) string {
	switch alg {
	case ChecksumSHA256:
		return "SHA-256"
	case ChecksumXXH3:
		return "XXH3-128"
	}
	return fmt.Sprintf("algorithm %d", alg)
}

// Shard is one encoded shard: header followed by payload, ready to store.
type Shard []byte

// Bytes converts shards to the [][]byte that Decode and Repair take.
func Bytes(shards []Shard) [][]byte {
	out := make([][]byte, len(shards))
	for i, s := range shards {
		out[i] = s
	}
	return out
}

// putHeader writes h into b[:HeaderSize], with the header CRC.
func putHeader(b []byte, h Header) {
	copy(b[0:4], magic)
	b[4] = byte(h.Version)
	b[5] = h.Checksum
	b[6] = byte(h.K)
	b[7] = byte(h.M)
	b[8] = byte(h.Index)
	b[9], b[10], b[11] = 0, 0, 0
	binary.BigEndian.PutUint64(b[12:20], uint64(h.DataLen))
	binary.BigEndian.PutUint64(b[20:28], uint64(h.PayloadLen))
	copy(b[28:60], h.Sum[:])
	binary.BigEndian.PutUint32(b[crcOffset:HeaderSize], crc32.Checksum(b[:crcOffset], castagnoli))
}

// ParseHeader decodes and checks a shard header without looking at the
// payload: magic, version, header CRC, parameter ranges and the payload
// length the layout implies. Errors wrap ErrCorruptShard or
// ErrUnsupportedVersion.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < 5 {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than the magic and version", ErrCorruptShard, len(b))
	}
	if string(b[0:4]) != magic {
		return Header{}, fmt.Errorf("%w: bad magic %q", ErrCorruptShard, b[0:4])
	}
	if v := int(b[4]); v < 1 || v > Version {
		if v > Version {
			return Header{}, fmt.Errorf("%w: version %d, this build reads up to %d", ErrUnsupportedVersion, v, Version)
		}
		return Header{}, fmt.Errorf("%w: version %d", ErrCorruptShard, v)
	}
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrCorruptShard, len(b), HeaderSize)
	}
	if want, got := crc32.Checksum(b[:crcOffset], castagnoli), binary.BigEndian.Uint32(b[crcOffset:HeaderSize]); want != got {
		return Header{}, fmt.Errorf("%w: header CRC32C %08x, want %08x", ErrCorruptShard, got, want)
	}
	if !checksumOK(int(b[4]), b[5]) {
		// The header CRC matched, so this is no bit flip: a writer this
		// build does not know (or a version that never had the algorithm).
		if b[5] != ChecksumSHA256 && b[5] != ChecksumXXH3 {
			return Header{}, fmt.Errorf("%w: version %d shard with checksum algorithm %d, this build knows 1 (SHA-256) and 2 (XXH3-128)", ErrUnsupportedVersion, b[4], b[5])
		}
		return Header{}, fmt.Errorf("%w: version %d shard with checksum %s", ErrCorruptShard, b[4], checksumName(b[5]))
	}
	if b[9] != 0 || b[10] != 0 || b[11] != 0 {
		return Header{}, fmt.Errorf("%w: reserved header bytes not zero", ErrCorruptShard)
	}
	h := Header{
		Version:  int(b[4]),
		Checksum: b[5],
		K:        int(b[6]),
		M:        int(b[7]),
		Index:    int(b[8]),
	}
	dataLen := binary.BigEndian.Uint64(b[12:20])
	payloadLen := binary.BigEndian.Uint64(b[20:28])
	if dataLen > 1<<62 || payloadLen > 1<<62 {
		return Header{}, fmt.Errorf("%w: length out of range", ErrCorruptShard)
	}
	h.DataLen, h.PayloadLen = int64(dataLen), int64(payloadLen)
	copy(h.Sum[:], b[28:60])
	if h.Checksum == ChecksumXXH3 && [16]byte(h.Sum[16:]) != [16]byte{} {
		return Header{}, fmt.Errorf("%w: XXH3-128 checksum field not zero padded", ErrCorruptShard)
	}
	l := h.Layout()
	if err := l.validate(); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrCorruptShard, err)
	}
	if h.Index >= l.Shards() {
		return Header{}, fmt.Errorf("%w: index %d, k+m=%d", ErrCorruptShard, h.Index, l.Shards())
	}
	if want := l.ShardSize(); h.PayloadLen != want {
		return Header{}, fmt.Errorf("%w: payload length %d, layout says %d", ErrCorruptShard, h.PayloadLen, want)
	}
	return h, nil
}

// DecodeShard parses a whole shard and verifies it: the header (see
// ParseHeader), the total length, and the checksum of the payload (SHA-256
// or XXH3-128, as the header says). It returns
// the header and the payload, which aliases b.
func DecodeShard(b []byte) (Header, []byte, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return Header{}, nil, err
	}
	if got, want := int64(len(b)-HeaderSize), h.PayloadLen; got != want {
		return Header{}, nil, fmt.Errorf("%w: payload is %d bytes, header says %d", ErrCorruptShard, got, want)
	}
	payload := b[HeaderSize:]
	if payloadSum(h.Checksum, payload) != h.Sum {
		return Header{}, nil, fmt.Errorf("%w: payload %s mismatch (shard %d)", ErrCorruptShard, checksumName(h.Checksum), h.Index)
	}
	return h, payload, nil
}
