package rowstore

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// replayStats is what a replay of the log found.
type replayStats struct {
	Records        int64   // block records applied
	CatalogRecords int     // catalog records applied
	FullCatalogSeq ids.Seq // newest full catalog record seen (0: none)
	Skipped        int64   // block records of layers the catalog does not hold
	// Layers are the layers block records were replayed to (their disks'
	// space accounting is counted again: accounting.go).
	Layers map[ids.Layer]bool
	// BadIndexed: corrupt data records indexed as their block's version
	// (reads of it fail as corrupt; check reports it): attributeBad.
	BadIndexed int
	// BadSuperseded: corrupt data records whose block has a newer (or an
	// equal, good) version: nothing reads them.
	BadSuperseded int
	// Unattributed: corrupt records replay could not tie to a block.
	Unattributed []BadRecordReport
}

// BadRecordReport is a corrupt record of the log that replay could not
// attribute to a block (its header is damaged, or names a layer the
// catalog does not hold, or it is a hole or catalog record): what it held
// is not in the index. Check with ReadData reports it too.
type BadRecordReport struct {
	Segment ids.Segment `json:"segment"`
	Offset  int64       `json:"offset"`
	Bytes   int64       `json:"bytes"`
	Why     string      `json:"why"`
}

// deferred is a block record met before the catalog record that creates
// its layer (relocation moves catalog records behind newer records).
type deferred struct {
	r   segment.Record // header fields only, no payload
	pos segment.Pos
	v   index.Version
	n   uint64 // blocks covered
}

