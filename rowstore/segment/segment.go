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
//   - SetPrecreate (the engine's cleaner): the next segment's file is created
//     in the background while the active one fills, so a rotation waits for
//     one fsync (the old segment's), not three. Open first removes trailing
//     files that hold no record, then recovers the last one that does.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// DefaultSegmentSize is the rotation size used when Options.SegmentSize is 0.
const DefaultSegmentSize = 256 << 20

// readAhead is how much Scan reads at a time.
const readAhead = 1 << 20

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
	// OnCorrupt, if set, is called for every corrupt record Scan skips.
	OnCorrupt func(*CorruptError)
}

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Number uint64
	Size   int64
}

type segFile struct {
	num uint64
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

	used atomic.Int64 // Log.clock at the last read, for closing the least recently used
}

// maxOpenSegments bounds the open handles of old segments; the least
// recently read is closed (and reopened on its next read) beyond it.
const maxOpenSegments = 256

// writeBehind is how much the active segment gathers before it writes.
const writeBehind = 1 << 20

// flushLocked writes wbuf to the file (bufMu held). On failure the bytes
// stay in wbuf and the file is cut back to what was flushed before.
func (s *segFile) flushLocked() error {
	if len(s.wbuf) == 0 {
		return nil
	}
	if _, err := s.f.WriteAt(s.wbuf, s.flushed); err != nil {
		if terr := s.f.Truncate(s.flushed); terr != nil {
			return errors.Join(err, terr)
		}
		return err
	}
	s.flushed += int64(len(s.wbuf))
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
	clock     atomic.Int64 // counts reads, for segFile.used

	// appendMu serializes Append, Rotate and Close. INVARIANT: active is
	// replaced only with both appendMu and mu held.
	appendMu sync.Mutex

	mu     sync.RWMutex
	segs   map[uint64]*segFile
	order  []uint64 // segment numbers, ascending
	active *segFile
	closed bool
	err    error // sticky write-path error

	// spare is the next segment, created ahead in the background while
	// SetPrecreate is on, so a rotation does not wait for the creation's
	// two fsyncs (file, directory) with appends held; under appendMu.
	precreate atomic.Bool
	spare     *spareSegment
}

// spareSegment is a segment file being created ahead of its use: num's file
// (header only, synced, directory synced) once done is closed, unless err.
type spareSegment struct {
	num  uint64
	done chan struct{}
	f    vfs.File
	err  error
}

func segName(n uint64) string { return fmt.Sprintf("%016x.seg", n) }

func parseSegName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(hex, 16, 64)
	if err != nil || n == 0 || segName(n) != name {
		return 0, false
	}
	return n, true
}

func (l *Log) path(n uint64) string { return path.Join(l.dir, segName(n)) }

// Open opens (creating dir and segment 1 if empty) the log in dir. It finds the
// valid end of the LAST segment by scanning it, truncates a torn or corrupt
// tail there (syncing the truncation), and then starts appending to a NEW
// segment (so a partially written segment is never appended to again). Older
// segments are not scanned here. A segment whose file header is from a newer
// format version is an error wrapping ErrIncompatible.
func Open(fsys vfs.FS, dir string, opts Options) (*Log, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		fs:        fsys,
		dir:       dir,
		log:       opts.Logger.With("component", "segment", "dir", dir),
		segs:      map[uint64]*segFile{},
		onCorrupt: opts.OnCorrupt,
		durable:   opts.Durable,
	}
	l.segSize.Store(opts.SegmentSize)
	if err := l.open(); err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("segment: open %s: %w", dir, err)
	}
	var total int64
	for _, s := range l.segs {
		total += s.size.Load()
	}
	l.bytes.Store(total)
	return l, nil
}

