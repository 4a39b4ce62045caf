package rowstore

import (
	"crypto/sha256"
	"math/rand"
	"testing"

	"github.com/snapfs/snapfs/index"
)

// TestDigestBlocks: the digests shared between the caller and its helpers
// are each block's SHA-256, none for a zero block, for every count of
// blocks (serial below 8, shared from there), many times over so the race
// detector sees helpers that start late, early and never.
func TestDigestBlocks(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for _, n := range []int{0, 1, 7, 8, 9, 64, 65, 256} {
		for round := 0; round < 50; round++ {
			datas := make([][]byte, n)
			zero := make([]bool, n)
			for i := range datas {
				datas[i] = make([]byte, 4096)
				if zero[i] = rng.Intn(5) == 0; !zero[i] {
					rng.Read(datas[i])
				}
			}
			got := digestBlocks(datas, zero)
			if len(got) != n {
				t.Fatalf("%d blocks: %d digests", n, len(got))
			}
			for i := range datas {
				want := index.Version{}
				if !zero[i] {
					want.Digest = sha256.Sum256(datas[i])
				}
				if got[i] != want {
					t.Fatalf("%d blocks, round %d: block %d digest %x, want %x", n, round, i, got[i].Digest, want.Digest)
				}
			}
		}
	}
}