// recover replays the log from the checkpoint into the index: block records
// into the version map and catalog records into the catalog. Catalog
// changes are applied per key by sequence number (the newest wins, whatever
// the order in the log), and a full catalog record newer than everything
// the index applied replaces the whole catalog.
func (s *Store) recover() error {
	var cp index.Checkpoint
	var cst index.CatalogState
	layers := map[ids.Layer]bool{}
	err := s.idx.View(func(t *index.Txn) error {
		var err error
		if cp, err = t.Checkpoint(); err != nil {
			return err
		}
		if cst, err = t.CatalogState(); err != nil {
			return err
		}
		return t.Layers(func(l index.Layer) error { layers[l.ID] = true; return nil })
	})
	if err != nil {
		return fmt.Errorf("recover: read checkpoint: %w", err)
	}
	segs := map[ids.Segment]bool{}
	for _, si := range s.seg.Segments() {
		segs[si.Number] = true
	}
	maxSeq := cp.Seq
	from := segment.Pos{Segment: cp.Segment, Offset: cp.Offset}
	st := replayStats{Layers: map[ids.Layer]bool{}}
	b := s.idx.NewBatch()
	defer b.Cancel()
	applied := map[vkey]ids.Seq{}  // highest sequence number replayed per key
	catSet := map[string]ids.Seq{} // catalog key -> seq of the change applied
	var fullKeys map[string]bool   // keys of the newest full catalog record
	var later []deferred           // block records of layers not known yet
	newCat := cst
	var bad []segment.BadRecord    // corrupt records the scan skipped
	dataLen := map[ids.Layer]int{} // payload length of a layer's good data records
	end, err := s.seg.ScanReport(from, func(r *segment.Record, pos segment.Pos) error {
		if r.Seq > maxSeq {
			maxSeq = r.Seq
		}
		if r.Kind == segment.KindCatalog {
			if r.Seq <= cst.Seq {
				return nil // the index has it
			}
			full, changes, err := index.DecodeCatalog(r.Payload)
			if err != nil {
				return &CorruptError{What: fmt.Sprintf("catalog record at segment %d offset %d", pos.Segment, pos.Offset), Err: err}
			}
			st.CatalogRecords++
			for _, c := range changes {
				if catSet[string(c.Key)] >= r.Seq {
					continue
				}
				catSet[string(c.Key)] = r.Seq
				if err := b.ApplyCatalog(c); err != nil {
					return err
				}
				if id, ok := index.LayerOfKey(c.Key); ok {
					layers[id] = c.Value != nil
				}
			}
			if full && r.Seq > newCat.FullSeq {
				newCat.FullSeq, newCat.Entries, newCat.SinceFull = r.Seq, len(changes), 0
				fullKeys = make(map[string]bool, len(changes))
				for _, c := range changes {
					fullKeys[string(c.Key)] = true
				}
			} else if !full {
				newCat.SinceFull++
			}
			newCat.Seq = max(newCat.Seq, r.Seq)
			return nil
		}
		v, n, ok, err := recordVersion(r, pos)
		if err != nil || !ok {
			return err
		}
		if r.Kind == segment.KindData {
			dataLen[r.Layer] = len(r.Payload)
		}
		if !layers[r.Layer] {
			// A deleted layer, or one whose catalog record comes later.
			later = append(later, deferred{r: segment.Record{Kind: r.Kind, Layer: r.Layer, Block: r.Block, Epoch: r.Epoch, Seq: r.Seq}, pos: pos, v: v, n: n})
			return nil
		}
		st.Records++
		st.Layers[r.Layer] = true
		return s.applyVersion(b, r, v, n, applied, segs)
	}, func(br *segment.BadRecord) error {
		bad = append(bad, *br)
		return nil
	})
	if err != nil {
		return fmt.Errorf("recover: replay log: %w", err)
	}
	if fullKeys != nil && newCat.FullSeq > cst.Seq {
		// The full record says which keys exist at its seq: any other key
		// not changed after it is gone (deleted while the index was behind).
		var have []index.CatalogChange
		if err := s.idx.View(func(t *index.Txn) error {
			var err error
			have, err = t.CatalogDump()
			return err
		}); err != nil {
			return fmt.Errorf("recover: %w", err)
		}
		drop := func(k []byte) error {
			if id, ok := index.LayerOfKey(k); ok {
				layers[id] = false
			}
			return b.ApplyCatalog(index.CatalogChange{Key: k})
		}
		for _, c := range have {
			if k := string(c.Key); !fullKeys[k] && catSet[k] < newCat.FullSeq {
				if err := drop(c.Key); err != nil {
					return err
				}
			}
		}
		for k, seq := range catSet {
			if !fullKeys[k] && seq < newCat.FullSeq {
				if err := drop([]byte(k)); err != nil {
					return err
				}
			}
		}
	}
	for i := range later {
		d := &later[i]
		if !layers[d.r.Layer] {
			st.Skipped++
			continue
		}
		st.Records++
		st.Layers[d.r.Layer] = true
		if err := s.applyVersion(b, &d.r, d.v, d.n, applied, segs); err != nil {
			return err
		}
	}
	// Corrupt records last, once every good record is applied (a good
	// copy of the same sequence number, relocated, wins wherever it lies).
	others := replayedEpochs(bad, applied)
	for i := range bad {
		if err := s.attributeBad(b, &bad[i], layers, dataLen, maxSeq, applied, others, segs, &st); err != nil {
			return err
		}
	}
	if err := b.SetCatalogState(newCat); err != nil {
		return err
	}
	if err := b.Flush(); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	cp = index.Checkpoint{Segment: end.Segment, Offset: end.Offset, Seq: maxSeq}
	if err := s.idx.UpdateSync(func(t *index.Txn) error { return t.SetCheckpoint(cp) }); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	s.cpSegment.Store(cp.Segment)
	// Never below a catalog record the index applied, even if the log lost
	// it (a bad tail): a new record with a sequence number the index
	// already counts as applied would be skipped by the next replay.
	s.nextSeq = max(maxSeq, newCat.Seq).Next()
	st.FullCatalogSeq = newCat.FullSeq
	s.replay = st
	if st.Records > 0 || st.CatalogRecords > 0 {
		s.log.Info("recovered from log", "records", st.Records, "catalog_records", st.CatalogRecords, "seq", maxSeq)
	}
	return nil
}