func (l *Log) open() error {
	if err := vfs.MkdirAllSync(l.fs, l.dir, 0o700); err != nil {
		return err
	}
	names, err := l.fs.List(l.dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		n, ok := parseSegName(name)
		if !ok {
			continue
		}
		st, err := l.fs.Stat(l.path(n))
		if err != nil {
			return err
		}
		s := &segFile{num: n}
		s.size.Store(st.Size())
		l.segs[n] = s
		l.order = append(l.order, n)
	}
	slices.Sort(l.order)
	if len(l.order) == 0 {
		return l.startSegment(1)
	}
	// Trailing files that hold no record (a segment created ahead of its
	// use, see SetPrecreate, or one created just before a crash) go first:
	// the segment before them is the one whose tail must be recovered.
	// Numbers are never reused: the next segment follows the highest one.
	next := l.order[len(l.order)-1] + 1
	for len(l.order) > 1 {
		n := l.order[len(l.order)-1]
		if l.segs[n].size.Load() > FileHeaderSize {
			break
		}
		if err := l.fs.Remove(l.path(n)); err != nil {
			return err
		}
		delete(l.segs, n)
		l.order = l.order[:len(l.order)-1]
	}
	last := l.segs[l.order[len(l.order)-1]]
	empty, err := l.recoverTail(last)
	if err != nil {
		return err
	}
	if err := l.startSegment(next); err != nil {
		return err
	}
	if empty {
		// Replaced by the new segment: drop it, and make that durable.
		if last.f != nil {
			last.f.Close()
			last.f = nil
		}
		if err := l.fs.Remove(l.path(last.num)); err != nil {
			return err
		}
		delete(l.segs, last.num)
		l.order = slices.DeleteFunc(l.order, func(n uint64) bool { return n == last.num })
		if err := l.fs.SyncDir(l.dir); err != nil {
			return err
		}
	}
	return nil
}

// recoverTail opens the last segment read-write, finds the end of its valid
// records and truncates anything after it. It reports whether the segment
// holds no record at all (its header may even be torn).
func (l *Log) recoverTail(s *segFile) (empty bool, err error) {
	size := s.size.Load()
	if size < FileHeaderSize {
		l.log.Warn("segment: dropping segment with a torn header", "segment", s.num, "size", size)
		return true, nil
	}
	f, err := l.fs.OpenReadWrite(l.path(s.num))
	if err != nil {
		return false, err
	}
	s.f = f
	h := make([]byte, FileHeaderSize)
	if _, err := f.ReadAt(h, 0); err != nil && err != io.EOF {
		return false, err
	}
	if err := checkFileHeader(h, s.num); err != nil {
		if errors.Is(err, ErrIncompatible) {
			return false, fmt.Errorf("segment %d: %w", s.num, err)
		}
		if size == FileHeaderSize {
			// The header is the whole file: it was never synced, so no
			// record was ever written after it.
			l.log.Warn("segment: dropping segment with a torn header", "segment", s.num)
			return true, nil
		}
		return false, &CorruptError{Segment: s.num, Offset: 0, Err: err}
	}
	r := segReader{l: l, num: s.num, size: size}
	off := int64(FileHeaderSize)
	for off < size {
		_, n, ioErr, decErr := r.record(off)
		if ioErr != nil {
			return false, ioErr
		}
		if decErr != nil {
			if errors.Is(decErr, ErrIncompatible) {
				return false, &CorruptError{Segment: s.num, Offset: off, Err: decErr}
			}
			// Before Options.Durable the records were synced, so a bad
			// record there is corruption, not a torn write: keep the
			// segment whole (later records are acknowledged data) and
			// report it. Past it, the first bad record starts a torn tail.
			if s.num > l.durable.Segment || (s.num == l.durable.Segment && off >= l.durable.Offset) {
				break // past what is known durable: a torn tail
			}
			next, err := r.nextValid(off)
			if err != nil {
				return false, err
			}
			// Even as the last record it is kept: cutting it would turn a
			// corrupt, indexed block into one the index points past (check
			// could then not name it, nor repair rewrite it).
			// Info, not Error: reads of it fail as corrupt and `snapfs
			// check` reports it; a one-shot command must print one line.
			l.log.Info("segment: corrupt record before the durable position; keeping the segment whole",
				"segment", s.num, "offset", off, "next_valid", next, "err", decErr)
			off = size
			break
		}
		off += int64(n)
	}
	if off < size {
		l.log.Warn("segment: truncating torn or corrupt tail", "segment", s.num, "offset", off, "bytes", size-off)
		if err := f.Truncate(off); err != nil {
			return false, err
		}
		s.size.Store(off)
	}
	// Sync even when nothing was truncated: what we read may be only in the
	// page cache (the previous process died before its Sync), and once the
	// next segment exists this one must be durable in full.
	if err := f.Sync(); err != nil {
		return false, err
	}
	return off == FileHeaderSize, nil
}

