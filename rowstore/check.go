package rowstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// CheckOptions configure Check.
type CheckOptions struct {
	// ReadData reads every stored block version and verifies its record's
	// CRC and the SHA-256 the index keeps.
	ReadData bool
	// MaxDuration stops the data pass after this long (0: no limit) and
	// saves a cursor in the store directory; the next Check with ReadData
	// continues from it.
	MaxDuration time.Duration
	// Progress, if set, is called as the data pass advances.
	Progress func(CheckProgress)
}

// CheckProgress is how far a check is.
type CheckProgress struct {
	Phase string `json:"phase"` // "catalog", "index", "data"
	Done  int64  `json:"done"`  // versions checked in this phase
	Total int64  `json:"total"` // versions to check in this phase
	Bytes int64  `json:"bytes"` // bytes read in the data phase
}

// CheckProblem is one inconsistency or corruption. Fields that do not apply
// are empty; Block is -1 when no block is concerned.
type CheckProblem struct {
	Kind      string      `json:"kind"` // "superblock", "catalog", "index", "data", "accounting"
	Message   string      `json:"message"`
	Disks     []string    `json:"disks,omitempty"`
	Snapshots []string    `json:"snapshots,omitempty"`
	Images    []string    `json:"images,omitempty"`
	Layer     ids.Layer   `json:"layer,omitempty"`
	Block     int64       `json:"block"`
	Epoch     ids.Epoch   `json:"epoch,omitempty"`
	Segment   ids.Segment `json:"segment,omitempty"`
	Offset    int64       `json:"offset,omitempty"`

	v index.Version // the version concerned (Repair)
}

// CheckReport is the result of Check.
type CheckReport struct {
	Disks       int            `json:"disks"`
	Snapshots   int            `json:"snapshots"`
	Images      int            `json:"images"`
	Layers      int            `json:"layers"`
	Segments    int            `json:"segments"`
	Versions    int64          `json:"versions"`
	DataChecked int64          `json:"blocks_read"` // block versions read and verified in this run
	BytesRead   int64          `json:"bytes_read"`
	ReadData    bool           `json:"read_data"`
	Complete    bool           `json:"complete"`               // false: stopped by MaxDuration, cursor saved
	ResumedFrom string         `json:"resumed_from,omitempty"` // the cursor this run started at
	Problems    []CheckProblem `json:"problems"`
	Duration    time.Duration  `json:"duration_ns"`
}

// OK reports whether the check found nothing wrong.
func (r CheckReport) OK() bool { return len(r.Problems) == 0 }

// checkCursorName is the file, in the store directory, where a data pass
// stopped by MaxDuration saves its position.
const checkCursorName = "check-cursor.json"

type checkCursor struct {
	Version int       `json:"version"` // 1
	Store   string    `json:"store"`   // the store UUID, hex
	Layer   ids.Layer `json:"layer"`   // every version of a lower layer, and of this layer below Block, was checked (ids.Layer(math.MaxUint64): the log pass)
	Block   uint64    `json:"block"`   // a block number; in the log pass, the segment number to resume at
	Saved   time.Time `json:"saved"`
}

// logPassLayer is checkCursor.Layer for a cursor in the log pass.
const logPassLayer = ids.Layer(math.MaxUint64)

func (c checkCursor) String() string {
	if c.Layer == logPassLayer {
		return fmt.Sprintf("log pass, segment %d", c.Block)
	}
	return fmt.Sprintf("layer %d block %d", c.Layer, c.Block)
}

// checkReader is something that reads a layer at or below an epoch: a disk
// head, a snapshot member, an image, or a child layer.
type checkReader struct {
	epoch ids.Epoch
	kind  byte // 'd' disk, 's' snapshot, 'i' image, 'l' child layer
	name  string
	child ids.Layer
}

