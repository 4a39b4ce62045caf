package segment

// Opening a log: listing segments and recovering the tail of the last one.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// Open opens (creating dir and a first segment if empty) the log in dir. It
// finds the last segment of each stream holding a record (the foreground's
// and the cleaner's: see "Two append streams" in the package doc), finds
// the valid end of each by scanning it, truncates a torn or corrupt tail
// there (syncing the truncation), and then starts appending to a NEW
// foreground segment (so a partially written segment is never appended to
// again); the cleaner stream starts a new segment at its first append.
// Older segments are not scanned here. A segment whose file header is from
// a newer format version is an error wrapping ErrIncompatible.
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
		segs:      map[ids.Segment]*segFile{},
		onCorrupt: opts.OnCorrupt,
		durable:   opts.Durable,
		clDurable: opts.CleanerDurable,
		cl:        stream{flags: FlagCleanerStream},
	}
	l.segSize.Store(opts.SegmentSize)
	if err := l.open(opts); err != nil {
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

func (l *Log) open(opts Options) error {
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
	// Numbers are never reused: the next segment follows the highest one.
	l.nextNum.Store(1)
	if len(l.order) > 0 {
		l.nextNum.Store(uint64(l.order[len(l.order)-1].Next()))
	}
	// Files that hold no record (a segment created ahead of its use, see
	// SetPrecreate, or one created just before a crash, by either stream:
	// with two streams such a file may lie before segments that hold
	// records) go first: each stream's last segment holding a record is
	// the one whose tail must be recovered.
	removed := false
	for _, n := range slices.Clone(l.order) {
		if l.segs[n].size.Load() > FileHeaderSize {
			continue
		}
		if size := l.segs[n].size.Load(); size < FileHeaderSize {
			l.log.Warn("segment: dropping segment with a torn header", "segment", n, "size", size)
		}
		if err := l.fs.Remove(l.path(n)); err != nil {
			return err
		}
		delete(l.segs, n)
		l.order = slices.DeleteFunc(l.order, func(m ids.Segment) bool { return m == n })
		removed = true
	}
	fgLast, clLast, err := l.streamLasts()
	if err != nil {
		return err
	}
	var drop []*segFile
	for _, last := range []*segFile{fgLast, clLast} {
		if last == nil {
			continue
		}
		empty, err := l.recoverTail(last, opts)
		if err != nil {
			return err
		}
		if empty {
			drop = append(drop, last)
		}
	}
	if err := l.startSegment(&l.fg, nil); err != nil {
		return err
	}
	l.clOpenEnd = Pos{Segment: l.fg.active.num} // every cleaner segment to come is numbered after it
	if clLast != nil && !slices.Contains(drop, clLast) {
		l.clOpenEnd = Pos{Segment: clLast.num, Offset: clLast.size.Load()}
	}
	for _, last := range drop {
		// Replaced by the new segment: drop it, and make that durable.
		if last.f != nil {
			last.f.Close()
			last.f = nil
		}
		if err := l.fs.Remove(l.path(last.num)); err != nil {
			return err
		}
		delete(l.segs, last.num)
		l.order = slices.DeleteFunc(l.order, func(n ids.Segment) bool { return n == last.num })
		removed = true
	}
	if removed {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return err
		}
	}
	return nil
}

// streamLasts finds the last segment of each stream (by the flags of the
// file headers, read from the highest number down until both are found;
// a version-1 header is the foreground's). The headers read are kept open
// (read-write) for recoverTail. A bad header on the highest segment is
// corruption, as before there were two streams (recoverTail reports it,
// or drops a header-only file); one further down names no stream and is
// left to reads and check to report. The cleaner stream's last segment is
// never numbered below Options.CleanerDurable's (the engine's mark names
// its tail, or a segment below every cleaner segment to come), so the
// search for it stops there: Open reads the headers of the segments
// written since the mark, not of the whole log.
func (l *Log) streamLasts() (fg, cl *segFile, err error) {
	h := make([]byte, FileHeaderSize)
	for i := len(l.order) - 1; i >= 0 && (fg == nil || cl == nil && l.order[i] >= l.clDurable.Segment); i-- {
		s := l.segs[l.order[i]]
		f, err := l.fs.OpenReadWrite(l.path(s.num))
		if err != nil {
			return nil, nil, err
		}
		_, rerr := f.ReadAt(h, 0)
		herr := rerr
		if rerr == nil || rerr == io.EOF {
			herr = checkFileHeader(h, s.num)
		}
		switch {
		case herr == nil && headerFlags(h)&FlagCleanerStream != 0:
			if cl != nil || s.num < l.clDurable.Segment {
				f.Close()
				continue
			}
			s.cleaner = true
			cl = s
		case herr == nil:
			if fg != nil {
				f.Close()
				continue
			}
			fg = s
		case errors.Is(herr, ErrIncompatible):
			f.Close()
			return nil, nil, fmt.Errorf("segment %d: %w", s.num, herr)
		case i == len(l.order)-1:
			fg = s // recoverTail reports it (or drops a torn header-only file)
		default:
			f.Close()
			l.log.Info("segment: bad file header; reads of the segment will report it", "segment", s.num, "err", herr)
			continue
		}
		s.f = f
	}
	return fg, cl, nil
}

