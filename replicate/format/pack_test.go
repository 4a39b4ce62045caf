package format

import (
	"bytes"
	"errors"
	"testing"
)

const testPackID = "0123456789abcdef0123456789abcdef"

// TestPackSealInPlace: a version 2 pack sealed in its builder's buffer
// opens (OpenPackTable) to its chunks and its table, also when the chunks
// overflow the size the builder was made for and when the buffer is
// reused; each chunk's record opens alone (ChunkOpener) from its bytes in
// the pack; a flipped byte anywhere fails, and so does another pack id.
func TestPackSealInPlace(t *testing.T) {
	ks := testKeys(t)
	var buf []byte
	for round, n := range []int{1, 3, 200} {
		p := NewPackBuilderBuf(1024, buf)
		var datas [][]byte
		for i := range n {
			data := bytes.Repeat([]byte{byte(i), byte(round)}, 50+i)
			datas = append(datas, data)
			p.Add(ks.ChunkID([32]byte{byte(i)}), data, len(data), CompNone)
		}
		es := append([]Entry(nil), p.Entries()...)
		sealed, err := p.Seal(ks, testPackID)
		if err != nil {
			t.Fatal(err)
		}
		if PackObjectVersion(sealed) != PackVersion {
			t.Fatalf("round %d: version %d", round, PackObjectVersion(sealed))
		}
		if bytes.Contains(sealed, datas[0]) {
			t.Fatalf("round %d: a chunk is stored in the clear", round)
		}
		op, err := ks.NewChunkOpener(testPackID)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range es {
			rec := append([]byte(nil), sealed[e.Offset:e.Offset+e.Length]...)
			got, err := op.Open(e, rec)
			if err != nil || !bytes.Equal(got, datas[i]) {
				t.Fatalf("round %d chunk %d: %v", round, i, err)
			}
			rec = append([]byte(nil), sealed[e.Offset:e.Offset+e.Length]...)
			rec[len(rec)/2] ^= 1
			if _, err := op.Open(e, rec); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("round %d chunk %d: damaged record opened: %v", round, i, err)
			}
			if i > 0 { // a record does not open as another chunk
				rec = append([]byte(nil), sealed[e.Offset:e.Offset+e.Length]...)
				o := es[i-1]
				o.Length = e.Length
				if _, err := op.Open(o, rec); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("round %d chunk %d: opened as chunk %d", round, i, i-1)
				}
			}
		}
		other, _ := ks.NewChunkOpener("ffff456789abcdef0123456789abcdef")
		rec := append([]byte(nil), sealed[es[0].Offset:es[0].Offset+es[0].Length]...)
		if _, err := other.Open(es[0], rec); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("round %d: opened under another pack id", round)
		}
		cp := append([]byte(nil), sealed...)
		cp[len(cp)/2] ^= 1
		if _, err := OpenPack(ks, testPackID, cp); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("round %d: damaged pack opened: %v", round, err)
		}
		pt, tbl, err := OpenPackTable(ks, testPackID, append([]byte(nil), sealed...))
		if err != nil || len(tbl) != n {
			t.Fatalf("round %d: open: %d entries, %v", round, len(tbl), err)
		}
		for i, e := range es {
			if tbl[i] != e {
				t.Fatalf("round %d: table entry %d %+v, builder said %+v", round, i, tbl[i], e)
			}
			c, err := Chunk(pt, e)
			if err != nil || !bytes.Equal(c, datas[i]) {
				t.Fatalf("round %d chunk %d after OpenPack: %v", round, i, err)
			}
		}
		x := &Index{Pack: [16]byte{1}, SealedSize: uint64(len(sealed)), Entries: es}
		y, err := DecodeIndex(x.Encode())
		if err != nil || y.Version() != PackVersion || !y.Entries[0].Sealed {
			t.Fatalf("round %d: index: %v", round, err)
		}
		buf = p.Buffer()
	}
}

