package format

import (
	"bytes"
	"testing"
)

// FuzzChunkOpener: a range read hands ChunkOpener.Open an entry from an
// index and whatever bytes the stores sent for its record. Any bytes, any
// entry: an error or the chunk's stored bytes, and only the true bytes of
// the true entry open (the record binds the entry: moving it, resizing
// it, changing its id, raw length or compression fails).
func FuzzChunkOpener(f *testing.F) {
	ks := testKeys(f)
	sealed := samplePack2(f)
	_, es, err := OpenPackTable(ks, testPackID, append([]byte(nil), sealed...))
	if err != nil {
		f.Fatal(err)
	}
	e := es[1]
	f.Add(sealed[e.Offset:e.Offset+e.Length], e.Offset, e.Length, e.RawLen, e.Comp, byte(0))
	f.Add([]byte{}, uint32(8), uint32(29), uint32(1), uint8(0), byte(1))
	op, err := ks.NewChunkOpener(testPackID)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, rec []byte, off, length, raw uint32, comp uint8, idb byte) {
		x := Entry{ID: e.ID, Offset: off, Length: length, RawLen: raw, Comp: comp, Sealed: true}
		x.ID[0] ^= idb
		got, err := op.Open(x, append([]byte(nil), rec...))
		if err != nil {
			return
		}
		// (A worker process seals its own sample pack, with other nonces:
		// compare what opened, not the record bytes.)
		if x != e || !bytes.Equal(got, bytes.Repeat([]byte{7}, 100)) {
			t.Fatalf("a record opened as %+v (true entry %+v): %x", x, e, got)
		}
	})
}
