package rowstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// A streamed diff (StreamDiff) hands out each changed block of a snapshot
// with its data, read at the location the diff found it at: one index walk
// for the whole diff, then batched reads of the log, adjacent records with
// one call. The reads run in a goroutine of their own, one batch behind
// the index walk, so the walk (index lookups, a cold index's page faults)
// and the log reads overlap. Replication reads a snapshot this way
// (read-only: nothing here writes to the store).
//
// Why the locations stay valid: the snapshot is pinned while it streams
// (as an open Reader is), so GC keeps every version it sees. The cleaner
// may still move a record and remove its old segment; a segment is removed
// only under readMu held exclusively, and the index is repointed before.
// A batch is read under readMu (shared), so it never sees a segment go
// while it reads; a location found before a removal fails to read (the
// segment is gone, or holds other records: segment numbers are never
// reused, so the record check fails), and then the batch's blocks are
// looked up again, under readMu, and read once more. A record read is
// checked as the read path checks it (CRC32C, kind, block, sequence
// number, length).

// StreamOptions tell StreamDiff what to read and where the data goes.
type StreamOptions struct {
	// Visit is called for every change, in block order, before any data
	// of it is read; it returns whether to read the block (changes to
	// zeros are never read). Required.
	Visit func(Change) (read bool, err error)
	// Data receives the blocks Visit asked for, in block order, in
	// batches. A batch belongs to Data's caller until it calls Release;
	// the stream waits for a free buffer once Buffers are out. Data is
	// called from a goroutine of the stream (one at a time), while Visit
	// and Progress may run. Required.
	Data func(*BlockBatch) error
	// BatchBytes bounds the log bytes read into one batch (default 4 MiB;
	// a batch holds at least one block).
	BatchBytes int
	// Buffers bounds the batches out at once (default 4): the stream's
	// memory is about Buffers × BatchBytes.
	Buffers int
	// Progress, if set, is called as the diff moves on: done of total
	// units (blocks of the disk for a full diff, candidate blocks for an
	// incremental one; only the ratio means something).
	Progress func(done, total uint64)
}

// BlockBatch is a run of changed blocks with their data.
type BlockBatch struct {
	Blocks  []uint64
	Digests [][32]byte // SHA-256 of each block, as the index holds it
	Data    [][]byte   // each block's content (block size bytes); aliases the batch buffer
	buf     []byte
	free    chan []byte
}

// Release gives the batch's buffer back to its stream. The batch must not
// be used afterwards. Release is idempotent.
func (b *BlockBatch) Release() {
	if b.free == nil {
		return
	}
	select {
	case b.free <- b.buf:
	default: // the stream has ended
	}
	b.free, b.buf, b.Data = nil, nil, nil
}

// StreamDiff is Diff with the data: it calls o.Visit for every block of
// snapshot point `to` whose content differs from `from` (nil: every stored
// block), and o.Data with the data of the blocks Visit wants, in batches.
// Blocks are found with one index walk (a window of blocks per index
// view) and read from the locations it found (see the comment above
// StreamOptions). It returns the block size of `to`.
func (s *Store) StreamDiff(ctx context.Context, from *Point, to Point, o StreamOptions) (int, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	if to.Snapshot == "" {
		return 0, fmt.Errorf("%w: a streamed diff needs a snapshot to read (%s)", ErrInvalid, to)
	}
	if o.Visit == nil || o.Data == nil {
		return 0, fmt.Errorf("%w: StreamDiff needs Visit and Data", ErrInvalid)
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 4 << 20
	}
	if o.Buffers <= 0 {
		o.Buffers = 4
	}
	r, err := s.OpenSnapshotDisk(to.Snapshot, to.Disk)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	bs := r.bs
	if err := s.refuseLazy(r.chain, to.String()); err != nil { // lazy.go
		return 0, err
	}
	var chainA []link
	if from != nil {
		var bsA int
		if chainA, _, bsA, err = s.resolve(*from); err == nil {
			err = s.refuseLazy(chainA, from.String())
		}
		if err != nil {
			return 0, err
		}
		if bsA != bs {
			return 0, fmt.Errorf("%w: %s has block size %d, %s has %d", ErrInvalid, from, bsA, to, bs)
		}
	}
	// Digests of an encrypted disk are sealed in the index (crypt.go): hand
	// out SHA-256s; its records are opened into a plaintext area.
	plain, err := s.plainDigests(r.chain[0].layer, r.what)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	st := &streamer{s: s, ctx: ctx, cancel: cancel, o: o, chain: r.chain, bs: bs, what: r.what, free: make(chan []byte, o.Buffers), plain: plain,
		jobs: make(chan *readJob, 1), readerDone: make(chan struct{})}
	for _, l := range r.chain {
		fid, err := s.layerFamily(l.layer)
		if err != nil {
			return 0, err
		}
		st.sealed = st.sealed || fid != 0
	}
	nblocks := blockCount(r.size, bs)
	go st.reader()
	var last diffProgress
	err = s.diffVersions(ctx, chainA, from != nil, r.chain, nblocks, func(b ids.Block, v index.Version, p diffProgress) error {
		if p != last && o.Progress != nil {
			o.Progress(last.done, p.total)
		}
		last = p
		c := changeOf(b, v)
		if !c.Zero {
			c.Digest = plain(c.Digest)
		}
		read, err := o.Visit(c)
		if err != nil || !read || v.Zero() {
			return err
		}
		return st.add(b, v)
	})
	if err == nil {
		err = st.flush()
	}
	walkFirst := err != nil && ctx.Err() == nil
	if walkFirst {
		cancel(err) // the reader stops too
	}
	close(st.jobs)
	<-st.readerDone
	if st.rerr != nil && !walkFirst {
		err = st.rerr // the reader's failure stopped the walk
	}
	if err == nil && o.Progress != nil && last.total > 0 {
		o.Progress(last.total, last.total)
	}
	return bs, err
}

