// Package replicate copies snapshots to remote regions and back: sync,
// restore, check, repair and prune over a region of k+m stores.
//
// # What it owns
//
// A region is a name, k >= 1 data and m >= 1 parity stores (replicate/store URLs)
// and a 32-byte region key read from a key file (32 raw bytes or 64 hex
// digits). The local configuration of a region lives in
// <storeDir>/regions/<name>.json (k, m, URLs, key file path, S3 options,
// region id; never the key), written atomically; a rebuildable cache of
// the region's pack indexes and the last check's result lives in
// <storeDir>/regions/<name>.cache/. The package reads blocks and block
// maps through rowstore's exported API only (ListSnapshots, Diff,
// ReadPointBlock, CreateDisk, OpenDisk, RenameDisk, DeleteDisk). The byte
// layouts are in replicate/format; shard layout and checksums in
// replicate/erasure.
//
// # Objects in every store
//
//	config                   per store: version, k, m, region id, this store's shard index,
//	                         algorithms, key check (format.Config: 128 bytes, SHA-256 trailer)
//	packs/<pack id>          shard i of the pack on store i (erasure header + payload)
//	index/<pack id>          the pack's index, sealed, on every store
//	snapshots/<name id>      a snapshot manifest, sealed, on every store
//	copying/<name id>        copy-in-progress marker, sealed, on every store
//
// pack id = 32 hex digits: 8 bytes of creation time (unix seconds) and 8
// random bytes. name id = HMAC-SHA256(names key, snapshot name), 16 bytes
// in hex: a store learns no snapshot names. chunk id = HMAC-SHA256(id key,
// SHA-256 of the block): a store cannot test for known content.
//
// A pack is built as
//
//	plaintext: "SFPK" ver(1) 0 0 0 | chunk bytes ... | count(4) | count × entry(45) | table offset(4)
//	           entry = chunk id(32) offset(4) length(4) raw length(4) compression(1: 0 none, 1 zstd)
//	sealed:    "SFRE" ver(1) type('P') cipher(1 = AES-256-GCM) 0 | nonce(12) | ciphertext | tag(16)
//	           additional data = the 8 header bytes + the pack id
//	shards:    erasure.Encode(sealed, k, m): shard i = header(64: "SFEC", version, k, m, index,
//	           data length, payload length, SHA-256 of the payload, CRC) + payload
//
// The index ('I' envelope, same sealing) is "SFIX" ver 0 0 0 | pack id(16) |
// sealed size(8) | count(4) | entries sorted by chunk id. The manifest ('M')
// is "SFMF" ver(2) 0 0 0 | snapshot id(8) | created(8, unix ns) | sequence(8) | name | kind |
// disks(2) | per disk: name, size(8), block size(4), parent name id (empty:
// full map), depth(2), count(4), entries (varint (gap<<1 | zero) + chunk
// id(32) unless zero). The sequence is 0 when a manifest is first
// written and the previous copy's + 1 on each rewrite (Prune), so of copies
// that differ the highest is the newest; version 1 manifests (no sequence)
// still decode, with sequence 0. The marker ('C') holds the snapshot's id, name,
// creation and start times. See replicate/format for the exact layouts.
//
// # Invariants (MUST)
//
//   - Write order: a snapshot's marker, then its packs (all k+m shards),
//     then each pack's index (on every store), then the manifest (on every
//     store) — only after every pack and index it needs is durable — and
//     last the marker is removed. So a manifest never names a chunk the
//     region lacks, and an interrupted sync leaves only complete, indexed
//     packs that the next run reuses (or shards without an index, which
//     Prune deletes after OrphanAge).
//   - An interrupted manifest write is finished, not trusted: when Sync
//     finds a snapshot's manifest missing on some usable store, or its
//     copying marker still present, it re-puts the manifest on every
//     store and deletes the marker before counting the snapshot skipped.
//     Likewise an index missing on some usable store is re-put from a good
//     copy before Sync trusts it for dedup (if that fails, its chunks are
//     sent again) and before Prune uses it; Check and Restore only read.
//   - Prune deletes no pack without an index (orphan) while a kept
//     manifest needs a chunk that is in no index: the orphan may hold it.
//   - A pack's index is deleted before its shards, and only when no kept
//     manifest (resolved through its delta chain) references a chunk in it:
//     a chunk set built from the indexes never names a deleted pack.
//   - A delta manifest's chain is at most format.MaxDepth (16) long; before
//     Prune deletes a manifest, every kept manifest whose disk is a delta
//     over it is rewritten as a full map on every store.
//   - Manifests are read from every usable store and the newest copy
//     (highest sequence) is used. Before Prune rewrites or deletes any
//     manifest it puts the newest copy of every manifest whose copies
//     differ on every store, so a retried prune finishes an interrupted
//     rewrite instead of leaving stale deltas over a deleted parent. Check
//     reports a good copy that differs from the newest as "stale"; Repair
//     puts the newest copy; Sync re-puts it too before skipping.
//   - Every object carries a version and an authenticated checksum: the
//     GCM tag for sealed objects (bound to the object's type and name),
//     SHA-256 per shard, SHA-256 plus the AEAD key check for config.
//     Restore also checks every block against its chunk id.
//   - Sync reads only blocks whose chunk the region lacks, found through
//     rowstore.Diff from the newest snapshot of the same disk that is both
//     local and in the region (or from nothing: Diff then lists stored
//     blocks with their digests, reading no data). Content addressing
//     means deleting local or remote snapshots never forces a resend.
//   - Restore writes into a temporary disk "restore-<16 hex digits>", syncs
//     it and renames it; on any failure the temporary disk is deleted. A
//     temporary disk left by a killed process is deleted when a Manager is
//     created and at the start of every Restore (unless a restore of this
//     process owns it, or it is open). Such names are reserved: Restore
//     refuses them as a target (ErrInvalid).
//
// A remote snapshot is copying (marker, no manifest), available (manifest)
// or degraded (available, but the last Check found a missing or corrupt
// shard of a pack it needs, a pack it needs gone while its index is there,
// or a chunk it names in no pack index).
//
// Check cross-checks indexes against packs: an indexed pack with fewer
// than k good shards (also none at all) is lost and reported; a pack with
// no index is listed as unindexed (garbage of an interrupted sync unless a
// snapshot needs it, which makes that snapshot degraded). Degraded
// snapshots are always computed, and a report with a degraded snapshot is
// not OK.
//
// # Why these choices
//
// zstd (klauspost/compress, fastest level) per chunk: disk blocks compress
// well, decode fast, and compressing each chunk alone lets restore take any
// chunk of a pack. AES-256-GCM: authenticated, hardware-accelerated in Go,
// with random 96-bit nonces (far fewer than 2^32 objects per key). HKDF-
// SHA256 derives independent keys for pack data, metadata, chunk ids and
// name ids from one region key, salted with the random region id, so one
// key file can serve several regions without key reuse. Erasure coding is
// applied to the sealed pack, so shards reveal nothing and any k of them
// rebuild it.
//
// # Concurrency
//
// Operations on one region must not overlap across processes (the sync
// job takes a flock). Prune refuses (ErrConflict) while any copying marker
// younger than MarkerAge (24 h) exists, or one that cannot be read: a sync
// may be running on any host and deduplicating against any manifest or
// pack. With only older markers it still keeps young unreferenced packs.
// As a second guard, Sync re-lists the region just before writing a
// manifest: if a parent manifest or a pack (index or shards) it
// deduplicated against is gone from any store, it fails with ErrConflict
// and writes no manifest; the next sync resends what is missing.
package replicate