// Check verifies the store: superblock, catalog (every layer, parent and
// member reference resolves), index (every version points into an existing
// segment, within bounds) and, with ReadData, every stored block's record
// CRC and SHA-256 digest. Each problem names the disks, snapshots and
// images that see it, the block and the segment. A report with problems is
// not an error: the error is for a check that could not run. Writes go on
// meanwhile; versions written after the check began are not checked.
func (s *Store) Check(ctx context.Context, o CheckOptions) (CheckReport, error) {
	start := time.Now()
	rep := CheckReport{ReadData: o.ReadData, Complete: true}
	if err := s.checkOpen(); err != nil {
		return rep, err
	}
	s.checkSuperblock(&rep)
	var bad []CheckProblem
	err := s.idx.View(func(t *index.Txn) error {
		var err error
		bad, err = s.checkTxn(ctx, t, o, &rep)
		return err
	})
	rep.Problems = append(rep.Problems, s.stillBad(bad)...)
	if err == nil {
		rep.Problems = append(rep.Problems, s.checkAccounting()...)
	}
	rep.Duration = time.Since(start)
	return rep, err
}

// checkAccounting compares the kept space figures with a full count: every
// disk head's allocated blocks and the snapshot and image records
// (verifyAccounting), and the exclusive figures and live bytes when they
// claim to be current (verifyExclusive). A count that could not be made is
// logged, not reported: the other phases report what made it fail.
func (s *Store) checkAccounting() []CheckProblem {
	var out []CheckProblem
	split := func(err error) []string {
		if err == nil {
			return nil
		}
		if !errors.Is(err, errAccounting) {
			s.log.Warn("check: space accounting not compared", "err", err)
			return nil
		}
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		return msgs
	}
	msgs := split(s.verifyAccounting())
	if len(msgs) > 0 {
		// A snapshot deleted and collected while it was counted differs
		// too: report only what a second count repeats.
		again := map[string]bool{}
		for _, m := range split(s.verifyAccounting()) {
			again[m] = true
		}
		kept := msgs[:0]
		for _, m := range msgs {
			if again[m] {
				kept = append(kept, m)
			}
		}
		msgs = kept
	}
	// verifyExclusive compares only figures that stayed current during its
	// count.
	msgs = append(msgs, split(s.verifyExclusive())...)
	for _, m := range msgs {
		out = append(out, CheckProblem{Kind: "accounting", Block: -1, Message: m})
	}
	return out
}

// stillBad drops the block problems that a concurrent GC explains: the
// check's index view is old by the time it reads, and meanwhile the
// cleaner may have relocated a record (repointing the index) and removed
// its segment, GC deleted a dead version, or a write to the disk's head
// replaced the version under the same key (a newer sequence number) and
// the cleaner removed the old record. A problem stays if the index still
// holds the same version at the same place, or what it holds now (moved
// or rewritten) is bad too.
func (s *Store) stillBad(probs []CheckProblem) []CheckProblem {
	out := probs[:0]
	buf := make([]byte, 0, 1<<20)
	for _, p := range probs {
		if p.Block < 0 || (p.Kind != "data" && p.Kind != "index") {
			if p.Kind != "log" || s.segmentExists(p.Segment) {
				out = append(out, p)
			}
			continue
		}
		// Look up and read under readMu: the cleaner repoints the index
		// before it removes a segment, and removes it only under readMu held
		// exclusively, so the place found here exists while it is read.
		s.readMu.RLock()
		var v index.Version
		err := s.idx.View(func(t *index.Txn) error {
			var err error
			v, err = t.GetVersion(p.Layer, ids.Block(p.Block), p.Epoch)
			return err
		})
		var verr error
		if err == nil && !v.Zero() {
			if int(v.Length) > cap(buf) {
				buf = make([]byte, 0, v.Length)
			}
			verr = s.verifyVersionLocked(p.Layer, ids.Block(p.Block), p.Epoch, v, buf[:v.Length])
		}
		s.readMu.RUnlock()
		switch {
		case errors.Is(err, index.ErrNotFound):
			continue // deleted by GC: no reader needs it
		case err != nil || (v.Zero() && v.Seq == p.v.Seq):
			out = append(out, p)
		case v.Zero():
			continue // rewritten as zeros: nothing stored to read
		case verr != nil:
			p.Segment, p.Offset, p.v, p.Message = v.Segment, v.Offset, v, verr.Error()
			out = append(out, p)
		}
	}
	return out
}

