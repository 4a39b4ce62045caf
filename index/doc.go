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
//	'm' name                                      -> meta record ("checkpoint", "next-id",
//	                                                 "catalog-log", "store", "alloc")
//
// Layer, block, epoch, segment and sequence numbers have the distinct
// types of package rowstore/ids in every key function, Version and catalog
// record (the encoding is unchanged: the same bytes as plain uint64), so a
// call with two of them swapped does not compile.
//
// Version keys store the epoch inverted, so within a block the newest epoch
// sorts first: one Seek to VersionKey(layer, block, E) finds the newest
// version at or below epoch E. Epoch keys mirror version keys in epoch
// order, so the blocks written in a layer between two epochs (a diff) are
// listed in time proportional to their number, not to the disk's size.
//
// # Values
//
// A Version value, format 2 (written since 6 Dec 2026; about 50 bytes):
//
//	0  1  format version (2)
//	1  1  flags (bit 0: hole, the block reads as zeros)
//	2  1  layout (bit 0: the digest follows; other bits 0)
//	3  …  uvarints (shortest form): segment number, record offset in the
//	      segment, record length (header + payload), sequence number
//	…  32 SHA-256 of the block's plaintext (the chunk id for replication;
//	      the sealed digest for an encrypted layer), absent for holes
//	…  4  CRC32C of everything before
//
// Format 1 (70 bytes, fixed fields, little-endian) is still read, never
// written: 0 format version (1), 1 segment (8), 9 offset (8), 17 length
// (4), 21 CRC32C of the plaintext (4; nothing read it: the record's own
// CRC32C and the SHA-256 check the data, so format 2 dropped it and writes
// no longer compute it), 25 SHA-256 (32), 57 sequence number (8), 65 flags
// (1), 66 CRC32C of bytes 0..66 (4). A store's index may hold both formats
// (values are rewritten only when their version is). Format 2 cut a typical
// value from 70 to about 50 bytes (TestVersionFormats); FuzzVersionValue
// fuzzes the decoder of both.
//
// The trailing CRC32C of a value (both formats) is kept: UnmarshalBinary
// checks it on every decode, and it guards what nothing else does. Badger
// verifies a table's checksums when it opens the table (OnTableRead), not
// the blocks it reads from the mapping afterwards nor memtable entries, and
// the engine cannot tell a damaged value from a right one in one case: a
// flipped flags bit (FlagZero) turns a data block into a hole, which reads
// as zeros without touching the log, so no record checksum would catch it
// (a damaged segment, offset, length or sequence number is caught anyway:
// the record read must decode, pass its own CRC32C and carry the version's
// block, sequence number and length; a damaged digest is caught by check
// and by replication's digest checks). Four bytes a value, one CRC32C of
// about 50 bytes per decode. It was the plaintext CRC32C field of format 1,
// not this one, that nothing read (issue 8): format 2 dropped that one and
// writes no longer compute it.
//
// Catalog and meta records are: format version (1 byte), a JSON object,
// CRC32C (4 bytes LE) of what precedes. JSON keeps the catalog readable and
// extensible (new fields are ignored by old readers); the catalog is small.
// Version 2 is written for snapshot and image records: they carry the
// allocated bytes of each member and of the image ("allocated"), recorded
// when they were made, which a reader then trusts; a version-1 record lacks
// it (unknown: the engine counts it once). Every other record is still
// version 1. The meta record "alloc" (AllocState) holds the engine's count of
// stored blocks of every disk head, as of the checkpoint it names (written in
// the checkpoint's transaction); it is not a catalog key (not logged).
// Version 3 is written for a layer record that carries a LazyOrigin (the
// bottom layer of a lazily restored disk: "lazy": {format, region, host,
// snapshot, disk, size, block_size, rate, and, since trial 9, host_id,
// snapshot_id and created: the identity of the snapshot restored from,
// optional, so records without them still read and an older build reading
// them ignores them; the service refuses a source of another identity,
// the name reused after a prune}); an ordinary layer is still
// version 1. An older build therefore refuses a lazy layer instead of
// reading its missing blocks as zeros; an origin whose "format" is not
// LazyFormat (1) is refused as corrupt. Clearing the mark (the layer is
// hydrated) writes the layer back as version 1. FuzzLayerRecord.
// A value with a wrong length, an unknown version or a bad checksum decodes
// to an error wrapping ErrCorrupt, never to a wrong value. Versions only
// move up; an older snapfs refuses a newer value.
//
// # Catalog log
//
// The catalog keys ('c', 'l' and the "next-id" counter) are also written to
// the segment log: UpdateCatalog records every catalog key a transaction
// changes and hands the encoded changes to the engine, which appends them as
// a catalog record (kind 4 of package segment) and syncs the log before the
// transaction commits. The payload (EncodeCatalog, DecodeCatalog; fuzzed):
//
//	0  1  format version (1)
//	1  1  flags (bit 0: full, the whole catalog: keys not in it do not exist)
//	2  2  reserved (0)
//	4  4  number of entries n
//	8  …  n entries: op (1 set, 2 delete), key length (2, LE), key,
//	      and for a set: value length (4, LE), value (as stored here)
//	…  4  CRC32C of everything before
//
// The meta record "catalog-log" (CatalogState) holds the sequence number of
// the last catalog record applied, of the newest full one, and the number of
// deltas since; it changes in the same transaction as the catalog.
//
// # Identity
//
// The index names the store it belongs to twice: the file SNAPFS-INDEX in the
// index directory (read before Badger opens the directory; 32 bytes: magic
// "SNAPFSIX", version (2), reserved (2), store UUID (16), CRC32C (4)), and the
// meta record "store" (the same 32 bytes) inside. Inspect looks at a
// directory without opening it. That matters: Badger, finding no MANIFEST,
// starts an empty database in the directory and deletes the table files it
// does not know (measured: TestBadgerWithoutManifest), so opening a damaged
// index directory destroys it; the engine refuses such a directory before
// Badger sees it. Open with Options.ReadOnly reads an index without writing
// (Badger refuses that after a crash until its memtable log is truncated:
// ErrNeedsWrite).
//
// # Invariants
//
//   - A version key exists only for a record that was synced to the segment
//     log before the key was written (rowstore writes versions after fsync).
//   - Catalog ids come from one counter ("next-id") and are never reused.
//   - The checkpoint says how far the log has been applied: every record
//     before it is reflected in the version map.
//   - Every catalog change is in the segment log (a catalog record, synced)
//     before it commits here; the log is the catalog's source of truth.
//
// # Memory
//
// The index's memory is bounded by Badger's options (4 MiB memtables, 3 of
// them; 1 MiB tables at every level: heapBudget, TestMemoryBudget) and, for
// the SST tables Badger maps whole, by releasing their resident pages
// (MADV_DONTNEED through the patched ristretto, z.ReleaseTables) whenever
// the process's file-backed resident size grew 16 MiB, and every second:
// without it they stayed resident, about 1 % of the data written. The pages
// stay in the page cache; Badger sees nothing. Details and measurements:
// "Memory" at Open.
//
// Badger's options, and why, are documented on Open.
package index
