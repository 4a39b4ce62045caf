package rowstore

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
	"github.com/snapfs/snapfs/rowstore/vfs"
	"golang.org/x/sys/unix"
)

// Options configure a Store. The zero value is usable.
type Options struct {
	// FS is where segment files and the superblock live; default vfs.Default.
	// The index (Badger) always uses the operating system's files in
	// <dir>/index.
	FS     vfs.FS
	Logger *slog.Logger
	// SegmentSize is the size at which segment files rotate; default 256 MiB.
	SegmentSize int64
	// CacheBytes bounds the write-back cache of partial blocks of each disk;
	// default 4 MiB. A snapshot or Sync writes back what is cached (a
	// read-modify-write per block), so this bounds their cost under a write
	// load; a background write-back keeps it near an eighth of that.
	CacheBytes int64
	// SyncInterval is how often unsynced writes are committed in the
	// background (like ext4's commit interval); default 5s, negative: never,
	// and no background write-back or commit of any kind (writers at the
	// cache's bound and Sync write back, deterministically, for tests).
	SyncInterval time.Duration
	// GCInterval is how often a full garbage collection runs in the
	// background; default 10m, negative: never, and no background cleaner
	// either (tests call GC).
	GCInterval time.Duration
	// CleanBelow is the live fraction under which the cleaner rewrites a
	// segment; default 0.5.
	CleanBelow float64
	// RebuildIndex drops every block version from the index at Open and
	// rebuilds the version map from the whole segment log (the catalog is
	// kept). For recovery after index damage, and for tests of invariant 4.
	RebuildIndex bool
	// rebuild: Open of a fresh index by Rebuild, which replays the whole log.
	rebuild bool
	// Index tunes Badger's memory use.
	IndexMemTableSize, IndexBlockCacheSize int64
	// ReserveBytes is the size of the space reserve, a preallocated file
	// given back when the filesystem is full so that deletes, gc and shutdown
	// work; default min(max(total/32, 64 MiB), 512 MiB, total/8, free/8),
	// at most 4 MiB on tmpfs and the test FSes (see the doc); negative:
	// no reserve and no free-space checks.
	ReserveBytes int64
	// MinFreeBytes is the free space new disk writes must leave (for the
	// index and maintenance); default 4 × the index memtable size, at most
	// 1/8 of the filesystem.
	MinFreeBytes int64
	// CleanerRate is the least the background cleaner may move per byte
	// the foreground appends (it may move what keeping pace costs, see
	// "Bounded space" in the package doc); default 0.25; negative: unpaced.
	// The cleaner runs when GCInterval > 0.
	CleanerRate float64
	// CleanerDeadFraction is the dead fraction of the segment bytes at which
	// the background cleaner starts; default 0.25.
	CleanerDeadFraction float64
	// NoCleaner turns the background cleaner off while GCInterval's
	// periodic GC still runs: for benchmarks that measure what the cleaner
	// costs (snapfs mount's hidden --no-cleaner), never for production.
	NoCleaner bool
	// CloseGrace is how long deleting, rolling back or renaming a disk
	// (without force) waits for its open handles to close before ErrBusy
	// (closegrace.go); default one second; negative: no wait.
	CloseGrace time.Duration
	// Keys unlock, at Open, the encrypted disks whose data keys they wrap
	// (UnlockAll); the others stay locked.
	Keys []*Key
	// OnGC, if set, is called after every garbage collection (background or
	// GC) with its result (metrics). It must return quickly.
	OnGC func(GCStats, error)
}

func (o *Options) fill() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = 256 << 20
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = 4 << 20
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = 5 * time.Second
	}
	if o.GCInterval == 0 {
		o.GCInterval = 10 * time.Minute
	}
	if o.CleanBelow == 0 {
		o.CleanBelow = 0.5
	}
	if o.CloseGrace == 0 {
		o.CloseGrace = time.Second
	}
	if o.CleanerRate == 0 {
		o.CleanerRate = 0.25
	}
	if o.CleanerDeadFraction == 0 {
		o.CleanerDeadFraction = 0.25
	}
}

