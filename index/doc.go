// Package index is the Badger schema of snapfs: how block versions, the
// catalog and meta records are keyed and encoded. It holds no business rules
// (what a snapshot means, which versions are visible, when something may be
// deleted): package rowstore decides those.
//
// # Keys
//
// Every key starts with a one-byte prefix:
//
//	'v' layer(8, BE) block(8, BE) ^epoch(8, BE)   -> Version value
//	'e' layer(8, BE) epoch(8, BE) block(8, BE)    -> empty
//	'c' kind(1) name                              -> catalog record (kind 'd' disk, 's' snapshot, 'i' image)
//	'l' layer(8, BE)                              -> Layer record
//	'm' name                                      -> meta record ("checkpoint", "next-id")
//
// Version keys store the epoch inverted, so within a block the newest epoch
// sorts first: one Seek to VersionKey(layer, block, E) finds the newest
// version at or below epoch E. Epoch keys mirror version keys in epoch
// order, so the blocks written in a layer between two epochs (a diff) are
// listed in time proportional to their number, not to the disk's size.
//
// # Values
//
// A Version value is 70 bytes, little-endian:
//
//	0  1  format version (1)
//	1  8  segment number
//	9  8  record offset in the segment
//	17 4  record length (header + payload)
//	21 4  CRC32C of the block's plaintext
//	25 32 SHA-256 of the block's plaintext (the chunk id for replication)
//	57 8  sequence number of the record
//	65 1  flags (bit 0: hole, the block reads as zeros)
//	66 4  CRC32C of bytes 0..66
//
// Catalog and meta records are: format version (1 byte, = 1), a JSON object,
// CRC32C (4 bytes LE) of what precedes. JSON keeps the catalog readable and
// extensible (new fields are ignored by old readers); the catalog is small.
// A value with a wrong length, an unknown version or a bad checksum decodes
// to an error wrapping ErrCorrupt, never to a wrong value. Versions only
// move up; an older snapfs refuses a newer value.
//
// # Invariants
//
//   - A version key exists only for a record that was synced to the segment
//     log before the key was written (rowstore writes versions after fsync).
//   - Catalog ids come from one counter ("next-id") and are never reused.
//   - The checkpoint says how far the log has been applied: every record
//     before it is reflected in the version map.
//
// Badger's options, and why, are documented on Open.
package index
