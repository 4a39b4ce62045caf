package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/ristretto/v2/z"
	"github.com/snapfs/snapfs/rowstore/ids"
)

// Errors of the index.
var (
	ErrNotFound = errors.New("index: not found")
	ErrCorrupt  = errors.New("index: corrupt value")
	// ErrNeedsWrite: a read-only open failed because Badger must first
	// repair its own files (a memtable log torn by a crash).
	ErrNeedsWrite = errors.New("index: needs a read-write open to recover")
)

// Options configure the Badger database behind the index.
type Options struct {
	Logger *slog.Logger
	// MemTableSize and BlockCacheSize bound Badger's memory; 0 = defaults below.
	MemTableSize   int64
	BlockCacheSize int64
	// ReadOnly opens the index without writing anything (to verify it
	// before use: see rowstore's Open).
	ReadOnly bool
}

// DB is the index: block versions, the catalog and meta records, in Badger.
type DB struct {
	db        *badger.DB
	log       *slog.Logger
	closeOnce sync.Once
	closeErr  error
}

// DefaultMemTableSize is Badger's memtable size when Options.MemTableSize is 0.
const DefaultMemTableSize = 4 << 20

// Badger's shape (see Open).
const (
	numMemtables  = 3
	baseTableSize = 1 << 20
	numCompactors = 2 // Badger refuses 1
	blockCache    = 64 << 20
)

// heapBudget bounds the index's fixed share of the Go heap at worst (see
// "Memory" at Open): every memtable's arena, the flush's table buffer, two
// compactions' builders all in flight. TestMemoryBudget checks
// badgerOptions against it; typically a third of it is in use.
const heapBudget = 80 << 20

