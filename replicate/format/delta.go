package format

import (
	"fmt"
	"math/bits"
)

// Delta payloads (the stored bytes of a delta entry, after decompression):
//
//	0  version       1 (1)
//	1  piece shift   1 (log2 of the piece size: 12, 4 KiB pieces)
//	2  mask          ceil(n/8) bytes, n = raw length / piece size: bit i
//	                 (byte i/8, bit i%8 from the low end) set when piece
//	                 i is in the payload
//	.  pieces        the set pieces, in order, piece size bytes each
//
// A delta rebuilds its chunk as the base chunk's raw bytes (of the same
// raw length, a multiple of the piece size) with the listed pieces put
// over them. It has no checksum of its own: the record that holds it is
// authenticated by its GCM tag (which also binds the entry, base id
// included), and every rebuilt chunk is checked against its chunk id (an
// HMAC of its SHA-256) before it is used, so a wrong base or a damaged
// piece gives an error, never wrong bytes.
const (
	DeltaVersion    = 1
	DeltaPieceShift = 12
	// DeltaPiece is the unit at which deltas compare blocks: 4 KiB, the
	// page size and the common write size.
	DeltaPiece = 1 << DeltaPieceShift
)

// MakeDelta compares block with base (the same length, a multiple of
// DeltaPiece, more than one piece) at DeltaPiece pieces and, when at most
// half of the pieces differ and at least one does, appends the delta
// payload to dst. ok false: no delta (it would not pay, or the sizes do
// not fit): the block is stored whole.
func MakeDelta(dst, base, block []byte) (out []byte, ok bool) {
	n := len(block) / DeltaPiece
	if len(base) != len(block) || n < 2 || len(block)%DeltaPiece != 0 || len(block) > MaxChunk {
		return dst, false
	}
	var mask [MaxChunk / DeltaPiece / 8]byte
	changed := 0
	for i := range n {
		o := i * DeltaPiece
		if string(base[o:o+DeltaPiece]) != string(block[o:o+DeltaPiece]) {
			mask[i/8] |= 1 << (i % 8)
			changed++
			if changed*2 > n {
				return dst, false
			}
		}
	}
	if changed == 0 {
		return dst, false
	}
	dst = append(dst, DeltaVersion, DeltaPieceShift)
	dst = append(dst, mask[:(n+7)/8]...)
	for i := range n {
		if mask[i/8]&(1<<(i%8)) != 0 {
			dst = append(dst, block[i*DeltaPiece:(i+1)*DeltaPiece]...)
		}
	}
	return dst, true
}

// ApplyDelta rebuilds a chunk into dst from its base's raw bytes and a
// delta payload; len(dst) and len(base) must be the chunk's raw length.
// dst may be base. A payload that does not fit (version, piece size,
// length, mask) is an error wrapping ErrCorrupt (ErrUnsupportedVersion for
// a newer version); dst is then undefined.
func ApplyDelta(dst, base, payload []byte) error {
	const what = "delta"
	if len(dst) != len(base) {
		return corrupt(what, "base of %d bytes for a chunk of %d", len(base), len(dst))
	}
	if len(payload) < 2 {
		return corrupt(what, "payload of %d bytes", len(payload))
	}
	if payload[0] != DeltaVersion {
		if payload[0] > DeltaVersion {
			return fmt.Errorf("%w: delta version %d", ErrUnsupportedVersion, payload[0])
		}
		return corrupt(what, "version %d", payload[0])
	}
	if payload[1] != DeltaPieceShift {
		return corrupt(what, "piece shift %d", payload[1])
	}
	if len(dst)%DeltaPiece != 0 || len(dst) == 0 || len(dst) > MaxChunk {
		return corrupt(what, "chunk of %d bytes is not whole pieces", len(dst))
	}
	n := len(dst) / DeltaPiece
	mb := (n + 7) / 8
	if len(payload) < 2+mb {
		return corrupt(what, "payload of %d bytes, mask of %d", len(payload), mb)
	}
	mask := payload[2 : 2+mb]
	set := 0
	for i, b := range mask {
		if i == mb-1 && n%8 != 0 && b>>(n%8) != 0 {
			return corrupt(what, "mask bits past piece %d", n)
		}
		set += bits.OnesCount8(b)
	}
	pieces := payload[2+mb:]
	if set == 0 || len(pieces) != set*DeltaPiece {
		return corrupt(what, "%d pieces set, %d bytes of pieces", set, len(pieces))
	}
	if &dst[0] != &base[0] {
		copy(dst, base)
	}
	for i := range n {
		if mask[i/8]&(1<<(i%8)) != 0 {
			copy(dst[i*DeltaPiece:], pieces[:DeltaPiece])
			pieces = pieces[DeltaPiece:]
		}
	}
	return nil
}
