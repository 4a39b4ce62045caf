package segment

// API NOTE: the API is the one agreed with the engine, with these additions
// (nothing was removed or renamed):
//   - ErrInvalid: Append refuses a record it would not be able to decode
//     (unknown kind, Seq 0 for data and zero records, a zero record whose
//     payload is not 8 bytes, a payload larger than MaxPayload).
//   - MaxPayload, Version, DefaultSegmentSize constants; Kind.String, Pos.String.
//   - After a write or sync error that leaves the tail of the active segment
//     unknown, the Log is broken: Append and Sync return that first error
//     until the Log is closed and reopened (which recovers the tail). A failed
//     write that could be undone (truncated back) is not sticky, so ENOSPC
//     can be retried after space was freed.
//   - Scan visits the records present when it starts; records appended while
//     it runs (for example by fn) are not visited. A `from` naming a segment
//     that no longer exists starts at the next existing segment.
//   - Options.Durable and Options.OnCorrupt (added by the engine author):
//     corruption in the middle of the log no longer stops Scan. A bad record
//     followed by a valid one is skipped, logged and passed to OnCorrupt; the
//     scan resumes at the boundary the bad header names, else at the next
//     offset where a valid record decodes. Only a bad tail of the last
//     segment (nothing valid after it) ends the scan silently. Open cuts the
//     last segment at its first bad record unless that record lies before
//     Options.Durable (then it keeps the segment whole and logs an error).
//     Read still returns *CorruptError for the bad record itself.
//   - SetSegmentSize changes the rotation size of a Log that is open; Bytes
//     is the sum of the segment sizes in constant time; RemoveSegments
//     removes several with one directory sync; SetNoSpaceHook lets the
//     engine free space when a write fails with ENOSPC, and the write is
//     tried once more.
//   - Open removes a last segment that holds no record (only its header, or a
//     torn header): it is replaced by the new segment, so restarts do not
//     pile up empty segments. Numbers still only grow.
//   - SetPrecreate (the engine's cleaner): the next segments' files are
//     created in the background while the active one fills (spareBatch at a
//     time, one directory sync), so a rotation waits for one fsync (the old
//     segment's), not three. Open first removes trailing
//     files that hold no record, then recovers the last one that does.
//   - AppendBatch (the engine's cleaner): several records appended in order
//     under one hold of the append lock. RemoveSegmentsUnsynced: removal
//     without the directory sync, for segments whose records are all dead
//     copies (a crash may bring them back; nothing is lost). A removal
//     unlinks the file after the segment left the table, outside Log.mu.
//   - A rotation's sync of the old segment runs in the background (package
//     doc, Invariants): Append, AppendBatch and Rotate no longer wait for an
//     fsync; Sync, Close and the next segment's first write do.
//   - The cleaner stream (package doc, "Two append streams"):
//     AppendCleanerRawBatch, SyncCleaner, SealCleaner, CleanerTail,
//     CleanerActive, NextNumber, SegmentInfo.Cleaner and
//     Options.CleanerDurable; FileVersion 2 and FlagCleanerStream.

// The Log: its state, naming of segment files, sizes, removal and Close.

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// DefaultSegmentSize is the rotation size used when Options.SegmentSize is 0.
const DefaultSegmentSize = 256 << 20

// Options configure a Log.
type Options struct {
	// SegmentSize: Append rotates to a new segment when the record would
	// make a segment that already holds a record larger than this. A single
	// record larger than SegmentSize gets a segment of its own. Default 256 MiB.
	SegmentSize int64
	// Logger receives warnings about recovered tails; nil discards.
	Logger *slog.Logger
	// Durable is a position up to which the log is known to be synced (the
	// engine's checkpoint). Open treats a bad record before it, in the last
	// segment, as corruption to report rather than a torn tail to cut.
	Durable Pos
	// CleanerDurable is Durable for the cleaner stream (the engine's mark,
	// written before the index names a copy in it): Open treats a bad
	// record before it, in the cleaner stream's last segment, as
	// corruption; past it, as a torn tail.
	CleanerDurable Pos
	// OnCorrupt, if set, is called for every corrupt record Scan skips.
	OnCorrupt func(*CorruptError)
	// DurableUnknown: no position is known durable (an index rebuild):
	// Open keeps a stream's last segment whole at a bad record with a
	// valid record after it (corruption), and cuts only a bad tail with
	// none after it ("Torn tail" in the package doc).
	DurableUnknown bool
	// OnTornTail, if set, is called for every tail Open cuts.
	OnTornTail func(TornTail)
}

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Number ids.Segment
	Size   int64
	// Cleaner: a segment of the cleaner stream, as far as this Log knows:
	// set for those it created and for the cleaner's last segment Open
	// recovered (Open does not read every header).
	Cleaner bool
}

