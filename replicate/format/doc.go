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
// # Holds (version 1)
//
// A hold ('H' envelope, hold.go) records that a host's lazily restored
// disk reads a snapshot, so prune keeps it; its name carries the
// manifest's name id, so even an unreadable hold still holds.
//
// Format versions only move up; a decoder given a newer version returns an
// error wrapping ErrUnsupportedVersion, and damaged input an error wrapping
// ErrCorrupt that names the object.
package format
