package format

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
)

// Chunk compression codes.
const (
	CompNone = 0
	CompZstd = 1
	// compDelta is the flag of a delta entry in the encoded compression
	// byte of a version 3 entry (its base id follows the entry). It is
	// not kept in Entry.Comp: Entry.Base says it.
	compDelta = 0x80
)

// Entry locates one chunk in a pack.
//
// In a version 1 pack (Sealed false) Offset and Length locate the chunk's
// stored bytes in the pack plaintext (the pack is sealed as a whole). In a
// version 2 pack (Sealed true) they locate the chunk's sealed record
// (nonce, ciphertext, tag) in the pack object itself, the bytes the
// erasure code splits into data shards: a chunk can be fetched and opened
// alone (OpenChunk).
//
// In a version 3 pack an entry may be a delta (Base set): its stored bytes,
// once decompressed, are a delta payload (delta.go) that rebuilds the chunk
// from the full chunk Base; RawLen is still the rebuilt chunk's length.
type Entry struct {
	ID     ChunkID
	Offset uint32 // v1: in the pack plaintext; v2, v3: of the record in the pack object
	Length uint32 // v1: stored (maybe compressed) length; v2, v3: record length (stored + RecordOverhead)
	RawLen uint32 // length after decompression: the block size (of the rebuilt chunk for a delta)
	Comp   uint8  // CompNone or CompZstd
	Sealed bool   // a version 2 or 3 entry (not encoded: implied by the pack or index version)
	// PackVer is the version of the pack the entry is of (not encoded:
	// implied by the pack or index version; 0 in an entry made by hand:
	// a version 2 one when Sealed). A record's additional data holds the
	// pack header, so opening one needs it.
	PackVer uint8
	// Base is the full chunk a delta entry's payload applies to; nil for
	// a full chunk. Only version 3 entries have one. INVARIANT: a base is
	// never itself a delta (depth 1; see delta.go).
	Base *ChunkID
}

// IsDelta reports whether e is a delta (its Base set).
func (e Entry) IsDelta() bool { return e.Base != nil }

// packVer is the pack version e's record was sealed in.
func (e Entry) packVer() uint8 {
	switch {
	case e.PackVer != 0:
		return e.PackVer
	case e.Sealed:
		return PackVersion2
	}
	return PackVersion1
}

// StoredLen is the length of the chunk's stored (maybe compressed) bytes.
func (e Entry) StoredLen() int {
	if e.Sealed {
		return int(e.Length) - RecordOverhead
	}
	return int(e.Length)
}

const entrySize = 32 + 4 + 4 + 4 + 1

// appendEntry encodes e: 45 bytes, and for a delta (version 3 only) the
// flag compDelta in the compression byte and the base id behind it.
func appendEntry(b []byte, e Entry) []byte {
	b = append(b, e.ID[:]...)
	b = binary.BigEndian.AppendUint32(b, e.Offset)
	b = binary.BigEndian.AppendUint32(b, e.Length)
	b = binary.BigEndian.AppendUint32(b, e.RawLen)
	if e.Base == nil {
		return append(b, e.Comp)
	}
	b = append(b, e.Comp|compDelta)
	return append(b, e.Base[:]...)
}

// encodedLen is the length appendEntry gives e.
func (e Entry) encodedLen() int {
	if e.Base != nil {
		return entrySize + 32
	}
	return entrySize
}