// Log is the append-only log in one directory. Append and Sync are safe for
// concurrent use with each other and with ReadAt/Read; appends are serialized.
type Log struct {
	fs        vfs.FS
	dir       string
	segSize   atomic.Int64                // rotation size; see SetSegmentSize
	noSpace   atomic.Pointer[func() bool] // see SetNoSpaceHook
	bytes     atomic.Int64                // sum of the segments' sizes; see Bytes
	log       *slog.Logger
	onCorrupt func(*CorruptError)
	durable   Pos
	clDurable Pos
	clock     atomic.Int64 // counts reads, for segFile.used

	// appendMu serializes Append, Rotate and Close (the foreground
	// stream); clMu the cleaner stream's appends (AppendCleanerRawBatch,
	// SealCleaner; Close takes both, appendMu first). INVARIANT: a
	// stream's active is replaced only with its append lock and mu held.
	appendMu sync.Mutex
	clMu     sync.Mutex

	mu    sync.RWMutex
	segs  map[ids.Segment]*segFile
	order []ids.Segment // segment numbers, ascending
	fg    stream        // the foreground stream (Append); its active is never nil once open
	cl    stream        // the cleaner stream; active nil until its first append
	// clOpenEnd: the cleaner stream's end as Open recovered it (CleanerOpenEnd).
	clOpenEnd Pos
	closed    bool
	err       error // sticky write-path error

	// nextNum is the number the next segment created gets (both streams
	// share one numbering: numbers only grow).
	nextNum atomic.Uint64

	// precreate: each stream's next segments are created ahead in the
	// background (stream.spares), so a rotation does not wait for the
	// creation's two fsyncs (file, directory) with appends held.
	precreate atomic.Bool
}

// stream is one append stream of the log (see "Two append streams" in the
// package doc): its active segment and the gathering buffer of the segment
// it sealed last (for the next one), both under the stream's append lock.
type stream struct {
	flags    uint16 // file header flags of its segments
	active   *segFile
	wbufFree []byte
	// spares are the stream's next segments, in number order, created
	// ahead in batches while SetPrecreate is on (writer.go spareBatch);
	// their numbers are taken when their batch is started, so a stream's
	// segments are still numbered in the order it writes them.
	spares []*spareSegment
}

// allocNum returns a new segment number.
func (l *Log) allocNum() ids.Segment { return ids.Segment(l.nextNum.Add(1) - 1) }

// spareSegment is a segment file being created ahead of its use: num's file
// (header only, synced, directory synced) once done is closed, unless err.
// The spares of one batch share done.
type spareSegment struct {
	num  ids.Segment
	done chan struct{}
	f    vfs.File
	err  error
}

func segName(n ids.Segment) string { return fmt.Sprintf("%016x.seg", uint64(n)) }

func parseSegName(name string) (ids.Segment, bool) {
	hex, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	x, err := strconv.ParseUint(hex, 16, 64)
	n := ids.Segment(x)
	if err != nil || n == 0 || segName(n) != name {
		return 0, false
	}
	return n, true
}

func (l *Log) path(n ids.Segment) string { return path.Join(l.dir, segName(n)) }

// fail records the first sticky error.
func (l *Log) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

// usable returns why the log cannot be written, if it cannot.
func (l *Log) usable() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return fmt.Errorf("segment: log %s: %w", l.dir, os.ErrClosed)
	}
	if l.err != nil {
		return fmt.Errorf("segment: log %s failed earlier, reopen it: %w", l.dir, l.err)
	}
	return nil
}