// streamer gathers wanted blocks into batches (the walk's goroutine) and
// reads them (the reader goroutine).
type streamer struct {
	s      *Store
	ctx    context.Context
	cancel context.CancelCauseFunc
	o      StreamOptions
	chain  []link
	bs     int
	what   string
	free   chan []byte // released buffers
	made   int         // buffers allocated; the reader's
	refs   []blockRef  // the batch being gathered; the walk's
	bytes  int

	jobs       chan *readJob // gathered batches, for the reader
	readerDone chan struct{}
	rerr       error // the reader's failure; read once readerDone is closed
	// sealed: the chain has encrypted layers, whose records are opened
	// into a plaintext area after the records in each batch buffer.
	sealed bool
	plain  func([32]byte) [32]byte // the SHA-256 of a digest as indexed
}

// readJob is a gathered batch: its blocks and their records' bytes.
type readJob struct {
	refs  []blockRef
	bytes int
}

// need is the buffer a batch of the job's blocks takes.
func (st *streamer) need(j *readJob, recordBytes int) int {
	if st.sealed {
		return recordBytes + len(j.refs)*st.bs
	}
	return recordBytes
}

// reader reads the gathered batches in order and hands them to Data. A
// failure cancels the stream; later batches are dropped.
func (st *streamer) reader() {
	defer close(st.readerDone)
	for j := range st.jobs {
		if st.rerr != nil {
			continue
		}
		if err := st.read(j); err != nil {
			st.rerr = err
			st.cancel(err)
		}
	}
}

type blockRef struct {
	block ids.Block
	v     index.Version
}

func (st *streamer) add(b ids.Block, v index.Version) error {
	st.refs = append(st.refs, blockRef{b, v})
	st.bytes += int(v.Length)
	if st.bytes >= st.o.BatchBytes {
		return st.flush()
	}
	return nil
}

// buffer returns a free buffer of at least n bytes, waiting for a release
// once Buffers are out.
func (st *streamer) buffer(n int) ([]byte, error) {
	var b []byte
	select {
	case b = <-st.free:
	default:
		if st.made < st.o.Buffers {
			st.made++
		} else {
			select {
			case b = <-st.free:
			case <-st.ctx.Done():
				return nil, st.ctx.Err()
			}
		}
	}
	if cap(b) < n {
		b = make([]byte, max(n, st.o.BatchBytes+st.bs+segment.HeaderSize))
	}
	return b[:n], nil
}

// flush hands the gathered blocks to the reader.
func (st *streamer) flush() error {
	if len(st.refs) == 0 {
		return nil
	}
	j := &readJob{refs: st.refs, bytes: st.bytes}
	st.refs, st.bytes = make([]blockRef, 0, len(j.refs)), 0
	select {
	case st.jobs <- j:
		return nil
	case <-st.ctx.Done():
		return context.Cause(st.ctx)
	}
}