// readEntry decodes an entry of a pack or index of version ver.
func readEntry(r *reader, ver uint8) Entry {
	var e Entry
	copy(e.ID[:], r.bytes(32))
	e.Offset, e.Length, e.RawLen, e.Comp = r.u32(), r.u32(), r.u32(), r.u8()
	e.Sealed = ver >= PackVersion2
	e.PackVer = ver
	if r.err == nil && ver >= PackVersion3 && e.Comp&compDelta != 0 {
		e.Comp &^= compDelta
		var base ChunkID
		copy(base[:], r.bytes(32))
		e.Base = &base
		if r.err == nil && base == e.ID {
			r.fail("chunk %v: a delta over itself", e.ID)
		}
	}
	if r.err == nil && e.Comp > CompZstd {
		r.fail("chunk %v: compression %d", e.ID, e.Comp)
	}
	if r.err == nil && (e.RawLen == 0 || e.RawLen > MaxChunk) {
		r.fail("chunk %v: raw length %d", e.ID, e.RawLen)
	}
	if r.err == nil && e.Base != nil && (e.RawLen%DeltaPiece != 0 || e.RawLen < 2*DeltaPiece) {
		r.fail("chunk %v: a delta of raw length %d", e.ID, e.RawLen)
	}
	if r.err == nil && e.Sealed && (e.Length <= RecordOverhead || e.Length > maxRecord || e.Offset < packHeader) {
		r.fail("chunk %v: record [%d,+%d)", e.ID, e.Offset, e.Length)
	}
	return e
}

// MaxChunk bounds a chunk's raw length (the largest block size).
const MaxChunk = 1 << 20

// Pack layouts (big-endian).
//
// Version 1 (read only): the plaintext
//
//	0  magic "SFPK"  4
//	4  version       1 (1)
//	5  reserved      3 (0)
//	8  chunks        the stored bytes of each chunk, back to back
//	T  count         4
//	T+4 entries      count × 45: chunk id(32) offset(4) length(4) rawlen(4) comp(1)
//	end-4 T          4 offset of the table
//
// sealed as a whole in a 'P' envelope (Keys.Seal); the envelope is what
// the erasure code splits.
//
// Version 2 (written): the pack object itself, not enveloped, is what
// the erasure code splits:
//
//	0  magic "SFPK"  4
//	4  version       1 (2)
//	5  cipher        1 (1 = AES-256-GCM)
//	6  reserved      2 (0)
//	8  records       one per chunk, back to back: nonce(12) | ciphertext of
//	                 the stored bytes | tag(16)
//	T  table record  nonce(12) | ciphertext of count(4) + count × 45 | tag(16)
//	end-4 T          4 offset of the table record
//
// Every record is sealed with AES-256-GCM under the pack's own key
// (HMAC-SHA256 of the region's pack-chunks subkey and "pack/" + pack id)
// and a random nonce. A chunk record's additional data is the 8 header
// bytes, 'C', the pack id and the chunk's entry (id, offset, length, raw
// length, compression); the table's is the header, 'T', the pack id and
// T. So a record opens only as the chunk its entry names, at its place,
// in its pack, and a damaged byte anywhere in a record is detected by
// its tag: a range read of one chunk is verified on its own, and a
// failed one falls back to reconstruction from other shards. The table
// repeats the pack's index inside the pack, so the indexes can be
// rebuilt from the packs alone.
const (
	packMagic = "SFPK"
	// PackVersion is the pack format written (3: entries may be deltas).
	PackVersion = PackVersion3
	// PackVersion3 packs have version 3 tables: an entry may be a delta
	// that names its base chunk (written since issue 8).
	PackVersion3 = 3
	// PackVersion2 is the pack format of issue 11 (read only): records
	// sealed one by one, 45-byte entries, no deltas.
	PackVersion2 = 2
	// PackVersion1 is the first pack format (read only).
	PackVersion1 = 1
	packHeader   = 8
	// RecordOverhead is what sealing adds to a chunk in a version 2 pack.
	RecordOverhead = nonceSize + tagSize
	// maxRecord bounds a record's length (zstd never grows a chunk much).
	maxRecord = 2*MaxChunk + RecordOverhead
)

