package format

import "encoding/binary"

// packBuilderV1 writes version 1 packs (one plaintext sealed as a whole),
// as snapfs did before version 2: tests check they stay readable.
type packBuilderV1 struct {
	buf     []byte
	entries []Entry
}

func newPackBuilderV1(size int) *packBuilderV1 {
	b := make([]byte, packHeader, packHeader+size)
	copy(b, packMagic)
	b[4] = PackVersion1
	return &packBuilderV1{buf: b}
}

func (p *packBuilderV1) Add(id ChunkID, stored []byte, rawLen int, comp uint8) Entry {
	e := Entry{ID: id, Offset: uint32(len(p.buf)), Length: uint32(len(stored)), RawLen: uint32(rawLen), Comp: comp}
	p.buf = append(p.buf, stored...)
	p.entries = append(p.entries, e)
	return e
}

// Finish returns the plaintext.
func (p *packBuilderV1) Finish() []byte {
	t := len(p.buf)
	b := binary.BigEndian.AppendUint32(p.buf, uint32(len(p.entries)))
	for _, e := range p.entries {
		b = appendEntry(b, e)
	}
	p.buf = binary.BigEndian.AppendUint32(b, uint32(t))
	return p.buf
}

// Seal returns the stored version 1 pack object: the 'P' envelope.
func (p *packBuilderV1) Seal(k *Keys, id string) ([]byte, error) {
	return k.Seal(TypePack, id, p.Finish())
}