// Open opens (creating) the index in dir.
//
// Badger options and why:
//   - SyncWrites false: block-version entries are written only after the log
//     records they point to are synced, and anything not yet in Badger is
//     replayed from the log at open; catalog changes call Sync explicitly.
//   - DetectConflicts false: the engine serializes writers with its own locks.
//   - NumVersionsToKeep 1: the index is not multi-versioned by Badger; epochs
//     are explicit in the keys.
//   - ValueThreshold 1 KiB: every value (≤ 70 bytes; catalog records are
//     small too) stays in the LSM tree, so a lookup never touches the value
//     log.
//   - MemTableSize 4 MiB, NumMemtables 3 (Badger's defaults: 64 MiB, 5):
//     each memtable is an arena on the Go heap (its size and room for a
//     batch: 4.6 MiB) and a memory-mapped log of twice its size, allocated
//     on disk when it starts, which the store's free-space floor must cover
//     (see "Full filesystems" in rowstore's doc); flushing one builds its
//     level-0 table in a buffer of twice its size. A commit waits for a
//     flush while all three are full.
//   - BaseTableSize 1 MiB, TableSizeMultiplier 1 (defaults: 2 MiB, 2): a
//     compaction builds up to 8 tables at once (plus one per split of its
//     key range), each in a buffer of twice the table's size that grows
//     with it. With 2 MiB tables doubling at each level, the builders held
//     52 MiB of heap after 16 GiB written (and the flush's 16 more, with 8
//     MiB memtables), which kept the daemon's heap above its soft limit.
//   - BlockCacheSize 64 MiB: without compression or encryption a cached
//     block points into the table's mapping, so the cache costs its
//     bookkeeping (a few MiB), not 64 MiB; IndexCacheSize 0 keeps the table
//     indexes and Bloom filters in the mappings too.
//   - ValueLogFileSize 1 MiB (Badger's minimum): values stay in the LSM
//     tree (ValueThreshold), yet Badger creates a new value-log file of twice
//     this size at every open, allocated on disk; the default (1 GiB) would
//     need 2 GiB free to open at all.
//   - Compression off: keys are small and incompressible; CPU is scarce.
//   - NumCompactors 2 (Badger refuses 1): the machine class has 2 cores.
//
// # Memory
//
// The daemon must stay within 256 MiB resident after 16 GiB written, and
// flat beyond (issue 8; cmd/snapfs daemonMemoryLimit). The index's share:
//   - Go heap: the memtables' arenas (4.6 MiB each: usually one, up to
//     numMemtables+1 while flushes lag), the flush's table buffer (8 MiB),
//     the compactions' table builders (2 to 3 MiB each with 1 MiB tables;
//     up to 2 × (8 + splits) at once, usually a few, and up to 8 spare
//     ones Badger's allocator pool keeps, one freed every 2 s), the block
//     cache's bookkeeping. heapBudget (80 MiB) bounds the fixed part at
//     worst. Measured (heap profiles, scripts/bench-memory.sh), the table
//     builders of the flush and the compactions held 68 MiB after 16 GiB
//     written with 8 MiB memtables and 2 MiB tables doubling per level,
//     30 MiB after 10 GiB with these options.
//   - Mapped files: the memtable logs (8 MiB each, written in order:
//     resident as they fill, unmapped when flushed) and the SST tables,
//     about 1 % of the data written. Badger maps every table whole, verifies
//     it as it opens it, and reads blocks, indexes and Bloom filters through
//     the mapping: every page it touched stayed resident (100 MiB of the
//     daemon's RSS after 16 GiB written, 213 after 32). The index releases
//     them: one goroutine samples the process's file-backed resident size
//     (/proc/self/statm) every releaseEvery and, when it grew by
//     releaseAbove since the last release, drops the resident pages of
//     every table mapping (MADV_DONTNEED: z.ReleaseTables in the patched
//     ristretto). The pages stay in the page cache, reclaimable, and the
//     next access maps them back with a minor fault; tables then held 0 to
//     13 MiB of the RSS at every step up to 32 GiB written, and 4.5 MiB 10
//     s after a restart (TestReleaseTables checks the release itself).
//
// Badger writes its memtable log, value log and tables through shared
// mmaps. Upstream makes those files sparse, so on a full filesystem a write
// into them raises SIGBUS; snapfs builds Badger with a patched ristretto
// (index/third_party/ristretto) that allocates them first, turning a full
// filesystem into an ENOSPC error. What Badger does then, and how the store
// keeps it from happening (a free-space floor and a reserve), is in package
// rowstore's doc, "Full filesystems".
func Open(dir string, o Options) (*DB, error) {
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	opts := badgerOptions(dir, o).WithLogger(badgerLogger{lg})
	if o.ReadOnly {
		opts = opts.WithReadOnly(true)
	}
	if !o.ReadOnly {
		if err := removeEmptyMemtables(dir, lg); err != nil {
			return nil, fmt.Errorf("index: open %s: %w", dir, err)
		}
	}
	startReleaser() // before the open: it maps and verifies every table
	db, err := badger.Open(opts)
	if err != nil {
		stopReleaser()
	}
	// Badger wraps most errors with %+v (y.Wrap outside its debug mode), so
	// errors.Is alone misses ErrTruncateNeeded behind "while opening
	// memtables": match its text too.
	if o.ReadOnly && err != nil && needsWrite(err) {
		return nil, fmt.Errorf("%w: %s: %v", ErrNeedsWrite, dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("index: open %s: %w", dir, err)
	}
	return &DB{db: db, log: lg}, nil
}

// badgerOptions are Badger's options for the index in dir (see Open).
func badgerOptions(dir string, o Options) badger.Options {
	mem := o.MemTableSize
	if mem == 0 {
		mem = DefaultMemTableSize
	}
	cache := o.BlockCacheSize
	if cache == 0 {
		cache = blockCache
	}
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(false).
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1).
		WithValueThreshold(1 << 10).
		WithMemTableSize(mem).
		WithNumMemtables(numMemtables).
		WithBaseTableSize(baseTableSize).
		WithValueLogFileSize(1 << 20).
		WithBlockCacheSize(cache).
		WithIndexCacheSize(0).
		WithCompression(options.None).
		WithNumCompactors(numCompactors).
		WithNumGoroutines(4).
		WithMetricsEnabled(false).
		WithChecksumVerificationMode(options.OnTableRead)
	opts.TableSizeMultiplier = 1 // no With method
	return opts
}

// Close closes the database. Closing it again does nothing and returns the
// first Close's error (the table-page releaser is counted down once).
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		d.closeErr = d.db.Close()
		stopReleaser()
	})
	return d.closeErr
}

