// Package format owns the byte layouts of a region's objects: the per-store
// config, the encryption envelope, packs, pack indexes, snapshot manifests
// and copying markers, and the region's key derivation. It does no I/O
// except ReadKeyFile. Every decoder checks bounds and versions and never
// panics on any input (fuzz tests in this package). The package doc of
// replicate draws how these objects sit in a store.
//
// # Packs, version 2: chunks that open alone
//
// A version 1 pack is one plaintext sealed as a whole (one AES-GCM tag
// over tens of MiB): reading one chunk means fetching and opening the
// whole pack. Version 2 (written since issue 11) seals every chunk on its
// own, in place, under a key of its own pack (HMAC-SHA256 of the
// region's pack-chunks subkey and "pack/" + pack id, so random 96-bit
// nonces are never drawn more than a pack's chunk count times per key),
// with the chunk's entry (id, offset, length, raw length, compression),
// the pack id and the pack header as additional data. The pack object is
// no longer enveloped: it is "SFPK" 2 cipher 0 0 | records | sealed
// table | table offset, and it is what the erasure code splits (see
// pack.go for the byte layout). Its index (version 2) gives each record's
// offset and length in that object, so a reader computes from the index
// alone which data shard(s) hold the record and at which offsets, fetches
// those bytes (one ranged GET, two when the record crosses a shard
// boundary), and checks them with the record's tag: a damaged or
// substituted range is detected by the tag, and the reader rebuilds it
// from the same range of other shards (the shard's checksum covers the
// whole shard and cannot check a range; the tag can). Version 1 packs and
// indexes are still read (OpenPack opens both; Chunk slices both).
//
// # Packs and indexes, version 3: delta entries (issue 8)
//
// A version 3 pack is a version 2 pack whose header says 3 and whose
// table entries may be deltas: the compression byte carries flag 0x80 and
// the entry is followed by the id of its base chunk (77 bytes instead of
// 45). A record's additional data holds its whole entry, base id
// included, so a record opens only as the delta over the base its entry
// names. Its index (version 3) has the same entries: the base of every
// delta is known from the indexes alone, which is what prune reads. A
// delta's stored bytes, decompressed, are a delta payload (delta.go):
//
//	version(1) | piece shift(1: 12) | mask(ceil(n/8)) | the set pieces
//
// n = raw length / 4 KiB; ApplyDelta puts the pieces over the base's raw
// bytes. The payload has no checksum of its own: its record's GCM tag
// authenticates it, and the rebuilt chunk is checked against its chunk id
// (SHA-256 under an HMAC) by every reader. A base is always a full chunk
// (Entry.Base's invariant): depth 1. Decoders: readEntry (versions 1-3),
// DecodeIndex, decodeTable2, OpenPackTable and ApplyDelta are fuzzed
// (FuzzDecodeIndex, FuzzDecodeTable2 and FuzzOpenPack have version 3 seeds
// with a delta entry, FuzzApplyDelta). A
// version 2 decoder given a version 3 index or pack returns
// ErrUnsupportedVersion (it checks the version byte before any entry), so
// an older snapfs never reads a delta as a full chunk.
//
// # Holds (version 1)
//
// A hold ('H' envelope, hold.go) records that a host's lazily restored
// disk reads a snapshot, so prune keeps it; its name carries the
// manifest's name id, so even an unreadable hold still holds.
//
// # Tombstones (version 2)
//
// A tombstone ('T' envelope, lock.go) records a snapshot prune removed.
// Version 2 (issue 14) appends seq(8): the sequence of the manifest
// removed, so a manifest put again later (an explicit copy writes a
// higher sequence) is told from a copy of the removed one a stale store
// kept (replicate's prunedCopies). Version 1 (no seq) still decodes
// (Version 1, HasSeq false) and re-encodes byte for byte
// (TestTombstoneVersions, FuzzDecodeTombstone seeds of both); an older
// decoder refuses version 2 with ErrUnsupportedVersion.
//
// Format versions only move up; a decoder given a newer version returns an
// error wrapping ErrUnsupportedVersion, and damaged input an error wrapping
// ErrCorrupt that names the object.
package format
