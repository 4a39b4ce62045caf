package format

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
)

// Chunk compression codes.
const (
	CompNone = 0
	CompZstd = 1
)

// Entry locates one chunk in a pack's plaintext.
type Entry struct {
	ID     ChunkID
	Offset uint32 // from the start of the pack plaintext
	Length uint32 // stored (maybe compressed) length
	RawLen uint32 // length after decompression: the block size
	Comp   uint8  // CompNone or CompZstd
}

const entrySize = 32 + 4 + 4 + 4 + 1

func appendEntry(b []byte, e Entry) []byte {
	b = append(b, e.ID[:]...)
	b = binary.BigEndian.AppendUint32(b, e.Offset)
	b = binary.BigEndian.AppendUint32(b, e.Length)
	b = binary.BigEndian.AppendUint32(b, e.RawLen)
	return append(b, e.Comp)
}

func readEntry(r *reader) Entry {
	var e Entry
	copy(e.ID[:], r.bytes(32))
	e.Offset, e.Length, e.RawLen, e.Comp = r.u32(), r.u32(), r.u32(), r.u8()
	if r.err == nil && e.Comp > CompZstd {
		r.fail("chunk %v: compression %d", e.ID, e.Comp)
	}
	if r.err == nil && (e.RawLen == 0 || e.RawLen > MaxChunk) {
		r.fail("chunk %v: raw length %d", e.ID, e.RawLen)
	}
	return e
}

// MaxChunk bounds a chunk's raw length (the largest block size).
const MaxChunk = 1 << 20

// Pack plaintext layout (before encryption; big-endian):
//
//	0  magic "SFPK"  4
//	4  version       1 (1)
//	5  reserved      3 (0)
//	8  chunks        the stored bytes of each chunk, back to back
//	T  count         4
//	T+4 entries      count × 45: chunk id(32) offset(4) length(4) rawlen(4) comp(1)
//	end-4 T          4 offset of the table
//
// The table repeats the pack's index inside the pack, so the indexes can be
// rebuilt from the packs alone.
const (
	packMagic   = "SFPK"
	PackVersion = 1
	packHeader  = 8
)

// PackBuilder gathers chunks into a pack plaintext. Its buffer keeps room
// for the envelope in front of the plaintext and behind it, so Seal
// encrypts the pack where it is (no second copy of tens of MiB).
type PackBuilder struct {
	buf     []byte // envelope prefix, then the plaintext so far
	entries []Entry
}

// packPrefix is the room kept for the envelope before the plaintext.
const packPrefix = envHeader + nonceSize

// NewPackBuilder starts a pack with room for about size bytes.
func NewPackBuilder(size int) *PackBuilder { return NewPackBuilderBuf(size, nil) }

// NewPackBuilderBuf starts a pack in buf (reused if its capacity is at
// least what NewPackBuilder would allocate for size; see Buffer).
func NewPackBuilderBuf(size int, buf []byte) *PackBuilder {
	want := packPrefix + size + size/64 + 1024 + tagSize
	if cap(buf) < want {
		buf = make([]byte, 0, want)
	}
	b := buf[:packPrefix+packHeader]
	clear(b)
	copy(b[packPrefix:], packMagic)
	b[packPrefix+4] = PackVersion
	return &PackBuilder{buf: b}
}

// Add appends a chunk's stored bytes.
func (p *PackBuilder) Add(id ChunkID, stored []byte, rawLen int, comp uint8) Entry {
	e := Entry{ID: id, Offset: uint32(len(p.buf) - packPrefix), Length: uint32(len(stored)), RawLen: uint32(rawLen), Comp: comp}
	p.buf = append(p.buf, stored...)
	p.entries = append(p.entries, e)
	return e
}

// Size is the pack's plaintext size so far, without the table.
func (p *PackBuilder) Size() int { return len(p.buf) - packPrefix }