// Version 1 packs (one envelope) still open, and their entries slice the
// plaintext as before.
func TestPackV1StillReads(t *testing.T) {
	ks := testKeys(t)
	p := newPackBuilderV1(1024)
	p.Add(ks.ChunkID([32]byte{1}), []byte("hello"), 4096, CompZstd)
	p.Add(ks.ChunkID([32]byte{2}), bytes.Repeat([]byte{7}, 100), 100, CompNone)
	sealed, err := p.Seal(ks, testPackID)
	if err != nil {
		t.Fatal(err)
	}
	if PackObjectVersion(sealed) != PackVersion1 {
		t.Fatal("not a version 1 object")
	}
	pt, es, err := OpenPackTable(ks, testPackID, sealed)
	if err != nil || len(es) != 2 || es[0].Sealed {
		t.Fatalf("%v %v", es, err)
	}
	if c, err := Chunk(pt, es[0]); err != nil || string(c) != "hello" {
		t.Fatalf("chunk %q %v", c, err)
	}
	x := &Index{Pack: [16]byte{1}, SealedSize: uint64(len(sealed)), Entries: es}
	b := x.Encode()
	if b[4] != IndexVersion1 {
		t.Fatalf("index of a v1 pack has version %d", b[4])
	}
	if _, err := ks.NewChunkOpener(testPackID); err != nil {
		t.Fatal(err)
	}
	op, _ := ks.NewChunkOpener(testPackID)
	if _, err := op.Open(es[0], pt[:es[0].Length]); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("v1 entry opened as a record: %v", err)
	}
	future := append([]byte(nil), sealed...)
	copy(future, "SFPK\x03")
	if _, err := OpenPack(ks, testPackID, future); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("pack version 3: %v", err)
	}
}

