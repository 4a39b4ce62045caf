package segment

// Sequential reading: the read-ahead reader, skipping corrupt records, Scan.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/snapfs/snapfs/rowstore/ids"
)

// readAhead is how much Scan reads at a time.
const readAhead = 1 << 20

// readBufs keeps read-ahead windows between scans: the cleaner scans a
// segment at a time, and a fresh window per scan (allocated and cleared)
// cost it more than its reads did.
var readBufs = sync.Pool{New: func() any { return new([]byte) }}

// segReader reads records of one segment sequentially through a read-ahead
// window.
type segReader struct {
	l      *Log
	num    ids.Segment
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

// nextValid returns the offset where the scan goes on after the bad record
// at bad: the next valid record, or the start of another bad record that
// the bad header's length names (the scan then reports that one too and
// resyncs from it); -1 if no valid record follows before the end of the
// segment (a bad tail). See "Corruption" in the package doc.
//
// The bad record's length field is not trusted (its checksum failed, and
// it covers the length): a damaged length that names the start of a later
// record would skip the valid records before it. So every offset after
// bad is a candidate (records are not aligned: the step is one byte), and
// one is taken only if a record with a valid frame and checksum starts
// there (search; a record of a newer version with a valid checksum counts,
// so the scan meets it and refuses it rather than skip it).
//
// Searching from the bad record's start can meet a record encoded inside
// its own payload (a disk holding a copy of a segment file); taking that
// for a real record would make the scan misread foreign bytes as a block.
// So a candidate is taken only with evidence that the bad record ends
// there: the bad record is proven to end there (its checksum verifies
// with its length restored: prove; tried on the first maxProofs
// candidates within a payload's reach and the segment's end, first:
// proveAhead), or, for one inside the span the bad header claims, valid
// records chain from it, back to back, to that span's end or past it (the
// real records a damaged length would have skipped do; records inside a
// payload end with it). Without such evidence the claimed length is
// believed.
func (r *segReader) nextValid(bad int64) (int64, error) {
	named := int64(-1) // where the bad header says the record ends
	magic := false     // the bad header's magic is intact
	if h, err := r.peek(bad, int(min(HeaderSize, r.size-bad))); err != nil {
		return -1, err
	} else if len(h) == HeaderSize {
		magic = binary.LittleEndian.Uint32(h) == recordMagic
		if plen := int64(binary.LittleEndian.Uint32(h[40:])); plen <= MaxPayload {
			// Past the file: a torn record (or a damaged length); real
			// records after it end at the file's end.
			named = min(bad+HeaderSize+plen, r.size)
		}
	}
	next, err := r.search(bad + 1)
	if err != nil || next < 0 || next == named {
		return next, err
	}
	// A length damaged shorter names a point inside the record's own
	// payload, and the records encoded there (before its true end, which
	// the candidates reach only after them) would chain past it; a length
	// over the limit names no span at all. Both are proven at the true
	// end when nothing else was damaged: try the candidates in order,
	// the first maxProofs of them within a payload's reach. Only for an
	// intact magic: a single damage to the length leaves it, and a
	// destroyed header (a zeroed sector: each 48 bytes a further bad
	// record) would pay the proofs for nothing (BenchmarkRev15ScanDamaged).
	if magic {
		if ok, at, err := r.proveAhead(bad, next); err != nil || ok {
			return at, err
		}
	}
	if named < 0 {
		return next, nil
	}
	failed := map[int64]bool{} // offsets whose chain stops short of named
	for c := next; c >= 0 && c < named; {
		if ok, err := r.chain(c, named, failed); err != nil || ok {
			return c, err
		}
		if c, err = r.search(c + 1); err != nil {
			return -1, err
		}
	}
	// The claimed length is believed: the scan goes on at its end, if
	// anything valid lies at or after it.
	if named == r.size {
		return -1, nil
	}
	if next < named {
		if next, err = r.search(named); err != nil || next < 0 {
			return -1, err
		}
	}
	return named, nil
}

// NextValid is the scanner's resync after the bad record at offset bad of
// segment n, of which the first size bytes are considered, for a caller
// that walks a segment's records itself (package rowstore's check and
// repair): where a scan goes on, the next valid record or a further bad
// record, or -1 if no valid record follows (see nextValid, and
// "Corruption" in the package doc). Errors are failures to read.
func (l *Log) NextValid(n ids.Segment, size, bad int64) (int64, error) {
	r := segReader{l: l, num: n, size: size}
	return r.nextValid(bad)
}

// search returns the first offset from off on where a valid record starts
// (see valid), or -1 if there is none before the end of the segment. It
// looks for the record magic a read-ahead window at a time (a torn tail
// may be megabytes of zeros), and decodes where it is found.
func (r *segReader) search(off int64) (int64, error) {
	magic := binary.LittleEndian.AppendUint32(nil, recordMagic)
	for off+HeaderSize <= r.size {
		b, err := r.peek(off, int(min(readAhead, r.size-off)))
		if err != nil {
			return -1, err
		}
		i := bytes.Index(b, magic)
		if i < 0 {
			if len(b) <= len(magic) {
				return -1, nil
			}
			off += int64(len(b) - len(magic) + 1) // a magic may straddle the window's end
			continue
		}
		off += int64(i)
		if off+HeaderSize > r.size {
			return -1, nil
		}
		if _, ok, err := r.valid(off); err != nil || ok {
			return off, err
		}
		off++
	}
	return -1, nil
}

// valid reports whether a record with a valid frame and checksum starts at
// off (one this build decodes, or one a newer snapfs wrote), and its
// encoded length.
func (r *segReader) valid(off int64) (int, bool, error) {
	_, n, ioErr, decErr := r.record(off)
	if ioErr != nil {
		return 0, false, ioErr
	}
	return n, decErr == nil || errors.Is(decErr, ErrIncompatible), nil
}

// chain reports whether valid records follow each other, back to back,
// from off to end or past it (or to the segment's end). The offsets it
// visits on a chain that stops short are added to failed, and a chain
// that meets one of them stops.
func (r *segReader) chain(off, end int64, failed map[int64]bool) (bool, error) {
	var seen []int64
	for off < end && off < r.size && !failed[off] {
		n, ok, err := r.valid(off)
		if err != nil {
			return false, err
		}
		if !ok {
			break
		}
		seen = append(seen, off)
		off += int64(n)
	}
	if off >= end || off == r.size {
		return true, nil
	}
	for _, o := range seen {
		failed[o] = true
	}
	return false, nil
}

// proven reports whether the bad record at off is proven (see prove) to
// end at next (the offset nextValid returned for it; -1: the segment's
// end).
func (r *segReader) proven(off, next int64) (bool, error) {
	if next < 0 {
		next = r.size
	}
	_, ok, err := r.prove(off, next, true)
	return ok, err
}

// maxProofs bounds the candidates nextValid tries to prove the end of one
// bad record at (each proof reads the record's span through its CRC).
const maxProofs = 64

// proveAhead tries to prove the bad record at bad (length restored, see
// prove) to end at the valid record candidates from next on, in order: the
// first maxProofs of them that a payload can reach, then the segment's
// end if no candidate is left and it is within reach. It returns where the
// proof holds (-1: the segment's end, nothing valid after the record).
func (r *segReader) proveAhead(bad, next int64) (bool, int64, error) {
	reach := bad + HeaderSize + MaxPayload
	c, n := next, 0
	for ; c >= 0 && c <= reach && n < maxProofs; n++ {
		if _, ok, err := r.prove(bad, c, false); err != nil || ok {
			return ok, c, err
		}
		var err error
		if c, err = r.search(c + 1); err != nil {
			return false, -1, err
		}
	}
	if c < 0 && n < maxProofs && r.size <= reach {
		// Nothing valid after the candidates: the record may be the
		// segment's last (the caller then finds nothing valid after it).
		if _, ok, err := r.prove(bad, r.size, false); err != nil || ok {
			return ok, -1, err // proven to end at the segment's end
		}
	}
	return false, -1, nil
}

// prove tries to prove the header of the bad record at off if it ends at
// end: its checksum verifies once the header fields whose value is implied
// are restored (checkCRC: magic, version, the length end-off-HeaderSize,
// and the kind as it is, and with kinds each known kind). It returns the
// header's fields (Payload nil) when it does and they are valid.
func (r *segReader) prove(off, end int64, kinds bool) (Record, bool, error) {
	plen := end - off - HeaderSize
	if plen < 0 || plen > MaxPayload {
		return Record{}, false, nil
	}
	b, err := r.peek(off, int(end-off))
	if err != nil || int64(len(b)) != end-off {
		return Record{}, false, err
	}
	rec := headerFields(b)
	for i, k := range []Kind{rec.Kind, KindData, KindZero, KindPad, KindCatalog} {
		if i > 0 && (!kinds || k == rec.Kind) || !checkCRC(b, k) {
			continue
		}
		rec.Kind = k
		return rec, validateHeader(&rec, int(plen)) == nil, nil
	}
	return Record{}, false, nil
}

// record decodes the record at off. ioErr is a failure to read; decErr a
// record that does not decode (torn or corrupt).
func (r *segReader) record(off int64) (rec Record, n int, ioErr, decErr error) {
	rec, _, n, ioErr, decErr = r.recordRaw(off)
	return rec, n, ioErr, decErr
}

// recordRaw is record that also returns the record's bytes (valid until
// the next read through r).
func (r *segReader) recordRaw(off int64) (rec Record, raw []byte, n int, ioErr, decErr error) {
	avail := r.size - off
	h, err := r.peek(off, int(min(HeaderSize, avail)))
	if err != nil {
		return Record{}, nil, 0, err, nil
	}
	if len(h) == HeaderSize {
		plen := int64(h[40]) | int64(h[41])<<8 | int64(h[42])<<16 | int64(h[43])<<24
		if plen <= MaxPayload {
			if h, err = r.peek(off, int(min(HeaderSize+plen, avail))); err != nil {
				return Record{}, nil, 0, err, nil
			}
		}
	}
	rec, n, err = Decode(h)
	if err != nil {
		return rec, nil, n, nil, err
	}
	return rec, h[:n:n], n, nil, nil
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
	return l.scan(from, false, fn)
}

// ScanSegment is Scan of segment n alone (from its first record to its end
// as it is when the scan starts): the segments after it are not read, so
// their removal meanwhile does not concern it. A segment that does not
// exist is an error wrapping fs.ErrNotExist.
func (l *Log) ScanSegment(n ids.Segment, fn func(r *Record, pos Pos) error) (Pos, error) {
	return l.ScanSegmentRaw(n, func(r *Record, _ []byte, pos Pos) error { return fn(r, pos) })
}

// ScanSegmentRaw is ScanSegment that also passes each record's bytes as
// they are in the segment (header and payload, checked as the record is;
// valid during the call only), for a copy that needs no encoding.
func (l *Log) ScanSegmentRaw(n ids.Segment, fn func(r *Record, raw []byte, pos Pos) error) (Pos, error) {
	l.mu.RLock()
	_, ok := l.segs[n]
	l.mu.RUnlock()
	if !ok {
		return Pos{}, fmt.Errorf("segment: scan segment %d: %w", n, fs.ErrNotExist)
	}
	return l.scanRaw(Pos{Segment: n}, true, fn, nil)
}

// BadRecord is a corrupt record Scan skipped (see ScanReport).
type BadRecord struct {
	Segment ids.Segment
	Offset  int64
	// Bytes is what was skipped: up to the next valid record, or to the
	// start of a further bad record the scan reports on its own (where
	// this one's length, believed, ends: see nextValid), or to the end of
	// the segment when nothing valid follows.
	Bytes int64
	// HeaderOK: the header is proven or looks intact, and Header holds
	// its fields (Payload nil). Proven: the record's checksum verifies
	// once the header fields whose value is implied are restored (magic,
	// version, the length to the next valid record or the segment's end,
	// the kind: one of the four), so its header and payload are what was
	// written except those fields. Otherwise it is a judgement (the CRC
	// covers header and payload together): magic and version right, a
	// known kind with a payload length its kind allows (8 for a zero
	// record; layer, block and epoch 0 for a catalog record), a sequence
	// number, and the length it names ends exactly where the next valid
	// record starts (or where the segment ends). A flipped payload byte
	// leaves that true. A flip inside the layer, block, epoch or seq
	// fields is not detected then: callers that act on Header check it
	// against what they know.
	HeaderOK bool
	Proven   bool
	Header   Record
	Length   uint32 // the record's encoded length, when HeaderOK
	Err      error  // the decode error
}

// ScanReport is Scan that also calls bad for every corrupt record it skips
// (after Options.OnCorrupt), with what its header still tells. A bad tail
// that ends the scan silently is not passed to it. An error from bad stops
// the scan and is returned as is.
func (l *Log) ScanReport(from Pos, fn func(r *Record, pos Pos) error, bad func(*BadRecord) error) (Pos, error) {
	return l.scanRaw(from, false, func(r *Record, _ []byte, pos Pos) error { return fn(r, pos) }, bad)
}

// badHeader reads what the header of the bad record at off tells: see
// BadRecord.HeaderOK. next is the next valid record's offset, or -1 (then
// the record must end at the segment's end).
func (r *segReader) badHeader(b *BadRecord, off, next int64) error {
	end := next
	if end < 0 {
		end = r.size
	}
	rec, ok, err := r.prove(off, end, true)
	if err != nil {
		return err
	}
	plen := int(end - off - HeaderSize)
	if !ok {
		// Not proven: judge the header as it is (a damaged payload
		// leaves it intact).
		h, err := r.peek(off, int(min(HeaderSize, r.size-off)))
		if err != nil || len(h) < HeaderSize {
			return err
		}
		v, n, err := frame(h)
		if err != nil || v != Version || n != plen {
			return nil
		}
		rec = headerFields(h)
	}
	if !attributable(&rec, plen) {
		return nil
	}
	b.HeaderOK, b.Proven, b.Header, b.Length = true, ok, rec, uint32(end-off)
	return nil
}

func (l *Log) scan(from Pos, only bool, fn func(r *Record, pos Pos) error) (Pos, error) {
	return l.scanRaw(from, only, func(r *Record, _ []byte, pos Pos) error { return fn(r, pos) }, nil)
}

func (l *Log) scanRaw(from Pos, only bool, fn func(r *Record, raw []byte, pos Pos) error, bad func(*BadRecord) error) (Pos, error) {
	type snap struct {
		num  ids.Segment
		size int64
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return Pos{}, fmt.Errorf("segment: log %s: %w", l.dir, os.ErrClosed)
	}
	var segs []snap
	for _, n := range l.order {
		if n == from.Segment || n > from.Segment && !only {
			segs = append(segs, snap{n, l.segs[n].size.Load()})
		}
	}
	lastNum := l.order[len(l.order)-1]
	l.mu.RUnlock()

	end := Pos{Segment: from.Segment, Offset: max(from.Offset, FileHeaderSize)}
	bp := readBufs.Get().(*[]byte)
	rbuf := *bp
	defer func() {
		if cap(rbuf) <= 2*readAhead { // an outsized window (a huge record) is not kept
			*bp = rbuf
			readBufs.Put(bp)
		}
	}()
	for _, s := range segs {
		off := int64(FileHeaderSize)
		if s.num == from.Segment && from.Offset > off {
			off = from.Offset
		}
		end = Pos{Segment: s.num, Offset: off}
		r := segReader{l: l, num: s.num, size: s.size, buf: rbuf}
		for off < s.size {
			rec, raw, n, ioErr, decErr := r.recordRaw(off)
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
				if bad != nil {
					b := BadRecord{Segment: s.num, Offset: off, Bytes: s.size - off, Err: decErr}
					if next >= 0 {
						b.Bytes = next - off
					}
					if err := r.badHeader(&b, off, next); err != nil {
						return end, fmt.Errorf("segment: scan segment %d at %d: %w", s.num, off, err)
					}
					if err := bad(&b); err != nil {
						return end, err
					}
				}
				if next < 0 {
					break
				}
				off = next
				continue
			}
			pos := Pos{Segment: s.num, Offset: off, Length: uint32(n)}
			if err := fn(&rec, raw, pos); err != nil {
				return end, err
			}
			off += int64(n)
			end.Offset = off
		}
		rbuf = r.buf
	}
	return end, nil
}