// createSegment creates segment n with its header, durable (file synced, then
// the directory). On error nothing is left behind but, at worst, a file
// without records, which Open drops.
func (l *Log) createSegment(n uint64) (vfs.File, error) {
	name := l.path(n)
	f, err := l.fs.Create(name)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (vfs.File, error) {
		f.Close()
		l.fs.Remove(name)
		return nil, err
	}
	if _, err := f.WriteAt(fileHeader(n), 0); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fail(err)
	}
	return f, nil
}

// SetPrecreate turns on (or off) creating the next segment in the
// background while the active one fills. A spare file left by a crash holds
// no record (header only): Open drops it.
func (l *Log) SetPrecreate(on bool) {
	l.precreate.Store(on)
}

// takeSpare returns the pre-created file of segment n, if there is one
// (appendMu held). A spare for another number, or one whose creation
// failed, is dropped.
func (l *Log) takeSpare(n uint64) vfs.File {
	sp := l.spare
	if sp == nil {
		return nil
	}
	l.spare = nil
	<-sp.done
	if sp.err != nil {
		return nil
	}
	if sp.num != n {
		sp.f.Close()
		l.fs.Remove(l.path(sp.num))
		return nil
	}
	return sp.f
}

// prepareSpare starts creating segment n in the background (appendMu held).
func (l *Log) prepareSpare(n uint64) {
	if !l.precreate.Load() || l.spare != nil {
		return
	}
	sp := &spareSegment{num: n, done: make(chan struct{})}
	l.spare = sp
	go func() {
		defer close(sp.done)
		sp.f, sp.err = l.createSegment(n)
	}()
}

// startSegment creates segment n (or takes its pre-created file) and makes
// it the active one. The caller holds appendMu (or is Open).
func (l *Log) startSegment(n uint64) error {
	f := l.takeSpare(n)
	if f == nil {
		var err error
		if f, err = l.createSegment(n); err != nil {
			return err
		}
	}
	defer l.prepareSpare(n + 1)
	s := &segFile{num: n, f: f, flushed: FileHeaderSize}
	s.size.Store(FileHeaderSize)
	l.bytes.Add(FileHeaderSize)
	l.mu.Lock()
	l.segs[n] = s
	l.order = append(l.order, n)
	l.active = s
	l.closeLRULocked()
	l.mu.Unlock()
	return nil
}

// rotateLocked syncs the active segment and starts the next one.
func (l *Log) rotateLocked() error {
	old := l.active
	if err := l.retry(old.flush); err != nil {
		return fmt.Errorf("segment: write segment %d: %w", old.num, err)
	}
	if err := old.f.Sync(); err != nil {
		l.fail(err)
		return fmt.Errorf("segment: sync segment %d: %w", old.num, err)
	}
	if err := l.retry(func() error { return l.startSegment(old.num + 1) }); err != nil {
		return fmt.Errorf("segment: create segment %d: %w", old.num+1, err)
	}
	return nil
}

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