// Store is an open snapfs store: the segment log, the index and the catalog.
// All methods are safe for concurrent use.
//
// Lock order (outer first): diskState.mu (several: by ascending disk id),
// catMu, syncMu, idxMu, appendMu, pendMu. readMu is taken alone.
// accounting.mu is a leaf (commit takes it under appendMu); so is wbMu
// (taken under diskState.mu). diskState.wbCond waits on diskState.mu.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger
	fs   vfs.FS
	sb   Superblock

	idx *index.DB
	seg *segment.Log

	catMu sync.Mutex // serializes catalog changes

	syncMu sync.Mutex // serializes commits (pending -> index)
	// applyErr is the error of the last index apply that ran after its
	// commit had returned (commitLog); while set, commits apply inline
	// so the next caller sees a failure that persists. Under syncMu.
	applyErr error
	idxMu    sync.Mutex // serializes writes of version entries to the index

	appendMu sync.Mutex // serializes log appends with their pending entries
	nextSeq  ids.Seq    // INVARIANT: greater than every sequence number in the log; under appendMu
	dirty    bool       // records appended since the last commit; under appendMu
	// catInflight is the position of a catalog record appended whose index
	// transaction has not committed yet (under appendMu): commit never puts
	// the checkpoint past it, so replay after a crash applies it.
	catInflight *segment.Pos
	// catUnsynced is the position of the oldest catalog record the index
	// applied but has not synced (under appendMu): commit never puts the
	// checkpoint past it either, so a crash that loses the index's
	// transaction replays the record. syncCatalog clears it; catUnsyncedGen
	// counts the records applied, catUnsyncedAt is when the oldest was.
	catUnsynced    *segment.Pos
	catUnsyncedGen uint64
	catUnsyncedAt  time.Time
	// catBroken: a catalog record is in the log that the index neither
	// applied nor superseded; further catalog changes supersede it first and
	// are refused until that succeeds (catlog.go). Under catMu.
	catBroken error

	pendMu   sync.RWMutex
	pending  map[vkey]index.Version // appended, not yet in the index
	flushing map[vkey]index.Version // being written to the index by a commit

	// readMu is held shared by every read of block data and exclusively by
	// the cleaner while it removes a segment file, so an in-flight read never
	// loses the record it looked up. (Index deletions need no lock: reads look
	// up in a Badger snapshot and the records stay until their segment goes.)
	readMu sync.RWMutex

	crypt cryptState // encryption keys and layer families (crypt.go)
	lazy  lazySet    // lazy layers: blocks fetched from a source (lazy.go)

	disksMu   sync.Mutex
	disks     map[uint64]*diskState // loaded disk states, by disk id
	diskNames map[string]uint64     // names of the loaded disks

	pinMu sync.Mutex
	pins  map[link]int // (layer, epoch) pinned by open read handles

	gcMu sync.Mutex // one GC at a time

	allocMu    sync.Mutex
	allocCache map[link]int64 // allocated bytes of immutable points whose record lacks them

	acct *accounting // stored blocks of every disk head (accounting.go)
	excl exclKept    // exclusive figures and live bytes (exclusive.go)

	lock *os.File // advisory lock on <dir>/lock

	corruptMu   sync.Mutex
	corruptSegs map[ids.Segment]bool // segments where a scan met a corrupt record
	tornTails   []segment.TornTail   // tails segment.Open cut (rebuild.go reports them)

	deletedDisks map[uint64]bool // ids of deleted disks; under disksMu

	// catFullSeq is the sequence number of the newest full catalog record:
	// catalog records older than it are dead for the cleaner.
	catFullSeq ids.Atomic[ids.Seq]
	// snapList caches ListSnapshots per catalog generation (catalog.go).
	snapList snapshotList
	// verified is set once Open has checked the index against the log
	// (identity, checkpoint) and replayed it; GC refuses to run without it.
	verified atomic.Bool
	// replay is what the last replay of the log found (Open, Rebuild).
	replay replayStats
	// cpSegment is the segment of the newest checkpoint written to the index.
	cpSegment ids.Atomic[ids.Segment]
	space     *spaceGuard // the reserve and the free-space floor (reserve.go)

	// The background write-back (writeback.go): disks that asked for it,
	// and its wake-up.
	wbMu    sync.Mutex
	wbDisks []*diskState
	wbKick  chan struct{}
	// uncommitted counts the log bytes appended since the last commit
	// took its batch (under appendMu); past commitEvery the background
	// commits (commitKick), so a Sync or a snapshot under a heavy write
	// load fsyncs a bounded amount.
	uncommitted int64
	commitKick  chan struct{}
	// catSyncKick asks the background sync to sync the index's catalog
	// changes (catalogSyncSoon), so that no snapshot or commit waits for it.
	catSyncKick chan struct{}
	cleaner     *cleaner // the background cleaner's pacing (cleaner.go)

	closed atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// vkey is the key of a version in the pending maps.
