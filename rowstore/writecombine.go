package rowstore

import (
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/snapfs/snapfs/index"
)

// Combined writes (see "Data path: where the time goes" in the package
// doc). Writes of whole, aligned blocks (their digests computed before
// the disk's lock) are queued on the disk; the writer that finds no
// combiner running becomes it: it takes the disk's lock once and applies,
// in queue order, every write queued meanwhile, waking each writer with
// its result. So a burst of small writes costs one hand-off of the disk's
// lock, not one a write (each woke the next writer's goroutine, which then
// had to be scheduled while the lock stayed idle: with random 4 KiB writes
// at iodepth 16, 3-4.5 writers waited on the lock and a write took 38-48
// us of wall time for 8-9 us of CPU). A combiner applies at most
// combineMax writes, then hands the role to the next queued writer and
// returns, so its own caller is never held up by a stream of others. The
// work per write is writeLocked, unchanged; other users of the disk's lock
// (partial writes, reads, Sync, snapshots) take it as before.
//
// Lock order: writeCombiner.mu is a leaf, taken with or without the
// disk's lock.

// combineMax bounds the writes one combiner applies before handing off.
const combineMax = 64

// writeCombiner is a disk's queue of whole-block writes.
type writeCombiner struct {
	mu     sync.Mutex
	queue  []*writeReq
	active bool // a combiner runs (or was handed the role)
}

// writeReq is one queued write; wake gets false when it is done (n, err
// set), true when its writer is to combine.
type writeReq struct {
	h       *Disk
	p       []byte
	off     int64
	pre     []index.Version
	preZero []bool
	n       int
	err     error
	wake    chan bool
}

// writeCombined is WriteAt for whole, aligned blocks with their digests.
func (h *Disk) writeCombined(p []byte, off int64, pre []index.Version, preZero []bool) (int, error) {
	d := h.d
	r := &writeReq{h: h, p: p, off: off, pre: pre, preZero: preZero, wake: make(chan bool, 1)}
	d.wc.mu.Lock()
	d.wc.queue = append(d.wc.queue, r)
	lead := !d.wc.active
	d.wc.active = true
	d.wc.mu.Unlock()
	if !lead {
		lead = <-r.wake
	}
	if lead {
		d.combine() // r is first in what it takes: done when it returns
	}
	return r.n, r.err
}

// combine applies queued writes under the disk's lock until the queue is
// empty or combineMax were applied (then the next queued writer combines).
func (d *diskState) combine() {
	d.mu.Lock()
	var batch []*writeReq
	done := 0
	for {
		d.wc.mu.Lock()
		if len(d.wc.queue) == 0 {
			d.wc.active = false
			d.wc.mu.Unlock()
			d.mu.Unlock()
			return
		}
		if done >= combineMax {
			next := d.wc.queue[0] // stays queued: its writer takes it first
			d.wc.mu.Unlock()
			d.mu.Unlock()
			next.wake <- true
			return
		}
		batch = append(batch[:0], d.wc.queue...)
		clear(d.wc.queue)
		d.wc.queue = d.wc.queue[:0]
		d.wc.mu.Unlock()
		for i, r := range batch {
			d.applyReq(r)
			batch[i] = nil
			done++
		}
	}
}

// applyReq applies one queued write (disk's lock held) and wakes its
// writer. A panic fails that write alone (the combiner goes on: the
// others' writers are waiting).
func (d *diskState) applyReq(r *writeReq) {
	defer func() {
		if v := recover(); v != nil {
			d.s.log.Error("panic in a combined write", "disk", d.name, "panic", v, "stack", string(debug.Stack()))
			r.n, r.err = 0, fmt.Errorf("write to disk %q: internal error: %v", d.name, v)
		}
		r.wake <- false
	}()
	r.n, r.err = r.h.writeLocked(r.p, r.off, false, r.pre, r.preZero)
}
