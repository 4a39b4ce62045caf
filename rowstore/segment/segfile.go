package segment

// One segment file: the active segment's gathering buffer (write-behind).

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

type segFile struct {
	num ids.Segment
	// cleaner: a segment of the cleaner stream (created by it, or found
	// to be its last one by Open); never changed once shared.
	cleaner bool
	// fresh: created by this Log (startSegment), so every record in it
	// went through appendEncodedLocked and mixed is exact; never changed
	// once shared. mixed: a record other than KindData was appended to
	// it (see DataOnly).
	fresh bool
	mixed atomic.Bool
	// f is the open handle, nil until the segment is first read (old
	// segments are opened lazily). Written under Log.mu held for writing.
	f vfs.File
	// size is the segment's size. Only the active segment grows; it is
	// stored after a record is completely written (to the file or to wbuf).
	size atomic.Int64

	// The active segment gathers appends in wbuf and writes them in large
	// pieces: fewer system calls, and the page cache keeps large folios, which
	// makes reads of the segment several times faster than after many small
	// writes. Bytes [flushed, size) are in wbuf, not yet in the file.
	bufMu   sync.Mutex
	wbuf    []byte
	flushed int64
	// Early writeback (EarlyWriteback, as RocksDB's bytes_per_sync):
	// [wbStarted, flushed) was written but its writeback not started yet
	// (under bufMu); wbBusy while a start is under way.
	wbStarted int64
	wbBusy    atomic.Bool
	// wbEvery is the bytes written between starts: EarlyWriteback, at most
	// a quarter of the rotation size when the segment started (a small
	// segment's sync at rotation then finds at most a quarter of it left).
	wbEvery int64

	used atomic.Int64 // Log.clock at the last read, for closing the least recently used

	// prev is the background sync of the segment sealed before this one
	// started (rotation), nil if none: nothing of this segment is written
	// to its file before it ended (flushLocked); set before the segment is
	// shared, never changed. seal is this segment's own, set under Log.mu
	// when it is sealed: its file is not closed before it ended.
	prev *sealSync
	seal *sealSync
}

// openSegmentsBound bounds the open handles of old segments; the least
// recently read is closed (and reopened on its next read) beyond it. It is
// a quarter of the process's file limit (RLIMIT_NOFILE; Go raises the soft
// limit to the hard one at start), between minOpenSegments and
// maxOpenSegments. It was 256: a fresh store's first GiB written makes
// about 450 segments while the cleaner runs (its rotation size is a 64th
// of what is live), so the random reads after it (the read-modify-writes
// of random 4 KiB writes too) mostly opened a segment and closed another,
// under the Log's write lock. BenchmarkRandAfterSeqWrite, 256 against
// 4096 interleaved, 2 rounds, load 9-11: random 4 KiB reads 9.9 and 13.5
// -> 5.6 and 5.5 us of CPU each, random 4 KiB writes 62 and 50 -> 44 and
// 44 us.
var openSegmentsBound = sync.OnceValue(func() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur/4 < minOpenSegments {
		return minOpenSegments
	}
	return int(min(lim.Cur/4, maxOpenSegments))
})

const (
	minOpenSegments = 256
	maxOpenSegments = 4096
)

// writeBehind is how much the active segment gathers before it writes;
// maxGather, how much it gathers while the segment before is still being
// synced (a write would wait for that sync).
const (
	writeBehind = 1 << 20
	maxGather   = 3 * writeBehind
)

// flushLocked writes wbuf to the file (bufMu held). On failure the bytes
// stay in wbuf and the file is cut back to what was flushed before.
func (s *segFile) flushLocked() error {
	if len(s.wbuf) == 0 {
		return nil
	}
	// The segment before this one must be synced in full before a byte of
	// this one reaches the file (a crash leaves a prefix of the log). Its
	// sync started at rotation, about writeBehind of appends ago: it has
	// usually ended.
	if err := s.prev.wait(); err != nil {
		return err
	}
	if _, err := s.f.WriteAt(s.wbuf, s.flushed); err != nil {
		if terr := s.f.Truncate(s.flushed); terr != nil {
			return errors.Join(err, terr)
		}
		return err
	}
	s.flushed += int64(len(s.wbuf))
	if s.flushed-s.wbStarted >= s.wbEvery {
		s.startWriteback()
	}
	if cap(s.wbuf) > 4*writeBehind {
		s.wbuf = nil
	} else {
		s.wbuf = s.wbuf[:0]
	}
	return nil
}

// flush writes what the active segment holds in memory.
func (s *segFile) flush() error {
	s.bufMu.Lock()
	defer s.bufMu.Unlock()
	return s.flushLocked()
}

// readBuffered copies to p what of [off, off+len(p)) is still in wbuf, and
// reports how many leading bytes of p must come from the file.
func (s *segFile) readBuffered(p []byte, off int64) (fromFile int) {
	s.bufMu.Lock()
	defer s.bufMu.Unlock()
	end := off + int64(len(p))
	if end <= s.flushed {
		return len(p)
	}
	start := max(off, s.flushed)
	copy(p[start-off:], s.wbuf[start-s.flushed:min(end-s.flushed, int64(len(s.wbuf)))])
	return int(start - off)
}

// EarlyWriteback is how many bytes written to the active segment start
// their writeback to the device (sync_file_range WRITE, in the background:
// the appender never waits for it), as RocksDB's bytes_per_sync. Without
// it the page cache holds everything appended since the last Sync (the
// kernel's own writeback starts at 10 % of memory or after 30 s), and the
// next Sync (a commit, a snapshot) writes all of it; with it a Sync finds
// at most a few MiB left. A variable for benchmarks; 0 turns it off.
var EarlyWriteback int64 = 4 << 20

// startWriteback starts the writeback of [wbStarted, flushed) (bufMu held)
// if the file supports it and no start is under way (else the next flush
// covers this range too).
func (s *segFile) startWriteback() {
	w, ok := s.f.(interface{ StartWriteback(off, n int64) error })
	if !ok || EarlyWriteback <= 0 || !s.wbBusy.CompareAndSwap(false, true) {
		return
	}
	off, n := s.wbStarted, s.flushed-s.wbStarted
	s.wbStarted = s.flushed
	go func() {
		defer s.wbBusy.Store(false)
		_ = w.StartWriteback(off, n) // a hint: a failure shows at Sync
	}()
}