// Append adds r at the end of the log (gathered in memory and written in
// pieces, see the package doc;
// rotating first if the active segment is full: the old segment is synced
// before the new one is created, and the directory is synced after creation).
// It returns the record's position. The data is durable only after Sync.
func (l *Log) Append(r *Record) (Pos, error) {
	if err := validate(r); err != nil {
		return Pos{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(r.Payload) > MaxPayload {
		return Pos{}, fmt.Errorf("%w: payload of %d bytes", ErrInvalid, len(r.Payload))
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.usable(); err != nil {
		return Pos{}, err
	}
	n := int64(HeaderSize + len(r.Payload))
	if size := l.active.size.Load(); size > FileHeaderSize && size+n > l.segSize.Load() {
		if err := l.rotateLocked(); err != nil {
			return Pos{}, err
		}
	}
	s := l.active
	off := s.size.Load()
	s.bufMu.Lock()
	defer s.bufMu.Unlock()
	// Write what is gathered first if this record would overflow it, so a
	// failed write (ENOSPC) fails this Append and loses nothing appended.
	if len(s.wbuf) > 0 && len(s.wbuf)+int(n) > writeBehind {
		if err := l.retry(s.flushLocked); err != nil {
			return Pos{}, fmt.Errorf("segment: append to segment %d at %d: %w", s.num, s.flushed, err)
		}
	}
	s.wbuf = Encode(s.wbuf, r)
	s.size.Store(off + n)
	l.bytes.Add(n)
	return Pos{Segment: s.num, Offset: off, Length: uint32(n)}, nil
}

// Sync makes every record appended before it durable (fsync of the active
// segment; earlier segments were synced at rotation). A failed Sync breaks the
// log: the state of the unsynced data is unknown, so every later Append and
// Sync returns the error until the log is reopened.
func (l *Log) Sync() error {
	l.mu.RLock()
	if l.closed || l.err != nil {
		l.mu.RUnlock()
		return l.usable()
	}
	s := l.active
	if err := l.retry(s.flush); err != nil {
		l.mu.RUnlock()
		return fmt.Errorf("segment: write segment %d: %w", s.num, err)
	}
	err := s.f.Sync()
	l.mu.RUnlock()
	if err != nil {
		l.fail(err)
		return fmt.Errorf("segment: sync segment %d: %w", s.num, err)
	}
	return nil
}

// openSegment opens an old segment for reading and checks its header.
// closeLRULocked closes the least recently read old segment when
// maxOpenSegments are open (l.mu held for writing, so no read is using it).
func (l *Log) closeLRULocked() {
	open := 0
	var victim *segFile
	for _, s := range l.segs {
		if s.f == nil {
			continue
		}
		open++
		if s != l.active && (victim == nil || s.used.Load() < victim.used.Load()) {
			victim = s
		}
	}
	if open >= maxOpenSegments && victim != nil {
		victim.f.Close()
		victim.f = nil
	}
}

func (l *Log) openSegment(n uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.segs[n]
	if l.closed || !ok || s.f != nil {
		return nil // the caller looks again
	}
	l.closeLRULocked()
	f, err := l.fs.Open(l.path(n))
	if err != nil {
		return fmt.Errorf("segment: open segment %d: %w", n, err)
	}
	h := make([]byte, FileHeaderSize)
	if _, err := f.ReadAt(h, 0); err != nil && err != io.EOF {
		f.Close()
		return fmt.Errorf("segment: read header of segment %d: %w", n, err)
	}
	if err := checkFileHeader(h, n); err != nil {
		f.Close()
		if errors.Is(err, ErrIncompatible) {
			return fmt.Errorf("segment %d: %w", n, err)
		}
		return &CorruptError{Segment: n, Offset: 0, Err: err}
	}
	s.f = f
	return nil
}

// readAt reads len(p) bytes of segment n at off, opening the segment if
// needed. It returns io.EOF (or io.ErrUnexpectedEOF) if the file is shorter.
func (l *Log) readAt(n uint64, p []byte, off int64) (int, error) {
	for {
		l.mu.RLock()
		if l.closed {
			l.mu.RUnlock()
			return 0, fmt.Errorf("segment: log %s: %w", l.dir, os.ErrClosed)
		}
		s, ok := l.segs[n]
		if !ok {
			l.mu.RUnlock()
			return 0, fmt.Errorf("segment: segment %d: %w", n, fs.ErrNotExist)
		}
		if f := s.f; f != nil {
			s.used.Store(l.clock.Add(1))
			k := len(p)
			if s == l.active {
				k = s.readBuffered(p, off)
			}
			var m int
			var err error
			if k > 0 {
				m, err = f.ReadAt(p[:k], off)
			}
			l.mu.RUnlock()
			if m == k {
				return len(p), nil
			}
			return m, err
		}
		l.mu.RUnlock()
		if err := l.openSegment(n); err != nil {
			return 0, err
		}
	}
}

// ReadRaw reads len(p) bytes of segment n at off, unverified: callers that
// read several adjacent records with one call decode each with Decode, which
// checks its CRC. A read past the end of the segment is an error wrapping
// ErrShort.
func (l *Log) ReadRaw(n uint64, p []byte, off int64) error {
	m, err := l.readAt(n, p, off)
	if m == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &CorruptError{Segment: n, Offset: off, Err: fmt.Errorf("%w: %d bytes at %d extend past the end of the segment", ErrShort, len(p), off)}
	}
	return fmt.Errorf("segment: read segment %d at %d: %w", n, off, err)
}

// Read reads and verifies the record at pos into buf (reused if large enough)
// and returns it; its Payload aliases buf. A checksum or decode failure returns
// a *CorruptError naming segment and offset, which wraps ErrCorrupt.
func (l *Log) Read(pos Pos, buf []byte) (Record, error) {
	corrupt := func(err error) (Record, error) {
		return Record{}, &CorruptError{Segment: pos.Segment, Offset: pos.Offset, Err: err}
	}
	if pos.Length < HeaderSize || pos.Length > HeaderSize+MaxPayload || pos.Offset < FileHeaderSize {
		return corrupt(fmt.Errorf("%w: bad position %v", ErrCorrupt, pos))
	}
	if cap(buf) < int(pos.Length) {
		buf = make([]byte, pos.Length)
	}
	buf = buf[:pos.Length]
	if _, err := l.readAt(pos.Segment, buf, pos.Offset); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corrupt(fmt.Errorf("%w: record %v extends past the end of the segment", ErrShort, pos))
		}
		return Record{}, fmt.Errorf("segment: read %v: %w", pos, err)
	}
	r, n, err := Decode(buf)
	if err != nil {
		return corrupt(err)
	}
	if n != int(pos.Length) {
		return corrupt(fmt.Errorf("%w: record is %d bytes, position says %d", ErrCorrupt, n, pos.Length))
	}
	return r, nil
}