// PackBuilder gathers chunks into a version 2 pack. Add leaves room for
// each chunk's nonce and tag, so Seal encrypts every chunk where it is (no
// second copy of tens of MiB).
//
// A builder made by NewSealingPackBuilder seals records as they come
// instead (Reserve, then SealRecord from any goroutine): sync's workers
// encrypt each block straight from the block they read into the pack, in
// parallel, and Seal only adds the table. Both make the same bytes.
type PackBuilder struct {
	buf     []byte // the pack so far
	entries []Entry
	// Set by NewSealingPackBuilder: the pack's id and record cipher
	// (AES-GCM keeps no state between calls: records are sealed
	// concurrently).
	id     string
	aead   cipher.AEAD
	hdr    [packHeader]byte // the header, read by SealRecord while Reserve appends
	deltas int              // delta entries reserved (their table entries are longer)
}

// NewSealingPackBuilder starts pack id in buf (as NewPackBuilderBuf) for
// records sealed as they are added: Reserve and SealRecord.
func NewSealingPackBuilder(k *Keys, id string, size int, buf []byte) (*PackBuilder, error) {
	aead, err := k.packAEAD(id)
	if err != nil {
		return nil, err
	}
	p := NewPackBuilderBuf(size, buf)
	p.id, p.aead = id, aead
	copy(p.hdr[:], p.buf)
	return p, nil
}

// Reserve makes room for a record of storedLen stored bytes and returns
// its entry and the room, for SealRecord. It never moves the buffer once
// it holds a record (records being sealed may be in it): when the room is
// not there it returns false, and the caller starts another pack. An empty
// pack always takes the record. Reserve must not run concurrently with
// itself or Seal; SealRecord may.
func (p *PackBuilder) Reserve(id ChunkID, storedLen, rawLen int, comp uint8) (Entry, []byte, bool) {
	return p.ReserveDelta(id, nil, storedLen, rawLen, comp)
}

// ReserveDelta is Reserve for a chunk stored as a delta over the full
// chunk base (nil: a full chunk, as Reserve): its stored bytes are a
// delta payload (MakeDelta), maybe compressed; rawLen is the chunk's.
func (p *PackBuilder) ReserveDelta(id ChunkID, base *ChunkID, storedLen, rawLen int, comp uint8) (Entry, []byte, bool) {
	n := storedLen + RecordOverhead
	off := len(p.buf)
	if base != nil {
		b := *base
		base = &b
		p.deltas++
	}
	// Room for the record and, behind it, the table Seal appends (so
	// sealing never copies the pack either).
	need := n + RecordOverhead + 4 + (len(p.entries)+1)*entrySize + p.deltas*32 + 4
	if off+need > cap(p.buf) {
		if len(p.entries) > 0 {
			return Entry{}, nil, false
		}
		p.buf = slices.Grow(p.buf, need)
	}
	e := Entry{ID: id, Offset: uint32(off), Length: uint32(n), RawLen: uint32(rawLen), Comp: comp, Sealed: true, PackVer: PackVersion, Base: base}
	p.buf = p.buf[:off+n]
	p.entries = append(p.entries, e)
	return e, p.buf[off : off+n : off+n], true
}

// SealRecord encrypts stored (len as reserved) into rec, the room Reserve
// returned with e. Records of one pack may be sealed concurrently.
func (p *PackBuilder) SealRecord(e Entry, rec, stored []byte) error {
	if p.aead == nil || len(rec) != len(stored)+RecordOverhead || int(e.Length) != len(rec) {
		return fmt.Errorf("format: SealRecord of %d bytes into a %d-byte record (entry %d bytes; sealing builder %v)", len(stored), len(rec), e.Length, p.aead != nil)
	}
	nonce := rec[:nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("nonce: %w", err)
	}
	p.aead.Seal(rec[nonceSize:nonceSize], nonce, stored, chunkAD(p.hdr[:], p.id, e))
	return nil
}

