package format

import (
	"bytes"
	"errors"
	"testing"
)

// TestPackSealInPlace: a pack sealed in its builder's buffer opens with
// Keys.Open to the plaintext Finish gives, also when the chunks overflow
// the size the builder was made for and when the buffer is reused.
func TestPackSealInPlace(t *testing.T) {
	ks := testKeys(t)
	var buf []byte
	for round, n := range []int{1, 3, 200} {
		p := NewPackBuilderBuf(1024, buf)
		q := NewPackBuilder(1024)
		for i := range n {
			data := bytes.Repeat([]byte{byte(i), byte(round)}, 50+i)
			p.Add(ks.ChunkID([32]byte{byte(i)}), data, len(data), CompNone)
			q.Add(ks.ChunkID([32]byte{byte(i)}), data, len(data), CompNone)
		}
		want := q.Finish()
		sealed, err := p.Seal(ks, "0123abcd")
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != len(want)+EnvOverhead {
			t.Fatalf("round %d: sealed %d bytes for %d of plaintext", round, len(sealed), len(want))
		}
		pt, err := ks.Open(TypePack, "0123abcd", sealed)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !bytes.Equal(pt, want) {
			t.Fatalf("round %d: plaintext differs", round)
		}
		if _, err := ks.Open(TypePack, "0123abce", sealed); err == nil {
			t.Fatalf("round %d: opened under another id", round)
		}
		cp := append([]byte(nil), sealed...)
		cp[len(cp)/2] ^= 1
		if _, err := OpenPack(ks, "0123abcd", cp); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("round %d: damaged pack opened in place: %v", round, err)
		}
		if pt2, err := OpenPack(ks, "0123abcd", append([]byte(nil), sealed...)); err != nil || !bytes.Equal(pt2, want) {
			t.Fatalf("round %d: open in place: %v", round, err)
		}
		es, err := DecodePack(pt)
		if err != nil || len(es) != n {
			t.Fatalf("round %d: %d entries, %v", round, len(es), err)
		}
		buf = p.Buffer()
	}
}