// Releasing the resident pages of Badger's mapped tables (see "Memory" at
// Open): one goroutine while any index of the process is open (reading
// statm costs a few microseconds). What the tables keep resident is about
// releaseAbove plus what Badger maps in one period (tables it writes or
// opens and verifies, lookups).
const (
	releaseEvery = 100 * time.Millisecond
	releaseAbove = 16 << 20
	releaseAfter = time.Second // and whatever grew, at least this often
)

var releaser struct {
	sync.Mutex
	open int
	stop chan struct{}
}

// releasePaused, set by tests only, keeps the releaser from releasing (a
// test that measures what its reads made resident: under load its reads
// take longer than releaseAfter).
var releasePaused atomic.Bool

func startReleaser() {
	releaser.Lock()
	defer releaser.Unlock()
	releaser.open++
	if releaser.open == 1 {
		releaser.stop = make(chan struct{})
		go releaseTables(releaser.stop)
	}
}

func stopReleaser() {
	releaser.Lock()
	defer releaser.Unlock()
	releaser.open--
	if releaser.open == 0 {
		close(releaser.stop)
	}
}

func releaseTables(stop chan struct{}) {
	t := time.NewTicker(releaseEvery)
	defer t.Stop()
	base, last := fileResident(), time.Now()
	if base < 0 {
		return // no /proc (or not Linux, where no table is tracked): nothing to go by
	}
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if releasePaused.Load() {
			continue
		}
		r := fileResident()
		if r >= 0 && r < base {
			base = r // mappings went away (a memtable log, tables compacted): grow from here
		}
		if r > base+releaseAbove || (r > base && time.Since(last) >= releaseAfter) {
			z.ReleaseTables()
			base, last = fileResident(), time.Now()
		}
	}
}

// fileResident returns the process's resident file-backed and shared
// memory in bytes (statm's third field), or -1 if it cannot be read.
func fileResident() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return -1
	}
	var pages int64
	if _, err := fmt.Sscan(f[2], &pages); err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}

// Sync makes every write made before it durable.
func (d *DB) Sync() error { return d.db.Sync() }

// View runs fn in a read-only transaction: a consistent point-in-time view.
func (d *DB) View(fn func(*Txn) error) error {
	return d.db.View(func(t *badger.Txn) error { return fn(&Txn{t: t}) })
}

// Update runs fn in a read-write transaction and commits it. The commit is
// not durable until Sync (see UpdateSync).
func (d *DB) Update(fn func(*Txn) error) error {
	return d.db.Update(func(t *badger.Txn) error { return fn(&Txn{t: t}) })
}

// UpdateSync is Update followed by Sync: for catalog changes, which must be
// durable before they are acknowledged.
func (d *DB) UpdateSync(fn func(*Txn) error) error {
	if err := d.Update(fn); err != nil {
		return err
	}
	if err := d.db.Sync(); err != nil {
		return fmt.Errorf("index: sync: %w", err)
	}
	return nil
}

// DropVersions deletes every key of the version and epoch maps (for a rebuild).
func (d *DB) DropVersions() error {
	return d.db.DropPrefix([]byte{prefixVersion}, []byte{prefixEpoch})
}

// Batch is a write batch for bulk version updates (not a transaction: a crash
// may keep part of it, which the log replay tolerates).
type Batch struct{ wb *badger.WriteBatch }

// NewBatch starts a write batch.
func (d *DB) NewBatch() *Batch { return &Batch{wb: d.db.NewWriteBatch()} }

// SetVersion records v as the version of (layer, block) at epoch.
func (b *Batch) SetVersion(layer ids.Layer, block ids.Block, epoch ids.Epoch, v Version) error {
	if err := b.wb.Set(VersionKey(layer, block, epoch), v.append(nil)); err != nil {
		return err
	}
	return b.wb.Set(EpochKey(layer, epoch, block), nil)
}

// SetVersionValue replaces the value of an existing version of (layer,
// block) at epoch (its epoch key is already there): the cleaner's repoint.
func (b *Batch) SetVersionValue(layer ids.Layer, block ids.Block, epoch ids.Epoch, v Version) error {
	return b.wb.Set(VersionKey(layer, block, epoch), v.append(nil))
}