func (s *Store) segmentExists(n ids.Segment) bool {
	for _, si := range s.seg.Segments() {
		if si.Number == n {
			return true
		}
	}
	return false
}

func (s *Store) checkSuperblock(rep *CheckReport) {
	sb, err := readSuperblock(s.fs, s.dir)
	if err != nil {
		rep.Problems = append(rep.Problems, CheckProblem{Kind: "superblock", Block: -1, Message: err.Error()})
		return
	}
	if sb.UUID != s.sb.UUID {
		rep.Problems = append(rep.Problems, CheckProblem{Kind: "superblock", Block: -1, Message: fmt.Sprintf("superblock names store %x, opened as %x", sb.UUID, s.sb.UUID)})
	}
	st, err := index.Inspect(filepath.Join(s.dir, "index"))
	switch {
	case err != nil:
		rep.Problems = append(rep.Problems, CheckProblem{Kind: "index", Block: -1, Message: err.Error()})
	case !st.HasIdentity:
		rep.Problems = append(rep.Problems, CheckProblem{Kind: "index", Block: -1, Message: "the index directory has no identity file"})
	case st.UUID != s.sb.UUID:
		rep.Problems = append(rep.Problems, CheckProblem{Kind: "index", Block: -1, Message: fmt.Sprintf("the index names store %x, the superblock %x", st.UUID, s.sb.UUID)})
	}
}

