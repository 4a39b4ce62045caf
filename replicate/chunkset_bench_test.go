package replicate

import (
	"math/rand/v2"
	"testing"

	"github.com/snapfs/snapfs/replicate/format"
)

// BenchmarkChunkSetBuild: building a sync's chunk set from the pack
// indexes of a 1 GiB region (128 packs of 512 chunks), with the map sized
// from the index objects' sizes up front (as loadChunks does) and grown as
// it fills (as it did).
func BenchmarkChunkSetBuild(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var xs []*format.Index
	for p := range 128 {
		x := &format.Index{Pack: [16]byte{byte(p), byte(p >> 8)}}
		for range 512 {
			var id format.ChunkID
			for i := range id {
				id[i] = byte(rng.Uint32())
			}
			x.Entries = append(x.Entries, format.Entry{ID: id, Length: 16 << 10, RawLen: 16 << 10, Sealed: true})
		}
		xs = append(xs, x)
	}
	for _, sized := range []bool{false, true} {
		name := "grown"
		if sized {
			name = "sized"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				n := 0
				if sized {
					n = 128 * 512
				}
				cs := &chunkSet{chunks: make(map[format.ChunkID]chunkLoc, n), packs: map[packID]*format.Index{}}
				for _, x := range xs {
					cs.addPack(x, true)
				}
			}
		})
	}
}