// DeleteVersion removes the version of (layer, block) at epoch.
func (b *Batch) DeleteVersion(layer ids.Layer, block ids.Block, epoch ids.Epoch) error {
	if err := b.wb.Delete(VersionKey(layer, block, epoch)); err != nil {
		return err
	}
	return b.wb.Delete(EpochKey(layer, epoch, block))
}

// SetCheckpoint records the checkpoint in the batch.
func (b *Batch) SetCheckpoint(c Checkpoint) error {
	v, err := encodeRecord(c)
	if err != nil {
		return err
	}
	return b.wb.Set(metaKey("checkpoint"), v)
}

// Flush writes the batch.
func (b *Batch) Flush() error { return b.wb.Flush() }

// Cancel abandons the batch.
func (b *Batch) Cancel() { b.wb.Cancel() }

// Txn is a transaction over the index.
type Txn struct {
	t       *badger.Txn
	changes *[]CatalogChange // catalog changes to log (UpdateCatalog), or nil
}

func (t *Txn) getRecord(key []byte, v any) error {
	item, err := t.t.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return decodeRecord(b, v) })
}

func (t *Txn) putRecord(key []byte, v any) error {
	b, err := encodeRecord(v)
	if err != nil {
		return err
	}
	t.track(key, b)
	return t.t.Set(key, b)
}

// Get reads a named catalog record (Disk, Snapshot or Image) into v.
func (t *Txn) Get(kind CatalogKind, name string, v any) error {
	return t.getRecord(catalogKey(kind, name), v)
}

// Exists reports whether a named catalog record exists.
func (t *Txn) Exists(kind CatalogKind, name string) (bool, error) {
	_, err := t.t.Get(catalogKey(kind, name))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Put writes a named catalog record.
func (t *Txn) Put(kind CatalogKind, name string, v any) error {
	return t.putRecord(catalogKey(kind, name), v)
}

// Delete removes a named catalog record.
func (t *Txn) Delete(kind CatalogKind, name string) error {
	t.track(catalogKey(kind, name), nil)
	return t.t.Delete(catalogKey(kind, name))
}

// List calls fn with the raw decoder of every record of a kind, in name order.
func (t *Txn) List(kind CatalogKind, fn func(decode func(v any) error) error) error {
	prefix := []byte{prefixCatalog, byte(kind)}
	it := t.t.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		err := fn(func(v any) error {
			return item.Value(func(b []byte) error { return decodeRecord(b, v) })
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Each decodes every record of a kind into an R, in name order, and calls fn.
func Each[R any](t *Txn, kind CatalogKind, fn func(R) error) error {
	return t.List(kind, func(dec func(any) error) error {
		var r R
		if err := dec(&r); err != nil {
			return err
		}
		return fn(r)
	})
}

// Layer reads a layer record.
func (t *Txn) Layer(id ids.Layer) (Layer, error) {
	var l Layer
	err := t.getRecord(layerKey(id), &l)
	return l, err
}

// PutLayer writes a layer record.
func (t *Txn) PutLayer(l Layer) error { return t.putRecord(layerKey(l.ID), l) }

// DeleteLayer removes a layer record (not its versions).
func (t *Txn) DeleteLayer(id ids.Layer) error {
	t.track(layerKey(id), nil)
	return t.t.Delete(layerKey(id))
}

// Layers calls fn for every layer record in id order.
func (t *Txn) Layers(fn func(Layer) error) error {
	it := t.t.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixLayer}})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var l Layer
		if err := it.Item().Value(func(b []byte) error { return decodeRecord(b, &l) }); err != nil {
			return err
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}

// NextID hands out the next catalog id (disks, layers, snapshots, images
// share one counter, so ids are never reused).
func (t *Txn) NextID() (uint64, error) {
	var n uint64
	item, err := t.t.Get(metaKey("next-id"))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		n = 1
	case err != nil:
		return 0, err
	default:
		if err := item.Value(func(b []byte) error {
			if len(b) != 8 {
				return fmt.Errorf("%w: next-id of %d bytes", ErrCorrupt, len(b))
			}
			n = binary.BigEndian.Uint64(b)
			return nil
		}); err != nil {
			return 0, err
		}
	}
	v := binary.BigEndian.AppendUint64(nil, n+1)
	t.track(metaKey("next-id"), v)
	return n, t.t.Set(metaKey("next-id"), v)
}

// NextLayer hands out the id of a new layer (NextID: layers share the
// catalog's counter; the one place a catalog id becomes a layer id).
func (t *Txn) NextLayer() (ids.Layer, error) {
	n, err := t.NextID()
	return ids.Layer(n), err
}

// Checkpoint reads the checkpoint; a new index has the zero checkpoint.
func (t *Txn) Checkpoint() (Checkpoint, error) {
	var c Checkpoint
	err := t.getRecord(metaKey("checkpoint"), &c)
	if errors.Is(err, ErrNotFound) {
		return Checkpoint{}, nil
	}
	return c, err
}

// SetCheckpoint writes the checkpoint.
func (t *Txn) SetCheckpoint(c Checkpoint) error { return t.putRecord(metaKey("checkpoint"), c) }

// AllocState reads the space accounting record; ok is false when there is
// none (a new index, or one written before it existed).
func (t *Txn) AllocState() (a AllocState, ok bool, err error) {
	err = t.getRecord(metaKey("alloc"), &a)
	if errors.Is(err, ErrNotFound) {
		return AllocState{}, false, nil
	}
	return a, err == nil, err
}

// SetAllocState writes the space accounting record.
func (t *Txn) SetAllocState(a AllocState) error { return t.putRecord(metaKey("alloc"), a) }

// GetVersion reads the version of (layer, block) at exactly epoch.
func (t *Txn) GetVersion(layer ids.Layer, block ids.Block, epoch ids.Epoch) (Version, error) {
	var v Version
	item, err := t.t.Get(VersionKey(layer, block, epoch))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return v, ErrNotFound
	}
	if err != nil {
		return v, err
	}
	return v, item.Value(v.UnmarshalBinary)
}