// Rename moves a sealing builder's pack to id: each record (all sealed
// by SealRecord) is opened under the old id and sealed again, in place,
// under the new one. Sync renames a pack that was filled for long, so
// that the time its id carries stays close to its put. After an error the
// builder must not be sealed (only Buffer).
func (p *PackBuilder) Rename(k *Keys, id string) error {
	if p.aead == nil {
		return fmt.Errorf("format: Rename of a builder that does not seal its records as they come")
	}
	aead, err := k.packAEAD(id)
	if err != nil {
		return err
	}
	for _, e := range p.entries {
		rec := p.buf[e.Offset : e.Offset+e.Length]
		stored, err := openRecord(p.aead, p.hdr[:], p.id, e, rec)
		if err != nil {
			return err
		}
		nonce := rec[:nonceSize]
		if _, err := rand.Read(nonce); err != nil {
			return fmt.Errorf("nonce: %w", err)
		}
		aead.Seal(stored[:0], nonce, stored, chunkAD(p.hdr[:], id, e))
	}
	p.id, p.aead = id, aead
	return nil
}

// NewPackBuilder starts a pack with room for about size bytes.
func NewPackBuilder(size int) *PackBuilder { return NewPackBuilderBuf(size, nil) }

// NewPackBuilderBuf starts a pack in buf (reused if its capacity is at
// least what NewPackBuilder would allocate for size; see Buffer).
func NewPackBuilderBuf(size int, buf []byte) *PackBuilder {
	want := size + size/64 + 1024 + RecordOverhead
	if cap(buf) < want {
		buf = make([]byte, 0, want)
	}
	b := buf[:packHeader]
	clear(b)
	copy(b, packMagic)
	b[4], b[5] = PackVersion, CipherAESGCM
	return &PackBuilder{buf: b}
}

// Add appends a chunk's stored bytes (with room for its nonce and tag).
// The entry returned locates its record in the sealed pack.
func (p *PackBuilder) Add(id ChunkID, stored []byte, rawLen int, comp uint8) Entry {
	e := Entry{ID: id, Offset: uint32(len(p.buf)), Length: uint32(len(stored) + RecordOverhead), RawLen: uint32(rawLen), Comp: comp, Sealed: true, PackVer: PackVersion}
	p.buf = append(p.buf, make([]byte, nonceSize)...)
	p.buf = append(p.buf, stored...)
	p.buf = append(p.buf, make([]byte, tagSize)...)
	p.entries = append(p.entries, e)
	return e
}

// Size is the pack's size so far, without the table.
func (p *PackBuilder) Size() int { return len(p.buf) }

// Len is the number of chunks.
func (p *PackBuilder) Len() int { return len(p.entries) }

// Entries are the chunks added so far.
func (p *PackBuilder) Entries() []Entry { return p.entries }

// chunkAD is the additional data of a chunk record of pack id.
func chunkAD(hdr []byte, id string, e Entry) []byte {
	ad := make([]byte, 0, packHeader+1+len(id)+entrySize)
	ad = append(ad, hdr[:packHeader]...)
	ad = append(ad, 'C')
	ad = append(ad, id...)
	return appendEntry(ad, e)
}

func tableAD(hdr []byte, id string, t uint32) []byte {
	ad := make([]byte, 0, packHeader+1+len(id)+4)
	ad = append(ad, hdr[:packHeader]...)
	ad = append(ad, 'T')
	ad = append(ad, id...)
	return binary.BigEndian.AppendUint32(ad, t)
}