// Tail returns the position where the next record would be appended (Length 0).
// (If the active segment is full, the next record goes to the next segment.)
func (l *Log) Tail() Pos {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return Pos{Segment: l.fg.active.num, Offset: l.fg.active.size.Load()}
}

// Segments lists the segment numbers and their sizes, oldest first.
func (l *Log) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]SegmentInfo, 0, len(l.order))
	for _, n := range l.order {
		s := l.segs[n]
		out = append(out, SegmentInfo{Number: n, Size: s.size.Load(), Cleaner: s.cleaner})
	}
	return out
}

// DataOnly reports whether segment n was created by this Log (since Open)
// and holds only KindData records (so far: an active segment may still
// receive others). The cleaner then needs no scan of the segment to find
// its records that are not data versions (holes, catalog changes), which
// its live map does not track: it reads only the records the map names
// (see "The cleaner's reads" in the rowstore package doc). A segment Open
// found, or one that does not exist, is not data-only.
func (l *Log) DataOnly(n ids.Segment) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s, ok := l.segs[n]
	return ok && s.fresh && !s.mixed.Load()
}

// Active returns the number of the segment being appended to (the
// foreground stream's: Append).
func (l *Log) Active() ids.Segment {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.fg.active.num
}

// CleanerActive returns the number of the cleaner stream's active segment,
// 0 if it has none (before its first append, after SealCleaner).
func (l *Log) CleanerActive() ids.Segment {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.cl.active == nil {
		return 0
	}
	return l.cl.active.num
}

// CleanerTail is Tail of the cleaner stream (the zero Pos while it has no
// active segment): SyncCleaner makes every record before it durable.
func (l *Log) CleanerTail() Pos {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.cl.active == nil {
		return Pos{}
	}
	return Pos{Segment: l.cl.active.num, Offset: l.cl.active.size.Load()}
}

// CleanerOpenEnd is how far the cleaner stream was whole and durable when
// Open recovered it: its last segment's end (its torn tail cut, synced),
// or, if it had none at or above Options.CleanerDurable's segment, the
// start of the foreground's new segment (every cleaner segment to come is
// numbered after it). The engine raises its mark to it.
func (l *Log) CleanerOpenEnd() Pos { return l.clOpenEnd }

// CleanerFloor is the lowest number the cleaner stream may still append
// to: its active segment's, else its first spare's, else NextNumber. Every
// segment numbered at or above it that is the cleaner's was (or will be)
// started after the call.
func (l *Log) CleanerFloor() ids.Segment {
	l.clMu.Lock()
	defer l.clMu.Unlock()
	if a := l.cl.active; a != nil {
		return a.num
	}
	if len(l.cl.spares) > 0 {
		return l.cl.spares[0].num
	}
	return ids.Segment(l.nextNum.Load())
}

// NextNumber is the number the next segment created will get: every
// segment created from now on, of either stream, is numbered at or above it.
func (l *Log) NextNumber() ids.Segment { return ids.Segment(l.nextNum.Load()) }

// isActive reports whether s is a stream's active segment (mu held).
func (l *Log) isActive(s *segFile) bool { return s == l.fg.active || s == l.cl.active }

// Bytes is the sum of the segments' sizes (what Segments lists), kept as
// records are appended and segments removed: cheap enough for every write.
func (l *Log) Bytes() int64 { return l.bytes.Load() }

// SetSegmentSize changes the size at which Append rotates to a new segment
// (n > 0), from the next Append on. The engine's cleaner makes segments
// small while what is live is small, so it can free space in small steps.
func (l *Log) SetSegmentSize(n int64) {
	if n > 0 {
		l.segSize.Store(n)
	}
}

// Remove deletes a segment that is not the active one (and syncs the dir).
func (l *Log) Remove(segment ids.Segment) error {
	return l.RemoveSegments([]ids.Segment{segment})
}

// RemoveSegments deletes several segments (none the active one) and syncs
// the directory once. It stops at the first failure.
func (l *Log) RemoveSegments(segments []ids.Segment) error {
	if err := l.RemoveSegmentsUnsynced(segments); err != nil {
		return err
	}
	if len(segments) == 0 {
		return nil
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("segment: remove segments: %w", err)
	}
	return nil
}

