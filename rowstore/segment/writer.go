package segment

// The write path: creating and rotating segments, Append, Sync.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// createSegment creates segment n with its header (flags: the stream's),
// durable (file synced, then the directory). On error nothing is left
// behind but, at worst, a file without records, which Open drops.
func (l *Log) createSegment(n ids.Segment, flags uint16) (vfs.File, error) {
	f, err := l.createFile(n, flags)
	if err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, l.dropFile(n, f, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return nil, l.dropFile(n, f, err)
	}
	return f, nil
}

// createFile creates segment n's file with its header, not synced.
func (l *Log) createFile(n ids.Segment, flags uint16) (vfs.File, error) {
	f, err := l.fs.Create(l.path(n))
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteAt(fileHeader(n, flags), 0); err != nil {
		return nil, l.dropFile(n, f, err)
	}
	return f, nil
}

// dropFile closes and removes a segment file whose creation failed with
// err, and returns err.
func (l *Log) dropFile(n ids.Segment, f vfs.File, err error) error {
	f.Close()
	l.fs.Remove(l.path(n))
	return err
}

// SetPrecreate turns on (or off) creating each stream's next segments in
// the background while its active one fills. A spare file left by a crash
// holds no record (header only): Open drops it.
func (l *Log) SetPrecreate(on bool) {
	l.precreate.Store(on)
}

// spareBatch is how many segment files a stream creates ahead at once
// (SetPrecreate): their creations, header writes and syncs, then one
// directory sync. On ext4 the first file's fsync commits the journal
// transaction that holds every creation of the batch, so the others' and
// the directory's find nothing left to commit: about one journal commit
// per batch instead of two per segment. It matters while the cleaner runs:
// its rotation size is a 64th of what is live (512 KiB at least), so a
// fresh store's first GiB written rotated about 450 times, and each
// rotation waited for its spare's two commits besides the sealed
// segment's own fsync.
const spareBatch = 4

// takeSpare returns the next pre-created file of the stream and its number,
// if there is one (the stream's append lock held). Its number was taken
// when its batch was started, so it is above every segment of the stream
// before it. A spare whose creation failed is skipped (its file is gone).
func (l *Log) takeSpare(st *stream) (ids.Segment, vfs.File) {
	for len(st.spares) > 0 {
		sp := st.spares[0]
		st.spares[0] = nil
		st.spares = st.spares[1:]
		<-sp.done
		if sp.err == nil {
			return sp.num, sp.f
		}
	}
	return 0, nil
}

// prepareSpare starts creating the stream's next spareBatch segments in
// the background once at most one spare is left (the stream's append lock
// held), so a rotation finds one ready while the next batch is made.
func (l *Log) prepareSpare(st *stream) {
	if !l.precreate.Load() || len(st.spares) > 1 {
		return
	}
	done := make(chan struct{})
	batch := make([]*spareSegment, spareBatch)
	for i := range batch {
		batch[i] = &spareSegment{num: l.allocNum(), done: done}
	}
	st.spares = append(st.spares, batch...)
	go func() {
		defer close(done)
		l.createSpares(batch, st.flags)
	}()
}

