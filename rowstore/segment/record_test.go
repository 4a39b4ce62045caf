package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
)

func zeroPayload(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, n) }

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		r    Record
	}{
		{"data", Record{Kind: KindData, Layer: 1, Block: 2, Epoch: 3, Seq: 4, Payload: []byte("block bytes")}},
		{"empty data", Record{Kind: KindData, Seq: 1, Payload: []byte{}}},
		{"zero", Record{Kind: KindZero, Layer: 7, Block: 100, Epoch: 9, Seq: 10, Payload: zeroPayload(64)}},
		{"pad", Record{Kind: KindPad, Payload: make([]byte, 100)}},
		{"catalog", Record{Kind: KindCatalog, Seq: 12, Payload: []byte("catalog change")}},
		{"flags and max fields", Record{Kind: KindData, Flags: 0xffff, Layer: ^ids.Layer(0), Block: ids.MaxBlock, Epoch: ids.MaxEpoch, Seq: ^ids.Seq(0), Payload: []byte{1}}},
		{"64 KiB", Record{Kind: KindData, Seq: 5, Payload: bytes.Repeat([]byte{0xab}, 64<<10)}},
		{"max payload", Record{Kind: KindData, Seq: 5, Payload: make([]byte, MaxPayload)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix")
			b := Encode(prefix, &tt.r)
			if !bytes.Equal(b[:len(prefix)], prefix) {
				t.Fatal("Encode clobbered dst")
			}
			enc := b[len(prefix):]
			if len(enc) != HeaderSize+len(tt.r.Payload) {
				t.Fatalf("encoded %d bytes", len(enc))
			}
			got, n, err := Decode(append(enc, "trailing"...))
			if err != nil {
				t.Fatal(err)
			}
			if n != len(enc) {
				t.Fatalf("n = %d, want %d", n, len(enc))
			}
			want := tt.r
			if !bytes.Equal(got.Payload, want.Payload) {
				t.Fatal("payload differs")
			}
			got.Payload, want.Payload = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

// reseal recomputes the checksum of an encoded record after a test edited it.
func reseal(b []byte) []byte {
	crc := crc32.Update(0, castagnoli, b[:44])
	crc = crc32.Update(crc, castagnoli, b[HeaderSize:])
	binary.LittleEndian.PutUint32(b[44:], crc)
	return b
}

func TestDecodeErrors(t *testing.T) {
	good := Encode(nil, &Record{Kind: KindData, Seq: 1, Layer: 2, Payload: []byte("payload")})
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name         string
		b            []byte
		short        bool
		incompatible bool
	}{
		{"empty", nil, true, false},
		{"half header", good[:20], true, false},
		{"torn payload", good[:len(good)-1], true, false},
		{"bad magic", edit(func(b []byte) []byte { b[0] ^= 1; return reseal(b) }), false, false},
		{"bad crc header", edit(func(b []byte) []byte { b[10] ^= 1; return b }), false, false},
		{"bad crc payload", edit(func(b []byte) []byte { b[HeaderSize+2] ^= 0x80; return b }), false, false},
		{"version 0", edit(func(b []byte) []byte { b[4] = 0; return reseal(b) }), false, false},
		{"version 2", edit(func(b []byte) []byte { b[4] = 2; return reseal(b) }), false, true},
		{"version 2, bad crc", edit(func(b []byte) []byte { b[4] = 2; return b }), false, false}, // scan15: damage, not newer
		{"version 7, bad crc", edit(func(b []byte) []byte { b[4] = 7; return b }), false, false},
		{"unknown kind", edit(func(b []byte) []byte { b[5] = 9; return reseal(b) }), false, false},
		{"kind 0", edit(func(b []byte) []byte { b[5] = 0; return reseal(b) }), false, false},
		{"seq 0", edit(func(b []byte) []byte { clear(b[32:40]); return reseal(b) }), false, false},
		{"catalog without payload", Encode(nil, &Record{Kind: KindCatalog, Seq: 1}), false, false},
		{"catalog with a layer", Encode(nil, &Record{Kind: KindCatalog, Seq: 1, Layer: 3, Payload: []byte{1}}), false, false},
		{"zero with 7-byte payload", Encode(nil, &Record{Kind: KindZero, Seq: 1, Payload: make([]byte, 7)}), false, false},
		{"length too large", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[40:], MaxPayload+1); return b }), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Decode(tt.b)
			switch {
			case err == nil:
				t.Fatal("decoded")
			case tt.short && !errors.Is(err, ErrShort):
				t.Fatalf("want ErrShort, got %v", err)
			case !tt.short && !errors.Is(err, ErrCorrupt):
				t.Fatalf("want ErrCorrupt, got %v", err)
			case tt.incompatible != errors.Is(err, ErrIncompatible):
				t.Fatalf("ErrIncompatible = %v: %v", !tt.incompatible, err)
			}
		})
	}
}