type vkey struct {
	layer ids.Layer
	block ids.Block
	epoch ids.Epoch
}

// link is one step of a layer chain: versions of layer at or below epoch.
type link struct {
	layer ids.Layer
	epoch ids.Epoch
}

// Create makes a new, empty store in dir (creating dir). An existing store
// is an error wrapping ErrExists and is left untouched.
func Create(dir string, opts Options) error {
	opts.fill()
	_, err := opts.FS.Stat(path.Join(dir, superblockName))
	if err == nil {
		return fmt.Errorf("%w: %s already holds a snapfs store", ErrExists, dir)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("create store: %w", err)
	}
	for _, sub := range []string{"segments", "index"} {
		if err := vfs.MkdirAllSync(opts.FS, path.Join(dir, sub), 0o700); err != nil {
			return fmt.Errorf("create store: %w", err)
		}
	}
	privateStoreDir(dir, opts.Logger) // keys.go
	sb := newSuperblock()
	// The index is created with the store (and carries its identity), so an
	// empty or missing index directory later is damage, never a new store.
	if err := initIndex(filepath.Join(dir, "index"), sb.UUID, opts); err != nil {
		return fmt.Errorf("create store: %w", err)
	}
	return writeSuperblock(opts.FS, dir, sb)
}

// initIndex creates an empty index for the store with this UUID in dir
// (which must be empty or missing): Badger's files, the store id inside,
// then the identity file.
func initIndex(dir string, uuid [16]byte, opts Options) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create index: %w", err)
	}
	db, err := index.Open(dir, index.Options{Logger: opts.Logger, MemTableSize: opts.IndexMemTableSize, BlockCacheSize: opts.IndexBlockCacheSize})
	if err != nil {
		return err
	}
	err = db.UpdateSync(func(t *index.Txn) error { return t.SetStoreID(uuid) })
	if e := db.Close(); err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("create index: %w", err)
	}
	return index.WriteIdentity(dir, uuid)
}

// Open opens the store in dir and recovers it: the log's torn tail is
// dropped and every record after the index's checkpoint is applied.
func Open(dir string, opts Options) (*Store, error) {
	opts.fill()
	sb, err := readSuperblock(opts.FS, dir)
	if err != nil {
		return nil, err
	}
	s := &Store{
		dir: dir, opts: opts, log: opts.Logger, fs: opts.FS, sb: sb,
		pending:      map[vkey]index.Version{},
		disks:        map[uint64]*diskState{},
		pins:         map[link]int{},
		allocCache:   map[link]int64{},
		acct:         newAccounting(),
		corruptSegs:  map[ids.Segment]bool{},
		deletedDisks: map[uint64]bool{},
		diskNames:    map[string]uint64{},
		stop:         make(chan struct{}),
		cleaner:      newCleaner(),
		wbKick:       make(chan struct{}, 1),
		commitKick:   make(chan struct{}, 1),
		catSyncKick:  make(chan struct{}, 1),
	}
	// One process per store: an advisory lock held while the store is open.
	// (Badger locks its own directory too; ours gives a clear ErrBusy first.)
	// The lock and the index live on the operating system's filesystem
	// whatever opts.FS is.
	lock, err := lockStore(dir)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	privateStoreDir(dir, s.log) // keys.go
	if err := s.openSpace(); err != nil {
		s.lock.Close()
		return nil, err
	}
	if err := s.openLocked(dir, opts); err != nil {
		unregisterSpaceHook(s)
		if s.seg != nil {
			s.seg.Close()
		}
		if s.idx != nil {
			s.idx.Close()
		}
		s.lock.Close()
		return nil, err
	}
	s.unlockAtOpen() // crypt.go
	s.startBackground()
	return s, nil
}

