package rowstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// BlockSource fetches a block by the SHA-256 of its plaintext (the digest
// the index keeps): a region, another store. It writes the block to dst
// (len(dst) is the block size) and reports whether it had it.
type BlockSource interface {
	FetchBlock(ctx context.Context, digest [32]byte, dst []byte) (found bool, err error)
}

// RepairReport says what Repair did.
type RepairReport struct {
	Checked  CheckReport `json:"check"`
	Repaired int         `json:"repaired"`
	// SegmentsCleaned: segments holding bad records that were cleaned
	// (good live records moved) and removed once every block was repaired.
	SegmentsCleaned int            `json:"segments_cleaned"`
	Unrepaired      []CheckProblem `json:"unrepaired"` // problems left (not a block, or no good copy)
}

// Repair checks every stored block (Check with ReadData) and rewrites each
// corrupt or missing block version from src: the fetched block must have
// the SHA-256 the index keeps. The copy is appended as a relocated record
// with the same layer, block, epoch and sequence number, so every disk,
// snapshot and image that shares the version is repaired at once, and a
// rebuild of the index from the log finds it. Problems that are not a bad
// block version, and blocks src does not have, are reported as unrepaired.
func (s *Store) Repair(ctx context.Context, src BlockSource, progress func(CheckProgress)) (RepairReport, error) {
	var rep RepairReport
	// A full pass, whatever cursor an earlier check left.
	chk, err := s.Check(ctx, CheckOptions{ReadData: true, Progress: progress})
	rep.Checked = chk
	if err != nil {
		return rep, err
	}
	if chk.ResumedFrom != "" {
		// That pass skipped what an earlier, interrupted check covered: run
		// once more from the start (the cursor is gone now).
		if chk, err = s.Check(ctx, CheckOptions{ReadData: true, Progress: progress}); err != nil {
			return rep, err
		}
		rep.Checked = chk
	}
	var moves []relocation
	logBad := false
	for _, p := range chk.Problems {
		logBad = logBad || p.Kind == "log"
		if (p.Kind != "data" && p.Kind != "index") || p.Block < 0 || p.v.Zero() || p.v.Seq == 0 {
			rep.Unrepaired = append(rep.Unrepaired, p)
			continue
		}
		if p.v.Digest == ([32]byte{}) {
			// A corrupt record replay indexed as its block's version
			// (attributeBad): the digest its good copy had is unknown, so
			// no source's copy can be fetched or verified by it.
			p.Message += "; not repaired: its digest is unknown (a corrupt record indexed by an index rebuild or a replay): no source can be checked against it; write the block again, or restore the disk or snapshot that holds it"
			rep.Unrepaired = append(rep.Unrepaired, p)
			continue
		}
		np, r, err := s.repairVersion(ctx, src, p)
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			p.Message += "; not repaired: " + err.Error()
			rep.Unrepaired = append(rep.Unrepaired, p)
			continue
		}
		moves = append(moves, relocation{old: segment.Pos{Segment: p.v.Segment, Offset: p.v.Offset, Length: p.v.Length}, new: np, r: r})
	}
	if logBad {
		// A bad record may have been a catalog record: log the whole
		// catalog again, so a rebuild never needs the bad one.
		s.catMu.Lock()
		err := s.writeFullCatalog()
		s.catMu.Unlock()
		if err != nil {
			return rep, fmt.Errorf("repair: rewrite the catalog: %w", err)
		}
	}
	if len(moves) > 0 {
		if err := s.seg.Sync(); err != nil {
			return rep, fmt.Errorf("repair: sync log: %w", err)
		}
		for len(moves) > 0 {
			n := min(len(moves), 2000)
			if err := s.repoint(moves[:n]); err != nil {
				return rep, fmt.Errorf("repair: %w", err)
			}
			rep.Repaired += n
			moves = moves[n:]
		}
		if err := s.idx.Sync(); err != nil {
			return rep, fmt.Errorf("repair: sync index: %w", err)
		}
	}
	// The segments that hold bad records (now needed by no version: the
	// repaired blocks were rewritten, catalog records are covered by the
	// fresh full one) are cleaned: their good live records moved, the
	// segments removed, so a later check is clean.
	bad := map[ids.Segment]bool{}
	for _, p := range chk.Problems {
		if p.Segment != 0 && (p.Kind == "log" || p.Kind == "data") {
			bad[p.Segment] = true
		}
	}
	var keep []CheckProblem
	for _, p := range rep.Unrepaired {
		if p.Kind != "log" {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 && len(bad) > 0 {
		// Only when every block was repaired: a bad record still needed
		// stays as evidence (and reads of it keep failing).
		if logBad {
			// A bad record may have been a hole: only the index knows it
			// now, and a rebuild would bring back the data it replaced.
			// Log every hole the index holds again, with its own sequence
			// number, before the bad segments go.
			if err := s.relogHoles(); err != nil {
				return rep, fmt.Errorf("repair: log the holes again: %w", err)
			}
		}
		nums := make([]ids.Segment, 0, len(bad))
		for n := range bad {
			nums = append(nums, n)
		}
		removed, err := s.dropBadSegments(nums)
		if err != nil {
			return rep, fmt.Errorf("repair: clean segments with bad records: %w", err)
		}
		rep.SegmentsCleaned = len(removed)
		gone := map[ids.Segment]bool{}
		for _, n := range removed {
			gone[n] = true
		}
		left := rep.Unrepaired[:0]
		for _, p := range rep.Unrepaired {
			if !gone[p.Segment] {
				left = append(left, p)
			}
		}
		rep.Unrepaired = left
	}
	return rep, nil
}

// dropBadSegments relocates the good live records of segments that hold
// bad records and removes the segments (like the cleaner, whose scan would
// keep them as evidence). It returns the segments removed.
func (s *Store) dropBadSegments(nums []ids.Segment) ([]ids.Segment, error) {
	if !s.verified.Load() {
		return nil, fmt.Errorf("%w: the index was not verified against the log", ErrCorrupt)
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	for _, n := range nums {
		if n >= s.seg.Active() {
			if err := s.seg.Rotate(); err != nil {
				return nil, err
			}
			break
		}
	}
	if slices.Contains(nums, s.seg.CleanerActive()) { // the cleaner stream's: sealed, so it can go
		if err := s.seg.SealCleaner(); err != nil {
			return nil, err
		}
	}
	infos := map[ids.Segment]segment.SegmentInfo{}
	for _, si := range s.seg.Segments() {
		infos[si.Number] = si
	}
	var moves []relocation
	var todo []ids.Segment
	for _, n := range nums {
		si, ok := infos[n]
		if !ok {
			continue
		}
		_, _, err := s.checkSegment(si, false, func(r *segment.Record, pos segment.Pos) error {
			live, err := s.recordLive(r, pos)
			if err != nil || !live {
				return err
			}
			cp := *r
			cp.Payload = append([]byte(nil), r.Payload...)
			np, err := s.relocate(&cp)
			if err != nil {
				return err
			}
			cp.Payload = nil
			moves = append(moves, relocation{old: pos, new: np, r: cp})
			return nil
		})
		if err != nil {
			return nil, err
		}
		todo = append(todo, n)
	}
	if err := s.seg.Sync(); err != nil {
		return nil, err
	}
	for len(moves) > 0 {
		n := min(len(moves), 2000)
		if err := s.repoint(moves[:n]); err != nil {
			return nil, err
		}
		moves = moves[n:]
	}
	if err := s.idx.Sync(); err != nil {
		return nil, err
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	var gone []ids.Segment
	for _, n := range todo {
		s.corruptMu.Lock()
		delete(s.corruptSegs, n) // the evidence was dealt with
		s.corruptMu.Unlock()
		if !s.segmentNeeded(n) {
			gone = append(gone, n)
		}
	}
	return gone, s.seg.RemoveSegments(gone)
}

// repairVersion fetches a good copy of a bad version and appends it.
func (s *Store) repairVersion(ctx context.Context, src BlockSource, p CheckProblem) (segment.Pos, segment.Record, error) {
	var l index.Layer
	if err := s.idx.View(func(t *index.Txn) error {
		var err error
		l, err = t.Layer(p.Layer)
		return err
	}); err != nil {
		return segment.Pos{}, segment.Record{}, fmt.Errorf("layer %d: %w", p.Layer, err)
	}
	dst := make([]byte, l.BlockSize)
	plain, err := s.plainDigests(p.Layer, fmt.Sprintf("layer %d", p.Layer)) // crypt.go
	if err != nil {
		return segment.Pos{}, segment.Record{}, err
	}
	digest := plain(p.v.Digest)
	found, err := src.FetchBlock(ctx, digest, dst)
	if err != nil {
		return segment.Pos{}, segment.Record{}, fmt.Errorf("fetch: %w", err)
	}
	if !found {
		return segment.Pos{}, segment.Record{}, errors.New("the source has no block with this digest")
	}
	if sha256.Sum256(dst) != digest {
		return segment.Pos{}, segment.Record{}, errors.New("the source's copy has another digest")
	}
	r := segment.Record{Kind: segment.KindData, Layer: p.Layer, Block: ids.Block(p.Block), Epoch: p.Epoch, Seq: p.v.Seq, Payload: dst}
	if err := s.sealRepair(&r, digest); err != nil { // crypt.go
		return segment.Pos{}, segment.Record{}, err
	}
	np, err := s.relocate(&r)
	if err != nil {
		return segment.Pos{}, segment.Record{}, err
	}
	return np, r, nil
}

// relogHoles appends a zero record for every hole version in the index,
// with its layer, blocks, epoch and sequence number (as relocation does),
// runs of consecutive blocks as one record. Made durable by the caller's
// sync.
func (s *Store) relogHoles() error {
	type run struct {
		layer ids.Layer
		epoch ids.Epoch
		start ids.Block
		n     uint64 // blocks in the run
		seq   ids.Seq
	}
	type runKey struct {
		layer ids.Layer
		epoch ids.Epoch
	}
	runs := map[runKey]*run{}
	flush := func(r *run) error {
		p := make([]byte, 8)
		putLeUint64(p, r.n)
		_, err := s.relocate(&segment.Record{Kind: segment.KindZero, Layer: r.layer, Block: r.start, Epoch: r.epoch, Seq: r.seq, Payload: p})
		return err
	}
	err := s.idx.View(func(t *index.Txn) error {
		return t.EachVersion(func(layer ids.Layer, block ids.Block, epoch ids.Epoch, v index.Version) error {
			if !v.Zero() {
				return nil
			}
			k := runKey{layer, epoch}
			if r := runs[k]; r != nil {
				if r.start.Add(r.n) == block && r.seq == v.Seq {
					r.n++
					return nil
				}
				if err := flush(r); err != nil {
					return err
				}
			}
			runs[k] = &run{layer: layer, epoch: epoch, start: block, n: 1, seq: v.Seq}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, r := range runs {
		if err := flush(r); err != nil {
			return err
		}
	}
	return nil
}
