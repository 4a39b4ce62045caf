package rowstore

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
)

// Space accounting: the stored blocks every disk head shows, kept up to
// date as blocks are written, punched, rolled back and cloned (as ZFS keeps
// its space counters), so that disk list, stat under the mount, snapshot
// and image listings and the create commands never count blocks.
//
//   - A disk head's count (accounting.disks, by disk id) moves with every
//     block record appended to it: +1 for data over nothing or a hole, -1
//     for a hole over data (storeBlocksLocked and PunchHole know which,
//     from the lookup they make anyway). It starts at 0 for a new disk and
//     at the snapshot member's count for a clone, a disk from an image and a
//     rollback.
//   - A snapshot records each member's count in its catalog record
//     (index.Member.Allocated), and an image copies its member's: immutable,
//     so listing them is O(objects). Records written before that field (format
//     version 1) are counted once per store and point when first asked
//     (Reader.Allocated's cache).
//   - Persistence: every commit writes the counts (index meta record
//     "alloc") in the transaction of its checkpoint. The counts are taken
//     under appendMu together with the log position the checkpoint names,
//     so they cover exactly the records before it; a disk with an append
//     in flight at that moment is marked unknown in the record (begin/end).
//   - Open (loadAccounting) trusts a disk's persisted count only when the
//     record goes with the checkpoint the replay started from, it names the
//     disk's current head layer, and the replay applied no block record to
//     a layer of the disk's chain. Any other disk (after a crash that left
//     records to replay, an index rebuild, a store older than this
//     accounting) is counted once, at Open, by a scan in bounded memory;
//     the counts are then written with a new checkpoint. So the counts are
//     exact after a clean shutdown, a crash and a rebuild, and no request
//     ever waits for a count (a count that failed at Open is retried when
//     the disk is first asked about, and logged).
//
// GC and the cleaner never change a count: GC deletes only versions no
// reader sees, and relocation and repair keep a version's kind.
//
// Lock order: accounting.mu is a leaf; commit takes it under appendMu.
type accounting struct {
	mu    sync.Mutex
	disks map[uint64]*diskAlloc // by disk id
	// counted is how many disks Open counted (tests: a clean reopen counts none).
	counted atomic.Int64
}

// diskAlloc is the count of one disk head.
type diskAlloc struct {
	layer    ids.Layer // the head layer counted
	blocks   int64     // stored blocks visible in the head; valid when known
	known    bool
	inflight int    // appends begun and not yet counted (begin/end)
	appends  uint64 // appends begun ever (verifyAccounting sees a disk written while it counted)
}

func newAccounting() *accounting { return &accounting{disks: map[uint64]*diskAlloc{}} }

// acctUpdate is a batch of appends to one disk head being counted: begin
// before the first append, add per block, end after the last (also on
// error: what was appended is counted).
type acctUpdate struct {
	a     *accounting
	disk  uint64
	delta int64
}

// begin marks an append to disk's head in flight (a commit meanwhile
// persists the disk as unknown). The caller holds the disk's mutex.
func (a *accounting) begin(disk uint64) *acctUpdate {
	a.mu.Lock()
	if e := a.disks[disk]; e != nil {
		e.inflight++
		e.appends++
	}
	a.mu.Unlock()
	return &acctUpdate{a: a, disk: disk}
}

// add counts n more (or fewer) stored blocks.
func (u *acctUpdate) add(n int64) { u.delta += n }

// end applies the count and closes the update.
func (u *acctUpdate) end() {
	u.a.mu.Lock()
	if e := u.a.disks[u.disk]; e != nil {
		e.inflight--
		e.blocks += u.delta
	}
	u.a.mu.Unlock()
}

// set gives a disk head a known count.
func (a *accounting) set(disk uint64, layer ids.Layer, blocks int64) {
	a.mu.Lock()
	a.disks[disk] = &diskAlloc{layer: layer, blocks: blocks, known: true}
	a.mu.Unlock()
}

// forget drops a deleted disk.
func (a *accounting) forget(disk uint64) {
	a.mu.Lock()
	delete(a.disks, disk)
	a.mu.Unlock()
}

