// Package rowstore is the redirect-on-write engine of snapfs: disks, layers,
// snapshots, clones, images, rollback, the write-back cache, the read path,
// recovery, garbage collection and the segment cleaner.
//
// # Model
//
// A disk is split into fixed-size blocks (a power of two from 4 KiB to
// 1 MiB, chosen per disk). Block data lives in the append-only segment log
// (package segment); a write never overwrites data in place, it appends a
// record and points the index (package index) at it.
//
// Versions are kept per layer. A disk's head is a layer with a current
// epoch; writes go to (head, current epoch). A snapshot is the pair
// (layer, epoch) of each of its disks and is taken by bumping the epochs:
// constant time, whatever the data. A clone, a disk made from an image, and
// a rollback each make a new layer whose parent is a (layer, epoch): constant
// time too. A read of block b through a chain of links [(L0,E0), (L1,E1), …]
// takes the newest version of b at or below E0 in L0, else in L1 at or below
// E1, and so on; no version means zeros.
//
// Blocks of zeros are never stored: a zero block that hides nothing is not
// written at all, one that hides older data becomes a hole (a zero record in
// the log, a hole version in the index). PunchHole frees whole blocks that way.
//
// A disk that takes long to fill (a restore, an encrypted copy) is built
// under a temporary name ("restore-" and 16 hex digits, tempdisk.go) and
// renamed when whole; only the build that registered such a name may give
// it to a disk, and CleanTempDisks (at daemon start) deletes the ones no
// build of the process owns, so a killed build leaves nothing listed and
// no user's disk is ever taken for one.
//
// # Types
//
// The engine's five kinds of number have distinct types (package
// rowstore/ids, shared with index and segment): ids.Layer, ids.Epoch,
// ids.Block, ids.Segment and ids.Seq, all uint64 underneath. A version key
// is vkey{layer, block, epoch}, a chain link is link{layer, epoch}, the
// block map and the write-back cache are keyed by ids.Block, the cleaner's
// usage tables by ids.Segment; index.VersionKey, EpochKey, Txn.GetVersion,
// ScanVersions, ScanEpochs and segment.Record/Pos take and return them. A
// call with two of them swapped (VersionKey's (layer, block, epoch) against
// EpochKey's (layer, epoch, block), a segment number where a sequence
// number goes) no longer compiles. Conversions are written out, and only
// at the edges: decoding bytes (index values and keys, record headers),
// the exported API (DiskInfo, Change, BlockBatch, LazyLayer, AttachLazy,
// ReadPointBlock keep uint64 so replicate and cmd compile unchanged;
// CheckProblem's Layer, Epoch and Segment are typed, which its callers
// compile with), the check cursor file (Block holds a segment number in the
// log pass, as it always did), compact tables (the block map and the live
// map keep uint32 fields), and arithmetic that mixes kinds: ids.BlockAt
// (block of a byte offset), Block.Offset, Block.Add (a run of n blocks),
// blockCount (blocks of a size: the block one past the last), Epoch.Next,
// Seq.Next, Segment.Next. Layer ids come from the catalog's counter
// through index.Txn.NextLayer. The types have no String method (fmt prints
// them as numbers, "%016x.seg" included) and log as plain numbers
// (LogValue). Disk, snapshot and image ids, key families, counts and
// generation counters stay uint64.
//
// # Default block size
//
// 16 KiB, chosen by measurement (BenchmarkSeqWrite1M, BenchmarkRandWrite4K,
// BenchmarkSeqRead1M and BenchmarkBlockSizeStudy, same run, ratios to a plain
// file doing the same I/O on the same filesystem, 2 cores):
//
//	block size                        4 KiB   16 KiB   64 KiB
//	sequential 1 MiB writes           0.45x   0.88x    1.11x
//	random 4 KiB writes, sync/64      1.56x   0.72x    0.28x
//	sequential 1 MiB reads (cached)   0.12x   0.21x    0.23x
//	snapshot after 1 % rewritten      10 MiB  40 MiB   161 MiB  (10 MiB of 4 KiB writes)
//	index per GiB written             32 MiB  8.9 MiB  3.2 MiB
//
// 4 KiB wins small random writes and snapshot cost but pays 3 % of the data in
// index and halves sequential throughput; 64 KiB streams best but turns every
// 4 KiB write of a filesystem inside into a 64 KiB read-modify-write (16x the
// snapshot cost). 16 KiB keeps sequential writes at 0.8x, snapshots at 4x the
// bytes written and the index under 1 % — the balance OpenZFS also chose for
// zvols. Disks with other workloads pick their own (--block-size).
//
// # Write path and durability
//
// Whole-block writes are appended to the log at once (their SHA-256s
// computed before the disk's lock is taken, so concurrent writers hash in
// parallel); partial blocks wait in a bounded write-back cache (per disk,
// Options.CacheBytes, 4 MiB) and are completed from the current content
// when written back. The write-back (writeback.go) goes oldest block first,
// in batches of 64 that release the disk's lock while the blocks' current
// content is read and again while copies of the completed blocks are
// hashed (a block written to meanwhile is hashed again under the lock,
// cblock.writes), two batches of a disk at once (wbParallel): a background
// goroutine keeps each cache near an eighth of its bound, a writer that
// finds it full writes back itself, and Sync and the background sync write
// back what was cached when they began the same way, batch by batch, so
// writers and readers wait for a batch's appends at most, never for a
// whole cache (a batch stores an entry only if the cache still holds that
// very entry: every other change of the block's content removes it first).
// The background commits whenever 64 MiB were appended since the last
// commit (commitEvery), so a Sync under a heavy write load fsyncs a
// bounded amount.
//
// The log starts the writeback of what it appends every 4 MiB
// (segment.EarlyWriteback: sync_file_range, in the background, as
// RocksDB's bytes_per_sync), so a commit's fsync finds a few MiB to write,
// not everything appended since the last one: the page cache would
// otherwise hold it (the kernel starts at 10 % of memory or after 30 s).
//
// A snapshot takes the caches by reference (snapshot.go): it writes back
// a cache over its bound and commits (writers going on), freezes each
// disk's cache under the disks' locks (the disk starts
// an empty one), writes the frozen entries back without the locks, two
// batches at a time, while writers go on into the new caches (nothing else
// is appended for the head meanwhile, so the snapshot holds exactly the
// writes made before it), then makes the catalog change without the disks'
// locks: its commit syncs the log through the catalog record and puts the
// frozen entries' versions in the index before the epochs move. Writers
// never wait for a log sync of a snapshot: a partial write goes into the
// new cache up to snapRoom (8 MiB) over its bound, a write of whole blocks
// up to the bound, then waits for the snapshot's end. The index's sync of
// the catalog change is left to the background (catalogSyncSoon).
// Where the time went before (scripts/bench-snapload.sh --profile: the
// daemon's profiles and its per-phase debug log, "snapshot create"), 6 Dec
// 2026, load average 4 to 8: three log syncs of all that was appended
// since the previous one (a commit before the freeze 10-550 ms, one after
// the frozen write-back, the catalog record's), the frozen write-back of
// up to 4 MiB of read-modify-writes (10-150 ms), and the writers blocked
// for the whole snapshot: over the cache's bound (where random 4 KiB
// writers always are) a writer went into writeBackLocked, which waited for
// the snapshot's end (block profile: 60 s of 148 s of writer wait in 15 s);
// the sync and the index batch of a commit under load (4096 versions per
// 64 MiB appended: 20-240 ms in Badger at load 9) and the CLI's start (the
// full binary: 30-40 ms at load 9; the bench now runs the installed light
// front, cmd/snapfs/front) were the rest.
//
// scripts/bench-snapload.sh before (main 720ab5e) and after, one 15 s
// pair per load per round, main and this alternating, both through the
// light front: snapshot create p50 / p99 ms, fio dip.
//
//	6 Dec 23:28-23:37, load average 13-17 on 2 cores (other benchmarks):
//	randwrite 4k  before  200 / 361  41 %   257 / 512   2 %   124 / 585   8 %
//	              after*  164 / 365  -4 %   113 / 431  15 %   125 / 779   0 %
//	seqwrite 1M   before  237 / 629 -17 %   233 / 464  -1 %   315 / 817  34 %
//	              after*  194 / 311 -16 %    80 / 206  23 %   116 / 263  17 %
//	6 Dec 23:51 - 7 Dec 00:03, load average 3-12:
//	randwrite 4k  before   86 / 177  21 %   157 / 343 -20 %
//	              after   128 / 359  19 %    94 / 197 -26 %
//	seqwrite 1M   before  212 / 1019 59 %   186 / 322  30 %
//	              after   109 / 225  34 %    99 / 241  16 %
//
// (* with the background commit kicked where the commit before the freeze
// is now: latencies alike, but whole-block writers held longer; against
// this in the same period its sequential dips were 49 and 48 %.)
// Neither target (p99 <= 50 ms, dip <= 5 %) is met, and at these loads
// one run's dip swings by 30 points for the same code. What the load blurs
// less: the daemon's CPU per MB written (bench-snapload prints it) rose
// with snapshots under random writes by 2 to 52 % before (median 24 %, 6
// rounds, 23:09-23:37) and by -10 to 16 % after (median 8 %; one round
// +53 % at load 17). Under sequential writes it rises by 30 to 100 % with
// a snapshot a second, before and after alike: not explained here (the
// profile with snapshots shows the cleaner's rescan and the exclusive
// figures' recount after every catalog change, gcLocked 0.41 s and
// countExclusive 0.15 s in 15 s, but not all of it). What a snapshot's
// latency still is (per-phase log): the write-back of up to CacheBytes of
// read-modify-writes (5-240 ms at load 14), two commits whose index batch
// Badger takes tens of ms under load, and the CLI's start.
//
// An appended record's version is
// "pending" in memory until a commit: the commit fsyncs the log (its
// foreground stream: the cleaner's copies are in a stream of their own,
// synced by the cleaner, see "Garbage collection and cleaning"), then writes
// the pending versions and the checkpoint (how far the log is applied) to
// Badger without fsync (a version that replaces one at the same layer,
// block and epoch, the common overwrite, writes its version key only: the
// live map holds that key, so its epoch key is in the index already;
// applyCommit, segusage.go knownKeys). So the index never points at unsynced data; after a
// crash, Open replays the log from the checkpoint (keeping the higher
// sequence number per key, and writing again the epoch key of a version
// the index keeps: a commit's batch is several Badger transactions, and a
// crash between two can keep a version key without its epoch key;
// TestReplayHealsTornEpochKey) and drops a torn tail. Disk.Sync flushes the
// cache and commits: everything written before it is then durable
// (invariant 1). Disk.Sync (an fsync through the mount) returns once the
// log is synced (store.go, commitLog): the index batch and the checkpoint
// are written right after by a goroutine that holds syncMu until they are,
// so every later commit (any other caller of commit: Store.Sync, GC, the
// cleaner, snapshots, Close) starts after them and returns with the index
// complete; meanwhile the committed versions stay in the flushing map,
// which reads consult (as they did while a commit wrote the index), the
// checkpoint has not moved (so the cleaner does not judge their segments
// and replay after a crash recovers them), and a failed apply puts them
// back in pending (logged; the next commits apply inline until one
// succeeds, returning its error). TestSyncApplyCrash crashes in that
// window with the cleaner moving and repointing the record a synced write
// replaced. Catalog changes (create, snapshot, clone, image, rollback,
// delete, resize) are Badger transactions made after a commit of the disks
// involved: a snapshot holds every write made before it (invariant 3).
// Before a catalog transaction commits, the keys it changed are appended to
// the log as a catalog record and the log is synced (catlog.go), so the
// catalog too can be rebuilt from the log alone, and that sync is what makes
// the change durable before it is acknowledged: the Badger transaction is
// not synced with it (one fsync per change, not two). Until Badger is synced
// (the background sync, GC, the cleaner, Close, and once the oldest
// unsynced change is a second old, the background sync kicked by the next
// catalog change or commit, or that change itself without a background:
// Store.catUnsynced, catalogSyncSoon) the checkpoint stays before the record, so a crash that loses the transaction
// replays it (TestCatalogChangeLostByIndex). A record
// carries its layer, block, epoch and sequence number, so replay is
// independent of the catalog changes around it (invariant 4). Each record has
// a CRC32C checked on every read; the index keeps the SHA-256 of every stored
// block. A mismatch is a *CorruptError (ErrCorrupt), never data (invariant 5).
//
// ListSnapshots is served from a list kept in memory (catalog.go,
// snapshotList): snapshot create and delete, the only writers of snapshot
// records, patch it after their catalog change, so neither a listing nor the
// manual-quota check of each snapshot create decodes every record.
//
// # Space accounting
//
// Every disk head's allocated bytes (its visible stored blocks) are kept up
// to date as blocks are written, punched, cloned and rolled back, and every
// snapshot member and image records its own when it is made (catalog record
// format version 2, package index), so disk, snapshot and image listings,
// stat under the mount and the create commands never count blocks. Usage's
// exclusive figures (what deleting a disk, snapshot or image frees) and the
// live bytes are counted in the background after changes and served with
// the time of their count, marked stale while a change came after it
// (exclusive.go; FreshUsage counts now): usage is O(objects), the counting
// is not incremental. What a child layer alone reads from its parent (a
// disk rolled back to a since-deleted snapshot, a clone whose source is
// gone) is counted to the one disk, snapshot or image reading through that
// child layer (foldLayerReaders), since deleting it frees that too. The counts are persisted with
// each checkpoint (index meta record "alloc") and trusted at Open for every
// disk the log replay did not touch; the others (after a crash, an index
// rebuild, a store older than this) are counted once at Open, in bounded
// memory. Details and the argument for exactness: accounting.go; tests:
// TestAccounting, TestAccountingCrash, and the model and crash tests check
// the counts against a full count.
//
// # Garbage collection and cleaning
//
// GC takes one consistent view of the index and lists the readers of every
// layer: disk heads (which see the newest version of every block), snapshot
// members, images, child layers (clones, rollbacks) and open read handles.
// A version is live if some reader's epoch falls between its epoch and the
// next newer version's; dead versions and unreferenced layers are deleted.
// Deleting a snapshot therefore never fails: what a clone, image or later
// snapshot needs stays until nothing needs it. The cleaner then rewrites the
// live records of segments below Options.CleanBelow live fraction (keeping
// their sequence numbers), syncs, repoints the index, syncs the index, and
// removes the segment while no read is in flight. Segments are cleaned the
// emptiest first, in batches that share one log sync and one index sync.
// A batch's live records are appended 64 at a time to the cleaner's own
// append stream (segment.AppendCleanerRawBatch, below: one hold of that
// stream's append lock per gathering, not per record; the scan
// reads a MiB at a time into a reused window and checks every CRC; a
// record that fails it is never copied: it is reported, and its segment
// kept; a moved record is copied byte for byte as read and checked, not
// encoded again, so a sealed block stays sealed). With the live map
// installed (below), a data-only segment (segment.Log.DataOnly: created
// since Open, no hole or catalog record in it) is not scanned: the
// cleaner reads only the records the map names in it (cleanread.go, "The
// cleaner's reads" below). Before removing a
// segment whose moves were repointed, the finisher checks that the usage
// table (exact while the live map is installed) counts nothing live left
// in it; if it does, a live record was not moved, and the segment is kept
// and the error logged. Batches are
// pipelined and their finishes grouped (cleanmove.go, gc.go cleanWith,
// finisher): the round's goroutine moves batch after batch and hands each
// to one finisher goroutine, which takes every batch waiting when it is
// free and finishes them together (one log sync, their repoints, one index
// sync, one removal: the same order as for one batch, mostly waiting for
// the disk) while the next ones are moved. At most finishQueue (4)
// batches are moved and not finished; while some are, another is moved
// only if its copies fit under the writers' limit (the old segments still
// count); and on a nearly full filesystem a batch starts only once every
// earlier one freed its space. The background cleaner
// removes segments without a directory sync: the index, synced before,
// no longer points into them, so a segment a crash brings back holds
// only dead copies (space a later round reclaims), and the next segment
// created syncs the directory anyway; `gc` still syncs it.
// TestCrashDuringCleaning crashes the log at every stage of such batches.
// The same scan builds the cleaner's live map (below).
//
// The cleaner's append stream. The moves of GC and the cleaner go to
// segments of their own (segment package doc, "Two append streams";
// repair's few relocations stay in the foreground's): not under
// Store.appendMu nor the foreground's append lock, so a writer never
// waits behind a batch of moves, and a commit's log sync (the
// foreground's Sync) never carries copies. The finisher syncs them
// (SyncCleaner) before the repoints, after writing the stream's tail
// before that sync to the index as the cleaner mark (index.CleanerMark;
// Badger keeps write order, so a repoint that survives a crash implies
// its mark): Open passes it as segment.Options.CleanerDurable, so a bad
// record in the cleaner's last segment before the mark is corruption
// kept and reported, one after it a torn tail cut. Open then raises the
// mark to where it recovered the stream (its last segment's end, or, if
// it has none at or above the mark, the new foreground segment, below
// every cleaner segment to come: segment.Log.CleanerOpenEnd), before
// replay or an index rebuild may point the index at copies past the old
// mark; and the next Open reads segment headers down to the mark only,
// not the whole log's. What this changes and why it stays correct:
//
//   - Segment numbers no longer follow append order: a copy may sit in a
//     segment numbered after newer foreground records of the same key,
//     or before the checkpoint's segment. Copies keep their sequence
//     numbers, and replay, rebuild and the catalog's replay keep the
//     highest per key whatever the order (applyVersion; equal sequence
//     numbers are the same record, the index keeps its position while
//     that segment exists), as they already did for copies the single
//     stream put after newer records. A copy never needs replay: the
//     index names it only once synced, and the old record stays until
//     the index is synced. A copy replayed anyway (its segment numbered
//     at or after the checkpoint's) loses to any newer version; one of a
//     version GC deleted meanwhile may come back as a dead version, which
//     no reader sees and the next GC deletes again.
//   - Candidates: the cleaner's segments from its active one at the
//     start of a round on are never cleaned in that round (their copies
//     are named by the index only once their batch is finished), nor is
//     a stream's active segment ever removed.
//   - Open recovers two tails (segment package doc); check treats the
//     cleaner's active segment like the foreground's (an unfinished tail
//     is not corruption); counts (Bytes, usage, segment lists) cover both.
//   - On a full filesystem the stream's first segment (a 32-byte header)
//     is created at the first move; if that or a move fails with ENOSPC
//     the reserve is given back and it is tried once more (as any append).
//     Segments with nothing live are removed before any move.
//
// The cleaner's reads (cleanread.go). The live map knows, for every live
// data version, its segment and offset, and a sealed segment below the
// checkpoint only loses live records (commits, repoints and repair write
// new versions to an active segment; GC deletes). So one pass over the
// map's table lists the live positions of every such segment, and a list
// stays a superset of what is live in its segment for as long as the map
// is installed: the lists are kept across rounds, rebuilt when a segment
// to clean is not covered (sealed or committed since), and dropped with
// the map's generation (installed or dropped again). They take 8 bytes a
// listed version (8 MiB at the map's bound of 2^20 versions, counted
// first so no slice grows past it), and a segment's list is dropped once
// it is moved; the pass holds the map's lock a shard (a 64th) at a time,
// so a commit waits for a shard, not the whole table. For a data-only
// segment the cleaner reads only its listed records, in runs (adjacent
// records, and across up to 12 KiB of dead ones, in reads of at most a
// MiB), decodes every record it reads and checks its CRC, asks the map
// whether each listed one is still live, and appends the live ones from
// the read buffer. Records not read are not checked: a corrupt dead record
// in a cleaned segment goes unreported by the cleaner (it held nothing
// anyone reads; `snapfs check` still reads every record). Any surprise
// falls back to the whole-segment scan for what was not gathered yet: a
// record that does not decode (the scan then reports it and keeps the
// segment, as before), a listed offset that is not a record boundary, or
// live bytes the usage table still counts in the segment beyond what was
// gathered (logged: it would mean a list missed a record). Segments Open
// found, and those with holes or catalog records, are scanned whole.
// TestCleanerListedReads checks the listed path, its data across a
// reopen, and a flipped live record (never copied, segment kept).
//
// TestCleanerStreamCrash crashes at every stage of a move whose copy lands
// after a newer, uncommitted overwrite of the same block (then
// acknowledged), reopens or rebuilds, and checks the data and a clean
// Check; segment.TestTwoStreamsCrash tears both tails at once.
//
// # Bounded space: the background cleaner
//
// While GCInterval > 0 a cleaner goroutine (cleaner.go) keeps the log within
// 1.5 × what is live (live counts every version a head, snapshot, image,
// clone or open handle sees, so what snapshots and images hold exclusively
// is included).
//
// The live map and segment usage table (segusage.go). A full scan (the
// first round after Open, every GC, and the first round once a catalog
// change has made the map stale for long enough, below) also builds, in memory, the map of every live data version, key
// to its whole index value (a pointer-free hash table of 72-byte entries,
// 90 to 135 bytes a version with its load, 208 for the Go map of whole
// index values before; without the digest, 57.5, but the cleaner then read
// the value of every record it moved from the index, which cost 20 % of
// the daemon's CPU with the cleaner: segusage.go). From then on every writer of version
// entries tells it what it wrote, under idxMu, after the write succeeded:
// commit (a version replacing another at the same layer, block and epoch,
// the common overwrite, makes the old record dead at once), GC's deletions,
// and the repoints of the cleaner and repair. So the live bytes per segment
// and the live total are exact at all times, without a scan: a data record
// is live iff the map's entry for its key names its position and sequence
// number. A write that fails midway drops the map (the index may hold part
// of it); the next round rescans. The map is never stored: after a crash
// the first round rebuilds it (derived lazily; until then rounds scan as
// below). The scan's view is taken with idxMu held and writers journal
// their changes until the map is installed, so nothing written during the
// scan is missed. Liveness only a scan can see (a snapshot, disk or image
// deleted, a read handle closed) is never less than the map says, so the
// map keeps too much, never too little; a catalog change makes it stale.
// A stale map is still used (it moves some dead records and counts them
// live) for 1 s, or 20 × the last full scan's duration if longer, then a
// round rescans (cleaner.go mapUsable): with a snapshot a second, a full
// round after every change cost about a third of the daemon's CPU. So
// space a deleted snapshot, disk or image frees comes back within that
// delay, and meanwhile the bound is kept against the stale live total.
// Above 2^20 versions (50 to 75 MiB of map; 16 GiB of 16 KiB blocks) the
// map is not built and every round scans (the previous design, kept as the
// fallback; not tried again until a scan finds few enough versions;
// TestLiveMapFallback): a known limit, kept so the daemon stays within its
// memory bound (cmd/snapfs daemonMemoryLimit); a per-segment summary on
// disk would lift it. TestLiveMapExact checks the map and table against a
// full count after random writes, holes, snapshots, clones, deletes, GC,
// incremental rounds, and a crash and reopen; TestCleanerConcurrent runs
// the background cleaner while snapshots are taken, read back and deleted
// during random rewrites.
//
// Incremental rounds (map installed, catalog unchanged). The cleaner
// compares the log's size with the exact live total when the foreground
// append that reaches 1.45 × live wakes it (cleaner.startAt,
// kickAtStart), when a writer waits, and every cleanerTick (after a
// failed round, whatever the mode: a pause of 1 s doubling to 30 s, ended
// after its first second by a waiting writer or by an append past
// startAt, both of which kick; the pause is reset only by a round that
// succeeds, not by ticks on which no round is due; the failure is logged
// once a minute, and the recovery once); at 1.45 × live it cleans,
// emptiest segment first by the usage table (judged again before every
// batch: the foreground's overwrites empty segments meanwhile), down to
// 1.44 × live counting the log as it will be once the batches being
// finished are removed (so a round goes on while the foreground writes),
// in batches of at most a 128th of live (pipelined and finished in groups
// as described under Garbage collection: the durability order is
// unchanged), and a round that freed space while the log is still due
// runs again at once. Only segments below the last
// checkpoint's are judged (all their records were committed); if those
// cannot free enough, the cleaner commits first. That bound is read before
// the usage table, and again after such a commit: a commit tells the map
// of its versions before it moves the checkpoint, so the table then counts
// every record below the bound (read the other way round, the segments a
// commit had just made eligible looked empty and were moved whole:
// TestCleanerFillMovesNothing). A move reads the record,
// appends a copy (64 at a time), and repoints the entry with one write of
// its version key (index.Batch.SetVersionValue), no read: under idxMu the
// map says whether the entry still names the old record, and holds the
// value to write; 256 repoints a write batch, idxMu released between them,
// so a foreground commit waits behind one small batch at most.
// Staying near the bound keeps the cleaned segments as empty as uniform
// overwrite allows; segments rotate at a 64th of live (512 KiB at least) so
// the emptiest can be picked. Both ratios are lowered for small stores so a
// round starts two batches before writers wait. New disk writes wait
// (before taking the disk's lock, at most a second per write, waking the
// cleaner) only when the log plus the batch in flight (at least one batch)
// reaches 1.49 × live (and never below the 8 MiB log where the cleaner
// starts); between rounds only while incremental rounds are on, since only
// then does that limit follow live at every tick. Pacing is therefore the
// bound itself: the cleaner moves what keeps the log under 1.45 × live and
// nothing more. The gap between the start and the writers' limit is what a
// round may take before writers wait (cleaner.go, cleanerLimit). Full rounds (no map yet, or stale too long) keep the
// previous rules: start at 1.40 × live or after the log grew by
// CleanerDeadFraction, clean down to 1.28, batches of a 32nd to an 8th of
// live, a token bucket (CleanerRate) that lets the cleaner move 1.25 × what
// freeing a byte costs per byte the foreground appends (incremental rounds
// need no bucket: they start only near the bound, past where it stops
// pacing).
//
// Space and throughput. scripts/bench-space.sh measures through the mount
// (a 256 MiB disk of 4 KiB blocks filled, then rewritten by fio: random
// 4 KiB writes, libaio iodepth 16, direct, an fsync every 256 writes; the
// run without the cleaner mounts with --no-cleaner, every run on a fresh
// store; it reports the machine's idle CPU during the rewrite, the
// daemon's CPU, moved per byte written and the writers' throttled time,
// every second's segment bytes, throttled seconds and MB/s through the
// mount, and with BENCH_SPACE_PPROF=1 keeps the daemon's CPU, block and mutex
// profiles). BenchmarkOverwriteSpace is the same pattern on the engine
// alone (64 MiB, -test.count N interleaves the cases).
//
// Passes one to six (6-7 Dec 2026; their tables and profiles are in this
// file's history) took the cleaner from scans and index reads per move to
// the live map, moves copied byte for byte as read and checked (64 at a
// time), pipelined batches with grouped finishes, rounds from 1.45 to
// 1.44 × live with writers waiting at 1.49, repoints in write batches of
// 256 (idxMu released between them), and a rotation whose fsync runs in
// the background (segment: sealSync): moved per byte written from 1.33 to
// 0.87-0.88, writers throttled 4 to 20 times less, segments at most
// 1.47-1.48 × live. The cleaner costs the daemon about 20-27 µs of CPU
// per moved record (4,170 bytes; about a third of that is Badger's work
// for the repoints). The sixth pass timed the foreground's path (fio's
// cycle is 256 writes serialized by the disk's lock, then one fsync):
// with the cleaner 18 % of the lock's hold time was writers waiting for
// appendMu behind the cleaner's gathered moves (about 340 µs a batch of
// 64), and a commit's log fsync carried the copies appended since the
// last one (0.87 bytes per byte written, about 1 ms of an 8.4 ms commit).
// The lead's baseline on a quiet machine (main 7e801ae, load about 3):
// 123.4 MB/s without the cleaner, 91.6 with (0.74), 10 passes; 99.0 and
// 94.4 (0.95) at 50 passes, where the run without slows as its log grows
// to 51 × live; the machine 32-37 % idle in both.
//
// Seventh pass (7 Dec 2026): the cleaner's own append stream (segment
// file header version 2; described under Garbage collection and
// cleaning): the foreground never waits for appendMu behind moves, and a
// commit's fsync carries only the foreground's records. On the lead's
// quiet machine (load 2-5) the 10-pass ratio moved by less than the noise
// (before 0.74, 0.82, 0.70; after 0.74, 0.78, 0.80; at 50 passes before:
// 0.95). The profiles of its last pair: the daemon at 0.88 of a core
// without the cleaner, 1.01 with, the machine ~30 % idle; Disk.WriteAt
// 8-9 us of CPU per write but 38-48 us of wall time, the writers queued on
// the disk's lock (65 s of mutex wait in 20 s without the cleaner, 91 s
// with).
//
// Eighth pass (7 Dec 2026): what fio's cycle (256 writes, then an fsync
// that waits for them) waits for. Measured first (main e1f8edc's binary,
// BENCH_SPACE_PPROF=1, the machine shared with a torture run: load 9-21,
// 0-8 % idle): the fsyncs took 50-55 % of each run (fio's mean 5.1-9.4 ms
// without the cleaner, 6.9-12.2 ms with); the writes queued on the
// disk's lock (mutex wait in Disk.WriteAt over a run: 48 s without, 70 s
// with); the cleaner added 8-10 s of daemon CPU a run, 14-15 us per moved
// record, about 60 % of it the scan of the cleaned segments (pread,
// CRC32C, decode, the live map's lookups) and 40 % the finish (the
// cleaner stream's fdatasync, the repoints and Badger's work for them,
// unlinks). Two changes: Disk.Sync returns once the log is synced, the
// index batch and checkpoint applied right after by a goroutine holding
// syncMu (store.go commitLog; "Write path and durability"), so the index
// work, which the cleaner's repoints contend with (idxMu, Badger's write
// queue), leaves the fsync's path: fsyncs then took 38-45 % of the run
// (mean 3.3-7.2 ms without the cleaner, 5.2-9.2 ms with); and whole-block
// writes are combined (writecombine.go; "Data path"): mutex wait in
// Disk.WriteAt 4.9 s without and 2.7 s with over a run. Pairs of main's
// binary and this pass's, interleaved, one at a time, 256 MiB, 10 passes
// (fsync: fio's mean and its share of the run, without/with; load: the
// 1-minute average at the start and end of the pair; "async": the index
// apply alone, before the combining):
//
//	time   build  MB/s without/with (ratio)    max    moved  thr  fsync mean:share wo/with load
//	08:47  main   78.4/66.3 (0.85)           1.475  0.878  3    -/-                    9.06-15.81
//	08:51  main   62.9/42 (0.67)             1.47   0.877  6    -/-                    14.14-21.75
//	08:53  async  71.8/48.5 (0.68)           1.472  0.876  7    -/-                    21.75-15.84
//	08:55  main   68.4/43.6 (0.64)           1.475  0.877  3    -/-                    15.84-16.80
//	08:56  this   59.2/32.5 (0.55)           1.486  0.879  16   -/-                    16.80-19.98
//	08:59  main   59/47.1 (0.8)              1.48   0.878  8    9.35ms:53%/12.21ms:55% 19.10-17.64
//	09:01  this   84.2/72.6 (0.86)           1.479  0.875  10   5ms:40%/6.2ms:43%      17.64-15.60
//	09:04  main   67.4/58.4 (0.87)           1.47   0.877  6    8.56ms:55%/9.79ms:55%  11.98-14.79
//	09:06  this   70.4/53.2 (0.76)           1.486  0.878  22   6.21ms:42%/8.4ms:43%   14.79-14.97
//	09:07  main   86/54.4 (0.63)             1.485  0.874  14   6.21ms:51%/10.56ms:55% 14.97-16.05
//	09:09  this   67.5/64 (0.95)             1.484  0.881  10   6.76ms:44%/6.69ms:41%  16.05-14.08
//	09:11  main   93.9/52.2 (0.56)           1.47   0.88   4    5.62ms:50%/11.11ms:55% 14.08-16.40
//	09:12  this   99.6/77.5 (0.78)           1.476  0.877  7    4.36ms:41%/5.66ms:42%  17.25-15.50
//	09:19  main   99.3/80.7 (0.81)           1.477  0.877  3    5.33ms:50%/6.9ms:53%   14.20-12.27
//	09:20  this   85.2/78.6 (0.92)           1.479  0.88   11   4.79ms:39%/5.16ms:39%  11.53-12.95
//	09:21  main   94.8/66.9 (0.71)           1.47   0.873  4    5.68ms:51%/8.44ms:54%  12.95-16.77
//	09:22  this   99.1/78.3 (0.79)           1.475  0.876  9    4.17ms:39%/5.42ms:40%  16.77-14.87
//	09:23  main   87.1/61.3 (0.7)            1.469  0.878  1    6.26ms:52%/9.13ms:53%  14.87-16.09
//	09:25  this   75.8/57 (0.75)             1.469  0.876  8    5.63ms:41%/7.96ms:43%  16.09-15.91
//	09:27  main   69.7/57.1 (0.82)           1.481  0.878  7    8.05ms:53%/9.47ms:52%  15.91-17.37
//	09:28  this   82.7/64.5 (0.78)           1.473  0.873  10   4.76ms:38%/6.78ms:42%  17.37-15.88
//	09:44  main   105/68.3 (0.65)            1.478  0.878  2    5.09ms:51%/8.08ms:53%  8.91-14.05
//	09:46  this   122.4/80.2 (0.66)          1.477  0.878  10   3.33ms:39%/5.47ms:42%  14.05-12.56
//	09:47  main   96.2/72.1 (0.75)           1.479  0.876  5    5.7ms:52%/7.72ms:53%   12.56-12.28
//	09:48  this   97.9/70.2 (0.72)           1.48   0.876  11   4.15ms:39%/6.56ms:44%  12.28-14.48
//	09:49  main   78.4/56.7 (0.72)           1.481  0.876  3    7.2ms:54%/10.2ms:55%   14.48-14.60
//	09:51  this   63.2/50.9 (0.81)           1.475  0.878  19   7.15ms:43%/9.22ms:45%  14.60-14.88
//
// Means: main 0.73 (0.56-0.87, fourteen pairs; the thirteen interleaved
// ones 0.72), this 0.78 (0.55-0.95, twelve; 0.73 in the three from
// 09:44, as the load fell from 21 to 9-15); max segments at most 1.486 ×
// live, moved per byte written unchanged. Throughputs moved with the
// load more than with the build (this pass's run with the cleaner was
// faster than the main run next to it in 6 of 12 pairs); the share of
// the run in fsyncs was lower in every pair (38-45 % against 50-55 %). One 50-pass pair of this pass, same
// conditions (load 14): 111.9/75.4 MB/s (0.67), max segments 1.484 ×
// live, moved/written 0.893, throttled 35 s, daemon CPU 88 s without and
// 132 s with. The target (0.8) is not claimed from these pairs. With the
// machine saturated the ratio measures how much CPU the cleaner takes from
// the foreground more than the code's waits: the writers now wait for the
// combiner's CPU, not for the lock (block profile: 22 s in writeCombined
// with the cleaner against 9 s without, the combiner itself blocked 0.6
// s), and they are throttled more (7-35 s a run against main's 1-14: the
// foreground, faster, reaches the writers' limit while the CPU-starved
// cleaner lags). The next lever is the CPU per moved record: read only a
// segment's live records (the live map knows their positions) instead of
// scanning it whole, and cheaper repoints.
//
// The lead's pairs on a quiet machine (same day, 09:55-09:59 and
// 10:43-10:51, load falling from 9 to 3, one run at a time, 256 MiB):
// 10 passes, e1f8edc 158.0/119.5 (0.76), 147.8/115.2 (0.78), 148.4/109.1
// (0.74), throttled 1-4 s; this pass 162.4/119.0 (0.73), 164.8/107.1
// (0.65), 165.2/123.2 (0.75), throttled 6-9 s. 50 passes: this pass
// 132.0/121.6 (0.92, max 1.477 x live), e1f8edc 123.4/111.7 (0.91, max
// 1.474). So the foreground alone is faster (+8.6 % at 10 passes, fio's
// fsync p50 2.6-2.8 -> 1.7-1.9 ms) and the run with the cleaner is not:
// the writers reach the space limit sooner and wait for the cleaner,
// whose throughput now bounds that run; the 10-pass ratio stays below
// 0.8 (the 50-pass one holds).
//
// Is it the I/O? (7 Dec 2026 afternoon, main 0f16e0f, a quiet machine,
// load 0.5-3.5, 256 MiB, 10 passes, one run at a time, the work
// directory on /var/tmp (ext4 on the virtio disk) and on /dev/shm (tmpfs:
// no device, no journal, fsync free) alternating): ext4 178.1/134.2
// (0.75), 183.6/133.8 (0.73), 180.4/135.9 (0.75) MB/s without/with;
// tmpfs 231.8/168.5 (0.73), 212.7/162.7 (0.76), 217.0/150.3 (0.69). The
// ratio is the same without a device, so the cleaner's cost is CPU, not
// the journal or the device queue the foreground's fsyncs share with the
// cleaner's stream. A profiled tmpfs pair (185.8/163.2, 0.88; daemon 16.4
// s of CPU without, 20.8 s with): the cleaner's scan of cleaned segments
// 2.0 s of a 20 s window (pread, CRC32C, decode, the live map), its
// finisher 1.4 s, of which half is unlinking cleaned segments (freeing
// their page-cache pages) and a fifth the repoints; Badger's memtable
// inserts (skiplist search) 2.3 s shared by commits and repoints. The
// levers left are those: no whole-segment scan, recycled segment files
// instead of unlinks, and fewer index writes per moved record.
//
// Ninth pass (7 Dec 2026, afternoon, branch clean12): two changes kept,
// one measured and dropped. (1) Listed reads (cleanread.go, "The cleaner's
// reads" above): a data-only segment's live records are read alone, in
// runs, not the whole segment; the read buffer is pooled and the records
// are appended from it (no copy into the mover's arena). (2) A commit
// writes only the version key of a version that replaces one at the same
// key, the epoch key being there already (applyCommit, knownKeys): half of
// the index writes of an overwrite, while the live map is installed
// (always with the cleaner on; the benchmark's run without the cleaner has
// no map, so it still writes both). (3) Dropped: the cleaner yielding the
// processor (runtime.Gosched after each gathering of moves and repoint
// batch, unless writers were at risk), meant to let FUSE requests run
// before Go's 10 ms preemption. Execution traces of 3 s of a 10-pass run
// with the cleaner (two with, two without, alternating, load 6.7-8.1):
// the FUSE server goroutines waited 7.2 and 9.4 s (summed) for a
// processor with the yields, 9.1 and 7.8 s without, so the foreground
// gained nothing, while the cleaner's own goroutine waited 0.72-0.75 s
// against 0.18-0.25 s, and the writers were throttled longer (three
// interleaved bench-space pairs: 0.66, 0.82, 0.71 and 11, 8, 18 s with the
// yields; 0.94, 0.74, 0.84 and 9, 10, 10 s without). Recycling segment
// files was not done: a reused file keeps valid records of its old life
// past its new tail, and Open's tail recovery would take them for records
// of the new segment (records do not name their segment); that needs a
// format change, and unlinks (freeing the pages) stay the finisher's cost.
//
// Measured on a machine shared with two other engineers' tests (the
// machine 0-13 % idle; tmpfs, 256 MiB, 10 passes; main ebd1897 "before"
// and the final code "after", interleaved, one run at a time; load
// 4.4-10.6):
//
//	time   build   MB/s without/with (ratio)  max    daemon CPU-s without/with  throttled s
//	16:28  before  107.1/84.4 (0.79)          1.472  16.9/21.5                  8
//	16:29  after   131.2/104.2 (0.79)         1.468  14.3/19.2                  7
//	16:30  before  103.2/84.9 (0.82)          1.473  16.1/21.6                  5
//	16:31  after   110.2/108.4 (0.98)         1.471  14.3/18.7                  7
//	16:32  before  145.0/92.0 (0.63)          1.477  13.5/21.7                  6
//	16:33  after   124.4/100.0 (0.80)         1.468  14.1/19.4                  9
//	16:34  before  123.7/74.9 (0.61)          1.481  13.8/21.1                  7
//	16:35  after   110.9/95.5 (0.86)          1.474  14.5/19.5                  6
//	16:53  before  163.8/123.2 (0.75)         1.477  13.1/20.8                  6
//	16:54  after   149.6/115.4 (0.77)         1.477  13.5/20.3                  9
//	16:55  before  118.2/87.7 (0.74)          1.477  17.0/23.9                  10
//	16:56  after   131.4/131.0 (1.00)         1.473  16.1/18.1                  7
//
// Means (16:28-16:35, load 6.5-10.6): ratio 0.71 before, 0.86 after; MB/s
// with the cleaner 84.1 before, 102.0 after (+21 %); daemon CPU with the
// cleaner 21.5 against 19.2 s, and the cleaner's part (with less without)
// 6.4 against 4.9 s (-23 %, the index writes saved by (2) included);
// moved per byte written 0.87 in both; max segments at most 1.481 × live
// before, 1.474 after; writers throttled 5-8 s before, 6-9 s after. The
// quietest pair (16:53-16:54, load 4.4-5.9) is 0.75 against 0.77, with
// about the same daemon CPU: the gain shrinks as the machine frees up. Six earlier pairs with the
// yields (15:46-15:57, load 6.5-12.7): ratio 0.69 before, 0.89 after, MB/s
// with the cleaner 86.7 and 109.6, the cleaner's part 6.9 and 4.0 s,
// writers throttled 4-10 and 7-17 s. 50 passes (ext4 on the virtio disk,
// /var/tmp; the final code at 16:41, main at 16:47, load 7-10): after
// 87.0/92.1 MB/s (1.06), max 1.479 × live, daemon CPU 99.2/110.8 s,
// throttled 26 s; before 75.9/75.4 (0.99), max 1.486, 99.5/121.5 s,
// throttled 30 s (before alone at 16:13, load 5.4: 100.2/112.2, 1.12, max
// 1.482). The cleaner's part of the daemon's CPU at 50 passes: 11.6 s
// after, 22.0 and 10.5 s before.
//
// Profiles of a whole 10-pass run with the cleaner (40 s windows; before
// at load 7-10, the final code at load 4.4, its pair 0.72, max 1.470):
// the cleaner's goroutine 3.11 -> 2.37 s (moves 2.98 -> 2.21, of which
// reads 1.44 -> 0.86 s of pread, appends to the cleaner stream 0.84 ->
// 0.79 s, map lookups 0.34 s, decode and CRC 0.2 s; building the lists
// 0.11 s), the finisher 1.47 -> 1.73 s (unlinks 1.04 s, repointMap
// 0.37 s), Badger's writeToLSM 2.75 -> 1.94 s (skiplist inserts 2.32 ->
// 1.59 s, commits and repoints). The engine alone
// (BenchmarkOverwriteSpace, 64 MiB, 10 passes, 3 interleaved pairs, load
// 4.4-7.7): 6.97, 7.40, 7.58 CPU-s per GB written with the cleaner
// before, 6.92, 7.05, 6.68 with this pass (with the yields). A debug log
// of one run of this pass with the yields (load 6.5; 98 MB/s): 409
// rounds, 17.8 s of the 26 s rewrite in rounds; 1,212 batches of about
// 465 records moved in 10.5 ms each (1,340 of the 1,353 segments
// by listed reads); 1,167 finishes: repoints 4.7 ms mean (p99 40 ms),
// unlinks 2.7 ms, the cleaner stream's sync 1.8 ms, the index sync 0.02
// ms. What is left is the page work of the kernel (reads of the live
// records, writes of their copies, the unlinks that free the old pages)
// and Badger's skiplist for the repoints (one key a moved record):
// recycled segment files (a format change: a record naming its segment,
// or a per-file generation) and fewer repoints would be next. The target
// (0.8 on a quiet machine) is not claimed from these pairs: no quiet
// machine was had this afternoon.
//
// Eleventh pass (7 Dec 2026, evening, branch clean14): where the 10-pass
// loss goes, measured before changing anything; no tuning kept, one defect
// fixed ((6) below). Main e8e028d (the binary "before"), bench-space.sh
// 256 MiB, 10 passes, one run at a time on the machine shared with two
// engineers' tests (load 1.1-14). (1) The throttle is not the loss. The
// samples (bench-space.sh now also records the throttled seconds and the
// MB/s through the mount every second) show 1.6-3.0 of a run's 3.8-7.5
// throttled seconds (summed over writers) in the second the log first
// reaches 1.45 × live: the first rounds move 1.1-1.5 bytes per byte freed
// (every segment is about a third dead after 0.45 of a pass: uniform
// overwrite leaves no emptier one), against 0.75-0.8 once the rounds run
// near the bound. Then a trickle of about 0.2 s a second, while the MB/s
// with the cleaner stays 30-50 % under the run without through seconds in
// which nothing was throttled. A build whose writers are never held
// (throttle a no-op; three pairs interleaved with main, load 2.7-5.8):
// 0.75, 0.71, 0.54 against main's 0.73, 0.83, 0.76, and the log then
// reached 1.518 × live once: the throttle is the backstop of the bound and
// costs nothing measurable. (2) Running the cleaner and its finisher on OS
// threads of lower priority (LockOSThread, setpriority nice 10 and 19;
// three pairs each against main, load 3.8-7.1): 0.87, 0.47, 0.56 (nice 10)
// and 0.57, 0.88, 0.70 (nice 19) against 0.96, 0.99, 0.78, the writers
// throttled 19-24 and 35-47 s against 4-5: the foreground then waits for a
// starved cleaner at the limit instead, so it was dropped. (3) The cost is
// the cleaner's CPU. Over the sixteen main pairs of this pass, the
// throughput ratio ranged 0.60-1.39 (mean 0.80) with the load of the other
// engineers' tests, while the ratio of the daemon's CPU seconds without
// and with the cleaner for the same bytes written stayed 0.68-0.91 (mean
// 0.77): the cleaner adds about 30 % to the daemon's CPU (median 5.1 s to
// 13.6-20.7 s), and on a saturated 2-core machine (fio, the daemon and the
// others' tests; 0-30 % idle) the foreground loses about that. A profile
// of the quietest pair (load 1.1-2.8, ratio 0.90, 20 s window): the
// cleaner's goroutines 3.1 s of the daemon's 15.9 s: moves 1.45 s (pwrite
// of the copies 0.47, pread 0.26, live map lookups 0.34), finisher 1.55 s
// (unlinks 0.47, repointMap 0.42, Badger's WAL msync 0.27, fdatasync
// 0.10); Badger's write path is not bigger with the cleaner (2.07 s
// without, 1.93 with: the run without has no live map, so it writes both
// keys of each overwrite). The mutex profile's extra wait with the cleaner
// (81 s against 15.5 s) is nearly all go-fuse's request-pool lock
// (fuseFD.reqMu in readRequest and returnRequest), held for a few
// instructions: its holders lose the CPU, a symptom of the saturation, not
// a convoy of ours. (4) Fewer moves are not to be had from victim choice:
// a simulation of greedy and cost-benefit ((1-u)·age/(1+u)) cleaning under
// uniform random 4 KiB overwrite at 1.45 × live, 64 segments a live (10
// passes): 0.842 and 0.848 moved per byte written (cost-benefit pays off
// with hot and cold data, not here; /work/clean14-bin/sim.py, not kept in
// the tree). Smaller segments lower it in the simulation (128 a live:
// 0.80, 256: 0.76), but a build with segments of live/128 moved only 1 %
// less through the mount (2.33-2.34 GB against 2.35-2.36 a run; two pairs
// 0.99, 0.74 against 0.69, 0.76) and was not kept. (5) Branch clean13's
// four code commits cherry-picked on e8e028d (binary "c13"), four pairs
// interleaved with main (load 4.4-14.4): 0.93, 0.74, 0.69, 0.95 (mean
// 0.83; CPU ratio 0.82) against 1.39, 0.63, 0.76, 0.62 (0.85, or 0.67
// without the first pair, whose run without the cleaner was slowed by a
// burst of load; CPU ratio 0.78). 50 passes, one pair each: main 53.2/70.2
// MB/s (1.32: the run without slowed as its log grew to 51 × live; load
// 14.4-7.4), max 1.483 × live, moved per byte written 0.894, throttled 38
// s; c13 72.6/56.8 (0.78, load 7.4-11.7), throttled 76 s, and its segments
// reached 1.53 × live in one sample (103 s in, no writer throttled since
// the sample before): with RemoveSegmentsLater a cleaned segment leaves
// the table (the bytes the writers' limit counts) before its file is
// unlinked, so on a loaded machine the files on disk outrun the bound. No
// clear margin, and a bound broken: not merged. (6) A defect found on the
// way, fixed: an incremental round that commits first (advanceCheckpoint,
// when the segments below the checkpoint cannot free enough) judged with
// the usage table and live total taken before that commit, and the refresh
// between batches read the table before the checkpoint's segment; the
// segments a commit had just made eligible then showed no live bytes while
// every record in them was live, and were moved whole. Through the mount a
// 256 MiB fill (fio 1 MiB writes, no fsync until the end) moved 21 MB for
// 640 bytes freed, now nothing (TestCleanerFillMovesNothing: 5.2 MB moved
// before the fix). In the 10-pass rewrite (an fsync every 256 writes) it
// was rarer: moved 2.324-2.330 GB a run with the fix (four runs) against
// 2.348-2.369 GB in the twenty runs of main (0.866 against 0.879 per byte
// written, -1.3 %). Four pairs interleaved with main (binary "after", load
// 3.3-18): 0.76, 0.97, 0.95, 0.61 (mean 0.82; CPU ratio 0.77) against
// 0.97, 0.67, 1.03, 0.80 (0.87; 0.73); max segments 1.470-1.475 against
// 1.471-1.480 × live. 50 passes, one pair (load 14.9-17.7): after
// 92.9/68.9 MB/s (0.74), max 1.482 × live, moved 0.891 per byte written,
// throttled 45 s; before 86.6/62.1 (0.72), max 1.479, 0.894, 44 s. The
// throughput is within the noise; the fix is kept for the moves it saves,
// and because whole live segments moved for nothing waste the disk's
// writes wherever a disk is filled without syncs. So the 10-pass target
// (mean >= 0.85) holds only where the machine has about a third of a core
// to spare for the cleaner; on a saturated one it needs the cleaner's CPU
// roughly halved: recycled segment files (no unlinks, no page freeing; a
// format change), fewer index writes per moved record, and cheaper
// live-map lookups are what is left. Reproduce: binaries in
// /work/clean14-bin/{before,after,c13}, runs by /work/clean14-bin/pairs.sh
// TAG PASSES N before after c13 (BENCH_DIR=/var/tmp BENCH_SPACE_SIZE=256M
// BENCH_SPACE_PAIRS=1 scripts/bench-space.sh per run).
//
// Twelfth pass (8 Dec 2026, branch clean15): the cleaner's CPU per moved
// record, attributed; one cut tried and not kept; no code change. A CPU
// profile of main 4b99dfa's daemon through bench-space.sh (256 MiB, 10
// passes, 20 s window from 3 s into the rewrite with the cleaner, load
// 2.5-8.8, the machine 2 % idle; about 237,000 records moved in the
// window, from the MB/s samples and moved/written 0.865) puts the cost of
// a moved 4 KiB record at about 10.3 µs of CPU:
//
//	where                                          µs per moved record
//	index: Badger's write goroutine (WAL, skiplist)       2.7 (its share of 1.41 s by keys: 46 % repoints)
//	index: memtable flushes, compactions (same share)     0.8
//	index: repointMap (batch, map), index Sync            1.1
//	kernel: pread of the runs (gaps read through)         1.3
//	kernel: pwrite of the copies (page allocation)        1.0
//	kernel: unlink of cleaned segments (page freeing)     0.8
//	kernel: fdatasync of the cleaner stream               0.8
//	live map lookups (liveAt), lists                      0.8
//	decode and CRC32C of what is read                     0.55
//	the rest (mover, allocation, creating segments)       0.5
//
// That is about 5.8 s for a run's 560,000 moves, near the 5.1 s median the
// cleaner adds to the daemon (clean14). No item is half of it: 4.6 µs
// (45 %) is the index write of each repoint by this attribution, 3.9 µs
// (38 %) the kernel's page work for bytes the cleaner must read, write,
// sync and free, and the user-space rest (lookups, decode, CRC,
// bookkeeping) 1.9 µs. The attribution overstates the index: an
// experiment build whose repointMap only updated the live map, writing
// nothing to the index (unsafe: reads of moved blocks then fail; the
// engine benchmark's final check skipped), lowered the cleaner's added CPU
// in BenchmarkOverwriteSpace (64 MiB, 10 passes, four interleaved pairs
// with main, load 6-9) from 3.48 to 3.18 s per GB moved (runs 2.9-3.8 and
// 2.5-4.4), Badger's write goroutine by about 0.5 s and the cleaner's
// goroutines by 0.13 s per GB moved: at most a fifth of the cleaner's
// CPU, not the half the target needs. Badger's cost is per key (a
// skiplist search with a cache miss at most levels, the WAL entry, the key
// again in every flush and compaction): a write batch applies its keys in
// map order (txn.pendingWrites), so sorting a batch buys no locality, and
// batching more keys per write saves only the per-batch commit. The one cut tried (cleanread.go decoding and checking
// only the listed records, not the dead ones read through in a gap: by
// the profile half of the 0.55 µs) measured within the noise: engine
// (BenchmarkOverwriteSpace, 64 MiB, 10 passes, eight interleaved pairs,
// load 7-11, both orders) the cleaner's added CPU 3.36 s per GB moved on
// main and 4.23 with it (runs 2.0-6.1), its goroutines' CPU by profile
// 2.04 and 2.10 s per GB moved; bench-space (10 passes, four pairs each,
// interleaved, load 6-13) ratio 0.87 on main (0.57-1.25) and 0.69 with it
// (0.59-0.80), daemon CPU without/with 0.73 and 0.71, max segments
// 1.471-1.481 and 1.468-1.479 × live. So main's code stays. One 50-pass
// pair of main the same night (load 9-11): 49.8/52.5 MB/s (1.05), max
// segments 1.481 × live, moved per byte written 0.892, writers throttled
// 20 s, daemon CPU 121.3/132.8 s. What could cut the cleaner's CPU further
// (not done: each is a design change with its own crash argument, beyond
// a pass; by the figures above each is worth about a fifth, so even both
// fall short of half):
//
//   - No index write per move (a fifth at most, by the experiment above;
//     4.6 µs by the attribution): the copies already name their key
//     and sequence number, so the index could lag. Repoints deferred by a
//     few seconds mostly never happen under overwrite (a uniformly
//     rewritten 256 MiB disk at 80 MB/s rewrites a given block within
//     3.3 s with probability 0.63, within 10 s 0.95; less where writes
//     are skewed, since the records a cleaner moves are then the cold
//     ones), but until the index is repointed every reader of index
//     positions (reads, check, repair, streams) must map a removed
//     segment's position to its copy (an in-memory table, rebuilt at Open
//     by replaying the cleaner stream past a repointed-through mark, as
//     the foreground's log is replayed past the checkpoint).
//   - Recycled segment files (-1.5 to -2 µs: no page allocation for the
//     copies' pages, no page freeing at unlink; ext4 without a journal, as
//     here, also walks recently deleted inodes at every create: 6.7 % of
//     the engine benchmark's CPU at 1 MiB segments): needs records that
//     name their file's generation, since a reused file keeps valid
//     records of its old life past its new tail (ninth pass).
//
// BenchmarkCleanMoveMap now runs at 4 KiB blocks too and reports the
// process's CPU µs per moved record over one cleaning pass on /dev/shm
// (12-17 µs at 4 KiB, 23-34 at 16 KiB, run to run on the shared machine,
// Badger's goroutines and the page work included). Reproduce: binaries and
// scripts in /work/clean15-bin (pairs.sh TAG PASSES N before after;
// engine.sh TAG N before after with engsum.sh TAG; move.sh; cleancpu.sh
// BIN PROFILE MOVED_BYTES for the profile's cleaner seconds).
//
// # Full filesystems
//
// Three things keep a store usable when its filesystem fills (reserve.go):
//
//   - A floor of free space (Options.MinFreeBytes; default 4 × the index
//     memtable size, 32 MiB, at most 1/8 of the filesystem) that new disk
//     writes must leave: Disk.WriteAt refuses a non-zero write that would go
//     below it with ErrNoSpace and the one message "no space left on the
//     store's filesystem (DIR): delete snapshots or disks, then snapfs gc"
//     (ENOSPC through the mount, exit 7 for commands). The free space is
//     asked of the filesystem (statfs) at most every 8 MiB appended or every
//     second, and always near the floor. Writes of zeros are exempt: whole
//     zero blocks free space, and a discard's partial ends must not fail.
//   - A reserve file, <dir>/reserve (Options.ReserveBytes; default
//     min(max(total/32, 64 MiB), 512 MiB, total/8, free/8 (4 MiB at
//     least)), and 4 MiB at most on tmpfs and the in-memory test FSes, where
//     a reserve is memory taken from everyone), allocated (fallocate;
//     written zeros on the test FSes). It is given back (removed) when space
//     runs out for work that must not fail: GC and Close give it back when
//     the free space is below the floor, any append to the log that fails
//     with ENOSPC gives it back and retries once (new writes never get
//     there: the floor refused them), and so does an allocation of the
//     index that fails (the hook in the patched ristretto, below). While it
//     is released, new writes must leave room for it too; it is re-armed
//     by GC, Open and the cleaner once twice the floor is free beside it, a
//     hysteresis that keeps a store near the floor from flapping, and by a
//     new write once the floor is free beside it, so no write is ever
//     admitted with the reserve released (else writes could use up the
//     room it needs and leave it released for good).
//   - GC on a nearly full filesystem first removes the segments nothing
//     lives in, and moves records in batches of at most half the free
//     space, so it frees space before it needs any. Usage appends nothing;
//     snapshot and disk delete append a small catalog record; any write to
//     the log that fails for lack of space gives the reserve back and is
//     tried once more (segment.Log.SetNoSpaceHook), so they work on a
//     filesystem another program filled.
//
// No SIGBUS: the engine's own writes (segments, superblock, reserve) are
// write(2) calls that fail with ENOSPC. Badger, however, writes its memtable
// log (.mem), value log (.vlog), the tables it flushes and compacts (.sst)
// and its DISCARD file through shared mmaps of files it made with
// ftruncate: sparse files. Measured on a 64 MiB ext4 filled to 0 bytes free
// by another file: the first txn commit SIGBUSes in runtime.memmove from
// (*logFile).writeEntry (the .mem file); the issue saw the same in the
// memtable flush (a new .sst) of an offline `disk list`. snapfs therefore
// builds Badger with a patched ristretto (index/third_party/ristretto, a go.mod
// replace; SNAPFS-PATCH.md): z.OpenMmapFile and MmapFile.Truncate allocate
// the bytes (fallocate) before mapping them, so a full filesystem is an
// ENOSPC error from the allocation, never a fault in a later store. Measured
// again with the patch: Badger returns "cannot create new mem table ...
// fallocate ...: no space left on device" from the commit that needed a new
// memtable. Badger then leaves its memtable nil: the next write would exit
// the process (y.AssertTrue) and Sync panics. That is why the allocation
// hook gives back the reserve first, and why the floor covers what Badger
// allocates (a memtable log is twice the memtable size, a flushed table up
// to it; the index opens with 8 MiB memtables and 1 MiB value-log files, see
// index.Open). Known limit: if another program fills the filesystem after
// the reserve is gone, Badger can still fail that way (an error and an
// exit, never a SIGBUS, never acknowledged data lost: the log is synced
// before the index is written).
//
// # Encryption
//
// A disk may be created encrypted (CreateEncryptedDisk; `disk create
// --encrypt --key-file F`). Its blocks are sealed where they meet the log:
// appendRecord seals a data record of an encrypted layer once its sequence
// number is assigned (crypt.go sealRecord), checkVersion opens it
// (openRecord). The write-back cache, the read path above it, FUSE and
// replication see plaintext; the segment log, the cleaner (which copies
// records raw), replay, GC and the index only ciphertext and sealed
// digests, and need no key. Snapshots, images, clones and rollbacks of an
// encrypted disk share its key: the key of a layer is that of the root of
// its chain (the layer a disk was created with), whose catalog record
// carries the key envelope (index.Layer.Crypt); the others carry nothing.
// An unencrypted snapshot becomes encrypted only as a full copy into a new
// encrypted disk (CopyToEncryptedDisk); an encrypted one never becomes
// unencrypted: no operation makes a plain layer over an encrypted parent or
// the reverse, and each conversion asked for is an ErrInvalid.
//
// Keys. Each encrypted disk has a random 32-byte master secret. A key file
// (LoadKeyFile: owner-only mode, 8 bytes to 64 KiB, a passphrase or random
// bytes; one trailing newline dropped) gives the key-encryption key through
// Argon2id (3 passes, 64 MiB, 2 lanes: memory-hard, because a key file may
// hold a passphrase; parameters and salt kept in the envelope; derived keys
// cached per process so a mount with one key file for many disks derives
// once; golang.org/x/crypto/argon2, the Go team's, as the standard
// library has no memory-hard KDF). The master secret is sealed under it with AES-256-GCM: a wrong
// key fails authentication (ErrWrongKey) and changes nothing. RekeyDisk
// re-seals the master secret under another key file: no block is
// rewritten. Keys are held in memory only, by the process that opened the
// store (Options.Keys, UnlockAll at Open; UnlockDisk, LockDisk); a locked
// disk, and its snapshots, images and clones, refuse to open with ErrLocked
// (ENOKEY through the mount) and are listed as locked. Key material never
// reaches a log, an error, the catalog in clear, --json or argv: a Key
// prints as its file name.
//
// Cipher and nonces. Blocks are sealed with AES-256-GCM (hardware
// accelerated; XChaCha20-Poly1305 measured 5 times slower here, as slow as
// the SHA-256 every block already pays). The GCM key is a subkey,
// HKDF-SHA256(master, 16-byte random salt), made afresh whenever a disk
// family is unlocked (every Open, every unlock) and after 2^32 records; the
// nonce is that subkey's record counter. A (subkey, nonce) pair therefore
// never repeats, and no counter has to survive a crash, a copy of the
// store directory or clones sharing a key: a nonce derived from sequence
// numbers would repeat after a lost log tail or in a copied store, and
// random 96-bit nonces under one key would need a bound on records per key
// (2^32) that a busy disk reaches. The salt travels in each record;
// subkeys are cached by salt to open records.
//
// Associated data binds what stays stable of a record: its layer, block,
// epoch and sequence number (the cleaner and repair relocate records
// keeping all four; clones read the parent layer's records under the
// parent's layer number), the key family and the envelope header. A sealed
// block moved to another block, version or layer, or a record's payload
// swapped with another's (its CRC made valid again), fails to open: a
// *CorruptError (EIO), reported by check.
//
// Digests. The index keeps a SHA-256 per data version, used by check and
// repair and as region chunk ids. For an encrypted layer the index keeps a
// sealed digest instead: the SHA-256 encrypted deterministically with the
// family's digest key (AES-256, two blocks chained as in CBC with a zero
// IV). Nobody without the key can confirm a guess of a block's content from
// the store; equal blocks of one disk family still have equal sealed
// digests (needed for diffs; the same equality as a keyed HMAC would show).
// The sealed digest is also in the record (so replay rebuilds the index
// without a key).
// Diff hands out SHA-256s (it opens the sealed digests: ErrLocked while
// locked), so regions work unchanged: sync ships plaintext blocks that the
// region seals with its own key; chunk ids are the region's HMAC of the
// SHA-256. `restore --encrypt --key-file F` builds the restored disk
// encrypted with a new data key (a restore needs both keys). The region
// records that a snapshot's disk was encrypted (manifest version 4, a flag
// per disk; SnapshotDiskEncrypted): a restore of it without --encrypt is
// refused, so an encrypted disk never comes back unencrypted.
//
// Check verifies what it can without a key (record CRC, the envelope, its
// family and sealed digest against the index); with the key unlocked it
// also authenticates each block and compares its SHA-256.
//
// Not hidden: disk, snapshot and image names, sizes, block maps (which
// blocks are written, holes), times, and the equality of blocks within one
// disk family.
//
// Record flag 1 (segment record header, Flags) marks a sealed data record.
// Its payload, block envelope version 1:
//
//	0  1  format version (1)
//	1  1  cipher (1: AES-256-GCM with per-salt HKDF-SHA256 subkeys)
//	2  2  reserved (0)
//	4  8  key family id (LE)
//	12 16 subkey salt
//	28 12 GCM nonce: the subkey's record counter (LE uint64), then 4 zero bytes
//	40 32 sealed digest
//	72 n+16 ciphertext of the n-byte block, then the GCM tag
//
// associated data: "snapfs-block-v1", bytes 0..72, layer, block, epoch and
// sequence number (LE uint64 each). The record's CRC32C covers it all.
// Key envelope version 1 (96 bytes; the Crypt field of the root layer's
// catalog record, which has its own version and CRC):
//
//	0  1  format version (1)
//	1  1  cipher (1)
//	2  1  KDF (1: Argon2id)
//	3  1  Argon2 lanes
//	4  4  Argon2 passes (LE)
//	8  4  Argon2 memory in KiB (LE)
//	12 8  key family id (LE, random, odd)
//	20 16 KDF salt
//	36 12 nonce (random)
//	48 48 master secret sealed with AES-256-GCM under the Argon2id key,
//	      associated data "snapfs-key-v1" + bytes 0..48
//
// FuzzKeyEnvelope and FuzzBlockEnvelope fuzz both decoders. Subkeys: HKDF
// info "snapfs block v1 " + family id (LE), salt the record's; digest key:
// HKDF info "snapfs digest v1 " + family id, no salt.
//
// Access control: the store directory is made 0700 at Create and Open, and
// the files the engine creates are 0600 (the daemon's control socket checks
// its peer's uid too: cmd/snapfs/internal/service).
//
// # Store directory
//
//	superblock    format version and feature bits
//	lock          advisory lock (flock): one process per store
//	segments/     the segment log
//	index/        Badger, and SNAPFS-INDEX (the store it belongs to)
//	index.bad-*   an index Rebuild moved aside (never deleted by snapfs)
//	reserve       the space reserve (see Full filesystems); may be absent
//
// # The index is a cache of the log
//
// The log is the source of truth (invariant 4): block records carry their
// layer, block, epoch and sequence number; catalog records carry every
// change of the catalog (disks, snapshots, images, layers, the id counter).
// A full catalog record (every catalog key) is written after 64 + n/2
// deltas (n: catalog size), so its cost is O(1) per change on average, and
// the cleaner keeps only catalog records at or after the newest full one.
// Replay applies catalog changes per key by sequence number (the newest
// wins, whatever the order relocation left in the log); block records of a
// layer whose catalog record comes later are applied once it is known.
// A catalog record is synced before its index transaction commits, and
// until that commit the checkpoint is never written past it (commit stops
// at Store.catInflight): after a crash in between, replay applies it, so
// the reopened index agrees with the log (else the id counter went back
// and a later rebuild put two disks on one layer). A catalog change that
// fails after its record was appended is superseded by a full catalog
// record of the index's catalog; if that fails too, each later catalog
// change writes that full record first and is refused (ErrNoSpace when the
// filesystem is full) until it succeeds; a reopen supersedes it as well
// (replay then applies the record). TestTrial8CatalogRecoversAfterNoSpace.
//
// Open never trusts an index it has not checked (identity.go). Before
// Badger opens the directory (Badger, finding no MANIFEST, starts an empty
// database and deletes the table files it does not know: index/doc.go), it
// refuses a directory that is missing, empty or lacks its MANIFEST while
// the log holds records, and one whose SNAPFS-INDEX names another store.
// Then it opens the index read-only and refuses one whose store id differs,
// one that applied nothing while the log holds records, one whose
// checkpoint is older than the oldest segment left while some version
// points into a segment that is gone (the cleaner repoints and syncs the
// index before it removes a segment, so only an index that missed that, an
// old copy, is behind that way; the versions are looked at only in this
// rare case), and one whose checkpoint lies
// past the end of the log (segments or data it points at are gone; the
// checkpoint is written only after the log is synced up to it). Missing
// records of older segments are found by Check. A refusal is an *IndexError
// (ErrCorrupt and ErrIndexRefused): nothing on disk changed, and the
// message names `snapfs index rebuild`. Rebuild moves the old directory
// aside and replays the whole log into a new index, catalog included.
//
// Rebuild and corrupt records. A rebuild knows no durable position (its
// index is new), so segment.Open is told so (DurableUnknown): a bad record
// in a stream's last segment with a valid record after it is corruption,
// and it is kept with everything after it (on the trial of issue 14 it was cut there
// as a "torn tail", losing a snapshot, its image and clone and half the
// disk); only a bad tail with nothing valid after it is cut, as a crash
// may tear it, and listed in the report (torn_tails: after a clean
// shutdown that was data), also after a corrupt record kept
// (TestRev14RebuildCorruptThenTornTail). The price of not knowing a
// durable position: a record a crash tore (writeback reordered unsynced
// pages) with valid records after it is taken for corruption, and, its
// header intact, indexed as below: its block reads as corrupt rather than
// as its acknowledged previous version, which stays in the log but no
// tool brings back. Replay then attributes every record the scan
// skipped (attributeBad): a data record whose header is proven (its CRC
// verifies once a damaged magic, version, length or kind field is
// restored: segment doc, "Corruption") or looks intact (the length it
// names ends where the next valid record starts) and agrees with
// what replay knows (a layer of the catalog, a sequence number no higher
// than the log's, the payload length of the layer's good records) becomes
// its block's version unless a newer (or an equal, good) one exists, so
// reads of the block fail as corrupt (EIO) and check --read-data names it
// with its disks, snapshots and images, exactly as if the index had been
// there before the damage: a damaged block never silently reads as its
// previous version or as zeros. Its digest is unknown (zero), so repair
// --from-region cannot fetch it by digest: it takes it from the region's
// copy of a snapshot that sees that very version (see "Check and repair");
// a version no snapshot in the region sees stays unrepaired, saying why.
// Anything else (a header damaged beyond that, a hole or catalog record)
// is listed as unattributed, by segment, offset and bytes,
// and check --read-data reports the record too. Replay at an ordinary
// Open attributes the bad records it scans (past the checkpoint) the same
// way. That is what a ZFS user
// expects of a scrub or an import: corruption is never returned as data
// nor hidden, import never throws away data that was committed, each
// damaged block is named with what uses it (zpool status -v), and the
// operator is told the pool is not whole. `snapfs index rebuild` exits 6
// when the log held a corrupt record (the index is rebuilt and usable).
// A damaged length never hides the records after it (the scanner does
// not trust the length of a bad record; TestRebuild15HeaderDamage,
// TestReplay15HeaderDamage), and a record version byte damaged upward is
// corruption, not a newer format: only a record whose checksum is valid
// is refused as written by a newer snapfs (segment doc, "Versions").
// A flip inside a header's layer, block, epoch or seq fields is not
// detected as such (the CRC covers header and payload together). Replay
// refuses a header whose epoch and sequence number contradict the block's
// other versions (a version at a higher epoch with a lower sequence
// number, or the reverse: epochContradiction), so a damaged epoch field
// cannot make a snapshot whose own record is intact read as corrupt
// (TestRev14RebuildEpochFlip); the record is listed as unattributed. What
// is not caught: a damaged block or layer field that still names a block
// of the catalog, or a seq field damaged downwards, marks the wrong block
// corrupt or none, and the block the record really held reads its previous
// version (the rebuild still counts the segment as corrupt and exits 6,
// and check --read-data names the record). The
// old index is kept as index.bad-<time> (a safety copy: it may know what
// the log lost, such as the digests of damaged blocks); the command names
// it and says to remove it once check is clean (TestRebuild14CorruptRecord,
// integration TestRebuild14CorruptMiddle).
// Stores written before the catalog log are upgraded at their first Open
// (identity written, a first full catalog record appended); a v1 store
// fixture (testdata/store-v1) must keep opening, reading and checking clean.
// GC (recordLive) refuses to run on a store whose index was not verified.
//
// Known gap: GC's deletion of unreferenced layers is not logged; a rebuild
// brings such layers back empty or with dead versions, and the next GC
// deletes them again.
//
// # Superblock
//
// 52 bytes, little-endian, written once (temporary file, fsync, rename,
// fsync of the directory):
//
//	0  8  magic "SNAPFSSB"
//	8  2  format version (1)
//	10 2  reserved (0)
//	12 4  incompatible feature bits: a reader that does not know one refuses the store
//	      (bit 0, IncompatEncryption: the store holds encrypted disks)
//	16 4  compatible feature bits: safe to ignore
//	20 4  reserved (0)
//	24 8  creation time, unix nanoseconds
//	32 16 store UUID
//	48 4  CRC32C of bytes 0..48
//
// It is checked at Open: a newer format version or an unknown incompatible
// feature is refused with ErrIncompatible, never misread; a bad checksum is a
// *CorruptError. FuzzSuperblock fuzzes the decoder.
//
// # Check and repair
//
// Check (check.go) verifies in one consistent index view: the superblock and
// the index's identity; the catalog (every disk, snapshot member, image and
// parent names an existing layer, at a sealed epoch, with its block size);
// the index (every data version points inside an existing segment); with
// ReadData every data version's record (decodes, is that layer, block,
// epoch and sequence number, record CRC32C good, SHA-256 equal to the
// index's) and then every record of the log (a bad record no reader sees is
// still reported: it may be a hole or catalog record a rebuild needs). A
// problem names the disks, snapshots and images that see the block (the
// readers of its layer whose epoch lies between the version's and the next
// newer one, following child layers that do not hide the block). The data
// pass visits layers in id order and blocks in order; MaxDuration stops it
// and saves the position (check-cursor.json, store UUID inside, written
// with vfs.WriteFile); the next data pass starts there and removes the
// cursor when it completes. Repair (repair.go) runs a full data pass and
// rewrites each bad version from a BlockSource by its SHA-256, as a
// relocated record (same layer, block, epoch, sequence number) that the
// index is repointed to, so every reader sharing it is repaired and a rebuild
// finds the good copy (replay keeps, for equal sequence numbers, the copy
// whose record decodes). A bad version whose digest is unknown (zero: a
// corrupt record a rebuild or a replay indexed, attributeBad) cannot be
// fetched or verified by digest: when the source is a SnapshotSource (a
// region), Repair takes the snapshots the check lists as seeing it, and
// for each disk of theirs whose block resolves to exactly that version
// (the same record and sequence number) asks the source for that block of
// its copy of the snapshot. The copy must be of the same snapshot (its id
// and creation time, from this store), never one that only has its name;
// the source verifies the block as it verifies every block it gives. That
// the snapshots see the version now does not prove they saw it when their
// copies were made: the record's header is not covered by a checksum of
// its own (segment.BadRecord.HeaderOK), and a flipped epoch makes a
// rebuild index it at a lower epoch, where snapshots taken before it was
// written see it too and their copies hold the older block. So a copy is
// used only if it is what the damaged record held (asDamaged): the record
// rebuilt from its stored header and the copy (for an encrypted disk, the
// copy sealed again under the record's stored envelope header: family,
// subkey salt, nonce; the key must be unlocked) matches the record's stored
// CRC, which covers header and payload. A damaged header or envelope
// header, or a copy of other content, never matches: the version is left
// unrepaired, saying so (TestRev15RepairEpochFlip: on main repair wrote
// the older snapshot's copy, and the disk's head silently read its block
// as it was two snapshots before). The first copy that matches is
// appended as the relocated record (the original record, byte for byte),
// and the index gets its place and its digest in one batch
// (repoint, learning the digest), so check verifies it and a rebuild finds a good
// record. Any one snapshot that sees the version suffices. A version only
// disks, clones or images see, or whose snapshots have no copy in the
// source, is left unrepaired with the reason for each snapshot tried
// (TestBlockSourceRepair15*, TestRepair15FromRegionAfterRebuild,
// integration TestRepair15AfterIndexRebuild). Every copy, by digest or
// by snapshot, is fetched with no lock held; the copies are then appended,
// the log synced, the index pointed at them and synced under gcMu, a batch
// of up to 32 MiB at a time (applyRepairs): a copy appended but not yet in
// the index is dead to GC and the cleaner, which would otherwise remove its
// segment while the next copy is fetched (TestRev15RepairCleanerMeanwhile).
// A crash before the index sync leaves dead copies and the versions bad,
// for the next repair. After a bad log record it writes a fresh full
// catalog record and logs every hole the index holds again (a bad record
// may have been a hole, which only the index still knows; a rebuild would
// bring back the data it replaced). When every bad block was repaired, it then cleans the
// segments that hold bad records (its own decoding scan, which the
// cleaner's would not do: a corrupt record marks a segment as evidence to
// keep): good live records are relocated, the index repointed and synced,
// the segments removed, so a later check is clean. A segment that a
// committed data version still points into after that, at a record other
// than one of the walk's bad records, is kept with its evidence and logged
// instead (versionsMissed: one pass over the index's versions): the walk
// missed a live record there (with two damages the resync may skip one:
// segment package doc, "Corruption"), and removing the segment would lose
// that block (TestRev15ScanDropKeepsMissed). A bad hole record (its
// kind cannot be known once corrupt) is lost that way; the index keeps the
// hole, but a rebuild from the log would no longer see it.
//
// # Read path and the block map
//
// Each loaded disk keeps a block map (blockmap.go): per block, the version
// its head sees (none, a hole, or the record's segment, offset, length and
// sequence number), filled by lookups and set by every write of the disk
// under its lock. Reads, the read-modify-write of partial blocks and the
// "was anything here" question of writes are then answered without an
// index transaction (measured before it: a Badger view and iterator per
// read was a fifth of a random 4 KiB read's CPU time). A new disk's map is
// known-empty (its head has no parent and held no version when the disk
// was loaded): a block it has no entry for has no version, so the first
// write of each block asks the index nothing either (before: 0.96 index
// lookups a write in BenchmarkRandWrite4K on a new disk, and about 30 %
// more CPU; TestBlockMapNewDisk). Dropping a chunk or a new head layer ends
// that for good; a reopened disk asks the index for blocks it meets first,
// once each (the "index read on every write" of issue 8 is that first
// lookup; the map answers the later ones). It is bounded
// (16 MiB a disk: 24 bytes a block, in chunks of 1024 blocks; a random
// chunk is dropped when full), emptied
// when the head layer changes (rollback), and needs no invalidation when
// the cleaner moves records: segment numbers are never reused and records
// never change in place, so an entry is either right or points at a
// segment that is gone or a record that is not the one expected; such a
// block (ErrNotExist or ErrCorrupt; only the blocks that failed, not the
// whole read) is looked up and read again through the index under readMu,
// whose answer is final (a corrupt block still reads as ErrCorrupt), and
// its entry follows the record if the fresh version is the same record
// (same sequence number: relocated by the cleaner) and the entry still
// holds the version looked up; else it is dropped (bmMovedLocked). Other
// I/O errors are returned as they are. (Sharing a large
// read among 4 goroutines was tried and dropped: sequential 1 MiB reads of a
// cold disk through the mount, 3 interleaved pairs, load 27 to 32: 345, 228,
// 267 MB/s without, 316, 256, 148 with.)
//
// # Data path: where the time goes (issue 8)
//
// Profiles of the daemon (scripts/bench.sh --data-path --profile, main
// 0dc92ea, 7 Dec 2026 02:02-02:06, BENCH_SIZE=1G, load average 3.6 rising
// to 10.5 on 2 cores; bench.sh now records the CPU seconds of the serving
// process per fio job, snapfs's and the loopback peer's):
//
//   - Sequential 1 MiB writes to disks/<d>: 3.1 s of daemon CPU per GiB
//     (the loopback peer: 0.7 s). SHA-256 of every block 28 % of it, the
//     request's copy in from /dev/fuse 11 %, the appends' pwrite 11 %, the
//     commit's Badger batch 8 %, "was there data" index lookups of blocks
//     the block map had not seen 5 %. The daemon was idle more than half
//     of the job: fio writes one request at a time and, with
//     FOPEN_DIRECT_IO and no kernel writeback cache, each write(2) waits for
//     the hash and the appends; the loopback's writes return from the page
//     cache and reach it in parallel at writeback. That structural gap
//     (and SHA-256 on every byte) is what remains for this job.
//   - Random 4 KiB writes, iodepth 16 (disks/<d> and ext4 in a loop
//     device): 118 us of daemon CPU per write (loopback 52 us). The mutex
//     profile named the cause of the wait: 148 s of contention in 16 s, the
//     writers waiting for the disk's lock while a write-back batch held it
//     to hash and append 64 blocks. CPU: Badger lookups 20 % (half of them
//     re-reading a whole batch through the index because one record in it
//     had been moved by the cleaner, half looking up again the blocks that
//     fallback had dropped from the block map), SHA-256 of the 16 KiB block
//     per 4 KiB write 11 %, the cleaner moving segments 14 %, the bases'
//     pread 8 %, the appends' pwrite 8 %.
//   - Sequential 1 MiB reads of ext4 in a loop device: 3.8 s of daemon CPU
//     per GiB (loopback 0.46 s), 77 % of it the kernel copying the reply
//     into the loop device's pages in writev(2) on /dev/fuse (perf: page by
//     page in fuse_copy_fill, a spin lock each); the loopback answers from
//     its file with splice. The daemon's own part: the segment pread, the
//     CRC32C of each record and the copy of its payload.
//   - Random reads were ahead of the loopback (1.1-5x) and stay so.
//
// What was cut: a write-back batch now hashes copies of its blocks without
// the disk's lock (writeback.go; contention on it in
// BenchmarkRandWrite4KParallel, 30000 writes: 19.5 s -> 3.0 s), and a read
// that finds records moved looks up and reads again only those blocks,
// the block map following a relocated record instead of forgetting it
// (read.go, bmMovedLocked; Badger lookups in the same benchmark 0.52 s ->
// 0.13 s of CPU). Daemon CPU per random 4 KiB write through the mount,
// bench.sh --data-path old and new interleaved, 7 Dec 02:25-02:49, load
// average 7 to 15: disks/<d> 125 and 121 us -> 87 and 101 us; ext4 in a
// loop device 126 and 126 us -> 97 and 96 us. Throughputs in those runs
// moved with the load more than with the code (the loopback peer's own
// random-write figure ranged 2.7k to 8.5k IOPS), so none is claimed here.
//
// Combined writes (writecombine.go): writes of whole, aligned blocks are
// queued on the disk, and the writer that finds no combiner running
// takes the disk's lock once and applies every write queued meanwhile (at
// most 64, then the next queued writer takes over), waking each writer
// with its result. Before, each of 3-4.5 waiting writers was handed the
// lock in turn (a goroutine wake-up per write while the lock stayed idle):
// 8-9 us of CPU a write but 38-48 us of wall time in the lead's profile of
// random 4 KiB writes (see "Bounded space"). Partial writes, reads, Sync,
// PunchHole and snapshots take the lock as before; a write's work under it
// (writeLocked) is unchanged.
//
// Sequential writes, 8 Dec 2026 (branch seqw15; bench.sh --data-path
// --profile, BENCH_SIZE=1G, main 4b99dfa, then runs interleaved with
// main's binary; load average 3 to 14 on 2 cores, other engineers' tests
// running). What the questions of issue 8 found:
//
//   - Request size: fio's buffered 1 MiB write (FOPEN_DIRECT_IO: it reaches
//     the daemon synchronously) arrives as two FUSE writes, 1 MiB - 16 B
//     and 16 B: fio's buffer is not page-aligned, and a request maps at
//     most max_pages pages (256: go-fuse asks MaxWrite / 4 KiB, and
//     /proc/sys/fs/fuse/max_pages_limit is 256). The kernel sends the two
//     one after the other, and each MiB's last block goes through the
//     write-back cache. The same job with --iomem_align=4096 on the same
//     mount, 3 pairs at load 9-10: 195/222/320 -> 243/265/365 MB/s. The
//     loopback peer (kernel writeback cache) never sees it; ext4 in a loop
//     device sends page-aligned requests.
//   - Daemon CPU per GiB written: 1.9-3.1 s against the loopback's
//     0.57-0.79 s in every run of the day. Profile of the job: SHA-256 24 %
//     (SHA-NI), the appends 22 % (pwrite of the gathered MiB 10 %, Encode's
//     copy and CRC32C 7 %), the copy in from /dev/fuse 8 %, creating
//     segments 8-11 %, the commit's Badger batch 5-8 %, sync_file_range 4 %.
//     Engine alone (BenchmarkSeqWriteFresh, load 5): 1.2-1.3 s/GiB without
//     the cleaner, 1.5-1.8 with it.
//   - Copies: a payload is copied once by the daemon (Encode into the
//     gathering buffer, which moves from segment to segment, CRC32C over
//     it), between the kernel's copy in from /dev/fuse and pwrite's into
//     the page cache; a writev from the request's buffer would spare it
//     (memmove is 5 % of the CPU): not done.
//   - Syncs: with the cleaner on, the first GiB written to a fresh store
//     made 440-500 segments (its rotation size is a 64th of what is live,
//     512 KiB at least: the cleaner's space bound is built on it), each
//     sealed with an fdatasync and created ahead with an fdatasync and a
//     directory fsync; perf stat of the daemon over fio's 1 GiB job: 1000
//     fdatasync, 486 fsync, 1065 openat (a file creation costs 200-290 us
//     of CPU on this ext4); commits (every 64 MiB and the end fsync) are a
//     few dozen. BenchmarkSeqWriteFresh, load 5: 458-511 MB/s with the
//     cleaner, 748-833 without (5 segments); a scratch build with a 16 MiB
//     floor on the rotation size 644-695 MB/s, 1.30-1.37 CPU-s/GiB (not
//     kept: the floor is the cleaner's to weigh against its bound).
//   - Waits: one sequential writer meets no lock contention (mutex profile
//     0.14 s in 6 s). The writer's block profile over the 5.7 s job: 1.27 s
//     waiting for its digest helpers (runnable, sharing 2 cores with a load
//     of 6-10: the hashing itself), 0.8 s in rotations (the spare not ready
//     0.41 s, the sealed segment's sync 0.38 s).
//
// Kept: spares are created four at a time (package segment, spareBatch):
// 486 -> 125 directory fsyncs and 1065 -> 702 openat per GiB, the writer's
// rotation waits in BenchmarkSeqWriteFresh 0.47 -> 0.20 s per GiB (the
// spare not ready 0.31 -> 0.08). Old segments kept open up to a quarter of
// the file limit, 4096 at most (was 256, fewer than the segments of a
// fresh GiB, so the random jobs after the sequential one opened and closed
// a segment for most of their reads; package segment, openSegmentsBound). Measured
// and dropped: the writer hashing its share itself from a shared counter
// (slower in 6 of 6 runs: the helper it starts waits in its P's runnext
// slot while it hashes, so one core hashes), and appending a large write's
// records while they are hashed, made pending with their digests before
// appendMu is released (TestLargeWriteDigests checks that invariant; no
// gain in 6 runs at load 7-14, 70-366 MB/s either way: the machine was
// CPU-bound, and overlapping does not cut the CPU per byte).
//
// bench.sh --data-path, main (4b99dfa) and this branch alternating, 3
// pairs, 01:24-01:35, load 6-12; snapfs / loopback of the same run, and
// the daemon's CPU (s per GiB sequential; us per random op):
//
//	         seq write      rand 4K write   rand 4K read    seq write CPU   rand write CPU   rand read CPU
//	         disk  ext4     disk  ext4      disk  ext4      disk  ext4      disk   ext4      disk  ext4
//	main     0.38  0.43     0.91  1.00      1.70  2.37      2.62  2.43      95.7   89.9      26.1  22.0
//	this     0.75  0.33     1.02  0.78      2.85  1.74      2.46  2.78      85.1   82.6      21.3  27.0
//	main     0.53  0.38     1.14  0.68      1.59  1.64      2.68  2.75     102.8  119.7      32.3  32.5
//	this     0.90  0.24     0.69  1.11      2.33  2.27      1.93  2.74      82.0   96.7      19.8  20.3
//	main     0.75  0.39     0.76  0.96      1.56  1.28      2.40  2.40      92.7   93.8      34.9  30.9
//	this     0.34  0.38     0.75  0.84      2.07  3.33      2.34  2.44      90.0   89.1      22.7  21.3