func samplePack2(t testing.TB) []byte {
	ks := testKeys(t)
	p := NewPackBuilder(1024)
	p.Add(ks.ChunkID([32]byte{1}), []byte("hello"), 4096, CompZstd)
	p.Add(ks.ChunkID([32]byte{2}), bytes.Repeat([]byte{7}, 100), 100, CompNone)
	b, err := p.Seal(ks, testPackID)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// samplePack3 is a version 3 pack with a full chunk and a delta over it.
func samplePack3(t testing.TB) []byte {
	ks := testKeys(t)
	p, err := NewSealingPackBuilder(ks, testPackID, 1<<16, nil)
	if err != nil {
		t.Fatal(err)
	}
	full := ks.ChunkID([32]byte{1})
	base := [2]*ChunkID{nil, &full}
	for i, id := range []ChunkID{full, ks.ChunkID([32]byte{2})} {
		data := bytes.Repeat([]byte{byte(i + 1)}, 100)
		e, rec, ok := p.ReserveDelta(id, base[i], len(data), 4*DeltaPiece, CompNone)
		if !ok {
			t.Fatal("not reserved")
		}
		if err := p.SealRecord(e, rec, data); err != nil {
			t.Fatal(err)
		}
	}
	b, err := p.Seal(ks, testPackID)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzOpenPack: any bytes as a stored pack object of either version give
// an error or chunks that lie inside it; never a panic.
func FuzzOpenPack(f *testing.F) {
	ks := testKeys(f)
	f.Add(samplePack2(f))
	f.Add(samplePack3(f)) // a delta entry
	v1 := newPackBuilderV1(64)
	v1.Add(ks.ChunkID([32]byte{1}), []byte("x"), 1, CompNone)
	s1, _ := v1.Seal(ks, testPackID)
	f.Add(s1)
	f.Add([]byte("SFPK\x02\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, es, err := OpenPackTable(ks, testPackID, b)
		if err != nil {
			return
		}
		for _, e := range es {
			if _, err := Chunk(pt, e); err != nil {
				t.Fatalf("entry out of range: %v", err)
			}
		}
	})
}

// FuzzDecodeTable2: the table parser of version 2 packs (behind the
// table's tag, so fuzzed on its own) keeps every record inside the record
// area, in order and apart.
func FuzzDecodeTable2(f *testing.F) {
	ks := testKeys(f)
	b := samplePack2(f)
	_, es, err := OpenPackTable(ks, testPackID, append([]byte(nil), b...))
	if err != nil {
		f.Fatal(err)
	}
	tbl := []byte{0, 0, 0, byte(len(es))}
	for _, e := range es {
		tbl = appendEntry(tbl, e)
	}
	f.Add(tbl, uint32(len(b)), uint8(PackVersion2))
	f.Add(tbl, uint32(len(b)), uint8(PackVersion3))
	b3 := samplePack3(f) // a delta entry: 77 bytes, flag 0x80, its base
	_, es3, err := OpenPackTable(ks, testPackID, append([]byte(nil), b3...))
	if err != nil || len(es3) != 2 || es3[1].Base == nil {
		f.Fatalf("version 3 sample: %+v %v", es3, err)
	}
	tbl3 := []byte{0, 0, 0, byte(len(es3))}
	for _, e := range es3 {
		tbl3 = appendEntry(tbl3, e)
	}
	f.Add(tbl3, uint32(len(b3)), uint8(PackVersion3))
	f.Fuzz(func(t *testing.T, tbl []byte, end uint32, ver uint8) {
		es, err := decodeTable2(tbl, end, PackVersion2+ver%2, "fuzz")
		if err != nil {
			return
		}
		prev := uint64(packHeader)
		for _, e := range es {
			if uint64(e.Offset) < prev || uint64(e.Offset)+uint64(e.Length) > uint64(end) || e.Length <= RecordOverhead {
				t.Fatalf("bad record accepted: %+v", e)
			}
			prev = uint64(e.Offset) + uint64(e.Length)
		}
	})
}

// BenchmarkPackSealOpen: seal and open a 32 MiB pack of 16 KiB chunks,
// version 2 (a record per chunk) against version 1 (one envelope).
func BenchmarkPackSealOpen(b *testing.B) {
	ks := testKeys(b)
	chunk := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 2048)
	const n = 2048
	b.Run("v2", func(b *testing.B) {
		b.SetBytes(n * int64(len(chunk)))
		var buf []byte
		for range b.N {
			p := NewPackBuilderBuf(n*len(chunk), buf)
			for i := range n {
				p.Add(ks.ChunkID([32]byte{byte(i), byte(i >> 8)}), chunk, len(chunk), CompNone)
			}
			sealed, err := p.Seal(ks, testPackID)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := OpenPack(ks, testPackID, sealed); err != nil {
				b.Fatal(err)
			}
			buf = p.Buffer()
		}
	})
	b.Run("v1", func(b *testing.B) {
		b.SetBytes(n * int64(len(chunk)))
		for range b.N {
			p := newPackBuilderV1(n * len(chunk))
			for i := range n {
				p.Add(ks.ChunkID([32]byte{byte(i), byte(i >> 8)}), chunk, len(chunk), CompNone)
			}
			sealed, err := p.Seal(ks, testPackID)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := OpenPack(ks, testPackID, sealed); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestSealingPackBuilder: a pack whose records were reserved one by one
// and sealed concurrently (as sync's workers do) opens to its chunks and
// table like one sealed whole; Reserve refuses a record the buffer cannot
// hold without moving (except into an empty pack, which grows), and never
// moves the buffer once it holds a record; the buffer is reused.
func TestSealingPackBuilder(t *testing.T) {
	ks := testKeys(t)
	var buf []byte
	for round, n := range []int{1, 7, 300} {
		p, err := NewSealingPackBuilder(ks, testPackID, 4096, buf)
		if err != nil {
			t.Fatal(err)
		}
		var datas [][]byte
		var es []Entry
		done := make(chan error, n)
		refused := 0
		for i := range n {
			data := bytes.Repeat([]byte{byte(i), byte(round), 7}, 40+i)
			base := &p.buf[:1][0]
			e, rec, ok := p.Reserve(ks.ChunkID([32]byte{byte(i), byte(i >> 8)}), len(data), len(data), CompNone)
			if !ok {
				if len(p.entries) == 0 {
					t.Fatalf("round %d: an empty pack refused a record", round)
				}
				refused++
				break
			}
			if i > 0 && &p.buf[:1][0] != base {
				t.Fatalf("round %d: Reserve moved the buffer under %d records", round, i)
			}
			datas, es = append(datas, data), append(es, e)
			go func() { done <- p.SealRecord(e, rec, data) }()
		}
		for range es {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if n == 300 && refused == 0 {
			t.Fatalf("round %d: 300 records fit a 4 KiB pack without a refusal", round)
		}
		before := &p.buf[:1][0]
		sealed, err := p.Seal(ks, testPackID)
		if err != nil {
			t.Fatal(err)
		}
		if &sealed[0] != before {
			t.Fatalf("round %d: Seal moved the pack to add its table (Reserve keeps room for it)", round)
		}
		if PackObjectVersion(sealed) != PackVersion || bytes.Contains(sealed, datas[0]) {
			t.Fatalf("round %d: version %d, or a chunk in the clear", round, PackObjectVersion(sealed))
		}
		pt, tbl, err := OpenPackTable(ks, testPackID, append([]byte(nil), sealed...))
		if err != nil || len(tbl) != len(es) {
			t.Fatalf("round %d: open: %d entries of %d, %v", round, len(tbl), len(es), err)
		}
		op, err := ks.NewChunkOpener(testPackID)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range es {
			if tbl[i] != e {
				t.Fatalf("round %d: table entry %d %+v, builder said %+v", round, i, tbl[i], e)
			}
			if c, err := Chunk(pt, e); err != nil || !bytes.Equal(c, datas[i]) {
				t.Fatalf("round %d chunk %d after OpenPack: %v", round, i, err)
			}
			rec := append([]byte(nil), sealed[e.Offset:e.Offset+e.Length]...)
			if got, err := op.Open(e, rec); err != nil || !bytes.Equal(got, datas[i]) {
				t.Fatalf("round %d chunk %d alone: %v", round, i, err)
			}
		}
		if _, err := p.Seal(ks, "ffff456789abcdef0123456789abcdef"); err == nil {
			t.Fatalf("round %d: sealed under another id", round)
		}
		buf = p.Buffer()
	}
	// A pack renamed after its records were sealed opens under its new id
	// only (sync renames a pack filled for long).
	const newID = "eeee456789abcdef0123456789abcdef"
	p, err := NewSealingPackBuilder(ks, testPackID, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	var datas [][]byte
	var es []Entry
	for i := range 5 {
		data := bytes.Repeat([]byte{byte(i), 9}, 50+i)
		e, rec, ok := p.Reserve(ks.ChunkID([32]byte{byte(i)}), len(data), len(data), CompNone)
		if !ok {
			t.Fatal("a 4 KiB pack refused a small record")
		}
		if err := p.SealRecord(e, rec, data); err != nil {
			t.Fatal(err)
		}
		datas, es = append(datas, data), append(es, e)
	}
	if err := p.Rename(ks, newID); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Seal(ks, testPackID); err == nil {
		t.Fatal("a renamed pack sealed under its old id")
	}
	sealed, err := p.Seal(ks, newID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenPackTable(ks, testPackID, append([]byte(nil), sealed...)); err == nil {
		t.Fatal("a renamed pack opened under its old id")
	}
	pt, tbl, err := OpenPackTable(ks, newID, append([]byte(nil), sealed...))
	if err != nil || len(tbl) != len(es) {
		t.Fatalf("renamed pack: %d entries of %d, %v", len(tbl), len(es), err)
	}
	for i, e := range es {
		if c, err := Chunk(pt, e); err != nil || !bytes.Equal(c, datas[i]) {
			t.Fatalf("renamed pack, chunk %d: %v", i, err)
		}
	}
	if err := NewPackBuilder(4096).Rename(ks, newID); err == nil {
		t.Fatal("Rename of a builder that seals at Seal")
	}
	// A record of the wrong size is refused.
	p, err = NewSealingPackBuilder(ks, testPackID, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, rec, _ := p.Reserve(ChunkID{1}, 10, 10, CompNone)
	if err := p.SealRecord(e, rec, make([]byte, 11)); err == nil {
		t.Fatal("SealRecord took 11 bytes into a 10-byte record")
	}
}