// SetVersion writes a version in a transaction (both keys).
func (t *Txn) SetVersion(layer ids.Layer, block ids.Block, epoch ids.Epoch, v Version) error {
	if err := t.t.Set(VersionKey(layer, block, epoch), v.append(nil)); err != nil {
		return err
	}
	return t.t.Set(EpochKey(layer, epoch, block), nil)
}

// Finder finds versions by seeking; reuse one for many lookups in a txn.
type Finder struct {
	it   *badger.Iterator
	last []byte // the key of the last seek: the iterator is at the first key >= it
}

// NewFinder returns a Finder; Close it before the transaction ends.
func (t *Txn) NewFinder() *Finder {
	return &Finder{it: t.t.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixVersion}})}
}

// Close releases the Finder.
func (f *Finder) Close() { f.it.Close() }

// seek positions the iterator at the first key >= key, like Seek: from a
// position before key it tries a few Next steps first (cheap), then seeks.
//
// Sought at last for a key at or below key, an iterator that is past the end
// (no key >= last, so none >= key) or at a key >= key is already where a
// seek would put it: lookups of blocks that have no version (a new disk
// being written) do not seek again and again.
func (f *Finder) seek(key []byte) {
	if f.last != nil && bytes.Compare(key, f.last) >= 0 {
		if !f.it.Valid() || bytes.Compare(f.it.Item().Key(), key) >= 0 {
			return
		}
	}
	f.last = append(f.last[:0], key...)
	if f.it.Valid() && bytes.Compare(f.it.Item().Key(), key) < 0 {
		for i := 0; i < 4; i++ {
			f.it.Next()
			if !f.it.Valid() || bytes.Compare(f.it.Item().Key(), key) >= 0 {
				return
			}
		}
	}
	f.it.Seek(key)
}

