package erasure

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// EncodeInto over buffers that held a larger object gives the very shards
// Encode gives (padding cleared, parity recomputed), and they decode.
func TestEncodeIntoReusedBuffers(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	big := make([]byte, 1<<20+13)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	small := make([]byte, 777_777) // not a multiple of k: padding
	for i := range small {
		small[i] = byte(rng.Uint32())
	}
	const k, m = 4, 2
	first, err := EncodeInto(big, k, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	bufs := make([][]byte, len(first))
	for i, s := range first {
		bufs[i] = s
	}
	again, err := EncodeInto(small, k, m, bufs)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Encode(small, k, m)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if &again[i][0] != &first[i][0] {
			t.Errorf("shard %d was not made in the buffer given", i)
		}
		if !bytes.Equal(again[i], want[i]) {
			t.Fatalf("shard %d differs from Encode's", i)
		}
	}
	got, err := Decode(Bytes(again))
	if err != nil || !bytes.Equal(got, small) {
		t.Fatalf("decode: %v, equal %v", err, bytes.Equal(got, small))
	}
}