// openLocked opens the index and the log and recovers, with the lock held.
// The index is checked against the store before Badger opens it and against
// the log after (identity.go: checkIndexDir, verifyIndex); a refusal changes
// nothing on disk.
func (s *Store) openLocked(dir string, opts Options) error {
	legacy, err := s.checkIndexDir(dir)
	if err != nil {
		return err
	}
	// Verify the index read-only first: a refused index is left untouched.
	later := false
	if err := s.verifyIndex(dir, legacy); errors.Is(err, errVerifyLater) {
		later = true
	} else if err != nil {
		return err
	}
	s.idx, err = index.Open(filepath.Join(dir, "index"), index.Options{Logger: s.log, MemTableSize: opts.IndexMemTableSize, BlockCacheSize: opts.IndexBlockCacheSize})
	if err != nil {
		return err
	}
	var cp index.Checkpoint
	var mark index.CleanerMark // the cleaner stream's (gc.go, finishMoves)
	if err := s.idx.View(func(t *index.Txn) error {
		if cp, err = t.Checkpoint(); err != nil {
			return err
		}
		mark, err = t.CleanerMark()
		return err
	}); err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	if later {
		if err := s.checkIndex(s.idx, dir, legacy); err != nil {
			return err
		}
	}
	s.seg, err = segment.Open(s.fs, path.Join(dir, "segments"), segment.Options{SegmentSize: opts.SegmentSize, Logger: s.log,
		Durable:        segment.Pos{Segment: cp.Segment, Offset: cp.Offset},
		CleanerDurable: segment.Pos{Segment: mark.Segment, Offset: mark.Offset},
		OnCorrupt: func(e *segment.CorruptError) {
			s.corruptMu.Lock()
			s.corruptSegs[e.Segment] = true
			s.corruptMu.Unlock()
		},
		DurableUnknown: opts.rebuild, // a fresh index: rebuild.go
		OnTornTail:     func(t segment.TornTail) { s.tornTails = append(s.tornTails, t) }})
	if err != nil {
		if errors.Is(err, segment.ErrIncompatible) {
			return fmt.Errorf("%w: %v", ErrIncompatible, err)
		}
		return fmt.Errorf("open segment log: %w", err)
	}
	if opts.RebuildIndex {
		if err := s.dropVersions(); err != nil {
			return err
		}
	}
	// The cleaner stream is whole and durable up to where Open recovered
	// it: the mark goes there before replay (or a rebuild, which replays
	// everything) points the index at copies past the old one, so a bad
	// record there found by a later Open is reported, not taken for a torn
	// tail and cut with every copy after it (TestRev10RebuildDropsCleanerMark);
	// and the next Open searches no further down for the stream's last segment.
	if end := s.seg.CleanerOpenEnd(); (segment.Pos{Segment: mark.Segment, Offset: mark.Offset}).Before(end) {
		if err := s.setCleanerMark(end); err != nil {
			return err
		}
	}
	if err := s.recover(); err != nil {
		return err
	}
	if err := s.finishOpen(legacy); err != nil {
		return err
	}
	before := cp
	if opts.RebuildIndex {
		before = index.Checkpoint{Segment: math.MaxUint64} // trust no count
	}
	return s.loadAccounting(before, s.replay.Layers)
}

// lockStore takes the store's advisory lock (flock on <dir>/lock). A store
// open in another process is an error wrapping ErrBusy.
func lockStore(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: store %s is open in another process", ErrBusy, dir)
		}
		return nil, fmt.Errorf("lock store: %w", err)
	}
	return f, nil
}

// setCleanerMark writes the cleaner stream's mark (index.CleanerMark) to
// the index, before any write that names a copy up to p: Badger keeps write
// order, so an index that kept those writes through a crash keeps the mark.
func (s *Store) setCleanerMark(p segment.Pos) error {
	b := s.idx.NewBatch()
	if err := b.SetCleanerMark(index.CleanerMark{Segment: p.Segment, Offset: p.Offset}); err != nil {
		b.Cancel()
		return err
	}
	return b.Flush()
}

// dropVersions empties the version map and resets the checkpoint to the
// start of the log (keeping the highest sequence number).
func (s *Store) dropVersions() error {
	var cp index.Checkpoint
	if err := s.idx.View(func(t *index.Txn) error {
		var err error
		cp, err = t.Checkpoint()
		return err
	}); err != nil {
		return err
	}
	if err := s.idx.DropVersions(); err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	return s.idx.UpdateSync(func(t *index.Txn) error { return t.SetCheckpoint(index.Checkpoint{Seq: cp.Seq}) })
}

// recover and applyRecord: see replay.go.

func leUint64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func putLeUint64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

