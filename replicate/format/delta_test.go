package format

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestDeltaRoundTrip: a block with a few 4 KiB pieces changed makes a
// delta that rebuilds it from its base; one with more than half changed,
// none changed, or sizes that are not whole pieces makes none.
func TestDeltaRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := make([]byte, 16<<10)
	for i := range base {
		base[i] = byte(rng.Uint32())
	}
	for _, tc := range []struct {
		changed []int
		ok      bool
	}{{[]int{0}, true}, {[]int{3}, true}, {[]int{1, 2}, true}, {[]int{0, 1, 2}, false}, {nil, false}} {
		block := bytes.Clone(base)
		for _, p := range tc.changed {
			block[p*DeltaPiece+7] ^= 0x5a
		}
		d, ok := MakeDelta(nil, base, block)
		if ok != tc.ok {
			t.Fatalf("changed %v: delta %v, want %v", tc.changed, ok, tc.ok)
		}
		if !ok {
			continue
		}
		if want := 2 + 1 + len(tc.changed)*DeltaPiece; len(d) != want {
			t.Fatalf("changed %v: payload of %d bytes, want %d", tc.changed, len(d), want)
		}
		got := make([]byte, len(base))
		if err := ApplyDelta(got, base, d); err != nil || !bytes.Equal(got, block) {
			t.Fatalf("changed %v: rebuilt wrong (%v)", tc.changed, err)
		}
		in := bytes.Clone(base) // in place
		if err := ApplyDelta(in, in, d); err != nil || !bytes.Equal(in, block) {
			t.Fatalf("changed %v: rebuilt in place wrong (%v)", tc.changed, err)
		}
		// Damage: a payload cut short, a mask bit more, a newer version.
		if err := ApplyDelta(got, base, d[:len(d)-1]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("short payload: %v", err)
		}
		bad := bytes.Clone(d)
		bad[2] |= 0xf0
		if err := ApplyDelta(got, base, bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("mask past the pieces: %v", err)
		}
		bad = bytes.Clone(d)
		bad[0] = DeltaVersion + 1
		if err := ApplyDelta(got, base, bad); !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("newer version: %v", err)
		}
	}
	// Each with one piece changed of a block otherwise the same: a
	// one-piece block (nothing to save; "at most half changed" refuses it
	// too, so this cannot tell the size rule from that one), a block with
	// a partial last piece (its tail would be in no piece: only the size
	// rule refuses it; the 5000-byte block this test had was one piece).
	if _, ok := MakeDelta(nil, base[:DeltaPiece], append(bytes.Clone(base[:DeltaPiece-1]), ^base[DeltaPiece-1])); ok {
		t.Fatal("a one-piece block made a delta")
	}
	odd := 3*DeltaPiece + 100
	block := bytes.Clone(base[:odd])
	block[0] ^= 1
	if _, ok := MakeDelta(nil, base[:odd], block); ok {
		t.Fatal("a block of partial pieces made a delta")
	}
}

func FuzzApplyDelta(f *testing.F) {
	base := bytes.Repeat([]byte{7}, 4*DeltaPiece)
	block := bytes.Clone(base)
	block[DeltaPiece] = 1
	d, _ := MakeDelta(nil, base, block)
	f.Add(d, uint8(4))
	f.Add([]byte{1, 12, 0}, uint8(2))
	f.Fuzz(func(t *testing.T, payload []byte, pieces uint8) {
		n := int(pieces%16) * DeltaPiece
		base := bytes.Repeat([]byte{7}, n)
		dst := make([]byte, n)
		if ApplyDelta(dst, base, payload) != nil {
			return
		}
		// Accepted: each piece is the payload's next piece where the mask
		// has its bit, the base's elsewhere, and every payload byte is
		// used; MakeDelta of the result gives a delta that rebuilds it.
		mb := (n/DeltaPiece + 7) / 8
		rest := payload[2+mb:]
		for i := range n / DeltaPiece {
			want := base[i*DeltaPiece : (i+1)*DeltaPiece]
			if payload[2+i/8]&(1<<(i%8)) != 0 {
				want, rest = rest[:DeltaPiece], rest[DeltaPiece:]
			}
			if !bytes.Equal(dst[i*DeltaPiece:(i+1)*DeltaPiece], want) {
				t.Fatalf("piece %d rebuilt wrong from payload %x", i, payload[:2+mb])
			}
		}
		if len(rest) != 0 {
			t.Fatalf("payload accepted with %d bytes left over", len(rest))
		}
		if again, ok := MakeDelta(nil, base, dst); ok {
			back := make([]byte, n)
			if err := ApplyDelta(back, base, again); err != nil || !bytes.Equal(back, dst) {
				t.Fatalf("MakeDelta's own delta does not rebuild (%v)", err)
			}
		}
	})
}