// segReader reads records of one segment sequentially through a read-ahead
// window.
type segReader struct {
	l      *Log
	num    uint64
	size   int64 // bytes of the segment to consider
	buf    []byte
	bufOff int64
	bufLen int
}

// peek returns up to n bytes at off (fewer only at the end of the file).
func (r *segReader) peek(off int64, n int) ([]byte, error) {
	if off >= r.bufOff && off+int64(n) <= r.bufOff+int64(r.bufLen) {
		i := off - r.bufOff
		return r.buf[i : i+int64(n)], nil
	}
	want := int(min(int64(max(n, readAhead)), r.size-off))
	if want < n {
		want = n
	}
	if cap(r.buf) < want {
		r.buf = make([]byte, want)
	}
	m, err := r.l.readAt(r.num, r.buf[:want], off)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		r.bufLen = 0
		return nil, err
	}
	r.bufOff, r.bufLen = off, m
	return r.buf[:min(n, m)], nil
}

// nextValid returns the offset of the first valid record after the bad
// record at bad, or -1 if there is none before the end of the segment.
//
// It first tries the boundary the bad record's own header names (a flipped
// bit in a payload leaves the header intact), and only if that fails
// searches byte by byte. The byte search can in principle take a record
// encoded inside some payload (a disk holding a segment file) for a real
// one, which is why it is the last resort.
func (r *segReader) nextValid(bad int64) (int64, error) {
	if h, err := r.peek(bad, int(min(HeaderSize, r.size-bad))); err != nil {
		return -1, err
	} else if len(h) == HeaderSize && binary.LittleEndian.Uint32(h) == recordMagic {
		if plen := int64(binary.LittleEndian.Uint32(h[40:])); plen <= MaxPayload {
			next := bad + HeaderSize + plen
			if next == r.size {
				return -1, nil
			}
			if next < r.size {
				_, _, ioErr, decErr := r.record(next)
				if ioErr != nil {
					return -1, ioErr
				}
				if decErr == nil {
					return next, nil
				}
			}
		}
	}
	off := bad + 1
	for ; off+HeaderSize <= r.size; off++ {
		b, err := r.peek(off, 4)
		if err != nil {
			return -1, err
		}
		if len(b) < 4 || b[0] != 'F' || b[1] != 'S' || b[2] != 'P' || b[3] != 'R' {
			continue
		}
		_, _, ioErr, decErr := r.record(off)
		if ioErr != nil {
			return -1, ioErr
		}
		if decErr == nil {
			return off, nil
		}
	}
	return -1, nil
}