// RemoveSegmentsUnsynced is RemoveSegments without the directory sync: a
// crash may bring the files back. For segments whose records are all dead
// copies (the engine's cleaner repointed and synced the index first), so
// that one coming back is only space to reclaim again; the next segment
// created syncs the directory anyway. It stops at the first failure.
func (l *Log) RemoveSegmentsUnsynced(segments []ids.Segment) error {
	for _, n := range segments {
		if err := l.remove(n); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes a segment file without syncing the directory. The segment
// leaves the table under mu, the file is unlinked after (an unlink frees
// the file's blocks: reads and appends do not wait for it); if that fails
// the segment is put back.
func (l *Log) remove(segment ids.Segment) error {
	// Its background sync, if still running, is waited for before the
	// table is locked (a wait under Log.mu would stall every read of the
	// log behind that fsync); the wait below then finds it ended.
	l.mu.RLock()
	var seal *sealSync
	if s, ok := l.segs[segment]; ok {
		seal = s.seal
	}
	l.mu.RUnlock()
	seal.wait()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("segment: log %s: %w", l.dir, os.ErrClosed)
	}
	s, ok := l.segs[segment]
	switch {
	case !ok:
		l.mu.Unlock()
		return fmt.Errorf("segment: remove segment %d: %w", segment, fs.ErrNotExist)
	case l.isActive(s):
		l.mu.Unlock()
		return fmt.Errorf("segment: remove segment %d: %w: it is the active segment", segment, fs.ErrInvalid)
	}
	if s.f != nil {
		s.seal.wait() // ended, unless sealed since the wait above (it takes no lock before it ends)
		s.f.Close()
		s.f = nil
	}
	delete(l.segs, segment)
	l.order = slices.DeleteFunc(l.order, func(n ids.Segment) bool { return n == segment })
	l.bytes.Add(-s.size.Load())
	l.mu.Unlock()
	if err := l.fs.Remove(l.path(segment)); err != nil {
		l.mu.Lock()
		if !l.closed {
			l.segs[segment] = s
			i, _ := slices.BinarySearch(l.order, segment)
			l.order = slices.Insert(l.order, i, segment)
			l.bytes.Add(s.size.Load())
		}
		l.mu.Unlock()
		return fmt.Errorf("segment: remove segment %d: %w", segment, err)
	}
	return nil
}

// Close syncs and closes (both streams' active segments). It returns the
// sticky error if the log had failed. Closing a closed log does nothing.
func (l *Log) Close() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.clMu.Lock()
	defer l.clMu.Unlock()
	for _, st := range []*stream{&l.fg, &l.cl} {
		for _, sp := range st.spares {
			// Its file stays: it holds no record, and Open drops it.
			<-sp.done
			if sp.err == nil {
				sp.f.Close()
			}
		}
		st.spares = nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	var err error
	for _, a := range []*segFile{l.fg.active, l.cl.active} {
		if a == nil {
			continue
		}
		if l.err != nil {
			_ = a.prev.wait() // no seal may sync a file closed below
			if err == nil {
				err = fmt.Errorf("segment: close %s: log failed earlier: %w", l.dir, l.err)
			}
		} else if perr := a.prev.wait(); perr != nil { // the sealed segments' syncs
			err = perr
		} else if ferr := a.flush(); ferr != nil {
			err = fmt.Errorf("segment: write segment %d: %w", a.num, ferr)
		} else if serr := a.f.Sync(); serr != nil {
			err = fmt.Errorf("segment: sync segment %d: %w", a.num, serr)
		}
		if err != nil && l.err == nil {
			l.err = err // the other stream's active is only waited for
		}
	}
	l.closed = true
	if cerr := l.closeFilesLocked(); err == nil {
		err = cerr
	}
	return err
}

func (l *Log) closeFiles() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeFilesLocked()
}

func (l *Log) closeFilesLocked() error {
	var first error
	for _, s := range l.segs {
		if s.f != nil {
			if err := s.f.Close(); err != nil && first == nil {
				first = err
			}
			s.f = nil
		}
	}
	return first
}
