package rowstore

import (
	"sort"
	"sync"

	"github.com/snapfs/snapfs/rowstore/ids"
)

// Snapshots under a write load: the write-back cache is taken by reference.
//
// A snapshot must hold every write acknowledged before it, and the partial
// blocks of those writes may still be in the disk's write-back cache. It
// used to write the whole cache back before taking the disks' locks
// (competing with the writers, who kept filling it) and again what came
// meanwhile with the locks held, so writers waited for up to a cache of
// read-modify-writes and two fsyncs. Now (CreateSnapshotWith):
//
//  1. With the disks' locks held, each disk's cache becomes the snapshot's
//     (d.frozen) and the disk starts an empty one; d.snapBusy is set.
//  2. The locks are released and the frozen entries are written back at the
//     head's current epoch, wbParallel batches at a time, each releasing
//     the lock while the blocks' bases are read (writeFrozenLocked).
//     Writers go on meanwhile: into the new cache.
//  3. What the catalog change needs of the disks (head counts, layer,
//     name, size) is read under their locks, which are released again.
//  4. The catalog change runs without the disks' locks (catMu alone): its
//     commit (logCatalog) syncs the log through the record and puts the
//     frozen entries' versions in the index; writers still go on into
//     their caches, and every other change of these disks waits for
//     snapBusy (lockDisks).
//  5. The locks are taken again to move the heads' epochs in memory and end
//     snapBusy (thawLocked, which asks for the background write-back of
//     what was cached meanwhile).

// While snapBusy nothing but the frozen entries is appended for the head:
// every write, whole blocks too, goes to the new cache (a partial write to
// a frozen block starts from a copy of the frozen entry: the frozen one is
// the snapshot's and never changes), and whatever else appends for the head
// or must see the cache empty (a write-back of the new cache, a flush, Sync,
// PunchHole's tombstones, disk delete, lockDisks: every other catalog change
// of the disk, and the next snapshot) waits for the snapshot's end. So:
//
//   - the head's content of block b is d.cache[b] if present, else
//     d.frozen[b] if present, else what is stored (reads look in that order);
//   - what is stored for the head is exactly what it held when the snapshot
//     began, plus the frozen entries written so far: the frozen entries'
//     bases, the space accounting of the head and the snapshot's allocated
//     count come out as if the cache had been flushed at that instant;
//   - the log holds, in order, every write before the snapshot, the catalog
//     record, then what came after: a crash leaves the snapshot either
//     absent or whole (the kill-crash tests check a snapshot cut short), and
//     no version of the next epoch can precede the catalog record that
//     makes that epoch the head's.
//
// Before step 1 the snapshot writes back a cache over its bound and
// commits, writers going on as usual, so that the commit of step 4 (whole
// blocks wait for it) finds few versions to put in the index; the log
// starts the writeback of what it appends every few MiB
// (segment.EarlyWriteback), so that either sync finds little to write.
//
// The new cache cannot be written back before the epoch moves: it may grow
// by snapRoom over its bound while the snapshot is taken (whole blocks of
// sequential writes land there too), then a writer waits for the
// snapshot's end; below that a writer returns at once, even over the
// cache's bound (it used to wait in writeBackLocked for the snapshot's
// end: every writer, a few writes into the snapshot). A failed snapshot
// gives the frozen entries back to the cache (thawLocked) unless the cache
// has a newer entry for the block (which then includes the frozen one's
// writes: it began as its copy, or covers the whole block).

// snapRoom is how far a disk's cache may grow over Options.CacheBytes with
// partial writes while a snapshot of it is taken (a write of whole blocks
// waits at CacheBytes: WriteAt). What is cached there is a debt: written
// back by the writers after the snapshot, or by the next snapshot before
// its freeze. 8 MiB: 512 read-modify-writes of 16 KiB blocks, 60-130 ms of
// random 4 KiB writes at 4-8k IOPS; it was 32 MiB, which the writers could
// not pay back in the second before the next snapshot under a full random
// write load, so that a snapshot froze and wrote back up to 34 MiB (1.5 s).
const snapRoom = 8 << 20

// clone is a copy of a cached block with its own buffer.
func (c *cblock) clone() *cblock {
	n := &cblock{data: getBuf(len(c.data)), full: c.full}
	copy(n.data, c.data)
	n.dirty = append([][2]int(nil), c.dirty...)
	return n
}

// waitSnapshotLocked waits until no snapshot of the disk is being taken
// (disk's lock held, released while waiting).
func (d *diskState) waitSnapshotLocked() {
	for d.snapBusy {
		d.wbCond.Wait()
	}
}

// freezeLocked makes the disk's cache the snapshot's (disk's lock held, no
// snapshot of it under way).
func (d *diskState) freezeLocked() {
	d.frozen, d.frozenBytes = d.cache, d.cacheBytes
	d.cache, d.cacheBytes = map[ids.Block]*cblock{}, 0
	clear(d.wbq)
	d.wbq, d.wbHead = d.wbq[:0], 0
	d.snapBusy = true
}

// thawLocked ends the snapshot's hold on the disk (disk's lock held): what
// of the frozen cache was not stored goes back to the cache.
func (d *diskState) thawLocked() {
	if !d.deleted {
		for b, c := range d.frozen {
			if _, ok := d.cache[b]; ok {
				putBuf(c.data) // the newer entry includes its writes
				c.data = nil
				continue
			}
			d.cacheAddLocked(b, c)
		}
	}
	d.frozen, d.frozenBytes = nil, 0
	d.snapBusy = false
	d.wbCond.Broadcast()
	if !d.deleted && d.cacheBytes > d.s.wbLow() {
		d.wantWriteBackLocked() // what writers cached meanwhile
	}
}

// dropFrozenLocked forgets a frozen entry once it is stored.
func (d *diskState) dropFrozenLocked(b ids.Block, c *cblock) {
	delete(d.frozen, b)
	d.frozenBytes -= int64(len(c.data))
	putBuf(c.data)
	c.data = nil
}

// writeFrozenLocked stores every frozen entry at the head's current epoch
// (disk's lock held on entry and return, released while bases are read),
// wbParallel batches at a time like the write-back (writers do not write
// back meanwhile: they only fill the new cache, so the batches have the
// cores).
func (d *diskState) writeFrozenLocked() error {
	blocks := make([]ids.Block, 0, len(d.frozen))
	for b := range d.frozen {
		blocks = append(blocks, b)
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i] < blocks[j] })
	var firstErr error
	work := func() { // disk's lock held
		for len(blocks) > 0 && !d.deleted && firstErr == nil {
			n := min(len(blocks), wbBatch)
			batch := make([]wbQueued, 0, n)
			for _, b := range blocks[:n] {
				if c := d.frozen[b]; c != nil {
					batch = append(batch, wbQueued{b, c})
				}
			}
			blocks = blocks[n:]
			if err := d.writeBatchLocked(batch, true); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	var wg sync.WaitGroup
	for i := 1; i < wbParallel && len(blocks) > wbBatch; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.mu.Lock()
			defer d.mu.Unlock()
			work()
		}()
	}
	work()
	d.mu.Unlock()
	wg.Wait()
	d.mu.Lock()
	return firstErr
}

// testHookSnapshotFrozen, when set (tests only), runs once a snapshot froze
// its disks' caches and released their locks; an error fails the snapshot
// there.
var testHookSnapshotFrozen func() error