// Find returns the newest version of (layer, block) at or below epoch.
// Lookups of ascending keys (a sequential read) step forward from the last
// position instead of seeking when the target is a few keys ahead.
func (f *Finder) Find(layer ids.Layer, block ids.Block, epoch ids.Epoch) (v Version, at ids.Epoch, ok bool, err error) {
	key := VersionKey(layer, block, epoch)
	f.seek(key)
	if !f.it.Valid() {
		return v, 0, false, nil
	}
	k := f.it.Item().Key()
	if !bytes.Equal(k[:17], key[:17]) {
		return v, 0, false, nil
	}
	if err := f.it.Item().Value(v.UnmarshalBinary); err != nil {
		return v, 0, false, fmt.Errorf("version of block %d of layer %d: %w", block, layer, err)
	}
	return v, ids.Epoch(^binary.BigEndian.Uint64(k[17:])), true, nil
}

// ScanVersions calls fn for every version of a layer with block in
// [from, to), in block order and, within a block, newest epoch first.
// fn returning SkipBlock skips the remaining versions of that block.
func (t *Txn) ScanVersions(layer ids.Layer, from, to ids.Block, fn func(block ids.Block, epoch ids.Epoch, v Version) error) error {
	prefix := LayerVersionPrefix(layer)
	it := t.t.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Seek(VersionKey(layer, from, ids.MaxEpoch)); it.Valid(); {
		k := it.Item().Key()
		_, block, epoch, err := ParseVersionKey(k)
		if err != nil {
			return err
		}
		if block >= to {
			return nil
		}
		var v Version
		if err := it.Item().Value(v.UnmarshalBinary); err != nil {
			return fmt.Errorf("version of block %d of layer %d: %w", block, layer, err)
		}
		err = fn(block, epoch, v)
		if errors.Is(err, SkipBlock) {
			if block == ids.MaxBlock {
				return nil
			}
			it.Seek(VersionKey(layer, block+1, ids.MaxEpoch))
			continue
		}
		if err != nil {
			return err
		}
		it.Next()
	}
	return nil
}

// SkipBlock is returned by a ScanVersions callback to skip to the next block.
var SkipBlock = errors.New("skip block")

// ScanEpochs calls fn for every (epoch, block) written in a layer with epoch
// in [from, to], in epoch then block order.
func (t *Txn) ScanEpochs(layer ids.Layer, from, to ids.Epoch, fn func(epoch ids.Epoch, block ids.Block) error) error {
	prefix := LayerEpochPrefix(layer)
	it := t.t.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer it.Close()
	for it.Seek(EpochKey(layer, from, 0)); it.Valid(); it.Next() {
		_, epoch, block, err := ParseEpochKey(it.Item().Key())
		if err != nil {
			return err
		}
		if epoch > to {
			return nil
		}
		if err := fn(epoch, block); err != nil {
			return err
		}
	}
	return nil
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}

// needsWrite reports whether a read-only open failed only because Badger
// must write to recover: a memtable to truncate (ErrTruncateNeeded), or a
// file a crash left empty that must be sized before it can be mapped (the
// allocation fails on the read-only descriptor with EBADF or EINVAL; seen
// after a SIGKILL right after Badger created its next memtable file).
// Badger wraps errors with %+v, so the text is matched too.
func needsWrite(err error) bool {
	msg := err.Error()
	return errors.Is(err, badger.ErrTruncateNeeded) || strings.Contains(msg, badger.ErrTruncateNeeded.Error()) ||
		errors.Is(err, syscall.EBADF) || strings.Contains(msg, syscall.EBADF.Error()) ||
		(strings.Contains(msg, "error while truncation") && (errors.Is(err, syscall.EINVAL) || strings.Contains(msg, syscall.EINVAL.Error())))
}

// removeEmptyMemtables deletes memtable files (*.mem) of length zero: a
// crash between Badger's creation of its next memtable file and its sizing
// leaves one, and Badger then refuses to open ("Create a new file"). An
// empty file holds no entry, so removing it loses nothing.
func removeEmptyMemtables(dir string, lg *slog.Logger) error {
	mems, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil {
		return err
	}
	removed := false
	for _, m := range mems {
		fi, err := os.Stat(m)
		if err != nil || fi.Size() != 0 {
			continue
		}
		if err := os.Remove(m); err != nil {
			return fmt.Errorf("remove empty memtable file: %w", err)
		}
		lg.Warn("index: removed an empty memtable file a crash left", "file", m)
		removed = true
	}
	if !removed {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
