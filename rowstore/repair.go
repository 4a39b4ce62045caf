package rowstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"time"

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

// SnapshotSource is a BlockSource that also holds copies of this store's
// snapshots (a region). Repair uses it for a bad version whose digest the
// index lost (a corrupt record an index rebuild or a replay indexed as its
// block's version): the copy of a snapshot that sees exactly that version
// holds the block as it was.
type SnapshotSource interface {
	// SnapshotBlock writes block b of disk, as the source's copy of snap
	// holds it, to dst (len(dst) is the block size), verified as the
	// source verifies every block it gives. The copy must be of snap
	// itself, made from this store: the same snapshot id and creation
	// time, never merely a snapshot of that name (a name can be reused
	// after a delete). found is false, with nil error, when the source
	// holds no such copy; a copy that lacks the disk or holds the block
	// as zeros, or that cannot be read, is an error saying so.
	SnapshotBlock(ctx context.Context, snap SnapshotInfo, disk string, b int64, dst []byte) (found bool, err error)
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
// rebuild of the index from the log finds it. A version whose digest is
// unknown (zero: a corrupt record indexed by a rebuild) is fetched, when
// src is a SnapshotSource, as src's copy of a snapshot that sees exactly
// that version holds it, and the index gets its digest (repairUnknown).
// Problems that are not a bad block version, and blocks src does not have,
// are reported as unrepaired, with the reason.
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
	// The copies are fetched with no lock held (a region: seconds each),
	// then appended and the index pointed at them under gcMu, a batch at a
	// time (applyRepairs): a copy appended but not yet in the index is dead
	// to the cleaner, which would remove its segment meanwhile.
	var todo []repairWrite
	pending := 0 // payload bytes in todo
	apply := func() error {
		n, err := s.applyRepairs(todo)
		rep.Repaired += n
		todo, pending = todo[:0], 0
		if err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		return nil
	}
	logBad := false
	for _, p := range chk.Problems {
		logBad = logBad || p.Kind == "log"
		if (p.Kind != "data" && p.Kind != "index") || p.Block < 0 || p.v.Zero() || p.v.Seq == 0 {
			rep.Unrepaired = append(rep.Unrepaired, p)
			continue
		}
		var w repairWrite
		var err error
		if p.v.Digest == ([32]byte{}) {
			// A corrupt record replay indexed as its block's version
			// (attributeBad): the digest its good copy had is unknown, so
			// it is fetched as the source's copy of a snapshot that sees
			// exactly this version holds it (repairUnknown).
			w, err = s.repairUnknown(ctx, src, p)
		} else {
			w, err = s.repairVersion(ctx, src, p)
		}
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			p.Message += "; not repaired: " + err.Error()
			rep.Unrepaired = append(rep.Unrepaired, p)
			continue
		}
		todo = append(todo, w)
		if pending += len(w.r.Payload); pending >= repairBatchBytes {
			if err := apply(); err != nil {
				return rep, err
			}
		}
	}
	if len(todo) > 0 {
		if err := apply(); err != nil {
			return rep, err
		}
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
	bad := map[segment.Pos]bool{} // the bad records the walks met (Length 0)
	for _, n := range nums {
		si, ok := infos[n]
		if !ok {
			continue
		}
		probs, _, err := s.checkSegment(si, false, func(r *segment.Record, pos segment.Pos) error {
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
		for _, p := range probs {
			bad[segment.Pos{Segment: p.Segment, Offset: p.Offset}] = true
		}
		todo = append(todo, n)
	}
	if err := s.seg.Sync(); err != nil {
		return nil, err
	}
	for len(moves) > 0 {
		n := min(len(moves), 2000)
		if _, err := s.repoint(moves[:n]); err != nil {
			return nil, err
		}
		moves = moves[n:]
	}
	if err := s.idx.Sync(); err != nil {
		return nil, err
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	missed, err := s.versionsMissed(todo, bad)
	if err != nil {
		return nil, err
	}
	var gone []ids.Segment
	for _, n := range todo {
		if missed[n] {
			continue // kept, with its evidence: see versionsMissed
		}
		s.corruptMu.Lock()
		delete(s.corruptSegs, n) // the evidence was dealt with
		s.corruptMu.Unlock()
		if !s.segmentNeeded(n) {
			gone = append(gone, n)
		}
	}
	return gone, s.seg.RemoveSegments(gone)
}

// versionsMissed returns the segments of segs that a committed data
// version of the index still points into, after dropBadSegments moved the
// live records its walks met, at a record other than a bad one the walks
// reported (bad): a live record the walk missed (a resync that skipped it).
// Removing such a segment would lose that block's data for good, so it is
// kept, with its evidence, and logged; check keeps reporting it. Versions
// at a bad record (a block attributed to it, reading EIO) do not keep it:
// repair drops that evidence on purpose. A hole points at no data.
func (s *Store) versionsMissed(segs []ids.Segment, bad map[segment.Pos]bool) (map[ids.Segment]bool, error) {
	want := map[ids.Segment]bool{}
	for _, n := range segs {
		want[n] = true
	}
	missed := map[ids.Segment]bool{}
	if len(want) == 0 {
		return missed, nil
	}
	err := s.idx.View(func(t *index.Txn) error {
		return t.EachVersion(func(layer ids.Layer, block ids.Block, epoch ids.Epoch, v index.Version) error {
			if v.Zero() || !want[v.Segment] || bad[segment.Pos{Segment: v.Segment, Offset: v.Offset}] {
				return nil
			}
			if !missed[v.Segment] {
				s.log.Error("repair: a committed version still points into a bad segment after its live records were moved; keeping the segment",
					"segment", v.Segment, "offset", v.Offset, "layer", layer, "block", block, "epoch", epoch)
			}
			missed[v.Segment] = true
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("repair: versions left in bad segments: %w", err)
	}
	return missed, nil
}

// repairBuf is a buffer of one block of layer, for a fetched copy.
func (s *Store) repairBuf(layer ids.Layer) ([]byte, error) {
	var l index.Layer
	if err := s.idx.View(func(t *index.Txn) error {
		var err error
		l, err = t.Layer(layer)
		return err
	}); err != nil {
		return nil, fmt.Errorf("layer %d: %w", layer, err)
	}
	return make([]byte, l.BlockSize), nil
}

// repairVersion fetches a good copy of a bad version (the record to append).
func (s *Store) repairVersion(ctx context.Context, src BlockSource, p CheckProblem) (repairWrite, error) {
	dst, err := s.repairBuf(p.Layer)
	if err != nil {
		return repairWrite{}, err
	}
	plain, err := s.plainDigests(p.Layer, fmt.Sprintf("layer %d", p.Layer)) // crypt.go
	if err != nil {
		return repairWrite{}, err
	}
	digest := plain(p.v.Digest)
	found, err := src.FetchBlock(ctx, digest, dst)
	if err != nil {
		return repairWrite{}, fmt.Errorf("fetch: %w", err)
	}
	if !found {
		return repairWrite{}, errors.New("the source has no block with this digest")
	}
	if sha256.Sum256(dst) != digest {
		return repairWrite{}, errors.New("the source's copy has another digest")
	}
	r := segment.Record{Kind: segment.KindData, Layer: p.Layer, Block: ids.Block(p.Block), Epoch: p.Epoch, Seq: p.v.Seq, Payload: dst}
	if err := s.sealRepair(&r, digest); err != nil { // crypt.go
		return repairWrite{}, err
	}
	return repairWrite{old: segment.Pos{Segment: p.v.Segment, Offset: p.v.Offset, Length: p.v.Length}, r: r}, nil
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

// repairBatchBytes bounds the fetched copies Repair holds in memory before
// it appends them (applyRepairs).
const repairBatchBytes = 32 << 20

// repairWrite is a fetched copy of a bad version, to append as its
// relocated record: the record (payload included, sealed for an encrypted
// layer), the bad record's place, and for a version whose digest was
// unknown (learnt), the digest as the index keeps it.
type repairWrite struct {
	old    segment.Pos
	r      segment.Record
	digest [32]byte
	learnt bool
}

// applyRepairs appends the copies, syncs the log and points the index at
// them (each version still at its bad place; the digest too for a learnt
// one), then syncs the index, all under gcMu: until the index points at a
// copy, nothing says it is live, and a GC or cleaner round would remove
// its segment (TestRev15RepairCleanerMeanwhile). A crash before the index
// is synced leaves copies nothing points at (dead records, for the
// cleaner) and the versions bad, for the next repair. It returns the
// versions repaired.
func (s *Store) applyRepairs(ws []repairWrite) (int, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	var moves []relocation
	for i := range ws {
		w := &ws[i]
		np, err := s.relocate(&w.r)
		if err != nil {
			return 0, err
		}
		w.r.Payload = nil
		moves = append(moves, relocation{old: w.old, new: np, r: w.r, learn: w.learnt, digest: w.digest})
	}
	if err := s.seg.Sync(); err != nil {
		return 0, fmt.Errorf("sync log: %w", err)
	}
	n := 0
	for len(moves) > 0 {
		k := min(len(moves), 2000)
		done, err := s.repoint(moves[:k])
		n += done // not those deleted or moved meanwhile
		if err != nil {
			return n, err
		}
		moves = moves[k:]
	}
	if err := s.idx.Sync(); err != nil {
		return n, fmt.Errorf("sync index: %w", err)
	}
	return n, nil
}

// repairUnknown repairs a bad version whose digest is unknown: among the
// snapshots the check says see it, it takes each disk of theirs whose
// block p.Block resolves to exactly this version (same record and
// sequence number), asks src for that block of its copy of the snapshot,
// and returns the first copy that passes, as the version's relocated
// record. A copy passes only if it is what the damaged record held (asDamaged:
// the record's own checksum matches with it). Its error says why nothing
// could be used, for each snapshot tried.
func (s *Store) repairUnknown(ctx context.Context, src BlockSource, p CheckProblem) (repairWrite, error) {
	if len(p.Snapshots) == 0 {
		return repairWrite{}, errors.New("its digest is unknown (a corrupt record indexed by an index rebuild or a replay) and no snapshot sees this version (only the disks, images or clones listed), so no region holds a copy of it; write the block again (what it held since the last snapshot is lost)")
	}
	ss, ok := src.(SnapshotSource)
	if !ok {
		return repairWrite{}, errors.New("its digest is unknown (a corrupt record indexed by an index rebuild or a replay) and the source holds no snapshots to take it from; write the block again, or restore the disk or snapshot that holds it")
	}
	type seer struct {
		rec   index.Snapshot // as read with chain (not again by name: it may be another by then)
		snap  string
		disk  string
		chain []link
	}
	var seers []seer
	if err := s.idx.View(func(t *index.Txn) error {
		for _, name := range p.Snapshots {
			var sr index.Snapshot
			err := t.Get(index.KindSnapshot, name, &sr)
			if errors.Is(err, index.ErrNotFound) {
				continue // deleted since the check
			}
			if err != nil {
				return fmt.Errorf("snapshot %q: %w", name, err)
			}
			for _, m := range sr.Members {
				chain, err := chainOf(t, m.Layer, m.Epoch)
				if err != nil {
					return err
				}
				seers = append(seers, seer{sr, name, m.Disk, chain})
			}
		}
		return nil
	}); err != nil {
		return repairWrite{}, err
	}
	if err := s.requireUnlocked(p.Layer, fmt.Sprintf("layer %d", p.Layer)); err != nil { // crypt.go: before any fetch
		return repairWrite{}, err
	}
	dst, err := s.repairBuf(p.Layer)
	if err != nil {
		return repairWrite{}, err
	}
	var why []string
	mismatch := false
	for _, sr := range seers {
		v, found, err := s.lookup(sr.chain, ids.Block(p.Block))
		if err != nil {
			return repairWrite{}, err
		}
		if !found || v.Segment != p.v.Segment || v.Offset != p.v.Offset || v.Seq != p.v.Seq {
			continue // this disk of the snapshot sees another version of the block
		}
		info, err := snapshotInfo(s, sr.rec)
		if err != nil {
			why = append(why, fmt.Sprintf("snapshot %q: %v", sr.snap, err))
			continue
		}
		found, err = ss.SnapshotBlock(ctx, info, sr.disk, p.Block, dst)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return repairWrite{}, ctx.Err()
			}
			why = append(why, fmt.Sprintf("snapshot %q disk %q: %v", sr.snap, sr.disk, err))
			continue
		case !found:
			why = append(why, fmt.Sprintf("snapshot %q (id %d, created %s): the source holds no copy of it (a snapshot of that name there that is not this one, deleted and its name reused, is never used)", sr.snap, info.ID, info.Created.Format(time.RFC3339Nano)))
			continue
		}
		// The copy is of a snapshot that sees this version now; whether it
		// is what the damaged record held is another matter (a flipped
		// epoch in its header makes snapshots taken before it was written
		// see it too, whose copies hold older content): only a copy that
		// makes the record's own checksum match is written.
		r, digest, ok, err := s.asDamaged(p, dst)
		if err != nil {
			return repairWrite{}, err
		}
		if !ok {
			why = append(why, fmt.Sprintf("snapshot %q disk %q: its copy is not what the damaged record held", sr.snap, sr.disk))
			mismatch = true
			continue
		}
		return repairWrite{old: segment.Pos{Segment: p.v.Segment, Offset: p.v.Offset, Length: p.v.Length}, r: r, digest: digest, learnt: true}, nil
	}
	if len(why) == 0 {
		return repairWrite{}, errors.New("its digest is unknown (a corrupt record indexed by an index rebuild or a replay) and no snapshot still sees this version; write the block again")
	}
	if mismatch {
		why = append(why, "(with such a copy the record's checksum, over its header and payload, does not match: the copy is of other content, or the record's header is damaged too and the snapshots that see the version now did not all see it; restore the disk or snapshot that holds it)")
	}
	return repairWrite{}, fmt.Errorf("its digest is unknown (a corrupt record indexed by an index rebuild or a replay) and no copy of a snapshot that sees it could be used: %s", strings.Join(why, "; "))
}

// recordCRC is the checksum of segment records (segment.Encode: CRC-32C of
// the header's first 44 bytes and the payload, stored in bytes 44..48).
var recordCRC = crc32.MakeTable(crc32.Castagnoli)

// asDamaged says whether block pt (a source's copy, plaintext) is what the
// damaged record of version p.v held: it rebuilds that record from its
// header as stored and the payload pt gives (pt itself for a plain layer;
// for an encrypted one pt sealed again under the record's stored envelope
// header: its family, subkey salt and nonce), and compares the record's
// stored CRC, which covers header and payload. A match (but for a 2^-32
// chance) means the record, header included, was exactly this: the copy
// is returned as the record to append (the original, byte for byte) with
// the version's digest as the index keeps it. A copy of other content, or
// a record whose header or envelope header is damaged too (a flipped epoch
// makes a rebuild index it where other snapshots see it, and their copies
// hold other blocks), never matches: ok is false. A record that cannot be
// read is an error.
func (s *Store) asDamaged(p CheckProblem, pt []byte) (r segment.Record, digest [32]byte, ok bool, err error) {
	v := p.v
	if v.Length < segment.HeaderSize || int(v.Length) > segment.HeaderSize+segment.MaxPayload {
		return r, digest, false, fmt.Errorf("the damaged record (segment %d offset %d) has length %d", v.Segment, v.Offset, v.Length)
	}
	raw := make([]byte, v.Length)
	if err := s.seg.ReadRaw(v.Segment, raw, v.Offset); err != nil {
		return r, digest, false, fmt.Errorf("read the damaged record to check the copy against it: %w", err)
	}
	h := raw[:segment.HeaderSize]
	le := binary.LittleEndian
	r = segment.Record{Kind: segment.Kind(h[5]), Flags: le.Uint16(h[6:]), Layer: ids.Layer(le.Uint64(h[8:])), Block: ids.Block(le.Uint64(h[16:])),
		Epoch: ids.Epoch(le.Uint64(h[24:])), Seq: ids.Seq(le.Uint64(h[32:]))}
	if r.Kind != segment.KindData || r.Layer != p.Layer || r.Block != ids.Block(p.Block) || r.Epoch != p.Epoch || r.Seq != v.Seq ||
		int(le.Uint32(h[40:])) != len(raw)-segment.HeaderSize {
		return r, digest, false, nil // not the header the index was built from
	}
	stored := raw[segment.HeaderSize:]
	fid, err := s.layerFamily(p.Layer)
	if err != nil {
		return r, digest, false, err
	}
	payload := pt
	digest = sha256.Sum256(pt)
	if fid != 0 {
		if r.Flags&recordSealed == 0 {
			return r, digest, false, nil
		}
		e, err := decodeBlockEnv(stored)
		if err != nil || e.family != fid || len(stored) != blockEnvOverhead+len(pt) {
			return r, digest, false, nil // the envelope header is damaged
		}
		f := s.unlockedFamily(fid)
		if f == nil {
			return r, digest, false, lockedError(fmt.Sprintf("layer %d", p.Layer))
		}
		f.mu.Lock()
		a, err := f.subkeyLocked(e.salt)
		f.mu.Unlock()
		if errors.Is(err, ErrLocked) {
			return r, digest, false, lockedError(fmt.Sprintf("layer %d", p.Layer))
		}
		if err != nil {
			return r, digest, false, err
		}
		if sd := f.sealDigest(digest); sd != e.digest {
			return r, digest, false, nil
		}
		// The same key, nonce, data and plaintext as the original: the
		// same ciphertext (no nonce is used for other plaintext: this is
		// only kept if it matches the original byte for byte).
		env := make([]byte, blockEnvHeader, blockEnvOverhead+len(pt))
		copy(env, stored[:blockEnvHeader])
		var ad [15 + blockEnvHeader + 32]byte
		payload = a.Seal(env, env[28:40], pt, blockAD(&ad, env, &r))
		digest = e.digest
	} else if r.Flags&recordSealed != 0 {
		return r, digest, false, nil
	}
	crc := crc32.Update(0, recordCRC, h[:44])
	crc = crc32.Update(crc, recordCRC, payload)
	if crc != le.Uint32(h[44:]) {
		return r, digest, false, nil
	}
	r.Payload = payload
	return r, digest, true, nil
}