// createSpares creates a batch of spare segments: every file with its
// header, then each synced, then the directory once. A spare is usable
// (err nil) only once all of that succeeded for it; a failed one's file is
// removed.
func (l *Log) createSpares(batch []*spareSegment, flags uint16) {
	for _, sp := range batch {
		sp.f, sp.err = l.createFile(sp.num, flags)
	}
	for _, sp := range batch {
		if sp.err == nil {
			if err := sp.f.Sync(); err != nil {
				sp.err = l.dropFile(sp.num, sp.f, err)
			}
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		for _, sp := range batch {
			if sp.err == nil {
				sp.err = l.dropFile(sp.num, sp.f, err)
			}
		}
	}
}

// startSegment creates a segment for stream st (or takes its pre-created
// file), numbered after every segment so far, and makes it the
// stream's active one; prev, if not nil, is the sync of the stream's
// segment before it, which must end before a byte of this one is written
// (see sealSync). The caller holds the stream's append lock (or is Open).
func (l *Log) startSegment(st *stream, prev *sealSync) error {
	n, f := l.takeSpare(st)
	if f == nil {
		n = l.allocNum()
		var err error
		if f, err = l.createSegment(n, st.flags); err != nil {
			return fmt.Errorf("create segment %d: %w", n, err)
		}
	}
	defer l.prepareSpare(st)
	// The gathering buffer moves from segment to segment: a sealed segment
	// keeps none (hundreds of sealed segments would otherwise hold a MiB
	// each), and the new one does not grow its own append by append.
	buf := st.wbufFree
	st.wbufFree = nil
	if buf == nil {
		buf = make([]byte, 0, writeBehind+64<<10)
	}
	s := &segFile{num: n, f: f, flushed: FileHeaderSize, wbuf: buf[:0], prev: prev, cleaner: st.flags&FlagCleanerStream != 0, fresh: true,
		wbEvery: min(EarlyWriteback, max(l.segSize.Load()/4, 256<<10))}
	s.size.Store(FileHeaderSize)
	l.bytes.Add(FileHeaderSize)
	l.mu.Lock()
	if prev != nil && st.active != nil {
		st.active.seal = prev // sealed: its file stays open until prev ends
	}
	l.segs[n] = s
	i, _ := slices.BinarySearch(l.order, n)
	l.order = slices.Insert(l.order, i, n)
	st.active = s
	l.closeLRULocked()
	l.mu.Unlock()
	return nil
}

// rotateLocked seals the stream's active segment and starts its next one.
// The old segment's gathered records are written, and its fsync runs in the
// background (sealSync): the appender that rotates (a foreground write
// holding its disk's lock, or the cleaner) does not wait for it. The new
// segment's first write waits for it instead (flush), as do Sync and
// SyncCleaner, so every segment of a stream but its last is still synced in
// full before a record is written to its successor (see Invariants in the
// package doc).
func (l *Log) rotateLocked(st *stream) error {
	old := st.active
	if err := l.retry(old.flush); err != nil {
		return fmt.Errorf("segment: write segment %d: %w", old.num, err)
	}
	old.bufMu.Lock()
	if len(old.wbuf) == 0 { // all flushed: reads no longer look at it
		st.wbufFree, old.wbuf = old.wbuf, nil
	}
	old.bufMu.Unlock()
	seal := &sealSync{num: old.num, done: make(chan struct{})}
	if err := l.retry(func() error { return l.startSegment(st, seal) }); err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	go seal.run(l, old.f, old.prev)
	// The new segment gathers in the old one's (flushed, empty) buffer:
	// no regrowing it at every rotation, which is frequent while the
	// cleaner runs with small segments.
	old.bufMu.Lock()
	buf := old.wbuf[:0]
	old.wbuf = nil
	old.bufMu.Unlock()
	st.active.bufMu.Lock()
	if len(st.active.wbuf) == 0 && cap(buf) > cap(st.active.wbuf) {
		st.active.wbuf = buf
	}
	st.active.bufMu.Unlock()
	return nil
}

// Append adds r at the end of the log (gathered in memory and written in
// pieces, see the package doc;
// rotating first if the active segment is full: the old segment's records
// are written and its sync started in the background, the new one is
// created durable, and nothing of it is written before that sync ended).
// It returns the record's position. The data is durable only after Sync.
func (l *Log) Append(r *Record) (Pos, error) {
	if err := checkAppend(r); err != nil {
		return Pos{}, err
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.usable(); err != nil {
		return Pos{}, err
	}
	return l.appendLocked(r)
}

// AppendBatch appends the records of rs in order, each as Append would,
// holding the append lock once for all of them (the engine's cleaner
// relocates records a segment at a time: one hand-off of the lock per
// batch, not per record). It appends the positions to pos and returns it.
// On an error the records before the failed one stay appended (durable
// only after Sync, like any other) and their positions are returned with
// the error; nothing is appended if one of rs is invalid.
func (l *Log) AppendBatch(rs []Record, pos []Pos) ([]Pos, error) {
	for i := range rs {
		if err := checkAppend(&rs[i]); err != nil {
			return pos, err
		}
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.usable(); err != nil {
		return pos, err
	}
	for i := range rs {
		p, err := l.appendLocked(&rs[i])
		if err != nil {
			return pos, err
		}
		pos = append(pos, p)
	}
	return pos, nil
}

// AppendRawBatch is AppendBatch of records already encoded: each of raws
// must be exactly one record as Encode wrote it and Decode accepted it (the
// cleaner moves records it has just read and checked: their bytes do not
// depend on their position, so they are copied, not encoded again, which
// spares a second checksum of every moved byte). Each raw is checked for
// framing (magic, version, a payload length that matches its size) and
// kind, not for its checksum: the caller has checked that. It appends the
// positions to pos and returns it; on an error the records before the
// failed one stay appended and their positions are returned with it.
func (l *Log) AppendRawBatch(raws [][]byte, pos []Pos) ([]Pos, error) {
	return l.appendRaw(&l.fg, &l.appendMu, raws, pos)
}

// AppendCleanerRawBatch is AppendRawBatch to the cleaner stream (see "Two
// append streams" in the package doc): under the cleaner stream's own
// append lock, never the foreground's, into segments of its own (flagged
// FlagCleanerStream), made durable by SyncCleaner, never by Sync.
func (l *Log) AppendCleanerRawBatch(raws [][]byte, pos []Pos) ([]Pos, error) {
	return l.appendRaw(&l.cl, &l.clMu, raws, pos)
}

func (l *Log) appendRaw(st *stream, mu *sync.Mutex, raws [][]byte, pos []Pos) ([]Pos, error) {
	for _, b := range raws {
		if err := checkRaw(b); err != nil {
			return pos, err
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if err := l.usable(); err != nil {
		return pos, err
	}
	for _, b := range raws {
		p, err := l.appendEncodedLocked(st, int64(len(b)), Kind(b[5]), func(dst []byte) []byte { return append(dst, b...) })
		if err != nil {
			return pos, err
		}
		pos = append(pos, p)
	}
	return pos, nil
}

// checkRaw refuses bytes that are not one framed record of a known kind.
func checkRaw(b []byte) error {
	if len(b) < HeaderSize || binary.LittleEndian.Uint32(b) != recordMagic || b[4] != Version ||
		int64(binary.LittleEndian.Uint32(b[40:]))+HeaderSize != int64(len(b)) || len(b)-HeaderSize > MaxPayload {
		return fmt.Errorf("%w: not one encoded record (%d bytes)", ErrInvalid, len(b))
	}
	switch Kind(b[5]) {
	case KindData, KindZero, KindCatalog:
		return nil
	}
	return fmt.Errorf("%w: raw record of kind %d", ErrInvalid, b[5])
}

// checkAppend refuses a record Decode would not accept.
func checkAppend(r *Record) error {
	if err := validate(r); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(r.Payload) > MaxPayload {
		return fmt.Errorf("%w: payload of %d bytes", ErrInvalid, len(r.Payload))
	}
	return nil
}

// appendLocked appends a checked record (appendMu held, the log usable).
func (l *Log) appendLocked(r *Record) (Pos, error) {
	return l.appendEncodedLocked(&l.fg, int64(HeaderSize+len(r.Payload)), r.Kind, func(dst []byte) []byte { return Encode(dst, r) })
}

// appendEncodedLocked appends the n bytes enc appends (one record of kind
// k) to the gathering buffer of stream st (its append lock held, the log
// usable). The cleaner stream's first append starts its first segment.
func (l *Log) appendEncodedLocked(st *stream, n int64, k Kind, enc func([]byte) []byte) (Pos, error) {
	if st.active == nil {
		if err := l.retry(func() error { return l.startSegment(st, nil) }); err != nil {
			return Pos{}, fmt.Errorf("segment: %w", err)
		}
	} else if size := st.active.size.Load(); size > FileHeaderSize && size+n > l.segSize.Load() {
		if err := l.rotateLocked(st); err != nil {
			return Pos{}, err
		}
	}
	s := st.active
	off := s.size.Load()
	if k != KindData && !s.mixed.Load() {
		s.mixed.Store(true) // before the record is visible (size)
	}
	s.bufMu.Lock()
	defer s.bufMu.Unlock()
	// Write what is gathered first if this record would overflow it, so a
	// failed write (ENOSPC) fails this Append and loses nothing appended.
	// While the segment before is still being synced (its seal, started at
	// rotation: the write would wait for it), gather on, up to
	// maxGather.
	if len(s.wbuf) > 0 && len(s.wbuf)+int(n) > writeBehind && (s.prev.ended() || len(s.wbuf)+int(n) > maxGather) {
		if err := l.retry(s.flushLocked); err != nil {
			return Pos{}, fmt.Errorf("segment: append to segment %d at %d: %w", s.num, s.flushed, err)
		}
	}
	s.wbuf = enc(s.wbuf)
	s.size.Store(off + n)
	l.bytes.Add(n)
	return Pos{Segment: s.num, Offset: off, Length: uint32(n)}, nil
}

// Sync makes every record appended to the foreground stream before it
// durable (fsync of its active segment, after the background syncs of the
// segments it sealed before ended: see sealSync); the cleaner stream is
// SyncCleaner's. A failed Sync breaks the log: the state of the unsynced
// data is unknown, so every later Append and Sync returns the error until
// the log is reopened.
func (l *Log) Sync() error { return l.syncStream(&l.fg) }

// SyncCleaner is Sync of the cleaner stream: every record appended with
// AppendCleanerRawBatch before it is durable once it returns. Nothing to do
// while the stream has no active segment (SealCleaner synced it).
func (l *Log) SyncCleaner() error { return l.syncStream(&l.cl) }

func (l *Log) syncStream(st *stream) error {
	// The sealed segments first, waited for without Log.mu (a writer queued
	// for it, a segment opened or removed, would otherwise stall every read
	// of the log behind that fsync); a failed one breaks the log before Sync
	// returns, not only when the seal's goroutine gets to it.
	var s *segFile
	for {
		l.mu.RLock()
		if l.closed || l.err != nil {
			l.mu.RUnlock()
			return l.usable()
		}
		s = st.active
		if s == nil {
			l.mu.RUnlock()
			return nil
		}
		p := s.prev
		if p == nil || (p.ended() && p.err == nil) {
			break // Log.mu held
		}
		l.mu.RUnlock()
		if err := p.wait(); err != nil {
			l.fail(err)
			return err
		}
	}
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

// SealCleaner ends the cleaner stream's active segment: it is synced (with
// the stream's earlier segments) and appended to no more; the next
// AppendCleanerRawBatch starts a new one. (Repair removes a segment the
// cleaner may still be appending to this way.)
func (l *Log) SealCleaner() error {
	l.clMu.Lock()
	defer l.clMu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if l.cl.active == nil {
		return nil
	}
	if err := l.syncStream(&l.cl); err != nil {
		return err
	}
	s := l.cl.active
	s.bufMu.Lock()
	if len(s.wbuf) == 0 {
		l.cl.wbufFree, s.wbuf = s.wbuf, nil
	}
	s.bufMu.Unlock()
	l.mu.Lock()
	l.cl.active = nil
	l.mu.Unlock()
	return nil
}

// Rotate closes the foreground's active segment (synced) and starts a new
// one. The old
// segment's handle stays open for reads.
func (l *Log) Rotate() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	return l.rotateLocked(&l.fg)
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
	var se *sealError
	if err != nil && !errors.As(err, &se) && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
		if h := l.noSpace.Load(); h != nil && (*h)() {
			err = op()
		}
	}
	return err
}

// sealSync is the fsync of a sealed segment, run in the background after
// rotation (rotateLocked). It first waits for the seal of the segment before
// (prev: a chain, so a seal that ended means every earlier segment is
// synced). Nothing is written to the next segment's file before it ended
// (segFile.flushLocked), so a crash still leaves a prefix of the log: only
// the last segment holding a record can end torn. A failed seal breaks the
// Log (after done is closed, so a waiter holding Log.mu cannot deadlock
// with it), and every waiter gets its error.
type sealSync struct {
	num  ids.Segment
	done chan struct{}
	err  error // set before done is closed
}

// sealError is a failed seal: the log is broken (its unsynced state is
// unknown), so a writer that meets it must not take it for a write that
// lacked space and give back the reserve to try again (Log.retry).
type sealError struct{ err error }

func (e *sealError) Error() string { return e.err.Error() }
func (e *sealError) Unwrap() error { return e.err }

func (ss *sealSync) run(l *Log, f vfs.File, prev *sealSync) {
	err := prev.wait()
	if err == nil {
		if serr := f.Sync(); serr != nil {
			err = &sealError{fmt.Errorf("segment: sync segment %d: %w", ss.num, serr)}
		}
	}
	ss.err = err
	close(ss.done)
	if err != nil {
		l.fail(err)
	}
}

// wait waits for the seal (nil: nothing to wait for) and returns its error.
func (ss *sealSync) wait() error {
	if ss == nil {
		return nil
	}
	<-ss.done
	return ss.err
}

// ended reports whether the seal is over (nil: there is none).
func (ss *sealSync) ended() bool {
	if ss == nil {
		return true
	}
	select {
	case <-ss.done:
		return true
	default:
		return false
	}
}
