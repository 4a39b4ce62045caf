package rowstore

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// GCStats reports what a garbage collection did.
type GCStats struct {
	LayersDeleted   int           `json:"layers_deleted"`
	VersionsDeleted int           `json:"versions_deleted"`
	LiveBytes       int64         `json:"live_bytes"`
	SegmentsCleaned int           `json:"segments_cleaned"`
	BytesRelocated  int64         `json:"bytes_relocated"`
	BytesFreed      int64         `json:"bytes_freed"`
	Duration        time.Duration `json:"duration_ns"`
}

// reader is something that reads a layer at or below an epoch: a disk head
// (epoch = headEpoch), a snapshot member, an image, a child layer, an open
// read handle.
type reader struct {
	epoch uint64
	who   string // "disk:NAME", "snapshot:NAME", "image:NAME", "layer:ID", "pin"
}

const headEpoch = math.MaxUint64

// scanResult is what one pass over the index found.
type scanResult struct {
	dead      []vkey           // versions no reader sees
	deadLayer []uint64         // layers nothing references
	segLive   map[uint64]int64 // live record bytes per segment
	exclusive map[string]int64 // bytes seen by exactly one reader, by reader
	live      int64
}

// scan walks the whole index in one consistent view and classifies every
// version. It changes nothing.
func (s *Store) scan() (*scanResult, error) {
	res := &scanResult{segLive: map[uint64]int64{}, exclusive: map[string]int64{}}
	s.pinMu.Lock()
	pins := make([]link, 0, len(s.pins))
	for l := range s.pins {
		pins = append(pins, l)
	}
	s.pinMu.Unlock()
	err := s.idx.View(func(t *index.Txn) error {
		layers := map[uint64]index.Layer{}
		if err := t.Layers(func(l index.Layer) error { layers[l.ID] = l; return nil }); err != nil {
			return err
		}
		readers := map[uint64][]reader{}
		heads := map[uint64]bool{}
		add := func(layer, epoch uint64, who string) { readers[layer] = append(readers[layer], reader{epoch, who}) }
		if err := index.Each(t, index.KindDisk, func(d index.Disk) error {
			add(d.Layer, headEpoch, "disk:"+d.Name)
			heads[d.Layer] = true
			return nil
		}); err != nil {
			return err
		}
		if err := index.Each(t, index.KindSnapshot, func(sn index.Snapshot) error {
			for _, m := range sn.Members {
				add(m.Layer, m.Epoch, "snapshot:"+sn.Name)
			}
			return nil
		}); err != nil {
			return err
		}
		if err := index.Each(t, index.KindImage, func(im index.Image) error {
			add(im.Layer, im.Epoch, "image:"+im.Name)
			return nil
		}); err != nil {
			return err
		}
		for _, p := range pins {
			add(p.layer, p.epoch, "pin")
		}
		// Layers reachable from a reader are live; their parents are read by them.
		var visit func(id uint64)
		liveLayer := map[uint64]bool{}
		visit = func(id uint64) {
			if liveLayer[id] {
				return
			}
			liveLayer[id] = true
			if l, ok := layers[id]; ok && l.Parent != 0 {
				add(l.Parent, l.ParentEpoch, fmt.Sprintf("layer:%d", id))
				visit(l.Parent)
			}
		}
		for id := range readers {
			visit(id)
		}
		for id := range layers {
			if !liveLayer[id] {
				res.deadLayer = append(res.deadLayer, id)
			}
		}
		sort.Slice(res.deadLayer, func(i, j int) bool { return res.deadLayer[i] < res.deadLayer[j] })
		for id := range liveLayer {
			l, ok := layers[id]
			if !ok {
				continue
			}
			rs := readers[id]
			sort.Slice(rs, func(i, j int) bool { return rs[i].epoch < rs[j].epoch })
			if err := s.scanLayer(t, l, rs, heads[id], res); err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

// scanLayer classifies the versions of one live layer.
func (s *Store) scanLayer(t *index.Txn, l index.Layer, rs []reader, isHead bool, res *scanResult) error {
	// Holes are kept like data versions even where they hide nothing: the
	// zero record in the log must outlive every older record of its block,
	// or rebuilding the index from the log would bring old data back.
	var (
		cur   uint64 = math.MaxUint64 // block being scanned
		newer uint64                  // epoch of the next newer version of cur
		first bool
	)
	err := t.ScanVersions(l.ID, 0, math.MaxUint64, func(b, epoch uint64, v index.Version) error {
		if b != cur || !first {
			first = true
			cur, newer = b, headEpoch
		}
		// Readers with epoch in [epoch, newer) see this version; the head sees
		// the newest version of every block.
		var seen []string
		i := sort.Search(len(rs), func(i int) bool { return rs[i].epoch >= epoch })
		for ; i < len(rs) && (rs[i].epoch < newer || (newer == headEpoch && rs[i].epoch == headEpoch)); i++ {
			seen = append(seen, rs[i].who)
		}
		keep := len(seen) > 0 || (isHead && epoch >= l.Epoch)
		if keep {
			if !v.Zero() {
				res.segLive[v.Segment] += int64(v.Length)
				res.live += int64(l.BlockSize)
				if len(seen) == 1 {
					res.exclusive[seen[0]] += int64(l.BlockSize)
				}
			}
		} else {
			res.dead = append(res.dead, vkey{l.ID, b, epoch})
		}
		newer = epoch
		return nil
	})
	return err
}

// GC deletes what nothing can see any more (layers, block versions), then
// the cleaner rewrites segments whose live fraction is below CleanBelow and
// removes them. Reads and writes go on meanwhile; deletions and segment
// removal hold locks only briefly.
func (s *Store) GC() (GCStats, error) {
	if err := s.checkOpen(); err != nil {
		return GCStats{}, err
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	start := time.Now()
	// Segments below the one active now hold only records appended before
	// the commit below, so after it the index knows every one of them; a
	// segment written to during or after the commit is never cleaned now.
	active := s.seg.Active()
	if err := s.syncAllDisks(); err != nil {
		return GCStats{}, err
	}
	res, err := s.scan()
	if err != nil {
		return GCStats{}, fmt.Errorf("gc: scan: %w", err)
	}
	st := GCStats{LiveBytes: res.live}
	// Dead layers: all their versions, then the record.
	for _, id := range res.deadLayer {
		var keys []vkey
		err := s.idx.View(func(t *index.Txn) error {
			return t.ScanVersions(id, 0, math.MaxUint64, func(b, e uint64, _ index.Version) error {
				keys = append(keys, vkey{id, b, e})
				return nil
			})
		})
		if err != nil {
			return st, err
		}
		if err := s.deleteVersions(keys); err != nil {
			return st, err
		}
		st.VersionsDeleted += len(keys)
		if err := s.idx.Update(func(t *index.Txn) error { return t.DeleteLayer(id) }); err != nil {
			return st, err
		}
		st.LayersDeleted++
	}
	if err := s.deleteVersions(res.dead); err != nil {
		return st, err
	}
	st.VersionsDeleted += len(res.dead)
	if err := s.idx.Sync(); err != nil {
		return st, err
	}
	if err := s.clean(active, res.segLive, &st); err != nil {
		return st, fmt.Errorf("gc: clean: %w", err)
	}
	st.Duration = time.Since(start)
	if st.VersionsDeleted > 0 || st.SegmentsCleaned > 0 {
		s.log.Info("gc", "layers_deleted", st.LayersDeleted, "versions_deleted", st.VersionsDeleted,
			"segments_cleaned", st.SegmentsCleaned, "bytes_freed", st.BytesFreed, "duration", st.Duration)
	}
	return st, nil
}

func (s *Store) deleteVersions(keys []vkey) error {
	for len(keys) > 0 {
		n := min(len(keys), 10000)
		s.idxMu.Lock()
		b := s.idx.NewBatch()
		var err error
		for _, k := range keys[:n] {
			if err = b.DeleteVersion(k.layer, k.block, k.epoch); err != nil {
				break
			}
		}
		if err == nil {
			err = b.Flush()
		} else {
			b.Cancel()
		}
		s.idxMu.Unlock()
		if err != nil {
			return fmt.Errorf("gc: delete versions: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}

// clean relocates the live records of sparse segments older than active and
// removes those segments.
func (s *Store) clean(active uint64, live map[uint64]int64, st *GCStats) error {
	for _, si := range s.seg.Segments() {
		if si.Number >= active {
			continue
		}
		if si.Size > 0 && float64(live[si.Number]) >= s.opts.CleanBelow*float64(si.Size) {
			continue
		}
		moved, err := s.cleanSegment(si.Number)
		if err != nil {
			return err
		}
		st.SegmentsCleaned++
		st.BytesRelocated += moved
		st.BytesFreed += si.Size - moved
	}
	return nil
}

type relocation struct {
	old, new segment.Pos
	r        segment.Record
}

func (s *Store) cleanSegment(num uint64) (int64, error) {
	var moves []relocation
	var moved int64
	stop := fmt.Errorf("end of segment")
	_, err := s.seg.Scan(segment.Pos{Segment: num}, func(r *segment.Record, pos segment.Pos) error {
		if pos.Segment != num {
			return stop
		}
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
		moved += int64(np.Length)
		moves = append(moves, relocation{old: pos, new: np, r: cp})
		return nil
	})
	if err != nil && err != stop {
		return 0, err
	}
	if err := s.seg.Sync(); err != nil {
		return 0, err
	}
	// Repoint the index in transactions of bounded size (Badger limits one).
	for len(moves) > 0 {
		n := min(len(moves), 2000)
		if err := s.repoint(moves[:n]); err != nil {
			return 0, err
		}
		moves = moves[n:]
	}
	if err := s.idx.Sync(); err != nil {
		return 0, err
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if s.segmentNeeded(num) {
		return moved, nil // keep it: see segmentNeeded
	}
	return moved, s.seg.Remove(num)
}

// repoint moves index entries from old to new record positions, unless the
// entry changed meanwhile.
func (s *Store) repoint(moves []relocation) error {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	return s.idx.Update(func(t *index.Txn) error {
		for _, m := range moves {
			if m.r.Kind != segment.KindData {
				continue // holes carry no location
			}
			v, err := t.GetVersion(m.r.Layer, m.r.Block, m.r.Epoch)
			if errors.Is(err, index.ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return err
			}
			if v.Segment != m.old.Segment || v.Offset != m.old.Offset || v.Seq != m.r.Seq {
				continue // replaced meanwhile
			}
			v.Segment, v.Offset, v.Length = m.new.Segment, m.new.Offset, m.new.Length
			if err := t.SetVersion(m.r.Layer, m.r.Block, m.r.Epoch, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// segmentNeeded reports whether a segment must not be removed although its
// live records were relocated: a pending version still points into it, or a
// corrupt record was found in it (the evidence stays for `check`, and reads
// of that block keep failing with a checksum error).
func (s *Store) segmentNeeded(num uint64) bool {
	s.corruptMu.Lock()
	bad := s.corruptSegs[num]
	s.corruptMu.Unlock()
	if bad {
		return true
	}
	s.pendMu.RLock()
	defer s.pendMu.RUnlock()
	for _, m := range []map[vkey]index.Version{s.pending, s.flushing} {
		for _, v := range m {
			if !v.Zero() && v.Segment == num {
				return true
			}
		}
	}
	return false
}

// recordLive reports whether the index still points at a record; a catalog
// record is live unless a newer full catalog record exists. Before the first
// record of the segment holding the index's checkpoint is judged, the
// checkpoint is moved past it (see checkIndex in identity.go).
func (s *Store) recordLive(r *segment.Record, pos segment.Pos) (bool, error) {
	if !s.verified.Load() {
		return false, fmt.Errorf("%w: gc refused: the index was not verified against the log", ErrCorrupt)
	}
	if pos.Segment >= s.cpSegment.Load() {
		if err := s.advanceCheckpoint(); err != nil {
			return false, err
		}
	}
	if r.Kind == segment.KindCatalog {
		return r.Seq >= s.catFullSeq.Load(), nil
	}
	n := uint64(1)
	if r.Kind == segment.KindZero && len(r.Payload) == 8 {
		n = leUint64(r.Payload)
	} else if r.Kind != segment.KindData {
		return false, nil
	}
	live := false
	err := s.idx.View(func(t *index.Txn) error {
		for i := uint64(0); i < n && !live; i++ {
			v, err := t.GetVersion(r.Layer, r.Block+i, r.Epoch)
			if errors.Is(err, index.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if v.Seq != r.Seq {
				continue
			}
			live = r.Kind == segment.KindZero || (v.Segment == pos.Segment && v.Offset == pos.Offset)
		}
		return nil
	})
	return live, err
}

// relocate appends a copy of a record, keeping its sequence number.
func (s *Store) relocate(r *segment.Record) (segment.Pos, error) {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	pos, err := s.seg.Append(r)
	if err == nil {
		s.dirty = true
	}
	return pos, err
}
