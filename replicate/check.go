package replicate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/snapfs/snapfs/replicate/erasure"
	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
)

// Problem kinds.
const (
	ProblemMissing     = "missing"
	ProblemCorrupt     = "corrupt"
	ProblemUnreachable = "unreachable"
	// ProblemStale: a good manifest copy that differs from the newest
	// copy (an interrupted rewrite); Repair puts the newest copy.
	ProblemStale = "stale"
)

// Problem is one bad object copy on one store.
type Problem struct {
	Store int `json:"store"` // -1: not about one store

	Object string `json:"object"`
	Kind   string `json:"kind"`
	Err    string `json:"error,omitempty"`
}

// Report is what Check found.
type Report struct {
	Stores        int       `json:"stores"`
	Packs         int       `json:"packs"`
	Indexes       int       `json:"indexes"`
	Manifests     int       `json:"manifests"`
	ShardsChecked int       `json:"shards_checked"`
	DataRead      bool      `json:"data_read"`
	Problems      []Problem `json:"problems"`
	// Lost are packs with fewer than k good shards: not repairable.
	Lost []string `json:"lost,omitempty"`
	// Degraded are remote snapshots that need a pack with a problem (a
	// missing or corrupt shard, or the pack gone while its index is
	// there) or a chunk that is in no pack index.
	Degraded []string `json:"degraded,omitempty"`
	// Unindexed are packs without an index on any store: an interrupted
	// or running sync's, which Prune deletes after OrphanAge. Not a
	// problem by itself (a snapshot needing one is in Degraded).
	Unindexed []string `json:"unindexed,omitempty"`
}

// OK reports whether nothing was wrong: no problem copy, no lost pack and
// no degraded snapshot.
func (r Report) OK() bool { return len(r.Problems) == 0 && len(r.Lost) == 0 && len(r.Degraded) == 0 }

// Check verifies that every object is on every store it belongs to: the
// config, indexes, manifests and markers on all stores, shard i of every
// pack on store i, with valid headers (metadata is authenticated, shard
// headers parsed). With readData every shard's checksum is verified too.
// Problems are reported, not errors; the error is for a check that could
// not run.
func (m *Manager) Check(ctx context.Context, regionName string, readData bool, progress Progress) (Report, error) {
	progress = orNoProgress(progress)
	progress.Event(Event{Type: EventStart, Op: "check", Region: regionName})
	r, err := m.openRegion(ctx, regionName, false)
	if err != nil {
		return Report{}, err
	}
	defer r.close()
	rep, _, err := m.check(ctx, r, readData, progress)
	ev := Event{Type: EventDone, Op: "check", Region: regionName}
	if err != nil {
		ev.Err = err.Error()
	}
	progress.Event(ev)
	return rep, err
}

// packProblems maps a pack to its problem stores.
type packProblems map[packID][]int