// Close commits everything written, stops background work and closes.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.stop)
	s.wg.Wait()
	err := s.makeRoom("shutdown")
	if e := s.syncAllDisks(); err == nil {
		err = e
	}
	// A checkpoint at the log's tail: records synced after the last commit
	// (relocations, repairs, catalog records) are then below the durable
	// position at the next Open, so a bad one there is reported as corrupt,
	// never cut off as a torn tail.
	if err == nil {
		err = s.advanceCheckpoint()
	}
	// An index apply after a Disk.Sync (commitLog) holds syncMu until it
	// ends: advanceCheckpoint's commit waits for it, but is skipped after
	// an error above, and the log and index must not close under it.
	s.syncMu.Lock()
	s.syncMu.Unlock()
	if e := s.seg.Close(); err == nil && e != nil {
		err = fmt.Errorf("close log: %w", e)
	}
	if e := s.idx.Close(); err == nil && e != nil {
		err = fmt.Errorf("close index: %w", e)
	}
	s.lock.Close()
	unregisterSpaceHook(s)
	return err
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) checkOpen() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// appendRecord appends r to the log (assigning its sequence number) and
// records its version as pending for each block it covers.
func (s *Store) appendRecord(r *segment.Record, v index.Version, blocks uint64) error {
	_, err := s.appendVersion(r, v, blocks)
	return err
}

// appendVersion is appendRecord that also returns the version recorded.
func (s *Store) appendVersion(r *segment.Record, v index.Version, blocks uint64) (index.Version, error) {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	return s.appendVersionLocked(r, v, blocks)
}

// appendVersionLocked is appendVersion with appendMu held (a batch of
// records appended under one hold: lazy hydration).
func (s *Store) appendVersionLocked(r *segment.Record, v index.Version, blocks uint64) (index.Version, error) {
	r.Seq = s.nextSeq
	if err := s.sealRecord(r, &v); err != nil { // encrypted layers (crypt.go)
		return index.Version{}, err
	}
	pos, err := s.seg.Append(r)
	if err != nil && isNoSpace(err) && s.releaseReserve("an append to the log failed") {
		// New disk writes were refused before this point (admit), so what
		// gets here is maintenance or already accepted data: it may use the
		// reserve.
		pos, err = s.seg.Append(r)
	}
	if err != nil {
		return index.Version{}, s.wrapNoSpace(fmt.Errorf("append to log: %w", err))
	}
	s.appended(int64(pos.Length))
	s.kickAtStart() // cleaner.go
	if s.uncommitted += int64(pos.Length); s.uncommitted >= commitEvery {
		s.kickCommit()
	}
	s.nextSeq++
	s.dirty = true
	v.Seq = r.Seq
	if r.Kind == segment.KindData {
		v.Segment, v.Offset, v.Length = pos.Segment, pos.Offset, pos.Length
	}
	s.pendMu.Lock()
	for i := uint64(0); i < blocks; i++ {
		s.pending[vkey{r.Layer, r.Block.Add(i), r.Epoch}] = v
	}
	s.pendMu.Unlock()
	return v, nil
}

// commit makes every record appended so far durable and moves their pending
// versions into the index. Concurrent commits are serialized; a commit that
// finds nothing to do returns at once (after any index apply still under
// way: when commit returns, the index holds every version committed).
func (s *Store) commit() error { return s.commitWith(false) }

// commitLog is commit for Disk.Sync (an fsync through the mount): it
// returns once the log is synced, which makes the writes durable (replay
// from the checkpoint recovers whatever the index lacks after a crash);
// the index batch and the checkpoint are then applied by a goroutine that
// holds syncMu until it is done, so the next commit, of any kind, starts
// after it, and the flushing map answers reads until the index has the
// versions. If that apply fails, its versions go back to pending (as a
// failed commit's do), the error is logged, and the commits after it apply
// inline until one succeeds, returning the error to their callers.
func (s *Store) commitLog() error { return s.commitWith(true) }