// Seal seals every chunk in place (a sealing builder's were sealed by
// SealRecord: every record reserved must be sealed first), appends the sealed table and returns
// the pack object stored under id (what the erasure code splits), in the
// builder's buffer. The builder must not be used afterwards, except for
// Buffer.
func (p *PackBuilder) Seal(k *Keys, id string) ([]byte, error) {
	aead := p.aead
	if aead != nil && id != p.id {
		return nil, fmt.Errorf("format: pack %s sealed as %s", p.id, id)
	}
	if aead == nil { // not a sealing builder: its records are sealed here
		var err error
		if aead, err = k.packAEAD(id); err != nil {
			return nil, err
		}
		hdr := p.buf[:packHeader]
		for _, e := range p.entries {
			rec := p.buf[e.Offset : e.Offset+e.Length]
			nonce := rec[:nonceSize]
			if _, err := rand.Read(nonce); err != nil {
				return nil, fmt.Errorf("nonce: %w", err)
			}
			pt := rec[nonceSize : len(rec)-tagSize]
			aead.Seal(pt[:0], nonce, pt, chunkAD(hdr, id, e)) // in place; the tag fills the room behind
		}
	}
	t := uint32(len(p.buf))
	tbl := make([]byte, 0, 4+len(p.entries)*entrySize+p.deltas*32)
	tbl = binary.BigEndian.AppendUint32(tbl, uint32(len(p.entries)))
	for _, e := range p.entries {
		tbl = appendEntry(tbl, e)
	}
	p.buf = slices.Grow(p.buf, RecordOverhead+len(tbl)+4)
	nonce := p.buf[t : int(t)+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	p.buf = aead.Seal(p.buf[:int(t)+nonceSize], nonce, tbl, tableAD(p.buf, id, t))
	p.buf = binary.BigEndian.AppendUint32(p.buf, t)
	return p.buf, nil
}

// Buffer gives the builder's buffer back for reuse by NewPackBuilderBuf
// (after the sealed pack is no longer needed).
func (p *PackBuilder) Buffer() []byte {
	b := p.buf[:0]
	p.buf, p.entries, p.aead, p.deltas = nil, nil, nil, 0
	return b
}

// PackObjectVersion tells the pack format of a stored pack object from its
// first bytes: PackVersion1 (an envelope), PackVersion2 or PackVersion3, or
// 0 when it is none of them.
func PackObjectVersion(b []byte) int {
	switch {
	case len(b) >= 4 && string(b[:4]) == envMagic:
		return PackVersion1
	case len(b) >= 5 && string(b[:4]) == packMagic && (b[4] == PackVersion2 || b[4] == PackVersion3):
		return int(b[4])
	}
	return 0
}

// OpenPack checks and decrypts a stored pack object (the bytes the
// erasure code split) in place and returns a buffer that Chunk slices
// with the pack's index entries: for version 1 the plaintext (the
// envelope opened without a second buffer of the pack's size), for
// version 2 the object with every record opened where it is. The result
// aliases sealed, whose content is lost either way.
func OpenPack(k *Keys, id string, sealed []byte) ([]byte, error) {
	pt, _, err := OpenPackTable(k, id, sealed)
	return pt, err
}

// OpenPackTable is OpenPack that also returns the pack's own table (for
// version 1 as DecodePack gives it).
func OpenPackTable(k *Keys, id string, sealed []byte) ([]byte, []Entry, error) {
	what := fmt.Sprintf("object %c/%s", TypePack, id)
	if v := PackObjectVersion(sealed); v == PackVersion2 || v == PackVersion3 {
		return openPack2(k, id, sealed)
	}
	if len(sealed) >= 5 && string(sealed[:4]) == packMagic && sealed[4] > PackVersion {
		return nil, nil, fmt.Errorf("%w: %s: pack version %d", ErrUnsupportedVersion, what, sealed[4])
	}
	if len(sealed) < EnvOverhead || string(sealed[:4]) != envMagic {
		return nil, nil, corrupt(what, "neither a sealed envelope nor a version 2 pack")
	}
	if sealed[4] != EnvVersion || sealed[6] != CipherAESGCM || sealed[7] != 0 {
		return nil, nil, fmt.Errorf("%w: %s: envelope version %d cipher %d", ErrUnsupportedVersion, what, sealed[4], sealed[6])
	}
	if sealed[5] != TypePack {
		return nil, nil, corrupt(what, "type %q, want %q", sealed[5], TypePack)
	}
	const prefix = envHeader + nonceSize
	ad := append(append(make([]byte, 0, envHeader+len(id)), sealed[:envHeader]...), id...)
	ct := sealed[prefix:]
	pt, err := k.aead(TypePack).Open(ct[:0], sealed[envHeader:prefix], ct, ad)
	if err != nil {
		clear(sealed)
		return nil, nil, corrupt(what, "authentication failed (wrong key or damaged object)")
	}
	es, err := DecodePack(pt)
	if err != nil {
		return nil, nil, err
	}
	return pt, es, nil
}

// packTable2 checks a version 2 or 3 pack object's header and trailer and
// returns the offset of its table record.
func packTable2(b []byte, what string) (t uint32, err error) {
	if len(b) < packHeader+RecordOverhead+4+4 || string(b[:4]) != packMagic {
		return 0, corrupt(what, "bad magic or length %d", len(b))
	}
	if (b[4] != PackVersion2 && b[4] != PackVersion3) || b[5] != CipherAESGCM {
		return 0, fmt.Errorf("%w: %s: pack version %d cipher %d", ErrUnsupportedVersion, what, b[4], b[5])
	}
	if b[6]|b[7] != 0 {
		return 0, corrupt(what, "reserved bytes set")
	}
	t = binary.BigEndian.Uint32(b[len(b)-4:])
	if uint64(t) < packHeader || uint64(t)+RecordOverhead+4+4 > uint64(len(b)) {
		return 0, corrupt(what, "table offset %d out of range", t)
	}
	return t, nil
}

func openPack2(k *Keys, id string, b []byte) ([]byte, []Entry, error) {
	what := fmt.Sprintf("pack %s", id)
	t, err := packTable2(b, what)
	if err != nil {
		return nil, nil, err
	}
	aead, err := k.packAEAD(id)
	if err != nil {
		return nil, nil, err
	}
	rec := b[t : len(b)-4]
	tbl, err := aead.Open(rec[nonceSize:nonceSize], rec[:nonceSize], rec[nonceSize:], tableAD(b, id, t))
	if err != nil {
		return nil, nil, corrupt(what, "table: authentication failed (wrong key or damaged object)")
	}
	es, err := decodeTable2(tbl, t, b[4], what)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range es {
		if _, err := openRecord(aead, b[:packHeader], id, e, b[e.Offset:e.Offset+e.Length]); err != nil {
			return nil, nil, err
		}
	}
	return b, es, nil
}

// decodeTable2 parses a version 2 or 3 (ver) table plaintext; every
// record lies in [packHeader, t) and records do not overlap.
func decodeTable2(tbl []byte, t uint32, ver uint8, what string) ([]Entry, error) {
	r := &reader{b: tbl, what: what}
	n := r.u32()
	if r.err == nil && !entriesFit(n, len(r.b), ver) {
		return nil, corrupt(what, "table of %d entries in %d bytes", n, len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	es := make([]Entry, 0, n)
	end := uint64(packHeader)
	for range n {
		e := readEntry(r, ver)
		if r.err == nil && (uint64(e.Offset) < end || uint64(e.Offset)+uint64(e.Length) > uint64(t)) {
			r.fail("chunk %v: record [%d,+%d) outside the record area [%d,%d) or overlapping", e.ID, e.Offset, e.Length, end, t)
		}
		end = uint64(e.Offset) + uint64(e.Length)
		es = append(es, e)
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return es, nil
}

func openRecord(aead cipher.AEAD, hdr []byte, id string, e Entry, rec []byte) ([]byte, error) {
	if len(rec) != int(e.Length) || len(rec) <= RecordOverhead {
		return nil, corrupt("pack "+id, "chunk %v: record of %d bytes, entry says %d", e.ID, len(rec), e.Length)
	}
	pt, err := aead.Open(rec[nonceSize:nonceSize], rec[:nonceSize], rec[nonceSize:], chunkAD(hdr, id, e))
	if err != nil {
		return nil, corrupt("pack "+id, "chunk %v: authentication failed (wrong key or damaged record)", e.ID)
	}
	return pt, nil
}

// ChunkOpener opens single chunk records of one version 2 pack.
type ChunkOpener struct {
	id   string
	aead cipher.AEAD
}

// NewChunkOpener returns an opener of the records of version 2 pack id.
func (k *Keys) NewChunkOpener(id string) (*ChunkOpener, error) {
	aead, err := k.packAEAD(id)
	if err != nil {
		return nil, err
	}
	return &ChunkOpener{id: id, aead: aead}, nil
}

// Open checks and decrypts the record of e (rec: the bytes [e.Offset,
// e.Offset+e.Length) of the pack object) in place and returns the chunk's
// stored bytes. A damaged record is an error wrapping ErrCorrupt.
func (o *ChunkOpener) Open(e Entry, rec []byte) ([]byte, error) {
	if !e.Sealed {
		return nil, fmt.Errorf("%w: chunk %v: not an entry of a version 2 or 3 pack", ErrUnsupportedVersion, e.ID)
	}
	var hdr [packHeader]byte
	copy(hdr[:], packMagic)
	hdr[4], hdr[5] = e.packVer(), CipherAESGCM
	return openRecord(o.aead, hdr[:], o.id, e, rec)
}

// DecodePack parses a version 1 pack plaintext and returns its table.
// Every entry's range lies inside the chunk area; Chunk slices it.
func DecodePack(b []byte) ([]Entry, error) {
	const what = "pack"
	if len(b) < packHeader+8 || string(b[:4]) != packMagic {
		return nil, corrupt(what, "bad magic or length %d", len(b))
	}
	if b[4] != PackVersion1 {
		return nil, fmt.Errorf("%w: pack plaintext version %d", ErrUnsupportedVersion, b[4])
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
		e := readEntry(r, PackVersion1)
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

// Chunk returns the stored bytes of e in what OpenPack returned.
func Chunk(pack []byte, e Entry) ([]byte, error) {
	start, end := uint64(e.Offset), uint64(e.Offset)+uint64(e.Length)
	if e.Sealed {
		if e.Length <= RecordOverhead {
			return nil, corrupt("pack", "chunk %v: record of %d bytes", e.ID, e.Length)
		}
		start, end = start+nonceSize, end-tagSize
	}
	if end > uint64(len(pack)) {
		return nil, corrupt("pack", "chunk %v beyond the pack", e.ID)
	}
	return pack[start:end], nil
}

// Index layout (plaintext of the 'I' envelope, one per pack; version 4 on
// the pack's m+1 index stores, older versions on every store: see
// replicate's doc, "Index copies"):
//
//	0  magic "SFIX"  4
//	4  version       1 (1: of a version 1 pack; 2: of a version 2 pack; 3: of a
//	                 version 3 pack; 4: of a version 3 pack, stored on its
//	                 index stores only)
//	5  reserved      3 (0)
//	8  pack id      16
//	24 sealed size   8 bytes of the stored pack object (the erasure data length)
//	32 count         4
//	36 entries       count × 45, as in the pack table, ascending by id
//	                 (versions 3 and 4: 45 bytes, or 77 for a delta: its
//	                 compression byte has flag 0x80 and its base id(32)
//	                 follows)
//
// In a version 2, 3 or 4 index every record lies inside the pack object.
// The base of every delta is in the index (prune reads indexes, never
// packs, to learn what a kept chunk needs). A snapfs that predates version
// 3 fails on a version 3 index with ErrUnsupportedVersion, and so does every
// operation that loads the region's indexes (its prune included): it never
// reads a delta as a full chunk, nor prunes a base it does not know is
// needed (TestOldDecoderFailsClosed). Version 4's bytes are version 3's;
// the version says where the copies are: a snapfs that predates it (and
// would take an index missing on some stores for an interrupted write,
// and put it back on every store) fails on it the same way.
const (
	indexMagic = "SFIX"
	// IndexVersion is the index format written: of a version 3 pack,
	// on the pack's index stores only.
	IndexVersion = 4
	// IndexVersion3 is the index of a version 3 pack on every store
	// (written before index version 4; still read).
	IndexVersion3 = 3
	// IndexVersion2 is the index format of version 2 packs.
	IndexVersion2 = 2
	// IndexVersion1 is the index of a version 1 pack.
	IndexVersion1 = 1
)

// Index is the decoded index of one pack.
type Index struct {
	Pack       [16]byte
	SealedSize uint64
	Entries    []Entry
	// PackVer is the pack format the index is of (set by DecodeIndex); 0:
	// told by the entries (see Version).
	PackVer int
	// IndexVer is the index format it was decoded from (set by
	// DecodeIndex, kept by Encode); 0: the one written for its pack
	// version (IndexVersion for a version 3 pack).
	IndexVer int
}

// Version is the pack format the index describes: PackVer when set, else
// told by its first entry (PackVersion1 when it has none).
func (x *Index) Version() int {
	if x.PackVer != 0 {
		return x.PackVer
	}
	if len(x.Entries) > 0 {
		return int(x.Entries[0].packVer())
	}
	return PackVersion1
}

// Encode returns the index plaintext; entries are sorted by chunk id. The
// index has the version of its pack (Version).
func (x *Index) Encode() []byte {
	es := slices.Clone(x.Entries)
	slices.SortFunc(es, func(a, b Entry) int { return compareID(a.ID, b.ID) })
	v := byte(x.IndexVer)
	if v == 0 {
		v = byte(x.Version())
		if v == PackVersion3 {
			v = IndexVersion
		}
	}
	n := 0
	for _, e := range es {
		n += e.encodedLen()
	}
	b := make([]byte, 0, 36+n)
	b = append(b, indexMagic...)
	b = append(b, v, 0, 0, 0)
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
	v := r.u8()
	if r.err == nil && (v < IndexVersion1 || v > IndexVersion) {
		return nil, fmt.Errorf("%w: index version %d", ErrUnsupportedVersion, v)
	}
	pv := min(v, PackVersion3) // index version i describes pack version i; 4 a version 3 pack
	if res := r.bytes(3); r.err == nil && (res[0]|res[1]|res[2]) != 0 {
		r.fail("reserved bytes set")
	}
	x := &Index{PackVer: int(pv), IndexVer: int(v)}
	copy(x.Pack[:], r.bytes(16))
	x.SealedSize = r.u64()
	n := r.u32()
	if r.err == nil && !entriesFit(n, len(r.b), pv) {
		r.fail("%d entries in %d bytes", n, len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	x.Entries = make([]Entry, 0, n)
	for i := range n {
		e := readEntry(r, pv)
		if r.err == nil && i > 0 && compareID(x.Entries[i-1].ID, e.ID) >= 0 {
			r.fail("entries not in ascending id order at %d", i)
		}
		if r.err == nil && e.Sealed && uint64(e.Offset)+uint64(e.Length)+RecordOverhead+8 > x.SealedSize {
			r.fail("chunk %v: record [%d,+%d) beyond a pack of %d bytes", e.ID, e.Offset, e.Length, x.SealedSize)
		}
		x.Entries = append(x.Entries, e)
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return x, nil
}

// entriesFit reports whether n entries of version ver can take exactly
// size bytes (45 each; in version 3 a delta's 32 more): a bound checked
// before anything is allocated for them.
func entriesFit(n uint32, size int, ver uint8) bool {
	min := uint64(n) * entrySize
	if ver < PackVersion3 {
		return min == uint64(size)
	}
	return min <= uint64(size) && uint64(size) <= min+uint64(n)*32
}