// record decodes the record at off. ioErr is a failure to read; decErr a
// record that does not decode (torn or corrupt).
func (r *segReader) record(off int64) (rec Record, n int, ioErr, decErr error) {
	avail := r.size - off
	h, err := r.peek(off, int(min(HeaderSize, avail)))
	if err != nil {
		return Record{}, 0, err, nil
	}
	if len(h) == HeaderSize {
		plen := int64(h[40]) | int64(h[41])<<8 | int64(h[42])<<16 | int64(h[43])<<24
		if plen <= MaxPayload {
			if h, err = r.peek(off, int(min(HeaderSize+plen, avail))); err != nil {
				return Record{}, 0, err, nil
			}
		}
	}
	rec, n, err = Decode(h)
	return rec, n, nil, err
}

// Scan calls fn for every valid record from pos `from` (Segment 0 means from the
// first segment's first record; Offset 0 means the first record of that
// segment) to the end of the log, in log order. A corrupt record followed by
// valid ones is skipped (logged, and passed to Options.OnCorrupt); a torn or
// corrupt tail of the last segment ends the scan silently; a record of a
// newer format version is an error (*CorruptError wrapping ErrIncompatible). It returns the position just past
// the last valid record (Pos with Length 0).
//
// The record passed to fn, and its Payload, are valid only during the call.
// Scan visits the records present when it starts. An error from fn stops the
// scan and is returned as is.
func (l *Log) Scan(from Pos, fn func(r *Record, pos Pos) error) (Pos, error) {
	type snap struct {
		num  uint64
		size int64
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return Pos{}, fmt.Errorf("segment: log %s: %w", l.dir, os.ErrClosed)
	}
	var segs []snap
	for _, n := range l.order {
		if n >= from.Segment {
			segs = append(segs, snap{n, l.segs[n].size.Load()})
		}
	}
	lastNum := l.order[len(l.order)-1]
	l.mu.RUnlock()

	end := Pos{Segment: from.Segment, Offset: max(from.Offset, FileHeaderSize)}
	var rbuf []byte
	for _, s := range segs {
		off := int64(FileHeaderSize)
		if s.num == from.Segment && from.Offset > off {
			off = from.Offset
		}
		end = Pos{Segment: s.num, Offset: off}
		r := segReader{l: l, num: s.num, size: s.size, buf: rbuf}
		for off < s.size {
			rec, n, ioErr, decErr := r.record(off)
			if ioErr != nil {
				return end, fmt.Errorf("segment: scan segment %d at %d: %w", s.num, off, ioErr)
			}
			if decErr != nil {
				if errors.Is(decErr, ErrIncompatible) {
					return end, &CorruptError{Segment: s.num, Offset: off, Err: decErr}
				}
				next, err := r.nextValid(off)
				if err != nil {
					return end, fmt.Errorf("segment: scan segment %d at %d: %w", s.num, off, err)
				}
				if next < 0 && s.num == lastNum {
					l.log.Warn("segment: scan stopped at a torn or corrupt tail",
						"segment", s.num, "offset", off, "bytes", s.size-off, "err", decErr)
					return end, nil
				}
				// Corruption in the middle of the log: report it and go on
				// with the next valid record, so one bad record never stops
				// recovery. Reads of the block it held fail with a checksum
				// error; `snapfs check` reports it.
				cerr := &CorruptError{Segment: s.num, Offset: off, Err: decErr}
				l.log.Error("segment: skipping corrupt record", "segment", s.num, "offset", off, "err", decErr)
				if l.onCorrupt != nil {
					l.onCorrupt(cerr)
				}
				if next < 0 {
					break
				}
				off = next
				continue
			}
			pos := Pos{Segment: s.num, Offset: off, Length: uint32(n)}
			if err := fn(&rec, pos); err != nil {
				return end, err
			}
			off += int64(n)
			end.Offset = off
		}
		rbuf = r.buf
	}
	return end, nil
}