// attributeBad puts a corrupt data record the scan skipped into the index
// as its block's version when its header looks intact and agrees with what
// replay knows (segment.BadRecord.HeaderOK; a layer the catalog holds; a
// sequence number no higher than any good record's; the payload length of
// the layer's good data records), unless the index holds a newer version
// of the block: reads of the block then fail as corrupt, `snapfs check`
// names it with its disks and snapshots, as if the index had been there
// before the damage; it never silently reads as its previous version. Its
// digest is unknown (zero). Anything else is reported as unattributed.
func (s *Store) attributeBad(b *index.Batch, br *segment.BadRecord, layers map[ids.Layer]bool, dataLen map[ids.Layer]int, maxSeq ids.Seq, applied map[vkey]ids.Seq, others map[layerBlock][]epochSeq, segs map[ids.Segment]bool, st *replayStats) error {
	h := &br.Header
	why := ""
	switch {
	case !br.HeaderOK:
		why = "header damaged: layer, block and kind unknown"
	case h.Kind == segment.KindCatalog:
		why = "catalog record: its catalog changes are lost"
	case h.Kind != segment.KindData:
		why = fmt.Sprintf("%s record of layer %d block %d epoch %d", h.Kind, h.Layer, h.Block, h.Epoch)
	case !layers[h.Layer]:
		why = fmt.Sprintf("data record names layer %d, which the catalog does not hold", h.Layer)
	case h.Seq > maxSeq:
		why = fmt.Sprintf("data record names sequence number %d, past the log's %d", h.Seq, maxSeq)
	case dataLen[h.Layer] != 0 && dataLen[h.Layer] != int(br.Length)-segment.HeaderSize:
		why = fmt.Sprintf("data record of %d bytes, layer %d's are %d", int(br.Length)-segment.HeaderSize, h.Layer, dataLen[h.Layer])
	}
	if why == "" {
		var err error
		if why, err = s.epochContradiction(h, others); err != nil {
			return err
		}
	}
	if why != "" {
		st.Unattributed = append(st.Unattributed, BadRecordReport{Segment: br.Segment, Offset: br.Offset, Bytes: br.Bytes, Why: why})
		s.log.Error("replay: corrupt record not attributed to a block", "segment", br.Segment, "offset", br.Offset, "bytes", br.Bytes, "why", why, "err", br.Err)
		return nil
	}
	k := vkey{h.Layer, h.Block, h.Epoch}
	before := applied[k]
	v := index.Version{Segment: br.Segment, Offset: br.Offset, Length: br.Length, Seq: h.Seq}
	if err := s.applyVersion(b, h, v, 1, applied, segs); err != nil {
		return err
	}
	if before != h.Seq && applied[k] == h.Seq {
		lb := layerBlock{h.Layer, h.Block}
		others[lb] = append(others[lb], epochSeq{h.Epoch, h.Seq})
		st.BadIndexed++
		s.log.Error("replay: corrupt data record indexed; reads of its block fail until it is repaired",
			"segment", br.Segment, "offset", br.Offset, "layer", h.Layer, "block", h.Block, "epoch", h.Epoch, "err", br.Err)
	} else {
		st.BadSuperseded++
	}
	return nil
}

// layerBlock and epochSeq: the versions of one block of a layer, by epoch
// (epochContradiction).
type layerBlock struct {
	layer ids.Layer
	block ids.Block
}

type epochSeq struct {
	epoch ids.Epoch
	seq   ids.Seq
}

// replayedEpochs collects the versions replay applied to the blocks the
// corrupt records name (only those: the map of every replayed block would
// double replay's memory for the few records it is needed for).
func replayedEpochs(bad []segment.BadRecord, applied map[vkey]ids.Seq) map[layerBlock][]epochSeq {
	out := map[layerBlock][]epochSeq{}
	if len(bad) == 0 {
		return out
	}
	for i := range bad {
		if bad[i].HeaderOK {
			out[layerBlock{bad[i].Header.Layer, bad[i].Header.Block}] = nil
		}
	}
	for k, seq := range applied {
		lb := layerBlock{k.layer, k.block}
		if vs, ok := out[lb]; ok {
			out[lb] = append(vs, epochSeq{k.epoch, seq})
		}
	}
	return out
}

