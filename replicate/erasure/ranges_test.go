package erasure

import (
	"bytes"
	"errors"
	"testing"
)

// Any range of a data shard's payload is rebuilt from the same range of
// any k other shards, whatever the range (inside the padding too).
func TestReconstructRange(t *testing.T) {
	data := randomData(7, 10_000)
	k, m := 4, 2
	shards, err := Encode(data, k, m)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLayout(k, m, int64(len(data)))
	size := int(l.ShardSize())
	for _, rg := range [][2]int{{0, 1}, {0, size}, {17, 900}, {size - 3, size}} {
		for want := range k {
			subsets(k+m, m, func(drop []int) {
				parts := make([][]byte, k+m)
				for i := range parts {
					parts[i] = shards[i][HeaderSize+rg[0] : HeaderSize+rg[1]]
				}
				parts[want] = nil
				for _, d := range drop {
					parts[d] = nil
				}
				got, err := ReconstructRange(k, m, parts, want)
				left := 0
				for _, p := range parts {
					if p != nil {
						left++
					}
				}
				if left < k {
					if !errors.Is(err, ErrTooFewShards) {
						t.Fatalf("range %v want %d drop %v: %v, want too few", rg, want, drop, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("range %v want %d drop %v: %v", rg, want, drop, err)
				}
				if !bytes.Equal(got, shards[want][HeaderSize+rg[0]:HeaderSize+rg[1]]) {
					t.Fatalf("range %v want %d drop %v: wrong bytes", rg, want, drop)
				}
			})
		}
	}
	if _, err := ReconstructRange(k, m, make([][]byte, k+m), k); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("parity wanted: %v", err)
	}
}