//	(second set, 01:54-02:02, load 4-9)
//	main     0.69  0.60     0.90  1.13      3.11  2.37      2.05  2.45      79.1   88.0      17.5  22.8
//	this     0.59  0.23     0.69  0.67      2.69  2.53      2.01  2.56      79.5   71.9      19.4  16.1
//	main     0.74  0.37     0.68  0.76      2.41  2.19      1.78  2.32      78.2   85.8      18.0  20.0
//	this     1.39  0.72     1.18  1.03      3.42  2.21      2.11  2.67      90.0   83.6      18.1  24.2
//	main     0.76  0.59     1.31  0.64      3.26  2.14      2.14  2.40      85.3  102.3      18.4  23.2
//	this     0.73  0.71     0.82  0.73      3.50  2.47      2.11  2.42      84.9   95.1      16.2  19.3
//
// The ratios swing by a factor of two between runs of the same binary
// (the loopback peer's own sequential write went from 250 to 543 MB/s):
// no throughput target is claimed from them. In the first set the
// daemon's CPU per random read fell in 3 of 3 pairs through disks/<d>
// (26-35 -> 20-23 us) and per random write in 3 of 3 through both; in the
// second, quieter set main's random reads cost 17.5-18.4 us already and
// neither build was ahead. What is certain is the profile: openSegment and
// closeLRULocked were 14 % of the random-write job's CPU and 23 % of the
// random reads' on main, and do not show on this branch (bench.sh
// --profile, load 3). Per sequential GiB the CPU moved less than between
// runs. Sequential write stays short of 0.9x: what is
// left is the SHA-256 of every byte and a synchronous round trip per
// request (two for an unaligned buffer) against a peer whose writes end in
// the page cache, and the cleaner's small segments on a fresh store.
//
// # Memory
//
// What the engine keeps is bounded: the write-back cache (CacheBytes a
// disk), the block maps (16 MiB a disk at most), the index's
// memtables and block cache, and pooled buffers (bufpool.go: cached partial
// blocks and read-modify-write bases come from it too). The log's
// gathering buffer (1 MiB) moves from segment to segment at rotation;
// before, every sealed segment kept its own. The cleaner's live map holds
// at most liveMapMax versions: a scan that finds more builds none, and
// writes that grow an installed map past it drop it (segusage.go). The
// daemon's budget (256 MiB resident after 16 GiB written, flat beyond):
// cmd/snapfs daemonMemoryLimit; the index's share, and why its mapped
// tables are released: package index, "Memory"; measured with
// scripts/bench-memory.sh.
//
// # Streamed diffs (replication)
//
// StreamDiff (stream.go) is Diff with the data, read-only: one index walk
// (a window of 4096 blocks per index view; an incremental diff collects
// the blocks written between the points from the epoch keys, then looks
// them up a window at a time in both chains) yields each changed block
// with the location of its record, and the blocks the caller wants are
// read from there in batches (adjacent records with one read, up to 16
// runs in flight), checked as the read path checks them (CRC32C, kind,
// block, sequence number, length). The batches are read by a goroutine of
// the stream, one batch behind the walk, so index lookups (page faults of
// a cold index) and log reads overlap; Data is called from it, in block
// order. No block is looked up twice. The
// snapshot is pinned while it streams, so GC keeps what it sees; a batch
// is read under readMu, and if the cleaner moved a record since the walk
// (its segment is gone, or the record there is not the indexed one) the
// batch is looked up again and read once more. Memory: a window of
// versions, the set of written blocks of an incremental diff, and
// StreamOptions.Buffers batches.
//
// # Lazy layers (restore --lazy)
//
// A lazily restored disk is two layers: a bottom layer marked lazy in the
// catalog (index.Layer.Lazy: region, host, snapshot, disk, size, block
// size, rate bound; layer record format version 3) that holds no block at
// first, and the disk's head above it (parent: the bottom at epoch 1; the
// bottom's own epoch is 2, so epoch 1 is sealed as check wants). Writes go
// to the head as for any disk. A block no link of a chain holds is, when
// the chain ends in a lazy layer, read from the layer's LayerSource
// (lazy.go: ReadBlock, Stored; replicate's RemoteDisk in the daemon):
// zeros where the source stores nothing, else fetched once whoever asks
// (concurrent readers and hydration share one fetch), and kept: written
// into the bottom layer at epoch 1 (a data record with its SHA-256, or a
// zero record) like any write. Because hydrated blocks go into the bottom
// layer, every snapshot, image or clone whose chain reaches it reads the
// same bytes whether a block was hydrated yet or not, and GC keeps them as
// it keeps any parent's versions (the head's link at epoch 1 sees them).
// The fetch runs outside readMu (a slow or failing source never holds up
// the cleaner) and after the index lookup: a block that became local
// meanwhile (errHydrated) is read again through the index. Nothing is
// returned that did not come from the index or a successful ReadBlock: a
// source not attached, unreachable or failing verification is an error
// wrapping ErrUnavailable (EIO through the mount), never zeros.
//
// Which blocks are missing is derived, not stored: at AttachLazy, the
// blocks the source stores minus the versions the layer holds at epoch 1
// (index and pending versions), kept as a bitmap (1 bit a block: 256 KiB
// for 32 GiB of 16 KiB blocks). A source that is a StoredLister (the
// region's disk) lists its stored blocks, so the attach costs O(stored
// blocks), not a Stored call per block of the origin (2 Mi calls for a
// sparse 32 GiB disk: about 100 ms under load, which delayed the first
// read). Fetched blocks are committed with the
// next commit; after a crash the ones not committed are fetched again, so
// no separate state can disagree with the log. The daemon re-attaches the
// sources of every lazy layer at start (service: resumeLazy).
//
// Hydration (AttachLazy's goroutine): HydrateOptions.Workers (4) fetch
// missing blocks, first the 256 blocks after the newest block a read
// needed (a stack of the last 64; newest-needed first), then in block
// order from a cursor; each worker claims a batch (pickBatchLocked: the
// next block and the missing ones within twice the batch after it, at
// most 256 KiB and one token-bucket burst), fetched with one ReadBlocks
// when the source is a BatchSource (the region's disk: one range read per
// pack and data shard for neighbouring records), digested together and
// appended under one hold of the append lock (storeLazyBatch). A read of
// a block a batch is fetching waits for it at most 10 ms, then reads it
// from the source itself without keeping it (the batch keeps it); if that
// read fails (the batch ended hydration and the source was closed
// meanwhile) it takes the batch's result.
//
// The rate (--rate) bounds background hydration, never a read. A token
// bucket holds the bytes a second (the origin's rate, 1/4 s burst, at
// least one block; a batch is at most one burst). A worker reserves a
// whole batch's tokens and waits for them BEFORE it claims any block,
// then claims what is still missing and gives back the tokens of what it
// could not claim (reads took it meanwhile): a claimed block is always
// being fetched, so a read that finds a block claimed waits for one fetch
// at most, never for the limiter (trial7: with --rate 64K, batches of one
// block were claimed a quarter second before their fetch, and dd read a
// 4 MiB disk at 64 kB/s; TestLazyReadNotBoundByRate,
// integration TestTrial7LazyReadNotBoundByRate). A read's own fetch
// (fill, readDirect) takes its bytes from the bucket without waiting
// (the bucket goes below zero): reads count toward the rate, so the
// source sees about max(rate, what reads need), and hydration pauses
// while reads use more than the rate. A failed fetch is retried with
// backoff (100 ms doubling to 30 s). When no block is missing, the versions are committed and the lazy mark is
// cleared (a catalog change: the layer record is written back without
// Lazy); the in-memory entry stays, marked done, so a reader whose block
// map still says "not found" reads through the index. While no disk reads
// through the layer (the disk was deleted; its snapshots still may)
// hydration stops, and a source that is a LayerIdler is told so once the
// workers are gone, and at once when attached for reads only (NoHydrate:
// the daemon's start, for a layer no disk reads;
// TestRev12lazyNoHydrateAttachIdles) (the service closes its region disk,
// releasing the shared region lock; a snapshot's read opens it again); a
// disk made from one of them starts hydration again; once GC removed the
// layer the source is closed. ListLazy leaves out a layer GC removed and
// forgets it when no source is attached (one that never had one: a killed
// restore's temporary disk deleted at the daemon's start;
// TestLazyListForgetsLayerGCRemoved); it counts, per layer, the disks whose
// chain ends in it (Disks) and the snapshot members and images whose chain
// does (Readers): the service keeps a layer's region hold while any.
//
// Diffs (sync) of a point that reads through a lazy layer not hydrated
// yet are refused (ErrBusy): the index lacks its missing blocks. Check
// sees only the versions that exist (a missing block is not a problem).
// A lazy disk's allocation is the blocks it shows, local yet or not: the
// origin's stored blocks at creation, and at every attach a recount
// (recountLazyDisks: the stored blocks the layers above the lazy one show,
// plus the source's stored blocks none of them covers), since hydration
// writes below the head and never moves the head's count: Open's count
// after a crash or an index rebuild saw only the blocks local then, and the
// disk kept that figure after it was whole
// (TestLazy14AllocatedAfterRebuild). Writes and hole punches over a block
// not local yet are stored whatever the index says (lazyShown: "not in the
// index" is not "zeros" while the source stores the block), so zeros
// written or punched over it read as zeros during and after hydration, and
// a data write counts it once (TestRev14lazyZeroWriteOverNotLocal); with
// no source attached nobody knows what is stored: zeros are always
// written and the allocation subtracts only blocks known stored, so it may
// be high until the next attach's recount, never negative. A disk on a lazy
// layer never caches "no version" in its block map (hydration fills blocks
// below it: TestRev14lazyZeroWriteAfterHydrated), and an encrypted copy of
// a snapshot that reads through a lazy layer copies the blocks not local
// yet too, or fails (ErrUnavailable) with no source
// (TestRev14lazyEncryptedCopyOfLazySnapshot). Known limit: an encrypted
// lazy disk is not supported (the service refuses).
//
// What the status says (LazyStatus; lazy14): Local/Total are the source's
// stored blocks local and in all. Rate is the bytes made local a second
// (hydration and reads) over the last 10 s, 0 (not known; ETA 0 too) until
// 1 s is measured or when nothing became local for 10 s: the average since
// the attach read the token bucket's first burst as 2.5 to 5 times --rate
// (TestLazy14RateMeasured). LastError is the last failed fetch while it
// still fails: cleared once the block it failed for is fetched; a read
// that fails reading a block directly while a batch holds it records its
// error only if it returns it (the batch usually serves the block;
// TestLazy14DirectReadErrorNotShown). The moment no block is missing a
// channel (whole) ends the workers' waits for the rate or a retry's
// backoff, so the lazy mark is cleared at once after reads fetched the
// last blocks (it waited out the backoff, up to 30 s; TestLazy14WholeAtOnce).
//
// Measured 6 Dec 2026 (scripts/bench-lazy.sh: a 4+2 file:// region, 2
// cores shared with other work, load 14 to 15, 3 interleaved rounds):
// from `restore --lazy` to the bytes of a small file read through a loop
// device and a read-only ext4 mount, 0.52-0.82 s for a 2 GiB disk (the
// command 0.12-0.24 s of it) and 0.27-0.43 s for a sparse 32 GiB one;
// hydrating 258 MiB of stored blocks with restore --lazy --wait took
// 5.5-6.5 s (41.8-49.3 MB/s) against 9.6-15.2 s (17.7-28.2 MB/s) for the
// eager restore of the same snapshot in the same rounds (1.48-2.55 times
// its throughput; the eager restore slowed from round to round, the lazy
// one did not).
//
// # Concurrency
//
// All methods are safe for concurrent use. Each disk has a mutex for its
// cache and head; the lock order is below (Lock order). Reads of block data
// run without the disk's lock.
//
// # Lock order
//
// Every mutex of rowstore and rowstore/segment, outer first; a lock is
// only ever taken while holding locks above it in this list (or none):
//
//  1. Store.gcMu: one GC, cleaner round or repair cleaning at a time,
//     held for the whole round.
//  2. diskState.mu: a disk's cache, head and block map. Several only in
//     ascending disk id (lockDisks); GC flushes the caches (syncAllDisks)
//     one disk at a time under gcMu. Store.throttle waits for the cleaner
//     before it, never with it held. A snapshot being taken of a disk
//     (snapshot.go) is waited for on its wbCond with that disk's lock
//     alone (released while waiting; lockDisks waits before it holds
//     several, gcMu may be held); the snapshot takes nothing above
//     diskState.mu, so it always ends.
//  3. Store.catMu: catalog changes (taken under disk locks by delete,
//     resize, copy; by a snapshot with none, its disks kept by snapBusy;
//     never under gcMu: repair takes them one after the other).
//  4. Store.syncMu: one commit at a time; after Disk.Sync's log sync it
//     is held by the goroutine applying that commit to the index
//     (commitLog), which takes only what a commit takes below it.
//  5. Store.readMu (RW): shared by every read of block data (also under a
//     disk lock, for the read-modify-write of a partial block), exclusive
//     while the cleaner or repair removes segment files (under gcMu).
//  6. Store.idxMu: every write of version entries to the index (commit,
//     GC's deletions, the cleaner's and repair's repoints).
//  7. Store.appendMu: appends to the foreground stream with their pending
//     entries (the cleaner's moves no longer take it) and a write's whole blocks
//     (storeDigestedLocked, one hold per write) included; commit takes it
//     briefly before idxMu and releases it.
//  8. segment.Log.appendMu: Append, AppendBatch, AppendRawBatch, Rotate,
//     Close; segment.Log.clMu: the cleaner stream's appends
//     (AppendCleanerRawBatch, SealCleaner; taken by the cleaner under
//     gcMu without Store.appendMu, and by Close after appendMu).
//  9. segment.Log.mu (RW): the segment table and the active segment;
//     shared by reads, Sync (held during the fsync, and while it waits for
//     the background sync of the segments sealed before, which takes no
//     lock until it ended), Tail; exclusive to start or remove a segment
//     (a removal waits for that segment's background sync) and to open an
//     old one for reading.
//  10. segment.segFile.bufMu: the active segment's gathering buffer.
//
// Leaves (nothing is taken while holding them, except as noted):
// writeCombiner.mu (writecombine.go: a disk's queue of whole-block
// writes; with or without the disk's lock), Store.pendMu (RW; under
// appendMu or readMu), liveMap.mu
// (segusage.go; under idxMu by writers, alone by the cleaner, under
// readMu by the finisher's check before a removal),
// accounting.mu (under appendMu), Store.corruptMu, Store.allocMu,
// Store.pinMu, Store.disksMu (under a disk lock and catMu by DeleteDisk),
// cryptState.mu (RW; under appendMu when a record is sealed) and then
// family.mu inside it, kdfCache and saltOf (process-wide, key
// derivation), spaceGuard.mu (reserve.go: under appendMu, under
// segment.Log.appendMu or clMu through the log's no-space hook, and under
// Badger's own locks through the index's allocation hook; it only does
// statfs and removes or allocates the reserve file), hookMu (released
// before a store's reserve is given back), cleaner.mu and cleaner.progMu
// (the cleaner's statistics and pacing; the writers it holds wait on a
// channel, no lock held), and lazySet.mu (RW) and lazyLayer.mu (lazy.go:
// released before a fetched block is appended, a commit or a catalog
// change; a read of a lazy block takes them under a disk lock or readMu).
// The cleaner's finisher goroutine (gc.go) adds no lock: it runs beside
// the round's goroutine, which holds gcMu until every batch it handed over
// is finished and the finisher has ended.
// exclKept.compMu (exclusive.go: one count of the exclusive figures at a
// time) is taken with no other lock held; under it only exclKept.mu (a
// leaf) and Badger's locks are taken.
//
// Badger's locks are below all of these: the index is called with any of
// them held, and never calls back into rowstore except through the
// allocation hook (spaceGuard.mu).
//
// # Known limits
//
//   - Layer chains are not flattened yet: a disk cloned from a clone of a
//     clone reads through every level.
//   - Counting visible blocks (PunchHole over large ranges) holds the
//     visible set of the range in memory (the
//     allocation counts at Open go 65536 blocks at a time, a diff from
//     nothing 4096).
//   - A partial-block write is a read-modify-write of the whole block.
package rowstore
