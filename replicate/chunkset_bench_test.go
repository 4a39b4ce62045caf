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

// BenchmarkChunkSetKeptReuse: what a load that reuses the kept set costs
// (the set copied, then settled: chunkSet.settle scans every entry for
// deltas that do not read) for a 1 GiB region of 16 KiB blocks, one
// chunk in eight a delta over a chunk of an earlier pack.
func BenchmarkChunkSetKeptReuse(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var xs []*format.Index
	var prev []format.ChunkID
	for p := range 128 {
		x := &format.Index{Pack: [16]byte{byte(p), byte(p >> 8)}}
		for j := range 512 {
			var id format.ChunkID
			for i := range id {
				id[i] = byte(rng.Uint32())
			}
			e := format.Entry{ID: id, Length: 16 << 10, RawLen: 16 << 10, Sealed: true}
			if p > 0 && j%8 == 0 {
				base := prev[rng.IntN(len(prev))]
				e.Base = &base
			} else {
				prev = append(prev, id)
			}
			x.Entries = append(x.Entries, e)
		}
		xs = append(xs, x)
	}
	cs := &chunkSet{chunks: make(map[format.ChunkID]chunkLoc, 128*512), packs: map[packID]*format.Index{}}
	for _, x := range xs {
		cs.addPack(x, true)
	}
	b.Run("clone", func(b *testing.B) {
		for range b.N {
			_ = cs.clone()
		}
	})
	b.Run("settle", func(b *testing.B) {
		for range b.N {
			cs.settle()
		}
	})
}
