package rowstore

import (
	"sort"
	"time"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
)

// Write-back of the cache of partial blocks, in batches that release the
// disk's lock while the blocks' current content is read (the
// read-modify-write that completes them), so that writers, readers and
// snapshots wait for a batch's appends at most, never for a whole cache.
//
// A background goroutine (runWriteBack) keeps each disk's cache near
// wbLow (CacheBytes/8) by writing back its oldest blocks first (a block
// still being filled by sequential partial writes gets the time to become
// whole). A writer that finds the cache over CacheBytes writes back itself
// (the back-pressure). Disk.Sync writes back everything cached before it
// began the same way; a snapshot takes the cache by reference (snapshot.go).
//
// Correctness: an entry stays in d.cache until it is stored, so readers
// and every other flush see it; at most wbParallel batched write-backs run
// per disk at a time (wbActive, waited for on wbCond), on disjoint entries
// (each queue entry is taken once), and a Sync (upto) returns only once no
// batch in flight holds a block cached before it (wbFlying). While the
// lock is released a batch only reads the blocks' current content into its
// own buffers. When it takes the lock again it stores an entry only if
// d.cache still holds the very same cblock: every change of a block's
// content in the head (a whole-block write, a flush, PunchHole, a rollback,
// a delete) removes its entry first, so the same entry means the content
// read is still the head's and the overlay is exact; a snapshot moves the
// whole cache to its frozen set (snapshot.go), so a batch in flight then
// stores none of it, and no batch starts until the snapshot's epoch bump.
// Writes made to the entry meanwhile are in its dirty ranges, which the
// overlay keeps.

const wbBatch = 64 // blocks a batch of write-back at most

// wbParallel is how many batches of a disk may be written back at once: a
// batch reads its blocks' bases without the disk's lock, then hashes and
// appends them with it; two overlap one's reads with the other's appends
// and use both cores of the machine (random 4 KiB writes are
// read-modify-writes of 16 KiB blocks, and the write-back is their pace).
var wbParallel = 2

// wbQueued is a cached block in the order it entered the cache.
type wbQueued struct {
	b ids.Block
	c *cblock
}

// wbLow is the cache size the background write-back brings a disk down to.
func (s *Store) wbLow() int64 { return s.opts.CacheBytes / 8 }

// cacheAddLocked enters a new cached block (disk's lock held).
func (d *diskState) cacheAddLocked(b ids.Block, c *cblock) {
	d.wbTick++
	c.born = d.wbTick
	d.cache[b] = c
	d.cacheBytes += int64(len(c.data))
	if live := len(d.cache); len(d.wbq)-d.wbHead > 2*live+1024 {
		d.compactQueueLocked()
	}
	d.wbq = append(d.wbq, wbQueued{b, c})
}

// compactQueueLocked drops the queue entries of blocks no longer cached.
func (d *diskState) compactQueueLocked() {
	out := d.wbq[:0]
	for _, q := range d.wbq[d.wbHead:] {
		if d.cache[q.b] == q.c {
			out = append(out, q)
		}
	}
	clear(d.wbq[len(out):])
	d.wbq, d.wbHead = out, 0
}

