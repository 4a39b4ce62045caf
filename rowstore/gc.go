package rowstore

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
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
	epoch ids.Epoch
	who   string // "disk:NAME", "snapshot:NAME", "image:NAME", "layer:ID", "pin"
}

const headEpoch = ids.MaxEpoch

// liveReaders classifies the layers of the view t for GC's scan and the
// exclusive count (exclusive.go): every layer by id; the readers of each
// layer (disk heads at headEpoch, snapshot members and images at their
// epochs, the given pins, and every live layer with a parent as a reader
// of that parent at its parent epoch, "layer:ID"); which layers are disk
// heads; and which are live (reachable from a reader).
func liveReaders(t *index.Txn, pins []link) (layers map[ids.Layer]index.Layer, readers map[ids.Layer][]reader, heads, live map[ids.Layer]bool, err error) {
	layers = map[ids.Layer]index.Layer{}
	if err := t.Layers(func(l index.Layer) error { layers[l.ID] = l; return nil }); err != nil {
		return nil, nil, nil, nil, err
	}
	readers = map[ids.Layer][]reader{}
	heads = map[ids.Layer]bool{}
	add := func(layer ids.Layer, epoch ids.Epoch, who string) {
		readers[layer] = append(readers[layer], reader{epoch, who})
	}
	if err := index.Each(t, index.KindDisk, func(d index.Disk) error {
		add(d.Layer, headEpoch, "disk:"+d.Name)
		heads[d.Layer] = true
		return nil
	}); err != nil {
		return nil, nil, nil, nil, err
	}
	if err := index.Each(t, index.KindSnapshot, func(sn index.Snapshot) error {
		for _, m := range sn.Members {
			add(m.Layer, m.Epoch, "snapshot:"+sn.Name)
		}
		return nil
	}); err != nil {
		return nil, nil, nil, nil, err
	}
	if err := index.Each(t, index.KindImage, func(im index.Image) error {
		add(im.Layer, im.Epoch, "image:"+im.Name)
		return nil
	}); err != nil {
		return nil, nil, nil, nil, err
	}
	for _, p := range pins {
		add(p.layer, p.epoch, "pin")
	}
	// Layers reachable from a reader are live; their parents are read by them.
	live = map[ids.Layer]bool{}
	var visit func(id ids.Layer)
	visit = func(id ids.Layer) {
		if live[id] {
			return
		}
		live[id] = true
		if l, ok := layers[id]; ok && l.Parent != 0 {
			add(l.Parent, l.ParentEpoch, fmt.Sprintf("layer:%d", id))
			visit(l.Parent)
		}
	}
	layerIDs := make([]ids.Layer, 0, len(readers))
	for id := range readers {
		layerIDs = append(layerIDs, id)
	}
	for _, id := range layerIDs {
		visit(id)
	}
	return layers, readers, heads, live, nil
}

// scanResult is what one pass over the index found.
type scanResult struct {
	dead      []vkey                // versions no reader sees
	deadLayer []ids.Layer           // layers nothing references
	segLive   map[ids.Segment]int64 // live record bytes per segment
	exclusive map[string]int64      // bytes seen by exactly one reader, by reader
	live      int64
	// livePos holds the offsets of the live data records of each segment,
	// so the cleaner need not ask the index about every record; nil when
	// there were more than livePosMax (the cleaner then asks).
	livePos map[ids.Segment]map[int64]struct{}
	nPos    int
	// build collects the cleaner's live map (segusage.go) when asked;
	// nLive counts the live data versions.
	build *liveBuild
	nLive int
}

// livePosMax bounds the live positions a scan keeps for the cleaner (about
// 50 bytes each).
const livePosMax = 2 << 20

// scan walks the whole index in one consistent view and classifies every
// version. It changes nothing.
func (s *Store) scan() (*scanResult, error) { return s.scanWith(false) }