// read reads a job's blocks and hands them to Data.
func (st *streamer) read(j *readJob) error {
	if err := st.ctx.Err(); err != nil {
		return err
	}
	buf, err := st.buffer(st.need(j, j.bytes))
	if err != nil {
		return err
	}
	batch := &BlockBatch{
		Blocks:  make([]uint64, len(j.refs)),
		Digests: make([][32]byte, len(j.refs)),
		Data:    make([][]byte, len(j.refs)),
		free:    st.free,
	}
	s := st.s
	s.readMu.RLock()
	err = st.readRecords(j, buf, batch)
	if err != nil {
		// A location from before the cleaner moved the record: look the
		// batch up again (under readMu, so it stays put) and read again.
		blocks := make([]ids.Block, len(j.refs))
		for i, r := range j.refs {
			blocks[i] = r.block
		}
		vs, found, lerr := s.lookupMany(st.chain, blocks)
		changed := false
		if lerr == nil {
			n := 0
			for i := range j.refs {
				if !found[i] || vs[i].Zero() || vs[i].Digest != j.refs[i].v.Digest {
					lerr = &CorruptError{What: fmt.Sprintf("%s: block %d", st.what, blocks[i]), Err: errors.New("the pinned snapshot's version changed while it was read")}
					break
				}
				changed = changed || vs[i] != j.refs[i].v
				j.refs[i].v = vs[i]
				n += int(vs[i].Length)
			}
			if lerr == nil && changed {
				j.bytes = n
				if n = st.need(j, n); cap(buf) < n {
					buf = make([]byte, n)
				}
				buf = buf[:n]
				err = st.readRecords(j, buf, batch)
			}
		}
		if lerr != nil {
			err = fmt.Errorf("%w (looking it up again: %w)", err, lerr)
		}
	}
	s.readMu.RUnlock()
	if err != nil {
		return err
	}
	batch.buf = buf
	return st.o.Data(batch)
}

// streamReaders bounds the reads of one batch in flight at once: runs of
// scattered records (small random rewrites) are read in parallel, so a
// disk sees a queue of requests instead of one at a time.
const streamReaders = 16

// readRecords reads the records of job.refs back to back into buf (runs of
// adjacent records with one call, up to streamReaders runs at once) and
// fills batch. readMu is held.
func (st *streamer) readRecords(job *readJob, buf []byte, batch *BlockBatch) error {
	refs := job.refs
	type run struct{ i, j, pos, span int }
	var runs []run
	pos := 0
	for i := 0; i < len(refs); {
		v := refs[i].v
		j := i + 1
		span := int(v.Length)
		for j < len(refs) && refs[j].v.Segment == v.Segment && refs[j].v.Offset == v.Offset+int64(span) && span < maxReadSpan {
			span += int(refs[j].v.Length)
			j++
		}
		runs = append(runs, run{i, j, pos, span})
		pos += span
		i = j
	}
	readRun := func(r run) error {
		v := refs[r.i].v
		if err := st.s.seg.ReadRaw(v.Segment, buf[r.pos:r.pos+r.span], v.Offset); err != nil {
			if errors.Is(err, segment.ErrCorrupt) {
				return &CorruptError{What: fmt.Sprintf("%s: blocks %d-%d (segment %d offset %d)", st.what, refs[r.i].block, refs[r.j-1].block, v.Segment, v.Offset), Err: err}
			}
			return fmt.Errorf("%s: read blocks %d-%d: %w", st.what, refs[r.i].block, refs[r.j-1].block, err)
		}
		at := r.pos
		for k := r.i; k < r.j; k++ {
			rv := refs[k].v
			raw := buf[at : at+int(rv.Length)]
			at += int(rv.Length)
			rec, _, err := segment.Decode(raw)
			if err == nil && st.sealed {
				dst := buf[job.bytes+k*st.bs : job.bytes+(k+1)*st.bs]
				var sealed bool
				if sealed, err = st.s.openRecord(&rec, rv, refs[k].block, dst, st.what); sealed { // crypt.go
					if err != nil {
						return err
					}
					batch.Blocks[k], batch.Digests[k], batch.Data[k] = uint64(refs[k].block), st.plain(rv.Digest), dst
					continue
				}
			}
			if err == nil && (rec.Kind != segment.KindData || rec.Block != refs[k].block || rec.Seq != rv.Seq || len(rec.Payload) != st.bs) {
				err = fmt.Errorf("record (kind %d block %d seq %d, %d bytes) is not the indexed version (block %d seq %d, %d bytes)",
					rec.Kind, rec.Block, rec.Seq, len(rec.Payload), refs[k].block, rv.Seq, st.bs)
			}
			if err != nil {
				return &CorruptError{What: fmt.Sprintf("%s: block %d (segment %d offset %d)", st.what, refs[k].block, rv.Segment, rv.Offset), Err: err}
			}
			batch.Blocks[k], batch.Digests[k], batch.Data[k] = uint64(refs[k].block), st.plain(rv.Digest), rec.Payload
		}
		return nil
	}
	n := min(len(runs), streamReaders)
	if n <= 1 {
		for _, r := range runs {
			if err := readRun(r); err != nil {
				return err
			}
		}
		return nil
	}
	var next atomic.Int64
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= len(runs) {
					return
				}
				if err := readRun(runs[k]); err != nil {
					errs[w] = err
					next.Store(int64(len(runs))) // the others stop
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
