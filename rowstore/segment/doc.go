// Package segment owns the append-only segment log of the snapfs engine: the
// byte format of segment files and records, their checksums, appending,
// rotation, reading a record by position, scanning, and recovering the torn
// tail after a crash. It knows nothing about disks, layers or the index; the
// engine stores Pos values in its index and replays the log with Scan.
//
// A Record's Layer, Block, Epoch and Seq and a segment number (Pos.Segment,
// SegmentInfo.Number, Active, Remove, ScanSegment, ...) have the distinct
// types of package rowstore/ids, so the engine cannot pass one for another;
// the bytes on disk are the same uint64 fields as before.
//
// # Write-behind
//
// Append gathers records of the active segment in memory and writes them to
// the file in pieces of about 1 MiB (before a record that would overflow the
// piece, at Sync, at rotation and at Close). Reads see gathered records at
// once. Besides saving system calls, large writes let the page cache keep
// large folios: reading a segment written in 16 KiB pieces was measured 4x
// slower than one written in 1 MiB pieces (same data, both cached). A failed
// write keeps the gathered records in memory and cuts the file back, so a
// full disk fails Append or Sync, loses nothing appended, and works again
// once space is freed.
//
// # Two append streams
//
// The log has two append streams, each with its own active segment,
// gathering buffer, append lock and chain of background seal syncs: the
// foreground's (Append, AppendBatch, AppendRawBatch, Sync, Rotate, Tail,
// Active) and the cleaner's (AppendCleanerRawBatch, SyncCleaner,
// SealCleaner, CleanerTail, CleanerActive), which the engine's cleaner
// moves live records into. Sync never syncs the cleaner stream nor waits
// for its appends, and the cleaner's appends never take the foreground's
// append lock. Both streams share one numbering (a segment of either is
// numbered after every segment created before it), so segment order is no
// longer append order: the cleaner's active segment may be numbered below
// foreground segments written after it, and above them. What still holds
// is per stream: a stream's segments are numbered in the order it wrote
// them, and each but its last was synced in full before its successor got
// a byte. The engine copes with the rest (records keep their sequence
// numbers; replay and rebuild keep the highest per key whatever the
// order; see package rowstore). The cleaner stream's segments carry
// FlagCleanerStream in their file header (format version 2) so Open can
// tell the two tails apart; its first segment is created at its first
// append (Open never continues an old one).
//
// DataOnly tells the engine's cleaner which segments hold only data
// records: a segment this Log created (since Open) notes, in memory, when
// a record of another kind is appended to it, through either stream. Not
// stored: a segment Open found is never data-only (its records were not
// seen), so the cleaner scans it whole, as before.
//
// # Files
//
// A log is one directory of segment files named %016x.seg after their
// segment number (the first is 1). Numbers only grow; a removed number is
// never reused while a larger one exists. Every file starts with a 32-byte
// header, then records back to back:
//
//	file header (32 bytes, little-endian)
//	+--------+-----+--------------------------------------------+
//	| offset | len | field                                      |
//	+--------+-----+--------------------------------------------+
//	|      0 |   8 | magic "SNAPSEG\x00"                        |
//	|      8 |   2 | format version (uint16, = 2; 1 is read)    |
//	|     10 |   2 | flags (bit 0: cleaner stream; version 1: 0)|
//	|     12 |   4 | reserved (0)                               |
//	|     16 |   8 | segment number (uint64)                    |
//	|     24 |   4 | reserved (0)                               |
//	|     28 |   4 | CRC32C (Castagnoli) of bytes 0..28         |
//	+--------+-----+--------------------------------------------+
//
//	record (48-byte header, then the payload; little-endian)
//	+--------+-----+--------------------------------------------+
//	| offset | len | field                                      |
//	+--------+-----+--------------------------------------------+
//	|      0 |   4 | magic 0x52505346 (bytes 'F','S','P','R')   |
//	|      4 |   1 | version (= 1)                              |
//	|      5 |   1 | kind: 1 data, 2 zero, 3 pad, 4 catalog     |
//	|      6 |   2 | flags                                      |
//	|      8 |   8 | layer                                      |
//	|     16 |   8 | block                                      |
//	|     24 |   8 | epoch                                      |
//	|     32 |   8 | seq (> 0; any value for pad)               |
//	|     40 |   4 | payload length n (<= 16 MiB + 64)          |
//	|     44 |   4 | CRC32C of header bytes 0..44, then payload |
//	|     48 |   n | payload                                    |
//	+--------+-----+--------------------------------------------+
//
// Payloads: a data record carries the block's bytes; a zero record carries a
// uint64 count c, meaning blocks [block, block+c) read as zeros at epoch; a
// pad record is reserved and skipped by scanners; a catalog record (layer,
// block and epoch 0) carries a change of the catalog, encoded by package
// index (versioned, with its own CRC32C), so the catalog can be rebuilt from
// the log alone. Kind 4 was added without a version bump: older readers
// refuse it as an unknown kind (corruption), never misread it.
//
// Flags are not interpreted here (the CRC covers them). Flag bit 0 on a data
// record means its payload is a sealed block of an encrypted disk (package
// rowstore, crypt.go): block size + 88 bytes, so a reader that ignores the
// flag finds a payload of the wrong length and reports corruption, never
// returns it as data.
//
// # Versions
//
// Format versions only move up. The file header and the records have
// their own (FileVersion, Version). File format 2 (the cleaner stream's
// flag) is written for every new segment; version-1 files (flags 0, all
// of a store written before it) are read as foreground segments, so old
// stores open unchanged; an older build refuses a version-2 file
// (ErrIncompatible) rather than take a cleaner segment's torn tail for
// corruption. Unknown flags are corruption. A file header with a version
// newer than this package's FileVersion makes Open (and reading that
// segment) fail with an error wrapping ErrIncompatible. A newer format is
// refused, never misread. Unknown kinds and lengths over the limit are
// corruption.
//
// A record's frame (magic, version, payload length <= MaxPayload, CRC
// over header and payload, all where the table above puts them) is the
// same in every record version: a newer record version may give the other
// header fields and the payload new meanings, never move or widen the
// frame (that takes a new file format version, refused for the whole
// segment when its file header is read, before any of its records). So
// any build can verify the
// checksum of any record, and that is how a record from a newer snapfs is
// told from a damaged version byte: a version above Version with a valid
// checksum is a record a newer snapfs wrote, a decode error wrapping both
// ErrCorrupt and ErrIncompatible that stops Open (when its recovery of a
// stream's last segment meets it) or Scan with nothing changed, never
// skipped nor cut (a resync stops at it too); with a bad checksum it is damage like any other (version 1 -> 7 is
// one bit flip away): one record reported corrupt, the rest scanned. A
// newer record can only be found where a newer binary appended, at the
// tail of the log; one short record of any version at a stream's end is a
// torn tail (a newer binary would cut it too).
//
// # Invariants
//
//   - Per stream: every segment of a stream but its last one was synced in
//     full before a record was written to the stream's next segment, and
//     every header was synced before any record was written. So after a
//     crash only each stream's last segment that holds a record can end in
//     a torn record: two tails at most (the cleaner's may be numbered
//     before or after the foreground's). The sync of a segment sealed by rotation
//     runs in the background (the appender that rotates does not wait for
//     it): the successor gathers its records in memory meanwhile (up to
//     3 MiB) and its first write to the file waits for that sync, as do
//     Sync and Close; removing the sealed segment waits for it too, and a
//     failed one breaks the Log like a failed Sync. (With SetPrecreate on, the successors'
//     files, header only, are created ahead in the background, a batch of
//     spareBatch at a time; files after the last one holding a record hold
//     none.)
//   - A segment is appended to by one Log only, by one stream, and never
//     again after the Log that wrote it is gone: Open always starts a new
//     foreground segment, and the cleaner stream a new one at its first
//     append.
//   - A record is written with a single write at the end of the active
//     segment; a failed write is truncated away, or else the Log refuses
//     further writes until reopened. A failed Sync also breaks the Log (the
//     state of unsynced data is unknown after a failed fsync).
//   - Sync covers every record appended before it; nothing else promises
//     durability (a record is readable as soon as Append returns).
//
// # Torn tail
//
// Open first removes every file that holds no record (header only, or a
// header torn by a crash during its creation: a foreground segment created
// ahead, one started just before the crash, or the cleaner stream's;
// with two streams such a file may lie between segments that hold
// records). Then it finds each stream's last segment holding a record,
// reading file headers from the highest number down until it has both, the
// cleaner's searched no lower than Options.CleanerDurable's segment (a
// version-1 header is the foreground's; a bad header on the highest
// segment is corruption, as before, one further down is left to reads and
// check to report). Each of the two is scanned from its header; at the
// first record that is short or fails to decode the file is truncated and
// synced (it is synced even when nothing was cut, because what it read may
// only have been in the page cache), unless that record lies before the
// stream's durable position: Options.Durable for the foreground (the
// engine's checkpoint), Options.CleanerDurable for the cleaner stream (the
// engine's mark, written to the index before it names a copy). A bad
// record before it is corruption, not a torn write: the segment is kept
// whole and the error logged. A stream's last segment that holds no record
// once cut is removed. Then a new foreground segment is started, numbered
// after the highest file found (numbers are never reused). Every cut is
// logged and passed to Options.OnTornTail.
//
// With Options.DurableUnknown (an index rebuild: no position is known
// durable) a bad record is cut as a torn tail only if no valid record
// follows it in the segment; one with a valid record after it is
// corruption and is kept with everything after it (Scan reports the
// record), and Open goes on from the next valid record, so a torn tail
// after it is still cut. Only a stream's last segment is ever cut. The
// price of not knowing: a record torn by a crash (writeback reordered the
// unsynced pages) with valid, equally unsynced records after it is taken
// for corruption; nothing acknowledged is lost, but when its header is
// intact the engine indexes it, and its block reads as corrupt instead of
// as its acknowledged previous version. Past a KNOWN durable position the
// first bad record still starts the tail, valid records after it or not,
// because only that is safe after a crash: an fsync acknowledges nothing
// until every byte before its end is on disk, so from a torn record on
// nothing was acknowledged, and writeback may have written later pages of
// that unsynced stretch but not earlier ones (a torn record before valid
// ones is an ordinary crash, not damage). Keeping them would report a
// crash as corruption for good. Nothing durable names the part cut: the
// engine's index takes a block version only after the log is synced past
// it, a catalog record is synced before its index commit (and the
// checkpoint stays before it until then), and the index names no cleaner
// copy past the cleaner's mark. The one case this loses data is media
// damage that cannot be proven (below: a damaged payload or checksum
// field, or header fields beyond magic, version, length and kind) to
// records synced after the last checkpoint followed by a crash before the
// next one (Disk.Sync acknowledges at the log's sync; the checkpoint
// follows at the index apply, a clean Close puts it at the tail): the
// records from the damaged one on are cut, the index's versions of them
// then point past the segment's end, and reads of those blocks fail
// (check reports them), never return other data.
//
// Proven damage is never a torn tail, in either mode and even as a
// segment's last record: a bad record whose checksum verifies once a
// damaged magic, version, length or kind field is restored ("Corruption",
// proven headers) holds every other byte as written, and a write a crash
// tore leaves bytes unwritten (zeros, or a short file) that restoring
// those fields cannot bring back. It is media damage, kept with what
// follows it and reported by the scan (a single flipped byte of those
// fields past the checkpoint no longer cuts the acknowledged records
// after it, nor, for a version byte, makes Open fail as "newer format").
//
// # Corruption
//
// Scan never stops at one bad record: a record that fails to decode and is
// followed by a valid one is skipped, logged and passed to Options.OnCorrupt
// as a *CorruptError naming segment and offset, and the scan goes on at the
// next valid record. A bad tail of the last segment ends the scan silently.
// Read of a bad record returns a *CorruptError (never data), and a record
// of a newer version stops Scan with an error wrapping ErrIncompatible.
//
// Resync. The checksum of a bad record covers its length field, so the
// length is not trusted: a damaged length that names the start of a later
// record would skip the valid records between (their blocks silently read
// an older version, or nothing). The scanner tries every offset after the
// bad record's start (records are not aligned: the step is one byte) for
// a record with a valid frame and checksum (a valid newer record counts,
// so it is met and refused, never skipped). That alone could take a
// record encoded inside the bad record's own payload (a disk that holds a
// copy of a segment file) for a real one, and misread it as a block. So a
// candidate is taken only with evidence that the bad record ends there:
// the bad record is proven to end there (its checksum verifies with its
// length restored; tried on the first 64 candidates within a payload's
// reach, then at the segment's end, before anything else when its magic
// is intact, unless a valid record starts exactly where the length names:
// so a length damaged shorter, naming a point inside the record's own
// payload before or inside records encoded there, is proven at the true
// end and those are never taken; a header without its magic, a zeroed
// sector say, pays no proofs), or, for a candidate inside the span the
// bad header claims (ending at or past the segment's
// end counts as ending there: a torn record, or a damaged length), valid
// records chain from it back to back to the span's end or past it (the
// real records a damaged length would skip do; records inside a payload
// end with it). Without such evidence the claimed length is believed: the
// scan goes on where it ends, as a valid record or as a further bad record
// reported on its own (two adjacent damaged records, one sector across
// their boundary, are two reports, each with its own header), or the bad
// record is a bad tail if nothing valid follows. A single damage (one
// field, one sector) therefore never hides a valid record. What can still
// go wrong: with two damages, a length damaged together with more of the
// same record (so it cannot be proven) and a second damage in a record
// after it (the records between may be skipped, or cut with a torn tail,
// or a record embedded in a later payload taken for real); and, where
// payloads hold encoded records, a record whose header is destroyed (no
// plausible length: the first valid record after it is taken, with no
// span to check it against; a length damaged shorter or over the limit,
// with nothing else damaged, is proven unless more than 64 records are
// encoded in the payload before its end), a length damaged to name
// exactly a record embedded in its own payload, or a damaged or torn
// record whose embedded
// records chain exactly to its end or the file's (each taken for real:
// whole records tiling the rest of a payload, which a copied segment file
// cut at a block boundary rarely does).
// Each offset is decoded once per resync, and only a bad record pays for
// it: a clean scan reads as before.
//
// Bad records and the tail rule. A resync that finds nothing valid before
// the segment's end makes the bad record a bad tail: in a stream's last
// segment it is the torn tail Open cuts (past the durable position, or
// with DurableUnknown), or the end of the scan; a valid record after it
// makes it corruption (see "Torn tail" for a known durable position).
//
// What a bad record's header tells. ScanReport also passes each skipped
// record as a BadRecord: Bytes up to the next valid record (or the
// segment's end), and its header when it is proven or looks intact. Proven:
// its checksum verifies once the fields whose value is implied are
// restored (magic, version, the length to the next valid record, and the
// kind, as it is or each of the four): a damaged magic, version, length or
// kind byte is repaired in memory (never on disk), the rest of the header
// and the payload shown to be what was written (a false match has odds
// 2^-32 per try, at most five tries). Otherwise it is a judgement (magic
// and version right, a valid kind and length, ending where the next valid
// record starts), true of a damaged payload or checksum field. The engine
// indexes such a data record so that its block reads as corrupt rather
// than as an older version (package rowstore, attributeBad).
package segment