func (s *Store) checkTxn(ctx context.Context, t *index.Txn, o CheckOptions, rep *CheckReport) ([]CheckProblem, error) {
	var probs []CheckProblem
	catalog := func(f string, a ...any) {
		probs = append(probs, CheckProblem{Kind: "catalog", Block: -1, Message: fmt.Sprintf(f, a...)})
	}
	layers := map[ids.Layer]index.Layer{}
	if err := t.Layers(func(l index.Layer) error { layers[l.ID] = l; return nil }); err != nil {
		return probs, err
	}
	rep.Layers = len(layers)
	readers := map[ids.Layer][]checkReader{}
	add := func(layer ids.Layer, r checkReader) { readers[layer] = append(readers[layer], r) }
	for _, l := range layers {
		if l.Parent == 0 {
			continue
		}
		p, ok := layers[l.Parent]
		switch {
		case !ok:
			catalog("layer %d: parent layer %d does not exist", l.ID, l.Parent)
		case l.ParentEpoch > p.Epoch:
			catalog("layer %d: parent epoch %d is past layer %d's current epoch %d", l.ID, l.ParentEpoch, p.ID, p.Epoch)
		}
		add(l.Parent, checkReader{epoch: l.ParentEpoch, kind: 'l', child: l.ID})
	}
	ref := func(what string, layer ids.Layer, epoch ids.Epoch, bs int) {
		l, ok := layers[layer]
		switch {
		case !ok:
			catalog("%s: layer %d does not exist", what, layer)
		case epoch != headEpoch && epoch >= l.Epoch:
			catalog("%s: epoch %d of layer %d is not sealed (the layer is at epoch %d)", what, epoch, layer, l.Epoch)
		case bs != l.BlockSize:
			catalog("%s: block size %d, layer %d has %d", what, bs, layer, l.BlockSize)
		}
	}
	if err := index.Each(t, index.KindDisk, func(d index.Disk) error {
		rep.Disks++
		ref(fmt.Sprintf("disk %q", d.Name), d.Layer, headEpoch, d.BlockSize)
		add(d.Layer, checkReader{epoch: headEpoch, kind: 'd', name: d.Name})
		return nil
	}); err != nil {
		return probs, err
	}
	if err := index.Each(t, index.KindSnapshot, func(sn index.Snapshot) error {
		rep.Snapshots++
		if len(sn.Members) == 0 {
			catalog("snapshot %q has no disk", sn.Name)
		}
		for _, m := range sn.Members {
			ref(fmt.Sprintf("snapshot %q disk %q", sn.Name, m.Disk), m.Layer, m.Epoch, m.BlockSize)
			add(m.Layer, checkReader{epoch: m.Epoch, kind: 's', name: sn.Name})
		}
		return nil
	}); err != nil {
		return probs, err
	}
	if err := index.Each(t, index.KindImage, func(im index.Image) error {
		rep.Images++
		ref(fmt.Sprintf("image %q", im.Name), im.Layer, im.Epoch, im.BlockSize)
		add(im.Layer, checkReader{epoch: im.Epoch, kind: 'i', name: im.Name})
		return nil
	}); err != nil {
		return probs, err
	}
	if o.Progress != nil {
		o.Progress(CheckProgress{Phase: "catalog", Done: int64(rep.Layers), Total: int64(rep.Layers)})
	}

	segs := map[ids.Segment]int64{}
	for _, si := range s.seg.Segments() {
		segs[si.Number] = si.Size
	}
	rep.Segments = len(segs)
	layerIDs := make([]ids.Layer, 0, len(layers))
	for id := range layers {
		layerIDs = append(layerIDs, id)
	}
	slices.Sort(layerIDs)

	// whoSees fills p with the readers that see version (layer, b) of
	// epochs [lo, hi), following child layers that do not hide b.
	var whoSees func(p *CheckProblem, layer ids.Layer, b ids.Block, lo, hi ids.Epoch, depth int)
	whoSees = func(p *CheckProblem, layer ids.Layer, b ids.Block, lo, hi ids.Epoch, depth int) {
		if depth > 64 {
			return
		}
		for _, r := range readers[layer] {
			if r.epoch < lo || r.epoch >= hi && !(r.epoch == headEpoch && hi == headEpoch) {
				continue
			}
			switch r.kind {
			case 'd':
				p.Disks = appendOnce(p.Disks, r.name)
			case 's':
				p.Snapshots = appendOnce(p.Snapshots, r.name)
			case 'i':
				p.Images = appendOnce(p.Images, r.name)
			case 'l':
				// The child sees it below its own first version of b.
				first := headEpoch
				_ = t.ScanVersions(r.child, b, b+1, func(_ ids.Block, e ids.Epoch, _ index.Version) error { first = min(first, e); return nil })
				if first > 0 {
					whoSees(p, r.child, b, 0, first, depth+1)
				}
			}
		}
	}
	problem := func(kind, msg string, layer ids.Layer, b ids.Block, epoch, next ids.Epoch, v index.Version) CheckProblem {
		p := CheckProblem{Kind: kind, Message: msg, Layer: layer, Block: int64(b), Epoch: epoch, Segment: v.Segment, Offset: v.Offset, v: v}
		whoSees(&p, layer, b, epoch, next, 0)
		return p
	}

	// Index pass: every version points into the log, within bounds.
	var dataVersions int64
	for _, id := range layerIDs {
		if err := ctx.Err(); err != nil {
			return probs, err
		}
		err := scanWithNext(t, id, 0, func(b ids.Block, epoch, next ids.Epoch, v index.Version) error {
			rep.Versions++
			if v.Zero() {
				return nil
			}
			dataVersions++
			size, ok := segs[v.Segment]
			switch {
			case !ok:
				probs = append(probs, problem("index", fmt.Sprintf("block version points into segment %d, which does not exist", v.Segment), id, b, epoch, next, v))
			case v.Offset < segment.FileHeaderSize || v.Offset+int64(v.Length) > size || v.Length < segment.HeaderSize:
				probs = append(probs, problem("index", fmt.Sprintf("block version points at bytes %d+%d of segment %d, which has %d", v.Offset, v.Length, v.Segment, size), id, b, epoch, next, v))
			}
			return nil
		})
		if err != nil {
			return probs, err
		}
	}
	if o.Progress != nil {
		o.Progress(CheckProgress{Phase: "index", Done: rep.Versions, Total: rep.Versions})
	}
	if !o.ReadData {
		return probs, nil
	}

	// Data pass: read every data version and verify it, from the cursor.
	cur, resumed := s.loadCheckCursor()
	if resumed {
		rep.ResumedFrom = cur.String()
	}
	deadline := time.Time{}
	if o.MaxDuration > 0 {
		deadline = time.Now().Add(o.MaxDuration)
	}
	indexBad := map[segment.Pos]bool{}
	for _, p := range probs {
		if p.Kind == "index" {
			indexBad[segment.Pos{Segment: p.Segment, Offset: p.Offset}] = true
		}
	}
	var done int64
	var stopAt *checkCursor
	buf := make([]byte, 0, 1<<20)
	lastReport := time.Now()
	for _, id := range layerIDs {
		if resumed && id < cur.Layer {
			continue
		}
		from := ids.Block(0)
		if resumed && id == cur.Layer {
			from = ids.Block(cur.Block)
		}
		lastBlock := ids.MaxBlock
		err := scanWithNext(t, id, from, func(b ids.Block, epoch, next ids.Epoch, v index.Version) error {
			if b != lastBlock {
				lastBlock = b
				if err := ctx.Err(); err != nil {
					return err
				}
				if !deadline.IsZero() && time.Now().After(deadline) {
					stopAt = &checkCursor{Layer: id, Block: uint64(b)}
					return errStopCheck
				}
			}
			if v.Zero() || indexBad[segment.Pos{Segment: v.Segment, Offset: v.Offset}] {
				return nil
			}
			if int(v.Length) > cap(buf) {
				buf = make([]byte, 0, v.Length)
			}
			if err := s.verifyVersion(id, b, epoch, v, buf[:v.Length]); err != nil {
				probs = append(probs, problem("data", err.Error(), id, b, epoch, next, v))
			}
			done++
			rep.DataChecked++
			rep.BytesRead += int64(v.Length)
			if o.Progress != nil && time.Since(lastReport) > 100*time.Millisecond {
				lastReport = time.Now()
				o.Progress(CheckProgress{Phase: "data", Done: done, Total: dataVersions, Bytes: rep.BytesRead})
			}
			return nil
		})
		if errors.Is(err, errStopCheck) {
			break
		}
		if err != nil {
			return probs, err
		}
	}
	if o.Progress != nil {
		o.Progress(CheckProgress{Phase: "data", Done: done, Total: dataVersions, Bytes: rep.BytesRead})
	}
	if stopAt == nil {
		// Log pass: every record of every segment decodes (dead ones too:
		// a bad record anywhere is a failing disk, and catalog records are
		// what a rebuild needs).
		var err error
		logFrom := ids.Segment(0)
		if resumed && cur.Layer == logPassLayer {
			logFrom = ids.Segment(cur.Block)
		}
		if stopAt, err = s.checkLog(ctx, logFrom, deadline, &probs, rep); err != nil {
			return probs, err
		}
	}
	if stopAt != nil {
		rep.Complete = false
		if err := s.saveCheckCursor(*stopAt); err != nil {
			return probs, err
		}
		return probs, nil
	}
	if resumed {
		if err := s.fs.Remove(path.Join(s.dir, checkCursorName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return probs, fmt.Errorf("remove check cursor: %w", err)
		}
	}
	return probs, nil
}

var errStopCheck = errors.New("check: time is up")

// checkLog reads every segment from segment from on and reports records
// that fail to decode. (It reads with its own loop rather than segment.Scan,
// which logs each bad record as an error: check reports them instead.)
func (s *Store) checkLog(ctx context.Context, from ids.Segment, deadline time.Time, probs *[]CheckProblem, rep *CheckReport) (*checkCursor, error) {
	var found []CheckProblem
	active := s.seg.Active()
	cleanerActive := s.seg.CleanerActive() // a record in it is legal, its tail unfinished too
	for _, si := range s.seg.Segments() {
		if si.Number < from {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return &checkCursor{Layer: logPassLayer, Block: uint64(si.Number)}, nil
		}
		bad, n, err := s.checkSegment(si, si.Number == active || si.Number == cleanerActive, nil)
		if err != nil {
			return nil, err
		}
		rep.BytesRead += n
		found = append(found, bad...)
	}
	reported := map[segment.Pos]bool{}
	for _, p := range *probs {
		reported[segment.Pos{Segment: p.Segment, Offset: p.Offset}] = true
	}
	for _, p := range found {
		if !reported[segment.Pos{Segment: p.Segment, Offset: p.Offset}] { // else: a block version's record, reported with its readers
			*probs = append(*probs, p)
		}
	}
	return nil, nil
}

// checkSegment decodes every record of one segment, calling fn (if not nil)
// with each good one. After a bad record it goes on where the segment
// package's resync says (segment.Log.NextValid): a damaged length never
// makes it skip valid records.
func (s *Store) checkSegment(si segment.SegmentInfo, active bool, fn func(r *segment.Record, pos segment.Pos) error) ([]CheckProblem, int64, error) {
	const chunk = 4 << 20
	size := si.Size
	var probs []CheckProblem
	var buf []byte
	var bufOff int64 = -1
	// at returns the bytes of the segment from off on (at least n if the
	// segment has them), reading a chunk at a time.
	at := func(off int64, n int) ([]byte, error) {
		if bufOff >= 0 && off >= bufOff && off+int64(n) <= bufOff+int64(len(buf)) {
			return buf[off-bufOff:], nil
		}
		want := int64(max(chunk, n))
		want = min(want, size-off)
		if want <= 0 {
			return nil, nil
		}
		if int64(cap(buf)) < want {
			buf = make([]byte, want)
		}
		buf = buf[:want]
		s.readMu.RLock()
		err := s.seg.ReadRaw(si.Number, buf, off)
		s.readMu.RUnlock()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || !s.segmentExists(si.Number) {
				return nil, nil // removed meanwhile by the cleaner
			}
			return nil, fmt.Errorf("check: read segment %d at %d: %w", si.Number, off, err)
		}
		bufOff = off
		return buf, nil
	}
	var rec segment.Record
	decodeAt := func(off int64) (int, error) {
		b, err := at(off, segment.HeaderSize)
		if err != nil {
			return 0, err
		}
		if len(b) >= segment.HeaderSize {
			if plen := int(leUint32(b[40:])); plen <= segment.MaxPayload && len(b) < segment.HeaderSize+plen {
				if b, err = at(off, segment.HeaderSize+plen); err != nil {
					return 0, err
				}
			}
		}
		r, n, derr := segment.Decode(b)
		rec = r
		if derr != nil {
			return 0, derr
		}
		return n, nil
	}
	off := int64(segment.FileHeaderSize)
	for off < size {
		n, derr := decodeAt(off)
		if derr == nil {
			if fn != nil {
				if err := fn(&rec, segment.Pos{Segment: si.Number, Offset: off, Length: uint32(n)}); err != nil {
					return probs, size, err
				}
			}
			off += int64(n)
			continue
		}
		if active && errors.Is(derr, segment.ErrShort) {
			break // the active segment's unfinished tail
		}
		probs = append(probs, CheckProblem{Kind: "log", Block: -1, Segment: si.Number, Offset: off,
			Message: fmt.Sprintf("record does not decode (not a block any disk, snapshot or image reads now; a hole or catalog record there would be missing from an index rebuild): %v", derr)})
		// The segment package's resync: it never trusts the bad record's
		// length (a damaged one must not make repair's walk skip live
		// records), nor takes a record inside its payload for a real one.
		next, err := s.seg.NextValid(si.Number, size, off)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || !s.segmentExists(si.Number) {
				return probs, size, nil // removed meanwhile by the cleaner
			}
			return probs, size, fmt.Errorf("check: segment %d after the bad record at %d: %w", si.Number, off, err)
		}
		if next < 0 {
			break
		}
		off = next
	}
	return probs, size, nil
}