// acctMark identifies a disk head's count and the appends begun to it: two
// equal marks mean no append began in between (set makes a new entry).
type acctMark struct {
	e       *diskAlloc
	appends uint64
}

// mark is the disk's current acctMark.
func (a *accounting) mark(disk uint64) acctMark {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.disks[disk]
	if e == nil {
		return acctMark{}
	}
	return acctMark{e, e.appends}
}

// get returns a disk head's count; ok is false when it is not known.
func (a *accounting) get(disk uint64) (blocks int64, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e := a.disks[disk]; e != nil && e.known {
		return e.blocks, true
	}
	return 0, false
}

// snapshot copies the counts for a checkpoint; the caller holds appendMu,
// so they cover exactly the records appended so far. A disk with an append
// in flight, or not known, is left out (counted again at the next Open).
func (a *accounting) snapshot() []index.DiskAlloc {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]index.DiskAlloc, 0, len(a.disks))
	for id, e := range a.disks {
		if e.known && e.inflight == 0 {
			out = append(out, index.DiskAlloc{Disk: id, Layer: e.layer, Blocks: e.blocks})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Disk < out[j].Disk })
	return out
}

// saveAlloc writes the counts taken with the checkpoint cp, in its
// transaction.
func saveAlloc(t *index.Txn, cp index.Checkpoint, counts []index.DiskAlloc) error {
	return t.SetAllocState(index.AllocState{Segment: cp.Segment, Offset: cp.Offset, Disks: counts})
}

// countBlocksChunk bounds the memory of a count: the visible versions of
// this many blocks at a time.
const countBlocksChunk = 1 << 16