// Len is the number of chunks.
func (p *PackBuilder) Len() int { return len(p.entries) }

// Entries are the chunks added so far.
func (p *PackBuilder) Entries() []Entry { return p.entries }

// Finish appends the table and returns the pack plaintext. The builder must
// not be used afterwards, except for Seal and Buffer.
func (p *PackBuilder) Finish() []byte {
	t := len(p.buf) - packPrefix
	b := binary.BigEndian.AppendUint32(p.buf, uint32(len(p.entries)))
	for _, e := range p.entries {
		b = appendEntry(b, e)
	}
	p.buf = binary.BigEndian.AppendUint32(b, uint32(t))
	return p.buf[packPrefix:]
}

// Seal finishes the pack and seals it in place as an object of type
// TypePack stored under id: the result is what Keys.Seal(TypePack, id,
// p.Finish()) would return (with another random nonce), in the builder's
// buffer. The builder must not be used afterwards, except for Buffer.
func (p *PackBuilder) Seal(k *Keys, id string) ([]byte, error) {
	pt := p.Finish()
	if cap(p.buf)-len(p.buf) < tagSize { // room for the tag, so it seals in place
		p.buf = slices.Grow(p.buf, tagSize)
		pt = p.buf[packPrefix:]
	}
	out := p.buf[:packPrefix]
	copy(out, envMagic)
	out[4], out[5], out[6], out[7] = EnvVersion, TypePack, CipherAESGCM, 0
	if _, err := rand.Read(out[envHeader:packPrefix]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	ad := append(append(make([]byte, 0, envHeader+len(id)), out[:envHeader]...), id...)
	// pt[:0] as dst: GCM encrypts in place and appends the tag.
	ct := k.aead(TypePack).Seal(pt[:0], out[envHeader:packPrefix], pt, ad)
	p.buf = p.buf[:packPrefix+len(ct)]
	return p.buf, nil
}

// Buffer gives the builder's buffer back for reuse by NewPackBuilderBuf
// (after the sealed pack is no longer needed).
func (p *PackBuilder) Buffer() []byte {
	b := p.buf[:0]
	p.buf, p.entries = nil, nil
	return b
}

// DecodePack parses a pack plaintext and returns its table. Every entry's
// range lies inside the chunk area; Chunk slices it.
func DecodePack(b []byte) ([]Entry, error) {
	const what = "pack"
	if len(b) < packHeader+8 || string(b[:4]) != packMagic {
		return nil, corrupt(what, "bad magic or length %d", len(b))
	}
	if b[4] != PackVersion {
		return nil, fmt.Errorf("%w: pack version %d", ErrUnsupportedVersion, b[4])
	}
	t := int(binary.BigEndian.Uint32(b[len(b)-4:]))
	if t < packHeader || t > len(b)-8 {
		return nil, corrupt(what, "table offset %d out of range", t)
	}
	r := &reader{b: b[t : len(b)-4], what: what}
	n := r.u32()
	if r.err == nil && uint64(n)*entrySize != uint64(len(r.b)) {
		return nil, corrupt(what, "table of %d entries in %d bytes", n, len(r.b))
	}
	entries := make([]Entry, 0, n)
	for range n {
		e := readEntry(r)
		if r.err == nil && (e.Offset < packHeader || uint64(e.Offset)+uint64(e.Length) > uint64(t)) {
			r.fail("chunk %v: [%d,+%d) outside the chunk area [%d,%d)", e.ID, e.Offset, e.Length, packHeader, t)
		}
		entries = append(entries, e)
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return entries, nil
}

// Chunk returns the stored bytes of e in a pack plaintext.
func Chunk(pack []byte, e Entry) ([]byte, error) {
	end := uint64(e.Offset) + uint64(e.Length)
	if end > uint64(len(pack)) {
		return nil, corrupt("pack", "chunk %v beyond the pack", e.ID)
	}
	return pack[e.Offset:end], nil
}

// Index layout (plaintext of the 'I' envelope, one per pack, on every store):
//
//	0  magic "SFIX"  4
//	4  version       1 (1)
//	5  reserved      3 (0)
//	8  pack id      16
//	24 sealed size   8 bytes of the encrypted pack (the erasure data length)
//	32 count         4
//	36 entries       count × 45, as in the pack table, ascending by id
const (
	indexMagic   = "SFIX"
	IndexVersion = 1
)

// Index is the decoded index of one pack.
type Index struct {
	Pack       [16]byte
	SealedSize uint64
	Entries    []Entry
}

// Encode returns the index plaintext; entries are sorted by chunk id.
func (x *Index) Encode() []byte {
	es := slices.Clone(x.Entries)
	slices.SortFunc(es, func(a, b Entry) int { return compareID(a.ID, b.ID) })
	b := make([]byte, 0, 36+len(es)*entrySize)
	b = append(b, indexMagic...)
	b = append(b, IndexVersion, 0, 0, 0)
	b = append(b, x.Pack[:]...)
	b = binary.BigEndian.AppendUint64(b, x.SealedSize)
	b = binary.BigEndian.AppendUint32(b, uint32(len(es)))
	for _, e := range es {
		b = appendEntry(b, e)
	}
	return b
}

func compareID(a, b ChunkID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// DecodeIndex parses an index plaintext.
func DecodeIndex(b []byte) (*Index, error) {
	r := &reader{b: b, what: "pack index"}
	if m := r.bytes(4); r.err == nil && string(m) != indexMagic {
		r.fail("bad magic")
	}
	if v := r.u8(); r.err == nil && v != IndexVersion {
		return nil, fmt.Errorf("%w: index version %d", ErrUnsupportedVersion, v)
	}
	if res := r.bytes(3); r.err == nil && (res[0]|res[1]|res[2]) != 0 {
		r.fail("reserved bytes set")
	}
	x := &Index{}
	copy(x.Pack[:], r.bytes(16))
	x.SealedSize = r.u64()
	n := r.u32()
	if r.err == nil && uint64(n)*entrySize != uint64(len(r.b)) {
		r.fail("%d entries in %d bytes", n, len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	x.Entries = make([]Entry, 0, n)
	for i := range n {
		e := readEntry(r)
		if r.err == nil && i > 0 && compareID(x.Entries[i-1].ID, e.ID) >= 0 {
			r.fail("entries not in ascending id order at %d", i)
		}
		x.Entries = append(x.Entries, e)
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return x, nil
}

// OpenPack checks and decrypts a sealed pack stored under id in place, as
// Keys.Open(TypePack, id, sealed) does without a second buffer of the
// pack's size: the plaintext returned aliases sealed, whose content is
// lost either way (on failure it is cleared).
func OpenPack(k *Keys, id string, sealed []byte) ([]byte, error) {
	what := fmt.Sprintf("object %c/%s", TypePack, id)
	if len(sealed) < EnvOverhead || string(sealed[:4]) != envMagic {
		return nil, corrupt(what, "not a sealed envelope")
	}
	if sealed[4] != EnvVersion || sealed[6] != CipherAESGCM || sealed[7] != 0 {
		return nil, fmt.Errorf("%w: %s: envelope version %d cipher %d", ErrUnsupportedVersion, what, sealed[4], sealed[6])
	}
	if sealed[5] != TypePack {
		return nil, corrupt(what, "type %q, want %q", sealed[5], TypePack)
	}
	ad := append(append(make([]byte, 0, envHeader+len(id)), sealed[:envHeader]...), id...)
	ct := sealed[packPrefix:]
	pt, err := k.aead(TypePack).Open(ct[:0], sealed[envHeader:packPrefix], ct, ad)
	if err != nil {
		return nil, corrupt(what, "authentication failed (wrong key or damaged object)")
	}
	return pt, nil
}