func (m *Manager) check(ctx context.Context, r *region, readData bool, progress Progress) (Report, packProblems, error) {
	rep := Report{Stores: r.n(), DataRead: readData}
	add := func(p Problem) { rep.Problems = append(rep.Problems, p) }
	for i, e := range r.bad {
		if e != nil {
			kind := ProblemUnreachable
			if errors.Is(e, store.ErrNotFound) || errors.Is(e, format.ErrCorrupt) {
				kind = ProblemCorrupt
				if errors.Is(e, store.ErrNotFound) {
					kind = ProblemMissing
				}
				add(Problem{Store: i, Object: configName, Kind: kind, Err: e.Error()})
				continue
			}
			add(Problem{Store: i, Object: "*", Kind: kind, Err: e.Error()})
		}
	}
	// Metadata: on every usable store, authenticating.
	var indexes listing
	for _, md := range []struct {
		dir string
		typ byte
		n   *int
	}{{indexDir, format.TypeIndex, &rep.Indexes}, {snapDir, format.TypeManifest, &rep.Manifests}, {copyDir, format.TypeMarker, nil}} {
		l, err := r.list(ctx, md.dir)
		if err != nil {
			return rep, nil, err
		}
		if md.n != nil {
			*md.n = len(l)
		}
		if md.dir == indexDir {
			indexes = l
		}
		for _, name := range sortedKeys(l) {
			sizes := l[name]
			errs := forEach(r.n(), func(i int) error {
				if r.bad[i] != nil {
					return nil
				}
				if sizes[i] < 0 {
					return store.ErrNotFound
				}
				b, err := r.stores[i].Get(ctx, md.dir+name, 0, -1)
				if err != nil {
					return err
				}
				_, err = r.keys.Open(md.typ, name, b)
				return err
			})
			for i, err := range errs {
				if err == nil {
					continue
				}
				kind := ProblemCorrupt
				if errors.Is(err, store.ErrNotFound) {
					kind = ProblemMissing
				}
				add(Problem{Store: i, Object: md.dir + name, Kind: kind, Err: err.Error()})
			}
			if md.dir != snapDir {
				continue
			}
			// Copies that authenticate must also be the same manifest.
			c, err := r.readManifestAll(ctx, name)
			if err != nil {
				continue // reported above
			}
			for _, i := range c.stale(r) {
				if c.pts[i] != nil {
					add(Problem{Store: i, Object: md.dir + name, Kind: ProblemStale, Err: fmt.Sprintf("copy differs from the newest (sequence %d)", c.mf.Seq)})
				}
			}
		}
	}
	// Packs: shard i on store i.
	packs, err := r.list(ctx, packDir)
	if err != nil {
		return rep, nil, err
	}
	rep.Packs = len(packs)
	pp := packProblems{}
	names := sortedKeys(packs)
	for n, name := range names {
		id, ok := parsePackID(name)
		if !ok {
			continue
		}
		sizes := packs[name]
		errs := forEach(r.n(), func(i int) error {
			if r.bad[i] != nil {
				return r.bad[i]
			}
			if sizes[i] < 0 {
				return store.ErrNotFound
			}
			var h erasure.Header
			if readData {
				b, err := r.stores[i].Get(ctx, packDir+name, 0, -1)
				if err != nil {
					return err
				}
				if h, _, err = erasure.DecodeShard(b); err != nil {
					return err
				}
			} else {
				b, err := r.stores[i].Get(ctx, packDir+name, 0, min(int64(erasure.HeaderSize), sizes[i]))
				if err != nil {
					return err
				}
				if h, err = erasure.ParseHeader(b); err != nil {
					return err
				}
				if int64(erasure.HeaderSize)+h.PayloadLen != sizes[i] {
					return fmt.Errorf("%w: %d bytes, header says %d", erasure.ErrCorruptShard, sizes[i], int64(erasure.HeaderSize)+h.PayloadLen)
				}
			}
			if h.Index != i || h.K != r.k || h.M != r.m {
				return fmt.Errorf("%w: shard %d of %d+%d at store %d", erasure.ErrCorruptShard, h.Index, h.K, h.M, i)
			}
			return nil
		})
		bad := 0
		for i, err := range errs {
			rep.ShardsChecked++
			if err == nil {
				continue
			}
			bad++
			pp[id] = append(pp[id], i)
			if r.bad[i] != nil {
				continue // reported once for the store
			}
			kind := ProblemCorrupt
			if errors.Is(err, store.ErrNotFound) {
				kind = ProblemMissing
			}
			add(Problem{Store: i, Object: packDir + name, Kind: kind, Err: err.Error()})
		}
		if r.n()-bad < r.k {
			rep.Lost = append(rep.Lost, name)
		}
		if n%16 == 0 {
			progress.Event(Event{Type: EventBlocks, Op: "check", Region: r.cfg.Name, Pack: name, Blocks: int64(n), BlocksTotal: int64(len(names))})
		}
	}
	// Indexes against packs: an indexed pack gone from every store is
	// lost; a pack without an index is reported as unindexed.
	for _, name := range sortedKeys(indexes) {
		id, ok := parsePackID(name)
		if !ok {
			continue
		}
		if _, ok := packs[name]; ok {
			continue
		}
		for i := range r.n() {
			pp[id] = append(pp[id], i)
			if r.bad[i] == nil {
				add(Problem{Store: i, Object: packDir + name, Kind: ProblemMissing, Err: "indexed pack has no shard on this store"})
			}
		}
		rep.Lost = append(rep.Lost, name)
	}
	for _, name := range names {
		if _, ok := parsePackID(name); ok && indexes[name] == nil {
			rep.Unindexed = append(rep.Unindexed, name)
		}
	}
	// Which snapshots need a pack with problems or a chunk in no index.
	deg, err := m.degradedSnapshots(ctx, r, pp)
	if err != nil {
		m.log.Warn("check: cannot tell degraded snapshots", "region", r.cfg.Name, "err", err)
		add(Problem{Store: -1, Object: snapDir, Kind: ProblemCorrupt, Err: "cannot tell degraded snapshots: " + err.Error()})
	}
	rep.Degraded = deg
	if err := m.saveCheckState(r.cfg.Name, checkState{Time: m.opts.Now().UTC(), Degraded: rep.Degraded}); err != nil {
		m.log.Warn("check: state not saved", "region", r.cfg.Name, "err", err)
	}
	return rep, pp, nil
}