func (s *Store) commitWith(async bool) (err error) {
	t0 := time.Now()
	s.syncMu.Lock()
	var tLocked, tSynced, tFlushed time.Duration
	nBatch := 0
	// slow logs a commit that took long; run where syncMu is released:
	// here, or by the applier once syncMu is handed to it (async).
	slow := func(background bool) {
		if took := time.Since(t0); took > 20*time.Millisecond {
			s.log.Debug("slow commit", "wait", tLocked, "log_sync", tSynced, "index_batch", tFlushed, "versions", nBatch, "total", took, "background", background)
		}
	}
	held := true // false once syncMu is handed to the applier
	defer func() {
		if held {
			s.syncMu.Unlock()
			slow(false)
		}
	}()
	tLocked = time.Since(t0)
	// Catalog changes the index has not synced hold the checkpoint back
	// (catUnsynced); past a second, they are synced (in the background
	// when there is one) so replay stays short.
	if err := s.catalogSyncSoon(); err != nil {
		return err
	}
	s.appendMu.Lock()
	if !s.dirty {
		s.appendMu.Unlock()
		return nil
	}
	tail := s.seg.Tail()
	if p := s.catInflight; p != nil {
		tail = *p // replay must see the catalog record the index lacks
	}
	if p := s.catUnsynced; p != nil {
		tail = *p // or may lose after a crash (not synced in the index)
	}
	seq := s.nextSeq - 1
	s.dirty = false
	s.uncommitted = 0
	counts := s.acct.snapshot() // exactly the records before tail, with it
	s.pendMu.Lock()
	batch := s.pending
	s.flushing = batch
	s.pending = map[vkey]index.Version{}
	s.pendMu.Unlock()
	s.appendMu.Unlock()

	restore := func() {
		s.appendMu.Lock()
		s.dirty = true
		s.pendMu.Lock()
		for k, v := range batch {
			if cur, ok := s.pending[k]; !ok || cur.Seq < v.Seq {
				s.pending[k] = v
			}
		}
		s.flushing = nil
		s.pendMu.Unlock()
		s.appendMu.Unlock()
	}
	nBatch = len(batch)
	if err := s.seg.Sync(); err != nil {
		restore()
		return s.wrapNoSpace(fmt.Errorf("sync log: %w", err))
	}
	tSynced = time.Since(t0)
	apply := func() error {
		err := s.applyCommit(batch, tail, seq, counts, restore)
		tFlushed = time.Since(t0)
		return err
	}
	if async && s.applyErr == nil {
		held = false // the applier releases syncMu
		go func() {
			defer s.syncMu.Unlock()
			if testHookBeforeApply != nil {
				testHookBeforeApply()
			}
			if err := apply(); err != nil {
				s.applyErr = err
				s.log.Error("index apply after a commit failed; the log holds the writes, the next commit applies them again", "err", err)
			}
			slow(true)
		}()
		return nil
	}
	err = apply()
	if err == nil {
		s.applyErr = nil
	}
	return err
}

// testHookBeforeApply, when set (tests only), runs in commitLog's applier
// before it writes the index (syncMu held, Disk.Sync returned).
var testHookBeforeApply func()

// applyCommit writes a commit's versions to the index, then its checkpoint
// (syncMu held, the log synced up to tail). On failure restore puts the
// versions back into pending.
func (s *Store) applyCommit(batch map[vkey]index.Version, tail segment.Pos, seq ids.Seq, counts []index.DiskAlloc, restore func()) error {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if len(batch) > 0 {
		s.excl.begin()
		defer s.excl.changed() // exclusive figures (exclusive.go), once written
	}
	b := s.idx.NewBatch()
	// A version that replaces one at the same key (the common overwrite:
	// same layer, block and epoch) rewrites the version key only: its
	// epoch key is there already (the live map holds the key, so the
	// index does, with both keys: segusage.go knownKeys). Half the index
	// writes of an overwrite, and of Badger's memtable work for them.
	keys := make([]vkey, 0, len(batch))
	for k := range batch {
		keys = append(keys, k)
	}
	known := s.cleaner.lm.knownKeys(keys)
	for i, k := range keys {
		v := batch[k]
		var err error
		if known != nil && known[i] {
			err = b.SetVersionValue(k.layer, k.block, k.epoch, v)
		} else {
			err = b.SetVersion(k.layer, k.block, k.epoch, v)
		}
		if err != nil {
			b.Cancel()
			restore()
			return fmt.Errorf("index versions: %w", err)
		}
	}
	if err := b.Flush(); err != nil {
		s.cleaner.lm.drop() // the index may hold part of the batch
		restore()
		return s.wrapNoSpace(fmt.Errorf("index versions: %w", err))
	}
	s.cleaner.lm.committed(batch) // the cleaner's live map (segusage.go)
	if testHookCommitFlushed != nil {
		testHookCommitFlushed()
	}
	// The checkpoint goes in its own, later write: Badger's log keeps write
	// order, so a checkpoint that survives a crash implies the versions do.
	cp := index.Checkpoint{Segment: tail.Segment, Offset: tail.Offset, Seq: seq}
	if err := s.idx.Update(func(t *index.Txn) error {
		if err := t.SetCheckpoint(cp); err != nil {
			return err
		}
		return saveAlloc(t, cp, counts)
	}); err != nil {
		restore()
		return s.wrapNoSpace(fmt.Errorf("index checkpoint: %w", err))
	}
	s.cpSegment.Store(cp.Segment)
	s.pendMu.Lock()
	s.flushing = nil
	s.pendMu.Unlock()
	return nil
}