func leUint32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// scanWithNext calls fn for every version of a layer from block from on,
// with the epoch of the next newer version of the same block (headEpoch for
// the newest).
func scanWithNext(t *index.Txn, layer ids.Layer, from ids.Block, fn func(b ids.Block, epoch, next ids.Epoch, v index.Version) error) error {
	cur, next := ids.MaxBlock, headEpoch
	first := true
	return t.ScanVersions(layer, from, ids.MaxBlock, func(b ids.Block, epoch ids.Epoch, v index.Version) error {
		if first || b != cur {
			first, cur, next = false, b, headEpoch
		}
		err := fn(b, epoch, next, v)
		next = epoch
		return err
	})
}

// verifyVersion reads the record of a data version and checks it decodes,
// is that version's record, and holds the block the index describes.
func (s *Store) verifyVersion(layer ids.Layer, b ids.Block, epoch ids.Epoch, v index.Version, buf []byte) error {
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	return s.verifyVersionLocked(layer, b, epoch, v, buf)
}

// verifyVersionLocked is verifyVersion with readMu held (shared).
func (s *Store) verifyVersionLocked(layer ids.Layer, b ids.Block, epoch ids.Epoch, v index.Version, buf []byte) error {
	r, err := s.seg.Read(segment.Pos{Segment: v.Segment, Offset: v.Offset, Length: v.Length}, buf)
	if err != nil {
		return fmt.Errorf("record unreadable: %w", err)
	}
	switch {
	case r.Kind != segment.KindData || r.Layer != layer || r.Block != b || r.Epoch != epoch || r.Seq != v.Seq:
		return fmt.Errorf("record at segment %d offset %d is %s layer %d block %d epoch %d seq %d, not the indexed version (seq %d)",
			v.Segment, v.Offset, r.Kind, r.Layer, r.Block, r.Epoch, r.Seq, v.Seq)
	}
	if sealed, err := s.checkSealed(&r, layer, v); sealed { // encrypted layers (crypt.go)
		return err
	}
	switch {
	case sha256.Sum256(r.Payload) != v.Digest:
		return errors.New("block SHA-256 differs from the index's")
	}
	return nil
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func (s *Store) loadCheckCursor() (checkCursor, bool) {
	var c checkCursor
	f, err := s.fs.Open(path.Join(s.dir, checkCursorName))
	if err != nil {
		return c, false
	}
	defer f.Close()
	b := make([]byte, 4096)
	n, _ := f.ReadAt(b, 0)
	if json.Unmarshal(bytes.TrimSpace(b[:n]), &c) != nil || c.Version != 1 || c.Store != fmt.Sprintf("%x", s.sb.UUID) {
		return checkCursor{}, false // unreadable or another store's: start over
	}
	return c, true
}

func (s *Store) saveCheckCursor(c checkCursor) error {
	c.Version, c.Store, c.Saved = 1, fmt.Sprintf("%x", s.sb.UUID), time.Now().UTC()
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := vfs.WriteFile(s.fs, path.Join(s.dir, checkCursorName), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save check cursor: %w", err)
	}
	return nil
}
