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
	end, err := s.seg.Scan(from, func(r *segment.Record, pos segment.Pos) error {
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
		if !layers[r.Layer] {
			// A deleted layer, or one whose catalog record comes later.
			later = append(later, deferred{r: segment.Record{Kind: r.Kind, Layer: r.Layer, Block: r.Block, Epoch: r.Epoch, Seq: r.Seq}, pos: pos, v: v, n: n})
			return nil
		}
		st.Records++
		st.Layers[r.Layer] = true
		return s.applyVersion(b, r, v, n, applied, segs)
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