// epochContradiction reports why a corrupt data record's header cannot be
// what it says ("" if it can): a block's versions are written in epoch
// order (an epoch's writes all come before the next epoch's first, and
// relocation and repair keep the epoch and sequence number), so a version
// at a higher epoch with a lower sequence number than the record's, or one
// at a lower epoch with a higher one, means the record's epoch (or its
// block, or its seq) field is damaged: the CRC covers header and payload
// together, and a header that "looks intact" is only a judgement
// (segment.BadRecord.HeaderOK). Indexed at the epoch it names, such a
// record would make a snapshot whose own version is intact read as
// corrupt (TestRev14RebuildEpochFlip). The versions compared are the
// index's and the ones replay applied (others, kept up to date by the
// caller).
func (s *Store) epochContradiction(h *segment.Record, others map[layerBlock][]epochSeq) (string, error) {
	vs := others[layerBlock{h.Layer, h.Block}]
	err := s.idx.View(func(t *index.Txn) error {
		return t.ScanVersions(h.Layer, h.Block, h.Block.Add(1), func(_ ids.Block, e ids.Epoch, v index.Version) error {
			vs = append(vs, epochSeq{e, v.Seq})
			return nil
		})
	})
	if err != nil {
		return "", fmt.Errorf("recover: versions of block %d of layer %d: %w", h.Block, h.Layer, err)
	}
	for _, o := range vs {
		if o.epoch > h.Epoch && o.seq < h.Seq || o.epoch < h.Epoch && o.seq > h.Seq {
			return fmt.Sprintf("data record of layer %d block %d names epoch %d and sequence number %d, but the block's version at epoch %d has sequence number %d: a damaged header",
				h.Layer, h.Block, h.Epoch, h.Seq, o.epoch, o.seq), nil
		}
	}
	return "", nil
}

// recordVersion is the index version a block record stands for, and how
// many blocks it covers (ok false for records that are not block records).
func recordVersion(r *segment.Record, pos segment.Pos) (index.Version, uint64, bool, error) {
	v := index.Version{Seq: r.Seq}
	switch r.Kind {
	case segment.KindData:
		v.Segment, v.Offset, v.Length = pos.Segment, pos.Offset, pos.Length
		v.Digest = sha256.Sum256(r.Payload)
		if err := recordDigest(r, &v); err != nil { // sealed records (crypt.go)
			return v, 0, false, &CorruptError{What: fmt.Sprintf("data record at segment %d offset %d", pos.Segment, pos.Offset), Err: err}
		}
		return v, 1, true, nil
	case segment.KindZero:
		if len(r.Payload) != 8 {
			return v, 0, false, &CorruptError{What: fmt.Sprintf("zero record at segment %d offset %d", pos.Segment, pos.Offset), Err: errors.New("bad payload")}
		}
		v.Flags = index.FlagZero
		return v, leUint64(r.Payload), true, nil
	}
	return v, 0, false, nil
}

// applyVersion puts a replayed record's version into the index unless the
// index already has a newer version of its key. An equal sequence number is
// the same record (relocation keeps them): the index keeps its position
// unless that segment is gone (the cleaner removed it after relocating the
// record, and the index never saw the repoint).
func (s *Store) applyVersion(b *index.Batch, r *segment.Record, v index.Version, blocks uint64, applied map[vkey]ids.Seq, segs map[ids.Segment]bool) error {
	for i := uint64(0); i < blocks; i++ {
		k := vkey{r.Layer, r.Block.Add(i), r.Epoch}
		if seq, ok := applied[k]; ok {
			if seq >= r.Seq {
				continue
			}
			applied[k] = r.Seq
			if err := b.SetVersion(k.layer, k.block, k.epoch, v); err != nil {
				return err
			}
			continue
		}
		var old index.Version
		err := s.idx.View(func(t *index.Txn) error {
			var err error
			old, err = t.GetVersion(k.layer, k.block, k.epoch)
			return err
		})
		if err != nil && !errors.Is(err, index.ErrNotFound) {
			return err
		}
		if err == nil && (old.Seq > r.Seq || old.Seq == r.Seq && (old.Zero() || segs[old.Segment])) {
			// The index keeps its version, but its epoch key is written
			// again: a commit's batch is several Badger transactions, and
			// a crash between two can keep a version key without its epoch
			// key (written after it), with no checkpoint past the record.
			// Diffs read the epoch keys, and a later overwrite at the same
			// key writes the version key only (applyCommit, knownKeys).
			if err := b.SetVersion(k.layer, k.block, k.epoch, old); err != nil {
				return err
			}
			continue
		}
		applied[k] = r.Seq
		if err := b.SetVersion(k.layer, k.block, k.epoch, v); err != nil {
			return err
		}
	}
	return nil
}
