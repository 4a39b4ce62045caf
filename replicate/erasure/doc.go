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
//	     4    1 version (1 or 2; Encode writes 2)
//	     5    1 checksum algorithm of the payload:
//	              1 = SHA-256      (version 1, and allowed in version 2)
//	              2 = XXH3-128     (version 2 only; what Encode writes)
//	     6    1 k, data shards (1..255)
//	     7    1 m, parity shards (1..255), k+m <= 256
//	     8    1 shard index (0..k+m-1; 0..k-1 data, k..k+m-1 parity)
//	     9    3 reserved, zero
//	    12    8 original data length in bytes
//	    20    8 payload length in bytes (= Layout.ShardSize())
//	    28   32 checksum of the payload: SHA-256 (32 bytes), or XXH3-128
//	              (16 bytes, high half first, then 16 zero bytes)
//	    60    4 CRC32C (Castagnoli) of header bytes [0, 60)
//	    64    * payload
//
// Versions 1 and 2 have the same layout; version 2 only adds checksum
// algorithm 2. Version 1 shards are what every region written before it
// holds, and stay readable.
//
// The data is cut into k consecutive pieces of ShardSize bytes, the last one
// padded with zeros; Layout holds that offset and padding math, and nothing
// else in the package repeats it.
//
// # Shard checksums (why XXH3-128)
//
// The Reed-Solomon codec cannot tell which shard is wrong, so every shard
// carries a checksum of its payload that is checked before the shard is
// used. Its job is to detect corruption (bit rot, torn or truncated
// writes, a store handing back the wrong bytes) and to pick which shards
// to decode and which to rebuild; it is not what makes a region
// tamper-proof. What a shard holds is sealed: each chunk record of a
// version 2 pack (a whole version 1 pack) carries an AES-GCM tag under a
// key the stores never see, so a modified shard that passes its checksum
// still fails the tag when the pack is opened, and no data is accepted.
// The version 1 checksum, SHA-256, was unkeyed and so never stopped a
// malicious store either (it could recompute it); it only cost CPU: in a
// full sync (BenchmarkRegionPhases) hashing the shards was ~29 % of the
// CPU, 1.5 times the data for 4+2.
//
// Version 2 uses XXH3-128 (github.com/zeebo/xxh3: Go with assembly for
// SSE2/AVX2/AVX-512 and NEON, already in the module graph through
// minio-go, the S3 client; a maintained, widely used port checked
// against the reference C implementation, with a small API). It hashes
// at memory speed, an order of magnitude faster than SHA-256 on this project's
// machines (BenchmarkEncodeChecksum, 8 MiB 4+2 packs: ~4 GB/s against
// ~0.4 GB/s for encode plus checksums), and in a full sync its share of
// the CPU is ~2 % where SHA-256's was ~29 %. Its 128 bits keep the chance of
// a random corruption passing negligible however large the payload,
// unlike a CRC32; XXH3-64 would do too, but the header has room and the
// cost is the same. A non-cryptographic hash is fine here precisely
// because the tag, not the checksum, is the security boundary. The
// header itself is small and gets a CRC32C so a damaged header is told
// apart from a damaged payload.
//
// Mixed objects: shards of one object may carry different versions and
// algorithms (an old region repaired by this build: Repair writes the
// rebuilt shards in the newest format and leaves the good old ones
// alone, rather than rewriting every shard of a pack it touches).
// Shards are grouped by layout (k, m, lengths), never by version, so
// such an object decodes from any k good shards.
//
// ReconstructRange rebuilds a byte range of a shard and checks nothing:
// a shard checksum covers the whole payload and cannot check a range; the
// caller checks what it rebuilt with the chunk record's tag.
//
// # Version rule
//
// The magic and the version byte stay at offsets 0 and 4 in every version.
// Versions only move up: a new layout or a new checksum algorithm gets a
// new version number, and this package keeps decoding every version it
// ever wrote. (Builds from before version 2 see a version 2 shard as
// unsupported; their check calls it bad, and their repair, given k
// version 1 shards, would rebuild it as version 1: nothing is lost.) A shard with a version
// newer than the package knows is unreadable (ErrUnsupportedVersion), never
// guessed at; so is a header (its CRC good) that names a checksum
// algorithm this build does not know. Encode and Repair always write the
// newest version.
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
//   - The format is pinned by golden tests (fixed input, k=4 m=2, the SHA-256
//     of every version 1 and every version 2 shard), so a codec change is
//     caught; FuzzDecodeShard is seeded with shards of both versions.
package erasure