func (m *Manager) degradedSnapshots(ctx context.Context, r *region, pp packProblems) ([]string, error) {
	cs, err := m.loadChunks(ctx, r, chunksRead)
	if err != nil {
		return nil, err
	}
	mfs, _, err := m.remoteAll(ctx, r)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, mf := range mfs {
	disks:
		for _, d := range mf.Disks {
			bm, _, err := r.resolveDisk(ctx, mf, d.Name, mfs)
			if err != nil {
				out = append(out, mf.Name)
				break
			}
			for _, id := range bm {
				if loc, ok := cs.chunks[id]; !ok || pp[loc.pack] != nil {
					out = append(out, mf.Name)
					break disks
				}
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

func sortedKeys(l listing) []string {
	out := make([]string, 0, len(l))
	for k := range l {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RepairReport is what Repair did.
type RepairReport struct {
	Before   Report    `json:"before"`
	Repaired []Problem `json:"repaired"`
	Failed   []Problem `json:"failed,omitempty"`
}

// Repair checks the region with readData and rewrites every missing or
// corrupt copy: pack shards are rebuilt from the good shards (any k),
// metadata is copied from a store with a good copy, and a store's config
// is re-made from the region's parameters. Unreachable stores are left.
func (m *Manager) Repair(ctx context.Context, regionName string, progress Progress) (RepairReport, error) {
	progress = orNoProgress(progress)
	progress.Event(Event{Type: EventStart, Op: "repair", Region: regionName})
	r, err := m.openRegion(ctx, regionName, false)
	if err != nil {
		return RepairReport{}, err
	}
	defer r.close()
	before, pp, err := m.check(ctx, r, true, progress)
	out := RepairReport{Before: before}
	if err != nil {
		return out, err
	}
	fail := func(p Problem, err error) {
		p.Err = err.Error()
		out.Failed = append(out.Failed, p)
	}
	for _, p := range before.Problems {
		if p.Kind == ProblemUnreachable || p.Store < 0 {
			out.Failed = append(out.Failed, p)
			continue
		}
		switch {
		case p.Object == configName:
			if err := m.repairConfig(ctx, r, p.Store); err != nil {
				fail(p, err)
				continue
			}
			r.bad[p.Store] = nil
			out.Repaired = append(out.Repaired, p)
		}
	}
	problems := before.Problems
	if len(out.Repaired) > 0 { // stores are usable again: see what they lack
		var again Report
		if again, pp, err = m.check(ctx, r, true, progress); err != nil {
			return out, err
		}
		problems = again.Problems
	}
	for _, p := range problems {
		if p.Kind == ProblemUnreachable || p.Store < 0 || p.Object == configName || r.bad[p.Store] != nil {
			continue
		}
		for _, md := range []struct {
			dir string
			typ byte
		}{{indexDir, format.TypeIndex}, {snapDir, format.TypeManifest}, {copyDir, format.TypeMarker}} {
			id, ok := cutPrefix(p.Object, md.dir)
			if !ok {
				continue
			}
			var sealed []byte
			var err error
			if md.dir == snapDir {
				var c *manifestCopies
				if c, err = r.readManifestAll(ctx, id); err == nil {
					sealed = c.sealed // the newest copy
				}
			} else {
				_, sealed, err = r.getMeta(ctx, md.typ, md.dir, id)
			}
			if err == nil {
				err = r.stores[p.Store].Put(ctx, p.Object, sealed)
			}
			if err != nil {
				fail(p, err)
			} else {
				out.Repaired = append(out.Repaired, p)
			}
		}
	}
	for _, id := range sortedPacks(pp) {
		bad := pp[id]
		shards := make([][]byte, r.n())
		forEach(r.n(), func(i int) error {
			if r.bad[i] != nil || slices.Contains(bad, i) {
				return nil
			}
			b, err := r.stores[i].Get(ctx, packDir+id.String(), 0, -1)
			if err == nil {
				shards[i] = b
			}
			return nil
		})
		full, _, err := erasure.Repair(shards)
		for _, i := range bad {
			p := Problem{Store: i, Object: packDir + id.String(), Kind: ProblemCorrupt}
			if r.bad[i] != nil {
				continue
			}
			if err != nil {
				fail(p, fmt.Errorf("%w: %w", ErrTooFewShards, err))
				continue
			}
			if perr := r.stores[i].Put(ctx, p.Object, full[i]); perr != nil {
				fail(p, perr)
				continue
			}
			out.Repaired = append(out.Repaired, p)
		}
		progress.Event(Event{Type: EventPack, Op: "repair", Region: regionName, Pack: id.String()})
	}
	if len(out.Failed) == 0 {
		_ = m.saveCheckState(regionName, checkState{Time: m.opts.Now().UTC()})
	}
	ev := Event{Type: EventDone, Op: "repair", Region: regionName}
	if len(out.Failed) > 0 {
		ev.Err = fmt.Sprintf("%d copies not repaired", len(out.Failed))
	}
	progress.Event(ev)
	return out, nil
}

func (m *Manager) repairConfig(ctx context.Context, r *region, i int) error {
	var created = m.opts.Now().UTC()
	for j := range r.stores {
		if j != i && r.bad[j] == nil {
			if c, err := readStoreConfig(ctx, r.stores[j]); err == nil {
				created = c.Created
				break
			}
		}
	}
	if r.stores[i] == nil {
		return fmt.Errorf("%w: store %d not open", ErrUnavailable, i)
	}
	c := &format.Config{K: r.k, M: r.m, Index: i, RegionID: r.id, Created: created}
	if err := c.Seal(r.keys); err != nil {
		return err
	}
	return r.stores[i].Put(ctx, configName, c.Encode())
}

func sortedPacks(pp packProblems) []packID {
	out := make([]packID, 0, len(pp))
	for id := range pp {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b packID) int { return slices.Compare(a[:], b[:]) })
	return out
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}