// Tail returns the position where the next record would be appended (Length 0).
// (If the active segment is full, the next record goes to the next segment.)
func (l *Log) Tail() Pos {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return Pos{Segment: l.active.num, Offset: l.active.size.Load()}
}

// Segments lists the segment numbers and their sizes, oldest first.
func (l *Log) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]SegmentInfo, 0, len(l.order))
	for _, n := range l.order {
		out = append(out, SegmentInfo{Number: n, Size: l.segs[n].size.Load()})
	}
	return out
}

// Active returns the number of the segment being appended to.
func (l *Log) Active() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.active.num
}

// Rotate closes the active segment (synced) and starts a new one. The old
// segment's handle stays open for reads.
func (l *Log) Rotate() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	return l.rotateLocked()
}

// SetNoSpaceHook sets a function called when writing to the log fails for
// lack of space (ENOSPC, EDQUOT: a write of gathered records, or creating
// the next segment); if it returns true (it freed space), the write is
// tried once more. The engine gives back its space reserve there.
func (l *Log) SetNoSpaceHook(fn func() bool) { l.noSpace.Store(&fn) }

// retry runs op, and once more if it failed for lack of space and the
// no-space hook freed some. A failed write of gathered records is undone
// (the file cut back), so trying again is safe.
func (l *Log) retry(op func() error) error {
	err := op()
	if err != nil && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
		if h := l.noSpace.Load(); h != nil && (*h)() {
			err = op()
		}
	}
	return err
}

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
func (l *Log) Remove(segment uint64) error {
	if err := l.remove(segment); err != nil {
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("segment: remove segment %d: %w", segment, err)
	}
	return nil
}

// RemoveSegments deletes several segments (none the active one) and syncs
// the directory once. It stops at the first failure.
func (l *Log) RemoveSegments(segments []uint64) error {
	for _, n := range segments {
		if err := l.remove(n); err != nil {
			return err
		}
	}
	if len(segments) == 0 {
		return nil
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("segment: remove segments: %w", err)
	}
	return nil
}

// remove deletes a segment file without syncing the directory.
func (l *Log) remove(segment uint64) error {
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
	case s == l.active:
		l.mu.Unlock()
		return fmt.Errorf("segment: remove segment %d: %w: it is the active segment", segment, fs.ErrInvalid)
	}
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	if err := l.fs.Remove(l.path(segment)); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("segment: remove segment %d: %w", segment, err)
	}
	delete(l.segs, segment)
	l.order = slices.DeleteFunc(l.order, func(n uint64) bool { return n == segment })
	l.bytes.Add(-s.size.Load())
	l.mu.Unlock()
	return nil
}

// Close syncs and closes. It returns the sticky error if the log had failed.
// Closing a closed log does nothing.
func (l *Log) Close() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if sp := l.spare; sp != nil {
		// Its file stays: it holds no record, and Open drops it.
		l.spare = nil
		<-sp.done
		if sp.err == nil {
			sp.f.Close()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	var err error
	if l.err != nil {
		err = fmt.Errorf("segment: close %s: log failed earlier: %w", l.dir, l.err)
	} else {
		if ferr := l.active.flush(); ferr != nil {
			err = fmt.Errorf("segment: write segment %d: %w", l.active.num, ferr)
		} else if serr := l.active.f.Sync(); serr != nil {
			err = fmt.Errorf("segment: sync segment %d: %w", l.active.num, serr)
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