// countVisible counts the stored (non-zero) blocks visible through chain
// in the first n blocks, a chunk at a time (bounded memory).
func (s *Store) countVisible(chain []link, n ids.Block) (int64, error) {
	var count int64
	for from := ids.Block(0); from < n; from += countBlocksChunk {
		err := s.visible(chain, from, min(from+countBlocksChunk, n), func(_ ids.Block, v index.Version) error {
			if !v.Zero() {
				count++
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return count, nil
}

// blockCount is the number of blocks of a disk of size bytes: the block
// one past its last.
func blockCount(size int64, bs int) ids.Block { return ids.BlockAt(size+int64(bs)-1, bs) }

// loadAccounting sets the count of every disk after Open's replay: the
// persisted one when it can be trusted (see the comment at the top), else a
// count. before is the checkpoint the replay started from; touched the
// layers the replay applied block records to.
func (s *Store) loadAccounting(before index.Checkpoint, touched map[ids.Layer]bool) error {
	type diskHead struct {
		rec   index.Disk
		chain []link
	}
	var heads []diskHead
	var st index.AllocState
	var have bool
	var after index.Checkpoint
	err := s.idx.View(func(t *index.Txn) error {
		var err error
		if st, have, err = t.AllocState(); err != nil {
			// A damaged record costs a count, never the store.
			s.log.Warn("space accounting record unreadable; counting", "err", err)
			have = false
		}
		if after, err = t.Checkpoint(); err != nil {
			return err
		}
		return index.Each(t, index.KindDisk, func(d index.Disk) error {
			h := diskHead{rec: d}
			l, err := t.Layer(d.Layer)
			if err == nil {
				h.chain, err = chainOf(t, l.ID, l.Epoch)
			}
			if err != nil {
				s.log.Error("space accounting: disk head unreadable", "disk", d.Name, "err", err)
			}
			heads = append(heads, h)
			return nil
		})
	})
	if err != nil {
		// A catalog this cannot read must not keep the store from opening
		// (check and repair need it): counts are then made when asked.
		s.log.Error("space accounting: read the catalog", "err", err)
		return nil
	}
	saved := map[uint64]index.DiskAlloc{}
	if have && st.Segment == before.Segment && st.Offset == before.Offset {
		for _, d := range st.Disks {
			saved[d.Disk] = d
		}
	}
	counted := 0
	for _, h := range heads {
		if h.chain == nil {
			continue // unknown; GetDisk reports the error
		}
		if d, ok := saved[h.rec.ID]; ok && d.Layer == h.rec.Layer && !chainTouched(h.chain, touched) {
			s.acct.set(h.rec.ID, h.rec.Layer, d.Blocks)
			continue
		}
		n, err := s.countVisible(h.chain, blockCount(h.rec.Size, h.rec.BlockSize))
		if err != nil {
			s.log.Error("space accounting: count", "disk", h.rec.Name, "err", err)
			continue
		}
		s.acct.set(h.rec.ID, h.rec.Layer, n)
		counted++
	}
	s.acct.counted.Store(int64(counted))
	if counted > 0 {
		s.log.Info("space accounting: counted disks", "disks", counted)
	}
	if counted > 0 || !have || st.Segment != after.Segment || st.Offset != after.Offset {
		// Persist with a checkpoint, so the next Open trusts them. A failed
		// sync is never swallowed (a later one may succeed with data lost).
		if err := s.advanceCheckpoint(); err != nil {
			return fmt.Errorf("space accounting: persist the counts: %w", err)
		}
	}
	return nil
}

func chainTouched(chain []link, touched map[ids.Layer]bool) bool {
	for _, l := range chain {
		if touched[l.layer] {
			return true
		}
	}
	return false
}

// headBlocks is the count of d's head; the caller holds d.mu. A count
// Open could not make is made now (and kept).
func (d *diskState) headBlocksLocked() (int64, error) {
	if n, ok := d.s.acct.get(d.id); ok {
		return n, nil
	}
	n, err := d.s.countVisible(d.chain, blockCount(d.size.Load(), d.bs))
	if err != nil {
		return 0, fmt.Errorf("count allocated blocks of disk %q: %w", d.name, err)
	}
	d.s.acct.set(d.id, d.chain[0].layer, n)
	return n, nil
}

// pointAllocated is the allocation of an immutable point (a snapshot
// member or an image): the recorded one, or for records older than the
// accounting a count, made once per store and point.
func (s *Store) pointAllocated(recorded *int64, l link, size int64, bs int) (int64, error) {
	if recorded != nil {
		return *recorded, nil
	}
	s.allocMu.Lock()
	n, ok := s.allocCache[l]
	s.allocMu.Unlock()
	if ok {
		return n, nil
	}
	var chain []link
	if err := s.idx.View(func(t *index.Txn) error {
		var err error
		chain, err = chainOf(t, l.layer, l.epoch)
		return err
	}); err != nil {
		return 0, err
	}
	blocks, err := s.countVisible(chain, blockCount(size, bs))
	if err != nil {
		return 0, err
	}
	n = blocks * int64(bs)
	s.allocMu.Lock()
	s.allocCache[l] = n
	s.allocMu.Unlock()
	return n, nil
}

// lazyChain reports whether chain ends in a lazily restored layer: its
// allocation counts the blocks its source holds, which the index gets only
// as they are fetched, so a count of the index cannot check it.
func (s *Store) lazyChain(chain []link) bool {
	ll, err := s.lazyOf(chain)
	return err == nil && ll != nil
}

// errAccounting is what VerifyAccounting returns for a count that differs
// from a full count.
var errAccounting = errors.New("space accounting differs from a full count")

// countDiskUnlocked counts the stored blocks visible in disk d's head
// without holding d's lock while it counts (stableCount). counted is false
// for a lazy or deleted disk, or one written during every try; then got,
// ok and n mean nothing.
func (s *Store) countDiskUnlocked(d *diskState) (n, got int64, ok bool, layer ids.Layer, counted bool, err error) {
	counted, err = s.stableCount(d, func(chain []link, size int64, bs int) (int64, bool, error) {
		if s.lazyChain(chain) {
			return 0, true, nil // not compared: see lazyChain
		}
		c, err := s.countVisible(chain, blockCount(size, bs))
		return c, false, err
	}, func(c int64, chain []link, _ acctMark) bool {
		n, layer = c, chain[0].layer
		got, ok = s.acct.get(d.id)
		return true
	})
	return n, got, ok, layer, counted, err
}

// stableCount counts disk d without holding its lock while it counts (a
// full count of a large disk takes seconds; writers wait for d.mu): it
// notes the disk's chain, size and the appends begun to it under d.mu,
// calls count (skip: nothing to count), and calls keep under d.mu with the
// count only if the disk was not deleted and nothing was appended and the
// chain and size are the same afterwards, trying a few times. It reports
// whether keep took a count (false: skipped, deleted, or written during
// every try).
func (s *Store) stableCount(d *diskState, count func(chain []link, size int64, bs int) (n int64, skip bool, err error),
	keep func(n int64, chain []link, mark acctMark) bool) (bool, error) {
	for try := 0; try < 5; try++ {
		d.mu.Lock()
		chain, size, bs, mark, deleted := append([]link(nil), d.chain...), d.size.Load(), d.bs, s.acct.mark(d.id), d.deleted
		d.mu.Unlock()
		if deleted {
			return false, nil
		}
		n, skip, err := count(chain, size, bs)
		if err != nil || skip {
			return false, err
		}
		d.mu.Lock()
		kept := !d.deleted && slices.Equal(chain, d.chain) && size == d.size.Load() && bs == d.bs &&
			s.acct.mark(d.id) == mark && keep(n, chain, mark)
		d.mu.Unlock()
		if kept {
			return true, nil
		}
		time.Sleep(time.Duration(try+1) * 10 * time.Millisecond)
	}
	s.log.Info("disk written during every count: its allocated count is left as it is", "disk", d.name)
	return false, nil
}

// verifyAccounting counts every disk head, snapshot member and image from
// the index and compares with the running counts and the records (tests,
// and a cross-check for Check). Writes cached but not stored are not
// counted by either.
func (s *Store) verifyAccounting() error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	var errs []error
	disks, err := s.ListDisks()
	if err != nil {
		return err
	}
	for _, di := range disks {
		d, err := s.diskByName(di.Name)
		if err != nil {
			return err
		}
		n, got, ok, layer, counted, cerr := s.countDiskUnlocked(d)
		if cerr != nil {
			return cerr
		}
		switch {
		case !counted:
			// Written during every count, or lazy: compared at a later check.
		case !ok:
			errs = append(errs, fmt.Errorf("%w: disk %q: no count", errAccounting, di.Name))
		case got != n:
			errs = append(errs, fmt.Errorf("%w: disk %q (layer %d): running count %d blocks, full count %d", errAccounting, di.Name, layer, got, n))
		}
	}
	var snaps []index.Snapshot
	var images []index.Image
	if err := s.idx.View(func(t *index.Txn) error {
		if err := index.Each(t, index.KindSnapshot, func(r index.Snapshot) error { snaps = append(snaps, r); return nil }); err != nil {
			return err
		}
		return index.Each(t, index.KindImage, func(r index.Image) error { images = append(images, r); return nil })
	}); err != nil {
		return err
	}
	full := func(l link, size int64, bs int) (int64, error) {
		var chain []link
		if err := s.idx.View(func(t *index.Txn) error {
			var err error
			chain, err = chainOf(t, l.layer, l.epoch)
			return err
		}); err != nil {
			return 0, err
		}
		if s.lazyChain(chain) {
			return -1, nil
		}
		n, err := s.countVisible(chain, blockCount(size, bs))
		return n * int64(bs), err
	}
	for _, sn := range snaps {
		for _, m := range sn.Members {
			if m.Allocated == nil {
				continue
			}
			n, err := full(link{m.Layer, m.Epoch}, m.Size, m.BlockSize)
			if err != nil {
				return err
			}
			if n >= 0 && n != *m.Allocated {
				errs = append(errs, fmt.Errorf("%w: snapshot %q disk %q: recorded %d bytes, full count %d", errAccounting, sn.Name, m.Disk, *m.Allocated, n))
			}
		}
	}
	for _, im := range images {
		if im.Allocated == nil {
			continue
		}
		n, err := full(link{im.Layer, im.Epoch}, im.Size, im.BlockSize)
		if err != nil {
			return err
		}
		if n >= 0 && n != *im.Allocated {
			errs = append(errs, fmt.Errorf("%w: image %q: recorded %d bytes, full count %d", errAccounting, im.Name, *im.Allocated, n))
		}
	}
	return errors.Join(errs...)
}