// TornTail is a tail Open cut from a stream's last segment: from Offset
// (a record that is short or fails to decode, with no valid record after
// it) to the end of the file, Bytes long.
type TornTail struct {
	Segment ids.Segment
	Offset  int64
	Bytes   int64
	Err     error // why the record at Offset is bad
}

// recoverTail finds the end of the valid records of a stream's last
// segment (its file open read-write) and truncates anything after it. It
// reports whether the segment holds no record at all (its header may even
// be torn). The rule (package doc, "Torn tail"): a bad record before the
// stream's durable position is corruption and the segment is kept whole;
// past a known durable position the first bad record starts a torn tail;
// with no durable position known (opts.DurableUnknown) a bad record is a
// torn tail only if no valid record follows it.
func (l *Log) recoverTail(s *segFile, opts Options) (empty bool, err error) {
	size := s.size.Load()
	if size < FileHeaderSize {
		l.log.Warn("segment: dropping segment with a torn header", "segment", s.num, "size", size)
		return true, nil
	}
	f := s.f
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
	var tornErr error
	for off < size {
		_, n, ioErr, decErr := r.record(off)
		if ioErr != nil {
			return false, ioErr
		}
		if decErr != nil {
			if errors.Is(decErr, ErrIncompatible) {
				return false, &CorruptError{Segment: s.num, Offset: off, Err: decErr}
			}
			tornErr = decErr
			// Before the stream's durable position (Options.Durable for
			// the foreground, CleanerDurable for the cleaner stream) the
			// records were synced, so a bad record there is corruption,
			// not a torn write: keep the segment whole (later records are
			// acknowledged data, or copies the index names) and report
			// it. Past it, the first bad record starts a torn tail.
			durable := l.durable
			if s.cleaner {
				durable = l.clDurable
			}
			before := (Pos{Segment: s.num, Offset: off}).Before(durable)
			next, err := r.nextValid(off)
			if err != nil {
				return false, err
			}
			// A bad record proven to be what was written but for a
			// damaged magic, version, length or kind field (its CRC
			// verifies with them restored) is media damage, never a
			// write a crash tore: that leaves bytes unwritten, which
			// restoring those fields does not bring back. It is
			// corruption wherever it lies: kept, never cut.
			proven := false
			if !before {
				if proven, err = r.proven(off, next); err != nil {
					return false, err
				}
			}
			if !before && !proven && (!opts.DurableUnknown || next < 0) {
				// Past what is known durable, or (no durable position
				// known) with nothing valid after it: the tail a crash
				// may tear. Cut, and reported (OnTornTail).
				break
			}
			if !before && next < 0 {
				l.log.Warn("segment: damaged last record proven (not torn); keeping it",
					"segment", s.num, "offset", off, "err", decErr)
				off = size
				break
			}
			if !before {
				// No durable position known (an index rebuild): a valid
				// record after a bad one is taken for corruption of
				// synced data, and everything after it may be
				// acknowledged: keep it, and go on from the next valid
				// record (a bad tail after it is still cut). A crash can
				// also leave a torn record before valid ones when
				// writeback reorders unsynced pages; keeping those never
				// loses an acknowledged write, but when the torn record's
				// header is intact the rebuild indexes it (rowstore's
				// attributeBad) and its block reads as corrupt rather
				// than as its acknowledged previous version.
				l.log.Warn("segment: corrupt record followed by valid records; keeping them",
					"segment", s.num, "offset", off, "next_valid", next, "err", decErr)
				off = next
				continue
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
		if opts.OnTornTail != nil {
			opts.OnTornTail(TornTail{Segment: s.num, Offset: off, Bytes: size - off, Err: tornErr})
		}
	}
	// Sync even when nothing was truncated: what we read may be only in the
	// page cache (the previous process died before its Sync), and once the
	// next segment exists this one must be durable in full.
	if err := f.Sync(); err != nil {
		return false, err
	}
	return off == FileHeaderSize, nil
}