// TestIndexV3Deltas: a version 3 pack holds delta entries that name their
// base; its table and its index carry the base ids (an index alone tells
// prune what a delta needs); the records open as the entries say; a
// version 2 index still decodes as version 2; a newer index version is
// refused with ErrUnsupportedVersion (as a version 2 decoder refuses 3).
func TestIndexV3Deltas(t *testing.T) {
	ks := testKeys(t)
	p, err := NewSealingPackBuilder(ks, testPackID, 1<<16, nil)
	if err != nil {
		t.Fatal(err)
	}
	full, delta := ks.ChunkID([32]byte{1}), ks.ChunkID([32]byte{2})
	var recs [][]byte
	var es []Entry
	for i, c := range []struct {
		id   ChunkID
		base *ChunkID
	}{{full, nil}, {delta, &full}} {
		data := bytes.Repeat([]byte{byte(i + 1)}, 100)
		e, rec, ok := p.ReserveDelta(c.id, c.base, len(data), 4*DeltaPiece, CompNone)
		if !ok {
			t.Fatal("not reserved")
		}
		if err := p.SealRecord(e, rec, data); err != nil {
			t.Fatal(err)
		}
		recs, es = append(recs, data), append(es, e)
	}
	sealed, err := p.Seal(ks, testPackID)
	if err != nil {
		t.Fatal(err)
	}
	if PackObjectVersion(sealed) != PackVersion3 {
		t.Fatalf("pack version %d", PackObjectVersion(sealed))
	}
	_, tbl, err := OpenPackTable(ks, testPackID, bytes.Clone(sealed))
	if err != nil {
		t.Fatal(err)
	}
	if len(tbl) != 2 || tbl[0].Base != nil || tbl[1].Base == nil || *tbl[1].Base != full {
		t.Fatalf("table %+v", tbl)
	}
	op, _ := ks.NewChunkOpener(testPackID)
	for i, e := range tbl {
		got, err := op.Open(e, bytes.Clone(sealed[e.Offset:e.Offset+e.Length]))
		if err != nil || !bytes.Equal(got, recs[i]) {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	// The base is bound to the record: an entry naming another base does
	// not open.
	other := ks.ChunkID([32]byte{3})
	e := tbl[1]
	e.Base = &other
	if _, err := op.Open(e, bytes.Clone(sealed[e.Offset:e.Offset+e.Length])); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a delta opened with another base: %v", err)
	}
	x := &Index{Pack: [16]byte{1}, SealedSize: uint64(len(sealed)), Entries: es}
	b := x.Encode()
	if b[4] != IndexVersion || len(b) != 36+2*45+32 {
		t.Fatalf("index version %d, %d bytes", b[4], len(b))
	}
	y, err := DecodeIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	var base *ChunkID
	for _, e := range y.Entries {
		if e.ID == delta {
			base = e.Base
		}
	}
	if y.Version() != PackVersion3 || base == nil || *base != full {
		t.Fatalf("decoded %+v", y)
	}
	// Version 3 (written before the index stores) has the same bytes and
	// is read the same; it encodes as it was.
	b[4] = IndexVersion3
	y3, err := DecodeIndex(b)
	if err != nil || y3.Version() != PackVersion3 || y3.IndexVer != IndexVersion3 || len(y3.Entries) != 2 || !bytes.Equal(y3.Encode(), b) {
		t.Fatalf("version 3 index: %v %+v", err, y3)
	}
	b[4] = IndexVersion + 1
	if _, err := DecodeIndex(b); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("a newer index: %v", err)
	}
	// A version 2 index (no deltas) is still read as version 2.
	v2 := &Index{Pack: [16]byte{1}, SealedSize: 1 << 20, Entries: []Entry{{ID: full, Offset: 8, Length: 100, RawLen: 100, Sealed: true, PackVer: PackVersion2}}}
	z, err := DecodeIndex(v2.Encode())
	if err != nil || z.Version() != PackVersion2 || z.Entries[0].packVer() != PackVersion2 {
		t.Fatalf("version 2 index: %v %+v", err, z)
	}
}
