package erasure

import (
	"bytes"
	"testing"
)

// FuzzReconstructRange: whatever parts a caller (or a store) supplies, of
// whatever lengths, ReconstructRange returns an error or a range of the
// parts' length; never a panic. Given k true parts it returns the true
// range.
func FuzzReconstructRange(f *testing.F) {
	f.Add(uint8(4), uint8(2), uint8(1), uint16(0b110011), []byte("0123456789abcdefghij"), uint16(3), uint16(9))
	f.Add(uint8(2), uint8(1), uint8(0), uint16(0b110), []byte{}, uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, k8, m8, want8 uint8, mask uint16, data []byte, lo, hi uint16) {
		k, m, want := int(k8%8)+1, int(m8%4)+1, int(want8)%9
		if len(data) > 4096 {
			data = data[:4096]
		}
		shards, err := Encode(data, k, m)
		if err != nil {
			t.Fatal(err)
		}
		size := len(shards[0]) - HeaderSize
		a, b := int(lo)%(size+1), int(hi)%(size+1)
		if a > b {
			a, b = b, a
		}
		parts := make([][]byte, k+m)
		for i := range parts {
			if mask&(1<<i) != 0 {
				parts[i] = shards[i][HeaderSize+a : HeaderSize+b]
			}
		}
		// A lying store: one part of another length.
		if mask&(1<<15) != 0 && parts[0] != nil {
			parts[0] = append(parts[0], 1)
		}
		got, err := ReconstructRange(k, m, parts, want)
		if err != nil {
			return
		}
		if want >= k {
			t.Fatalf("shard %d of k=%d rebuilt", want, k)
		}
		if mask&(1<<15) == 0 && !bytes.Equal(got, shards[want][HeaderSize+a:HeaderSize+b]) {
			t.Fatalf("range [%d,%d) of shard %d rebuilt wrong", a, b, want)
		}
	})
}
