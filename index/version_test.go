package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

// appendV1 encodes format 1 (tests: old stores keep reading).
func (v Version) appendV1(dst []byte, crc uint32) []byte {
	b := make([]byte, versionValueLen)
	b[0] = versionValueV1
	binary.LittleEndian.PutUint64(b[1:], uint64(v.Segment))
	binary.LittleEndian.PutUint64(b[9:], uint64(v.Offset))
	binary.LittleEndian.PutUint32(b[17:], v.Length)
	binary.LittleEndian.PutUint32(b[21:], crc)
	copy(b[25:57], v.Digest[:])
	binary.LittleEndian.PutUint64(b[57:], uint64(v.Seq))
	b[65] = v.Flags
	binary.LittleEndian.PutUint32(b[66:], crc32.Checksum(b[:66], castagnoli))
	return append(dst, b...)
}

// TestVersionFormats: format 2 round-trips (with and without a digest, at
// the largest values), every flipped byte and every truncation is refused,
// and format-1 values written by an older snapfs still decode (their CRC
// field ignored). Format 2 is smaller.
func TestVersionFormats(t *testing.T) {
	full := Version{Segment: 1<<40 + 3, Offset: 1<<62 + 5, Length: 1<<32 - 1, Seq: 1<<64 - 1, Flags: 0}
	for i := range full.Digest {
		full.Digest[i] = byte(i + 1)
	}
	for _, v := range []Version{full, {Seq: 7, Flags: FlagZero}, {Segment: 2, Offset: 4096, Length: 16432, Seq: 1 << 20, Digest: full.Digest}} {
		b, _ := v.MarshalBinary()
		var w Version
		if err := w.UnmarshalBinary(b); err != nil || w != v {
			t.Fatalf("round trip of %+v: %+v %v", v, w, err)
		}
		for i := range b {
			c := bytes.Clone(b)
			c[i] ^= 0x10
			if err := w.UnmarshalBinary(c); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flipped byte %d of %x not detected: %v", i, b, err)
			}
		}
		for n := 0; n < len(b); n++ {
			if err := w.UnmarshalBinary(b[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("value cut at %d accepted", n)
			}
		}
		old := v.appendV1(nil, 0xdeadbeef)
		if err := w.UnmarshalBinary(old); err != nil || w != v {
			t.Fatalf("format 1 of %+v: %+v %v", v, w, err)
		}
	}
	typical := Version{Segment: 120, Offset: 200 << 20, Length: 16432, Seq: 5 << 20, Digest: full.Digest}
	b, _ := typical.MarshalBinary()
	if len(b) >= versionValueLen-15 {
		t.Fatalf("format 2 value of a typical version is %d bytes (format 1: %d)", len(b), versionValueLen)
	}
	// A varint not in its shortest form is refused (one value, one encoding).
	long := []byte{versionValueV2, 0, 0, 0x81, 0x00, 0, 0, 0}
	long = binary.LittleEndian.AppendUint32(long, crc32.Checksum(long, castagnoli))
	var w Version
	if err := w.UnmarshalBinary(long); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("overlong varint accepted: %v", err)
	}
}

// FuzzVersionValue: the decoder never panics; whatever it accepts
// re-encodes (format 2) to a value that decodes to the same version, and a
// format-2 value it accepts re-encodes to the same bytes.
func FuzzVersionValue(f *testing.F) {
	v := Version{Segment: 1, Offset: 2, Length: 3, Seq: 4}
	v.Digest[5] = 9
	b, _ := v.MarshalBinary()
	f.Add(b)
	f.Add(v.appendV1(nil, 1))
	h, _ := Version{Seq: 3, Flags: FlagZero}.MarshalBinary()
	f.Add(h)
	f.Add([]byte{2, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var v Version
		if err := v.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		out, _ := v.MarshalBinary()
		var w Version
		if err := w.UnmarshalBinary(out); err != nil || w != v {
			t.Fatalf("re-encoded %+v decodes to %+v, %v", v, w, err)
		}
		if b[0] == versionValueV2 && !bytes.Equal(out, b) {
			t.Fatal("decoded format-2 value re-encodes differently")
		}
	})
}