// writeBackLocked writes cached blocks back, oldest first, in batches, until
// the cache holds at most target bytes; with upto > 0 it writes back exactly
// the blocks that entered the cache at or before tick upto (whatever the
// target). The disk's lock is held on entry and on return, released in
// between (see above).
func (d *diskState) writeBackLocked(target int64, upto uint64) error {
	for !d.deleted {
		// At most wbParallel batches at a time per disk (writers at the
		// bound, Sync and the background take turns, batch by batch).
		for d.wbActive >= wbParallel || d.snapBusy {
			d.wbCond.Wait()
		}
		if d.deleted || (upto == 0 && d.cacheBytes <= target) {
			return nil
		}
		// The batch: the oldest entries still cached.
		var batch []wbQueued
		for d.wbHead < len(d.wbq) && len(batch) < wbBatch {
			q := d.wbq[d.wbHead]
			if upto > 0 && q.c.born > upto {
				break
			}
			d.wbq[d.wbHead] = wbQueued{}
			d.wbHead++
			if d.cache[q.b] == q.c {
				batch = append(batch, q)
			}
		}
		if d.wbHead == len(d.wbq) {
			d.wbq, d.wbHead = d.wbq[:0], 0
		}
		if len(batch) == 0 {
			if upto > 0 && d.flyingUptoLocked(upto) {
				// Blocks before upto are in another batch still (put back
				// in the queue if it fails): wait for it, look again.
				d.wbCond.Wait()
				continue
			}
			return nil
		}
		oldest := batch[0].c.born
		for _, q := range batch {
			oldest = min(oldest, q.c.born)
		}
		d.wbActive++
		d.wbFlying = append(d.wbFlying, oldest)
		err := d.writeBatchLocked(batch, false)
		d.wbActive--
		for i, t := range d.wbFlying {
			if t == oldest {
				d.wbFlying = append(d.wbFlying[:i], d.wbFlying[i+1:]...)
				break
			}
		}
		d.wbCond.Broadcast()
		if err != nil {
			// Not written: back to the head of the queue (in block order).
			d.wbq = append(batch[:len(batch):len(batch)], d.wbq[d.wbHead:]...)
			d.wbHead = 0
			return err
		}
	}
	return nil
}

// flyingUptoLocked reports whether a batch in flight holds a block that
// entered the cache at or before tick upto.
func (d *diskState) flyingUptoLocked(upto uint64) bool {
	for _, t := range d.wbFlying {
		if t <= upto {
			return true
		}
	}
	return false
}

// writeBatchLocked completes and stores the entries of batch (disk's lock
// held on entry and return, released while the bases are read): entries of
// the cache, or with frozen those of the snapshot being taken (snapshot.go).
func (d *diskState) writeBatchLocked(batch []wbQueued, frozen bool) error {
	current := func(q wbQueued) bool { return d.cache[q.b] == q.c }
	if frozen {
		current = func(q wbQueued) bool { return d.frozen[q.b] == q.c }
	}
	sort.Slice(batch, func(i, j int) bool { return batch[i].b < batch[j].b })
	// The blocks to complete, and the base of each entry (decided now: a
	// write or a read may complete an entry while the lock is released).
	var partial []ids.Block
	baseOf := make([]int, len(batch))
	for i, q := range batch {
		baseOf[i] = -1
		if !q.c.full {
			baseOf[i] = len(partial)
			partial = append(partial, q.b)
		}
	}
	var bases [][]byte
	if len(partial) > 0 {
		vs, found, err := d.lookupLocked(partial)
		if err != nil {
			return err
		}
		chain, name := d.chain, d.name // (RenameDisk changes the name under the lock)
		bases = make([][]byte, len(partial))
		for i := range bases {
			bases[i] = getBuf(d.bs)
		}
		d.mu.Unlock()
		_, err = d.s.readResolved(chain, vs, found, partial, bases, name, func(b ids.Block, old, v index.Version, found bool) {
			d.mu.Lock()
			d.bmMovedLocked(b, old, v, found)
			d.mu.Unlock()
		})
		d.mu.Lock()
		defer func() {
			for _, b := range bases {
				putBuf(b)
			}
		}()
		if err != nil {
			return err
		}
	}
	if d.deleted {
		return nil
	}
	// The entries' content is hashed without the lock (writers, readers
	// and the other batch go on meanwhile): a copy of each, taken now,
	// is hashed; an entry written to meanwhile (its writes count moved) is
	// hashed again under the lock below, with what it holds then.
	type item struct {
		q      wbQueued
		copy   []byte
		writes uint64
	}
	items := make([]item, 0, len(batch))
	for i, q := range batch {
		if !current(q) {
			continue // stored or dropped meanwhile
		}
		if !q.c.full {
			q.c.overlay(bases[baseOf[i]]) // partial then, so it has a base
		}
		cp := getBuf(len(q.c.data))
		copy(cp, q.c.data)
		items = append(items, item{q, cp, q.c.writes})
	}
	defer func() {
		for _, it := range items {
			putBuf(it.copy)
		}
	}()
	datas := make([][]byte, len(items))
	for i, it := range items {
		datas[i] = it.copy
	}
	d.mu.Unlock()
	if h := testHookWriteBackHashing; h != nil {
		h()
	}
	zero := make([]bool, len(datas))
	for i, data := range datas {
		zero[i] = isZero(data)
	}
	vers := digestBlocks(datas, zero)
	d.mu.Lock()
	if d.deleted {
		return nil
	}
	blocks := make([]ids.Block, 0, len(items))
	cs := make([]*cblock, 0, len(items))
	keep := 0 // items compacted in place (keep <= j)
	for j, it := range items {
		if !current(it.q) {
			continue // stored or dropped meanwhile
		}
		datas[keep], zero[keep], vers[keep] = datas[j], zero[j], vers[j]
		if it.q.c.writes != it.writes { // written to meanwhile: as it is now
			datas[keep] = it.q.c.data
			zero[keep] = isZero(it.q.c.data)
			vers[keep] = digestBlocks(datas[keep:keep+1], zero[keep:keep+1])[0]
		}
		blocks = append(blocks, it.q.b)
		cs = append(cs, it.q.c)
		keep++
	}
	if err := d.storeDigestedLocked(blocks, datas[:keep], zero[:keep], vers[:keep]); err != nil {
		return err
	}
	for i, b := range blocks {
		if frozen {
			d.dropFrozenLocked(b, cs[i])
		} else {
			d.dropCachedLocked(b, cs[i])
		}
	}
	return nil
}