func TestFileHeader(t *testing.T) {
	h := fileHeader(0x1234, 0)
	if string(h[:8]) != "SNAPSEG\x00" || binary.LittleEndian.Uint16(h[8:]) != FileVersion || binary.LittleEndian.Uint64(h[16:]) != 0x1234 {
		t.Fatalf("header % x", h)
	}
	if err := checkFileHeader(h, 0x1234); err != nil {
		t.Fatal(err)
	}
	if err := checkFileHeader(h, 7); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrong number: %v", err)
	}
	reseal := func(h []byte) { binary.LittleEndian.PutUint32(h[28:], crc32.Checksum(h[:28], castagnoli)) }
	c := fileHeader(0x1234, FlagCleanerStream)
	if err := checkFileHeader(c, 0x1234); err != nil || headerFlags(c) != FlagCleanerStream {
		t.Fatalf("cleaner stream header: %v, flags %#x", err, headerFlags(c))
	}
	// Version 1 (before two streams): flags must be 0.
	v1 := fileHeader(0x1234, 0)
	v1[8] = 1
	reseal(v1)
	if err := checkFileHeader(v1, 0x1234); err != nil || headerFlags(v1) != 0 {
		t.Fatalf("version 1: %v", err)
	}
	v1[10] = 1
	reseal(v1)
	if err := checkFileHeader(v1, 0x1234); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("version 1 with a flag: %v", err)
	}
	c[10] = 2 // an unknown flag
	reseal(c)
	if err := checkFileHeader(c, 0x1234); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unknown flag: %v", err)
	}
	h[8] = FileVersion + 1
	reseal(h)
	if err := checkFileHeader(h, 0x1234); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("version %d: %v", FileVersion+1, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(nil, &Record{Kind: KindData, Seq: 1, Payload: []byte("x")}))
	f.Add(Encode(nil, &Record{Kind: KindZero, Seq: 3, Block: 9, Payload: zeroPayload(5)}))
	f.Add(Encode(nil, &Record{Kind: KindPad, Payload: make([]byte, 3)}))
	f.Add(Encode(nil, &Record{Kind: KindCatalog, Seq: 4, Payload: []byte{1, 0, 0, 0}}))
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	newer := Encode(nil, &Record{Kind: KindData, Seq: 1, Payload: []byte("y")})
	newer[4] = Version + 1
	f.Add(bytes.Clone(newer))         // damaged version byte (scan15): corrupt
	f.Add(reseal(bytes.Clone(newer))) // a newer record: incompatible
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := Decode(b)
		if errors.Is(err, ErrIncompatible) {
			// Only a record whose frame and checksum are valid is newer;
			// damage never is (scan15).
			if len(b) < HeaderSize || b[4] <= Version || n != HeaderSize+int(binary.LittleEndian.Uint32(b[40:])) || n > len(b) || !bytes.Equal(reseal(bytes.Clone(b[:n])), b[:n]) {
				t.Fatalf("ErrIncompatible for a record that is not a valid newer one: %v", err)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrShort) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrShort: %v", err)
			}
			return
		}
		if n < HeaderSize || n > len(b) {
			t.Fatalf("n = %d of %d bytes", n, len(b))
		}
		if re := Encode(nil, &r); !bytes.Equal(re, b[:n]) {
			t.Fatalf("re-encoding differs:\n% x\n% x", re, b[:n])
		}
	})
}