// scanWith is scan; with build it also collects the cleaner's live map
// (res.build): its view is taken with idxMu held, and the map's journal
// started then, so every write of version entries after the view is
// journaled (see segusage.go).
func (s *Store) scanWith(build bool) (*scanResult, error) {
	res := &scanResult{segLive: map[ids.Segment]int64{}, exclusive: map[string]int64{}, livePos: map[ids.Segment]map[int64]struct{}{}}
	s.pinMu.Lock()
	pins := make([]link, 0, len(s.pins))
	for l := range s.pins {
		pins = append(pins, l)
	}
	s.pinMu.Unlock()
	locked := false
	if build {
		res.build = s.cleaner.lm.newLiveBuild()
		s.idxMu.Lock()
		locked = true
	}
	defer func() {
		if locked {
			s.idxMu.Unlock()
		}
	}()
	err := s.idx.View(func(t *index.Txn) error {
		if locked {
			// The view is taken: writers may go on, journaled.
			s.cleaner.lm.beginBuild()
			s.idxMu.Unlock()
			locked = false
		}
		layers, readers, heads, liveLayer, err := liveReaders(t, pins)
		if err != nil {
			return err
		}
		for id := range layers {
			if !liveLayer[id] {
				res.deadLayer = append(res.deadLayer, id)
			}
		}
		slices.Sort(res.deadLayer)
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
		cur   = ids.MaxBlock // block being scanned
		newer ids.Epoch      // epoch of the next newer version of cur
		first bool
	)
	err := t.ScanVersions(l.ID, 0, ids.MaxBlock, func(b ids.Block, epoch ids.Epoch, v index.Version) error {
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
				if res.livePos != nil {
					if res.nPos++; res.nPos > livePosMax {
						res.livePos = nil
					} else {
						m := res.livePos[v.Segment]
						if m == nil {
							m = map[int64]struct{}{}
							res.livePos[v.Segment] = m
						}
						m[v.Offset] = struct{}{}
					}
				}
				res.segLive[v.Segment] += int64(v.Length)
				res.live += int64(l.BlockSize)
				res.nLive++
				if res.build != nil {
					res.build.add(vkey{l.ID, b, epoch}, v)
				}
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
// removal hold locks only briefly. On a full filesystem it first gives back
// the space reserve, removes the segments nothing lives in before it moves
// anything, and re-arms the reserve when it is done if there is room.
func (s *Store) GC() (GCStats, error) {
	if err := s.checkOpen(); err != nil {
		return GCStats{}, err
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if err := s.makeRoom("gc"); err != nil {
		return GCStats{}, err
	}
	st, err := s.gcLocked(nil)
	if _, rerr := s.rearm(); err == nil {
		err = rerr
	}
	err = s.wrapNoSpace(err)
	if s.opts.OnGC != nil {
		s.opts.OnGC(st, err)
	}
	return st, err
}

// cleanPlan tells gcLocked which segments to clean: nil for GC's rule (every
// segment below CleanBelow live), else the background cleaner's.
type cleanPlan struct {
	// target is the segment bytes to get down to (a multiple of the live
	// bytes the scan finds); maxLive the live fraction above which a
	// segment is not worth moving.
	targetRatio, maxLive float64
	// pace is called with the bytes each relocation wrote; it may sleep,
	// and an error from it ends the pass.
	pace func(n int64) error
	// removed is called after each batch of segments is removed.
	removed func()
	// limitRatio × liveTotal is the segment bytes a batch's moves must
	// leave room under; inflight is set to a batch's bytes to move while
	// it runs (writers wait while the log plus it reaches the limit).
	limitRatio float64
	inflight   *atomic.Int64
	// batch: the bytes a batch moves at most (0: the full round's sizes,
	// below).
	batch int64
	// refresh, if set, returns the live bytes per segment and the first
	// segment not to clean as they are now: the candidates are judged
	// again before every batch but the first (incremental rounds).
	refresh func() (map[ids.Segment]int64, ids.Segment)
}

// gcLocked is one garbage collection and cleaning pass (gcMu held).
func (s *Store) gcLocked(plan *cleanPlan) (GCStats, error) {
	start := time.Now()
	// Segments below the one active now hold only records appended before
	// the commit below, so after it the index knows every one of them; a
	// segment written to during or after the commit is never cleaned now.
	active := s.seg.Active()
	if err := s.syncAllDisks(); err != nil {
		return GCStats{}, err
	}
	tScan := time.Now()
	catGen := s.cleaner.catGen.Load()
	// A store found too big for the map is not tried again until a scan
	// finds it small enough.
	build := s.verified.Load() && !s.cleaner.lm.tooBig.Load()
	res, err := s.scanWith(build)
	s.log.Debug("gc scan", "commit", tScan.Sub(start), "scan", time.Since(tScan))
	if err != nil {
		s.cleaner.lm.drop()
		return GCStats{}, fmt.Errorf("gc: scan: %w", err)
	}
	if build {
		// Installed before the dead versions are deleted; if deleting
		// fails the map is dropped (it would call their records dead while
		// the index still points at them).
		s.idxMu.Lock()
		if s.cleaner.lm.finishBuild(res.build, catGen) {
			res.livePos = nil // the map says which records are live
			s.cleaner.builtAt.Store(time.Now().UnixNano())
			s.cleaner.scanNs.Store(int64(time.Since(tScan)))
		}
		s.idxMu.Unlock()
		res.build = nil
	}
	// Past the bound the map is not built; it is built again only once the
	// store is an eighth below it, so a store at the bound (writes growing
	// the map past it, deletes bringing it back) does not rebuild and drop
	// a map of up to liveMapMax versions at every other scan.
	limit := liveMapMax
	if s.cleaner.lm.tooBig.Load() {
		limit -= liveMapMax / 8
	}
	s.cleaner.lm.tooBig.Store(res.nLive > limit)
	st := GCStats{LiveBytes: res.live}
	// Dead layers: all their versions, then the record.
	for _, id := range res.deadLayer {
		var keys []vkey
		err := s.idx.View(func(t *index.Txn) error {
			return t.ScanVersions(id, 0, ids.MaxBlock, func(b ids.Block, e ids.Epoch, _ index.Version) error {
				keys = append(keys, vkey{id, b, e})
				return nil
			})
		})
		if err != nil {
			s.cleaner.lm.drop()
			return st, err
		}
		if err := s.deleteVersions(keys); err != nil {
			return st, err
		}
		st.VersionsDeleted += len(keys)
		if err := s.idx.Update(func(t *index.Txn) error { return t.DeleteLayer(id) }); err != nil {
			s.cleaner.lm.drop()
			return st, err
		}
		st.LayersDeleted++
	}
	if err := s.deleteVersions(res.dead); err != nil {
		return st, err
	}
	st.VersionsDeleted += len(res.dead)
	if st.VersionsDeleted > 0 || st.LayersDeleted > 0 {
		if err := s.idx.Sync(); err != nil {
			return st, err
		}
	}
	if err := s.cleanWith(active, res.segLive, res.live, res.livePos, plan, &st); err != nil {
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
			if err = b.Flush(); err == nil {
				ch := make([]liveChange, n)
				for i, k := range keys[:n] {
					ch[i] = liveChange{k: k, del: true}
				}
				s.cleaner.lm.record(ch)
			}
		} else {
			b.Cancel()
		}
		if err != nil {
			// Dead versions left in the index with their records called
			// dead by the map: drop it.
			s.cleaner.lm.drop()
		}
		s.idxMu.Unlock()
		if err != nil {
			return fmt.Errorf("gc: delete versions: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}

// clean relocates the live records of the segments older than active that
// are below CleanBelow live, and removes those segments.
func (s *Store) clean(active ids.Segment, live map[ids.Segment]int64, st *GCStats) error {
	return s.cleanWith(active, live, 0, nil, nil, st)
}

// cleanWith relocates the live records of sparse segments older than active and
// removes those segments: the emptiest first (those with nothing live need
// no space at all, which matters on a full filesystem). Without a plan it
// cleans every segment below CleanBelow live; with one, the emptiest until
// the segments are down to plan.targetRatio × liveTotal.
func (s *Store) cleanWith(active ids.Segment, live map[ids.Segment]int64, liveTotal int64, livePos map[ids.Segment]map[int64]struct{}, plan *cleanPlan, st *GCStats) error {
	var total int64
	var cands []segment.SegmentInfo
	taken := map[ids.Segment]bool{} // handed to moveSegments this round
	// The cleaner stream's segments from its active one (or its spare) at
	// the start of the round on are never candidates this round: they receive its
	// copies, which the index names only once their batch is finished.
	cleanFloor := s.seg.CleanerFloor()
	// pick lists the candidates, the emptiest first.
	pick := func() {
		cands = cands[:0]
		s.corruptMu.Lock()
		kept := maps.Clone(s.corruptSegs)
		s.corruptMu.Unlock()
		for _, si := range s.seg.Segments() {
			if si.Number >= active || taken[si.Number] || si.Cleaner && si.Number >= cleanFloor {
				continue
			}
			if kept[si.Number] {
				// A segment holding a corrupt record is kept whatever
				// is moved out of it (segmentNeeded) until repair deals
				// with it: cleaning it would copy its live records again
				// at every round and free nothing.
				continue
			}
			limit := s.opts.CleanBelow
			if plan != nil {
				limit = plan.maxLive
			}
			if si.Size > 0 && float64(live[si.Number]) >= limit*float64(si.Size) {
				continue
			}
			cands = append(cands, si)
		}
		frac := func(si segment.SegmentInfo) float64 {
			if si.Size == 0 {
				return 0
			}
			return float64(live[si.Number]) / float64(si.Size)
		}
		sort.SliceStable(cands, func(i, j int) bool { return frac(cands[i]) < frac(cands[j]) })
	}
	pick()
	var pace func(int64) error
	if plan != nil {
		pace = func(n int64) error {
			if plan.inflight != nil {
				plan.inflight.Add(-n) // now in the log's bytes
			}
			if plan.pace == nil {
				return nil
			}
			return plan.pace(n)
		}
	}
	// Clean in batches (one round of fsyncs each) of up to cleanBatch bytes
	// to move, the emptiest first. A batch's copies exist next to its old
	// segments until they are removed, so the cleaner's batches are as
	// large as the room under plan.limitRatio × live allows, less a 32nd
	// of live left to the foreground, between a 32nd and an 8th of live
	// (and at least one segment): few batches (three fsyncs each), and
	// writers held only when the bound is really at risk (between batches
	// they leave a 32nd of live under the limit for the next one).
	//
	// Batches are pipelined: while earlier batches are finished in the
	// background (log sync, repoint, index sync, removal: mostly waiting
	// for the disk), the next one's records are moved. The finisher takes
	// every batch waiting at once, in order (see finisher). Near a full
	// filesystem a batch starts only once every earlier one is finished
	// (its space freed).
	cleanBatch := int64(32 << 20)
	fin := newFinisher(s, plan)
	// collect adds what finished batches did to st.
	collect := func(f *finishing) error {
		<-f.done
		for _, si := range f.batch {
			if m, ok := f.moved[si.Number]; ok || f.err == nil {
				st.SegmentsCleaned++
				st.BytesRelocated += m
				st.BytesFreed += si.Size - m
			}
		}
		return f.err
	}
	var outstanding []*finishing
	// waitOldest waits for the oldest batch handed to the finisher.
	waitOldest := func() error {
		f := outstanding[0]
		outstanding = outstanding[1:]
		return collect(f)
	}
	waitAll := func() error {
		var errs []error
		for len(outstanding) > 0 {
			if err := waitOldest(); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	defer fin.close()
	defer waitAll() // after an error: the finishes in flight end before the round
	for len(cands) > 0 {
		if plan != nil && plan.refresh != nil && len(taken) > 0 {
			// The usage table is exact and cheap to copy: judge again,
			// as the foreground's overwrites emptied other segments
			// meanwhile.
			live, active = plan.refresh()
			if pick(); len(cands) == 0 {
				break
			}
		}
		if plan != nil && plan.batch > 0 {
			cleanBatch = plan.batch
		} else if plan != nil {
			room := int64(plan.limitRatio*float64(liveTotal)) - s.seg.Bytes() - liveTotal/32
			cleanBatch = min(32<<20, max(liveTotal/8, 1<<20), max(room, liveTotal/32))
		}
		// On a nearly full filesystem a batch moves no more than half of
		// what is free (segments with nothing live need nothing): their
		// copies exist before the old segments go.
		limit := cleanBatch
		free, ok := s.freeBytes()
		if ok && len(outstanding) > 0 && free/2 < cleanBatch {
			if err := waitAll(); err != nil {
				return err
			}
			free, ok = s.freeBytes()
		}
		if ok {
			limit = min(limit, free/2)
			if live[cands[0].Number] > free/2 {
				s.log.Warn("gc: not enough free space to move the records of the next segment; stopping",
					"segment", cands[0].Number, "live_bytes", live[cands[0].Number], "free_bytes", free)
				break
			}
		}
		// At most finishQueue batches moved and not yet finished; and
		// while some are, the copies of another must fit under the
		// writers' limit (their old segments still count in the log).
		for len(outstanding) > 0 && (len(outstanding) >= finishQueue ||
			(plan != nil && plan.limitRatio > 0 && float64(s.seg.Bytes()+limit) >= plan.limitRatio*float64(liveTotal))) {
			if err := waitOldest(); err != nil {
				return err
			}
		}
		if fin.failed.Load() {
			return waitAll()
		}
		// What the log will be once the batches handed to the finisher
		// are done (their copies are in it, their old segments still
		// counted): the round goes on while that is above the target, so
		// a round keeps pace with a foreground that writes on meanwhile.
		total = s.seg.Bytes()
		for _, f := range outstanding {
			select {
			case <-f.done: // removed: no longer in the log's bytes
			default:
				for _, si := range f.batch {
					total -= si.Size
				}
			}
		}
		var batch []segment.SegmentInfo
		var toMove int64
		for len(cands) > 0 && (len(batch) == 0 || toMove+live[cands[0].Number] <= limit) {
			if plan != nil && float64(total) <= plan.targetRatio*float64(liveTotal) {
				break
			}
			si := cands[0]
			cands = cands[1:]
			taken[si.Number] = true
			batch = append(batch, si)
			toMove += live[si.Number]
			total -= si.Size - live[si.Number]
		}
		if len(batch) == 0 {
			break
		}
		nums := make([]ids.Segment, len(batch))
		for i, si := range batch {
			nums[i] = si.Number
		}
		if plan != nil && plan.inflight != nil {
			plan.inflight.Store(toMove)
		}
		moved, moves, err := s.moveSegments(nums, livePos, cleanFloor, pace)
		if plan != nil && plan.inflight != nil {
			plan.inflight.Store(0)
		}
		if err != nil {
			werr := waitAll()
			for _, si := range batch { // what was moved is not freed
				st.BytesRelocated += moved[si.Number]
			}
			return errors.Join(werr, err)
		}
		f := &finishing{batch: batch, nums: nums, moved: moved, moves: moves, done: make(chan struct{})}
		outstanding = append(outstanding, f)
		fin.add(f)
	}
	return waitAll()
}

// finishQueue is how many batches may be moved and not yet finished: the
// finisher takes all of those waiting at once (one log sync, one index
// sync, one removal for them), so the moves go on at their own pace while
// the disk syncs.
var finishQueue = 4

// finishing is a batch whose finishMoves runs in the background.
type finishing struct {
	batch []segment.SegmentInfo
	nums  []ids.Segment
	moved map[ids.Segment]int64
	moves []relocation
	done  chan struct{}
	err   error
}

// finisher finishes (finishMoves) the batches the cleaner moved, in order,
// in one goroutine: every batch waiting when it is free is finished
// together (group commit). After a failed finish the batches after it are
// failed with the same error, untouched (their copies are dead records).
type finisher struct {
	s    *Store
	plan *cleanPlan
	mu   sync.Mutex
	q    []*finishing
	wake chan struct{}
	quit chan struct{}
	gone chan struct{}
	// failed is set once a finish failed.
	failed atomic.Bool
}

func newFinisher(s *Store, plan *cleanPlan) *finisher {
	f := &finisher{s: s, plan: plan, wake: make(chan struct{}, 1), quit: make(chan struct{}), gone: make(chan struct{})}
	go f.run()
	return f
}

// add hands a moved batch to the finisher.
func (f *finisher) add(b *finishing) {
	f.mu.Lock()
	f.q = append(f.q, b)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// close ends the finisher once the batches handed to it are finished.
func (f *finisher) close() {
	close(f.quit)
	<-f.gone
}

func (f *finisher) run() {
	defer close(f.gone)
	var failed error
	for {
		f.mu.Lock()
		q := f.q
		f.q = nil
		f.mu.Unlock()
		if len(q) == 0 {
			select {
			case <-f.wake:
				continue
			case <-f.quit:
				f.mu.Lock()
				n := len(f.q)
				f.mu.Unlock()
				if n == 0 {
					return
				}
				continue
			}
		}
		if len(q) > 1 {
			f.s.cleaner.grouped.Add(1)
		}
		if failed == nil {
			var nums []ids.Segment
			var moves []relocation
			for _, b := range q {
				nums = append(nums, b.nums...)
				moves = append(moves, b.moves...)
			}
			if failed = f.s.finishMoves(nums, moves); failed != nil {
				f.failed.Store(true)
			}
		}
		for _, b := range q {
			b.err = failed
			b.moves = nil
		}
		if f.plan != nil && f.plan.removed != nil {
			f.plan.removed() // wake the writers waiting for space now
		}
		for _, b := range q {
			close(b.done)
		}
	}
}

type relocation struct {
	old, new segment.Pos
	r        segment.Record
	// learn (repair only): the version's digest was unknown (a corrupt
	// record an index rebuild indexed) and is digest; it is repointed only
	// if still unknown.
	learn  bool
	digest [32]byte
}

func (s *Store) cleanSegment(num ids.Segment, pace func(int64) error) (int64, error) {
	moved, err := s.cleanSegments([]ids.Segment{num}, nil, pace)
	return moved[num], err
}

// cleanSegments relocates the live records of several segments, then syncs
// the log once, repoints the index, syncs it once and removes the segments:
// one round of fsyncs for the batch, not one per segment. It returns the
// bytes moved out of each segment. livePos, if not nil, holds the live data
// records of the segments as a scan found them after every record in them
// was committed (a record not in it is dead and stays dead); else, and for
// hole records, the index is asked about each record.
func (s *Store) cleanSegments(nums []ids.Segment, livePos map[ids.Segment]map[int64]struct{}, pace func(int64) error) (map[ids.Segment]int64, error) {
	moved, moves, err := s.moveSegments(nums, livePos, 0, pace)
	if err != nil {
		return moved, err
	}
	return moved, s.finishMoves(nums, moves)
}

// testSkipMove, set by a test, makes moveSegments leave the live record at
// a position unmoved (a bug the finisher's usage check must catch).
var testSkipMove func(segment.Pos) bool

// moveSegments is the first half of cleanSegments: it appends copies of
// the live records of the segments (not synced, the index not repointed)
// and returns the bytes moved out of each segment and the relocations.
// With the live map installed, a data-only segment's live records are
// read alone (cleanread.go; cleanFloor: see listedLive); else, or when
// that read meets a surprise, the segment is scanned.
func (s *Store) moveSegments(nums []ids.Segment, livePos map[ids.Segment]map[int64]struct{}, cleanFloor ids.Segment, pace func(int64) error) (map[ids.Segment]int64, []relocation, error) {
	t0 := time.Now()
	moved := map[ids.Segment]int64{}
	mv := &mover{s: s, moved: moved, pace: pace}
	defer mv.release()
	stop := fmt.Errorf("end of segment")
	bp := listedBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) == cleanReadMax { // a larger one (a huge record) is not kept
			listedBufs.Put(bp)
		}
	}()
	listed := 0
	for _, num := range nums {
		if s.cleaner.lm.has() && num >= s.cpSegment.Load() {
			// As recordLive does: the checkpoint moves past a segment
			// before its records are judged (see checkIndex).
			if err := s.advanceCheckpoint(); err != nil {
				return moved, mv.moves, err
			}
		}
		mv.num = num
		var skip map[int64]bool // gathered by a listed read that fell back
		if list, ok := s.listedLive(num, cleanFloor); ok {
			gathered, complete, err := s.moveListed(num, list, mv, bp)
			if err != nil {
				return moved, mv.moves, err
			}
			s.cleaner.dropListed(num)
			if complete {
				if err := mv.flush(); err != nil {
					return moved, mv.moves, err
				}
				listed++
				continue
			}
			s.cleaner.lists.scanned++
			skip = make(map[int64]bool, len(gathered))
			for _, o := range gathered {
				skip[o] = true
			}
		}
		// This segment alone: the finish of the previous batch may be
		// removing segments after it meanwhile (pipelining).
		_, err := s.seg.ScanSegmentRaw(num, func(r *segment.Record, raw []byte, pos segment.Pos) error {
			if pos.Segment != num {
				return stop
			}
			if skip[pos.Offset] {
				return nil
			}
			var live, known bool
			if r.Kind == segment.KindData {
				live, known = s.cleaner.lm.liveAt(r, pos)
			}
			if known {
			} else if livePos != nil && r.Kind == segment.KindData {
				_, live = livePos[num][pos.Offset]
			} else {
				var err error
				if live, err = s.recordLive(r, pos); err != nil {
					return err
				}
			}
			if !live || (testSkipMove != nil && testSkipMove(pos)) {
				return nil
			}
			return mv.add(r, raw, pos)
		})
		if err == nil || err == stop {
			err = mv.flush()
		}
		if err != nil && err != stop {
			return moved, mv.moves, err
		}
	}
	s.log.Debug("moved records", "segments", len(nums), "listed", listed, "records", len(mv.moves), "move", time.Since(t0))
	return moved, mv.moves, nil
}

// finishMoves is the second half of cleanSegments: it syncs the cleaner
// stream (the copies), repoints the index to the copies, syncs the index
// and removes the segments (gcMu held). Durability order: the copies are
// synced before the index names them, and the index is synced before the
// old records go.
func (s *Store) finishMoves(nums []ids.Segment, moves []relocation) error {
	t0 := time.Now()
	var tRepointed, tIdx time.Time
	// The cleaner stream's tail before its sync: every copy moved so far is
	// before it, and durable once the sync returns. It goes to the index
	// (the mark) before the repoints that name those copies, so a crash
	// that keeps a repoint keeps the mark, and Open never cuts a copy the
	// index names as a torn tail (segment.Options.CleanerDurable).
	mark := s.seg.CleanerTail()
	if err := s.seg.SyncCleaner(); err != nil {
		return err
	}
	if mark.Segment != 0 {
		if err := s.setCleanerMark(mark); err != nil {
			return err
		}
	}
	s.cleaner.stage("log synced")
	tSynced := time.Now()
	nRec := len(moves)
	defer func() {
		s.log.Debug("cleaned segments", "segments", len(nums), "records", nRec,
			"log_sync", tSynced.Sub(t0), "repoint", tRepointed.Sub(tSynced), "index_sync", tIdx.Sub(tRepointed), "remove", time.Since(tIdx))
	}()
	// Repoint the index in write batches of bounded size (see
	// repointChunk), idxMu released between them.
	for len(moves) > 0 {
		n := min(len(moves), repointChunk)
		if err := s.repointMap(moves[:n]); err != nil {
			return err
		}
		moves = moves[n:]
	}
	s.cleaner.stage("repointed")
	tRepointed = time.Now()
	if err := s.idx.Sync(); err != nil {
		return err
	}
	s.cleaner.stage("index synced")
	tIdx = time.Now()
	s.readMu.Lock()
	defer s.readMu.Unlock()
	var gone []ids.Segment
	for _, num := range nums {
		if s.segmentNeeded(num) { // keep it: see segmentNeeded
			continue
		}
		if left := s.cleaner.lm.liveIn(num); left > 0 {
			// The usage table is exact, and for a segment below the
			// active one it only falls: once its live records are
			// repointed it must say 0. Else a live record was not moved
			// (a bug): keep the segment.
			s.log.Error("gc: live records left in a cleaned segment; keeping it",
				"segment", num, "live_bytes", left)
			continue
		}
		gone = append(gone, num)
	}
	if s.cleaner.running.Load() {
		// The background cleaner does not sync the directory: the index
		// no longer points into these segments (synced above), so one a
		// crash brings back is all dead copies, removed again by a later
		// round; the next segment created syncs the directory anyway.
		err := s.seg.RemoveSegmentsUnsynced(gone)
		s.cleaner.stage("removed")
		return err
	}
	err := s.seg.RemoveSegments(gone)
	s.cleaner.stage("removed")
	return err
}

// repoint moves index entries from old to new record positions, unless the
// entry changed meanwhile. Every writer of versions holds idxMu (commit,
// deleteVersions, this), so reading the entries in a read-only view and
// writing the changed ones in a write batch, both under idxMu, is as safe
// as one read-write transaction and cheaper (no conflict tracking, no
// transaction size limit).
// It returns how many versions it changed.
func (s *Store) repoint(moves []relocation) (int, error) {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	return s.repointLocked(moves)
}

// repointLocked is repoint with idxMu held; it tells the live map.
func (s *Store) repointLocked(moves []relocation) (int, error) {
	type set struct {
		m *relocation
		v index.Version
	}
	var sets []set
	err := s.idx.View(func(t *index.Txn) error {
		for i := range moves {
			m := &moves[i]
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
			if v.Segment != m.old.Segment || v.Offset != m.old.Offset || v.Seq != m.r.Seq || (m.learn && v.Digest != ([32]byte{})) {
				continue // replaced meanwhile
			}
			v.Segment, v.Offset, v.Length = m.new.Segment, m.new.Offset, m.new.Length
			if m.learn {
				v.Digest = m.digest
			}
			sets = append(sets, set{m, v})
		}
		return nil
	})
	if err != nil || len(sets) == 0 {
		return 0, err
	}
	b := s.idx.NewBatch()
	ch := make([]liveChange, len(sets))
	for i, x := range sets {
		if err := b.SetVersion(x.m.r.Layer, x.m.r.Block, x.m.r.Epoch, x.v); err != nil {
			b.Cancel()
			return 0, err
		}
		ch[i] = liveChange{k: vkey{x.m.r.Layer, x.m.r.Block, x.m.r.Epoch}, v: x.v}
	}
	if err := b.Flush(); err != nil {
		s.cleaner.lm.drop()
		return 0, err
	}
	s.cleaner.lm.record(ch)
	return len(sets), nil
}

// segmentNeeded reports whether a segment must not be removed although its
// live records were relocated: a pending version still points into it, or a
// corrupt record was found in it (the evidence stays for `check`, and reads
// of that block keep failing with a checksum error).
func (s *Store) segmentNeeded(num ids.Segment) bool {
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
			v, err := t.GetVersion(r.Layer, r.Block.Add(i), r.Epoch)
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