// testHookWriteBackHashing, when set (tests only), runs in a batch of
// write-back while it hashes its copies without the disk's lock.
var testHookWriteBackHashing func()

// wantWriteBackLocked asks the background write-back to bring the disk's
// cache down (disk's lock held).
func (d *diskState) wantWriteBackLocked() {
	if d.wbWanted || d.s.opts.SyncInterval <= 0 { // no background (startWriteBack)
		return
	}
	d.wbWanted = true
	d.s.wbMu.Lock()
	d.s.wbDisks = append(d.s.wbDisks, d)
	d.s.wbMu.Unlock()
	select {
	case d.s.wbKick <- struct{}{}:
	default:
	}
}

// runWriteBack is the background write-back (until the store closes).
func (s *Store) runWriteBack() {
	var lastErr time.Time
	for {
		select {
		case <-s.stop:
			return
		case <-s.wbKick:
		}
		s.wbMu.Lock()
		ds := s.wbDisks
		s.wbDisks = nil
		s.wbMu.Unlock()
		for _, d := range ds {
			d.mu.Lock()
			d.wbWanted = false
			var err error
			if !d.deleted {
				err = d.writeBackLocked(s.wbLow()/2, 0)
			}
			name := d.name
			d.mu.Unlock()
			// The error reaches the writers at their Sync (the blocks stay
			// cached); logged here at most every 10 s.
			if err != nil && time.Since(lastErr) > 10*time.Second {
				lastErr = time.Now()
				s.log.Warn("background write-back failed", "disk", name, "err", err)
			}
		}
	}
}

// syncFlushLocked writes every block cached now to the log: first in
// batches that release the lock, then, under the lock, what came meanwhile
// in the blocks being written back (flushLocked). Disk.Sync and snapshots
// use it, so writers wait for a batch at most.
func (d *diskState) syncFlushLocked() error {
	d.waitSnapshotLocked() // the writes a snapshot holds are the snapshot's to store
	if len(d.cache) == 0 {
		return nil
	}
	if err := d.writeBackLocked(0, d.wbTick); err != nil {
		return err
	}
	return nil
}

// startWriteBack starts the background write-back and the background
// commit (every commitEvery bytes appended; Store.uncommitted).
func (s *Store) startWriteBack() {
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.runWriteBack()
	}()
	go func() {
		defer s.wg.Done()
		var lastErr time.Time
		for {
			select {
			case <-s.stop:
				return
			case <-s.commitKick:
			}
			// The error reaches writers at their Sync; logged at most
			// every 10 s.
			if err := s.commit(); err != nil && time.Since(lastErr) > 10*time.Second {
				lastErr = time.Now()
				s.log.Warn("background commit failed", "err", err)
			}
		}
	}()
}
