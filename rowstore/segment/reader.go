package segment

// The read path: opening old segments (bounded handles), Read and ReadRaw.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/snapfs/snapfs/rowstore/ids"
)

// openSegment opens an old segment for reading and checks its header.
// closeLRULocked closes the least recently read old segment when
// openSegmentsBound are open (l.mu held for writing, so no read is using it).
func (l *Log) closeLRULocked() {
	open := 0
	var victim *segFile
	for _, s := range l.segs {
		if s.f == nil {
			continue
		}
		open++
		if !l.isActive(s) && s.seal.ended() && (victim == nil || s.used.Load() < victim.used.Load()) {
			victim = s
		}
	}
	if open >= openSegmentsBound() && victim != nil {
		victim.f.Close()
		victim.f = nil
	}
}

func (l *Log) openSegment(n ids.Segment) error {
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
func (l *Log) readAt(n ids.Segment, p []byte, off int64) (int, error) {
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
			if l.isActive(s) {
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
func (l *Log) ReadRaw(n ids.Segment, p []byte, off int64) error {
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