// kickCommit asks the background to commit (a no-op without one: with
// SyncInterval <= 0 nobody reads the channel, and a full one is enough).
func (s *Store) kickCommit() {
	select {
	case s.commitKick <- struct{}{}:
	default:
	}
}

// commitEvery is the log bytes appended after which the background commits
// (see Store.uncommitted). 16 MiB cost about a quarter of the throughput of
// sequential writes through ext4 in a loop device (an fsync and an index
// batch every 0.1 s); 64 MiB did not show against no commits at all (ext4
// in a loop device, fio 512 MiB sequential, 2 interleaved rounds, load 18
// to 20: 165, 127 MB/s; without: 177, 74; 16 MiB: 140, 74).
const commitEvery = 64 << 20

// advanceCheckpoint commits, writing a checkpoint at the log's tail even if
// nothing is pending (the index synced first, so that no catalog change it
// has not synced holds the checkpoint back).
func (s *Store) advanceCheckpoint() error {
	if err := s.syncCatalog(); err != nil {
		return err
	}
	s.appendMu.Lock()
	s.dirty = true
	s.appendMu.Unlock()
	return s.commit()
}

// pendingVersion returns the pending version of a key, if any.
func (s *Store) pendingVersion(k vkey) (index.Version, bool) {
	s.pendMu.RLock()
	defer s.pendMu.RUnlock()
	if v, ok := s.pending[k]; ok {
		return v, true
	}
	v, ok := s.flushing[k]
	return v, ok
}

// Sync commits every write made to any disk before it.
func (s *Store) Sync() error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	return s.syncAllDisks()
}

func (s *Store) syncAllDisks() error {
	s.disksMu.Lock()
	ds := make([]*diskState, 0, len(s.disks))
	for _, d := range s.disks {
		ds = append(ds, d)
	}
	s.disksMu.Unlock()
	// One disk that cannot flush (say, a partial block over a corrupt one)
	// must not keep the others' writes from being committed.
	var errs []error
	for _, d := range ds {
		d.mu.Lock()
		if err := d.syncFlushLocked(); err != nil { // batches: writers go on
			errs = append(errs, fmt.Errorf("disk %q: %w", d.name, err))
		}
		d.mu.Unlock()
	}
	errs = append(errs, s.commit())
	return errors.Join(errs...)
}

func (s *Store) startBackground() {
	// From now on a log write that fails for lack of space gives the
	// reserve back and is tried again (reserve.go).
	s.seg.SetNoSpaceHook(func() bool { return s.releaseReserve("a write to the log failed for lack of space") })
	if s.opts.SyncInterval > 0 {
		s.startWriteBack() // writeback.go
		s.startExclusive() // exclusive.go
	}
	if s.opts.SyncInterval > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.NewTicker(s.opts.SyncInterval)
			defer t.Stop()
			for {
				select {
				case <-s.stop:
					return
				case <-s.catSyncKick:
					if err := s.syncCatalogIfStale(); err != nil {
						s.log.Error("background index sync failed", "err", err)
					}
				case <-t.C:
					// Catalog changes first, so this commit's checkpoint
					// may pass them.
					err := s.syncCatalog()
					if e := s.syncAllDisks(); err == nil {
						err = e
					}
					if err != nil {
						s.log.Error("background sync failed", "err", err)
					}
				}
			}
		}()
	}
	if s.opts.GCInterval > 0 && s.opts.CleanerRate != 0 && !s.opts.NoCleaner {
		// The cleaner keeps the log bounded between the periodic GCs.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.runCleaner()
		}()
	}
	if s.opts.GCInterval > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.NewTicker(s.opts.GCInterval)
			defer t.Stop()
			for {
				select {
				case <-s.stop:
					return
				case <-t.C:
					if _, err := s.GC(); err != nil {
						s.log.Error("background gc failed", "err", err)
					}
				}
			}
		}()
	}
}
