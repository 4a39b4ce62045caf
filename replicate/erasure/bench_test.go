package erasure

import (
	"fmt"
	"testing"
)

// BenchmarkEncodeChecksum encodes a sync-sized pack (8 MiB, 4+2, reused
// buffers as sync does) with each payload checksum, interleaved in one
// run so the ratio holds under load: -count N alternates them.
func BenchmarkEncodeChecksum(b *testing.B) {
	const k, m = 4, 2
	data := randomData(1, 8<<20)
	for _, c := range []struct {
		name string
		ver  int
		alg  byte
	}{{"v1-sha256", 1, ChecksumSHA256}, {"v2-xxh3", 2, ChecksumXXH3}} {
		b.Run(c.name, func(b *testing.B) {
			bufs := make([][]byte, k+m)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				shards, err := encodeInto(data, k, m, bufs, c.ver, c.alg)
				if err != nil {
					b.Fatal(err)
				}
				for i, s := range shards {
					bufs[i] = s
				}
			}
		})
	}
}

// BenchmarkDecodeChecksum verifies and joins the k data shards of such a
// pack (the restore path) with each payload checksum.
func BenchmarkDecodeChecksum(b *testing.B) {
	const k, m = 4, 2
	data := randomData(1, 8<<20)
	for _, c := range []struct {
		name string
		ver  int
		alg  byte
	}{{"v1-sha256", 1, ChecksumSHA256}, {"v2-xxh3", 2, ChecksumXXH3}} {
		shards, err := encodeInto(data, k, m, nil, c.ver, c.alg)
		if err != nil {
			b.Fatal(err)
		}
		in := Bytes(shards)[:k]
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Decode(in); err != nil {
					b.Fatal(fmt.Errorf("decode: %w", err))
				}
			}
		})
	}
}
