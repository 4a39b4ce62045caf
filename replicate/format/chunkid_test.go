package format

import (
	"crypto/hmac"
	"crypto/sha256"
	"sync"
	"testing"
)

// TestChunkIDReused: ids from the reused HMACs are HMAC-SHA256(id key,
// digest), from many goroutines at once, whatever was hashed before.
func TestChunkIDReused(t *testing.T) {
	ks := testKeys(t)
	want := func(d [32]byte) ChunkID {
		h := hmac.New(sha256.New, ks.id[:])
		h.Write(d[:])
		var id ChunkID
		h.Sum(id[:0])
		return id
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				d := sha256.Sum256([]byte{byte(g), byte(i), byte(i >> 8)})
				if got := ks.ChunkID(d); got != want(d) {
					t.Errorf("ChunkID(%x) = %v, want %v", d[:4], got, want(d))
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkChunkID(b *testing.B) {
	ks := testKeys(b)
	var d [32]byte
	for i := 0; i < b.N; i++ {
		d[0] = byte(i)
		_ = ks.ChunkID(d)
	}
}
