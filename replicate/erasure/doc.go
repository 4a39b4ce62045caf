// Package erasure splits a byte string into k data and m parity shards with
// Reed-Solomon coding (github.com/klauspost/reedsolomon) and joins them back
// from any k good shards.
//
// It owns the shard format only: where shards are stored, and which store
// holds which index, is the caller's business (shard i goes to store i of a
// region, see replicate/store).
//
// # Shard format
//
// Every shard describes itself, so decoding never depends on today's
// configuration: a fixed 64-byte header followed by the payload. All integers
// are big-endian.
//
//	offset size field
//	     0    4 magic "SFEC"
//	     4    1 version (1)
//	     5    1 checksum algorithm (1 = SHA-256 of the payload)
//	     6    1 k, data shards (1..255)
//	     7    1 m, parity shards (1..255), k+m <= 256
//	     8    1 shard index (0..k+m-1; 0..k-1 data, k..k+m-1 parity)
//	     9    3 reserved, zero
//	    12    8 original data length in bytes
//	    20    8 payload length in bytes (= Layout.ShardSize())
//	    28   32 SHA-256 of the payload
//	    60    4 CRC32C (Castagnoli) of header bytes [0, 60)
//	    64    * payload
//
// The data is cut into k consecutive pieces of ShardSize bytes, the last one
// padded with zeros; Layout holds that offset and padding math, and nothing
// else in the package repeats it.
//
// Why SHA-256 for the payload: the Reed-Solomon codec cannot tell which
// shard is wrong, so every shard carries its own strong checksum that is
// checked before the shard is used. SHA-256 is in the standard library (no
// key to manage, unlike HighwayHash, and no new module), is hardware
// accelerated on current CPUs (SHA-NI, ARMv8), and, unlike a 32-bit CRC, its
// false-accept rate does not grow with multi-MiB payloads. Shards travel over
// networks at far less than its throughput. The header itself is small and
// gets a CRC32C so a damaged header is told apart from a damaged payload.
//
// # Version rule
//
// The magic and the version byte stay at offsets 0 and 4 in every version.
// Versions only move up: a new layout gets a new version number, and this
// package keeps decoding every version it ever wrote. A shard with a version
// newer than the package knows is unreadable (ErrUnsupportedVersion), never
// guessed at. Encode always writes the newest version.
//
// # Promises
//
//   - Decode and Repair verify every shard's header CRC and payload checksum
//     before using it; a shard that fails, or whose header disagrees with the
//     majority (k, m, lengths), or that sits at the wrong position, is dropped
//     and reported in a Report as corrupt. Missing shards (nil or empty) are
//     reported as missing.
//   - Any k good shards give back the original data. With fewer, the error
//     wraps ErrTooFewShards and is a *TooFewShardsError telling how many good
//     shards there were.
//   - Repair returns a full set of k+m shards, headers included, rebuilding
//     the missing and corrupt ones; the good ones are returned unchanged.
//   - The format is pinned by a golden test (fixed input, k=4 m=2, the SHA-256
//     of every shard), so a codec change is caught.
package erasure
