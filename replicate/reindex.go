package replicate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/snapfs/snapfs/replicate/erasure"
	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
)

// A pack's index is redundant with the pack: every pack carries its own
// sealed table of the same entries (format.OpenPackTable). An index with
// no good copy on any store (deleted by hand, a bucket lifecycle rule,
// every copy corrupt) is rebuilt from that table by repair (see the
// package doc, "Lost indexes").

// packTable reads pack id whole from its shards (any k good ones; every
// usable store is asked, as repair reads a pack) and returns the index
// its own table makes, checked as an index read from a store is: every
// record opens (OpenPackTable authenticates the table and each record),
// the index encodes and decodes back (entry kinds and bounds as the index
// format wants: a delta only in a version 3 pack, with its base; records
// inside the pack), and it names pack id. sealed is the index sealed as a
// sync writes it (index version 4 for a version 3 pack). When too few
// shards decode and a store failed a read (not "not found": a timeout,
// throttling), the error wraps ErrUnavailable: the table may read later.
func (m *Manager) packTable(ctx context.Context, r *region, id packID) (x *format.Index, sealed []byte, err error) {
	name := id.String()
	// Restore's fetch: the data shards first, parity only for those that
	// failed (it read every usable store's shard before: k+m shards
	// fetched for k needed).
	data, _, _, fails, err := m.fetchPackShards(ctx, r, id, 0)
	if cerr := ctx.Err(); cerr != nil {
		return nil, nil, cerr
	}
	if err != nil {
		// Too few shards decode: unavailable when a usable store failed
		// a read (a timeout, throttling: the table may read later), else
		// the pack is lost (missing or corrupt shards).
		var readErrs []error
		for i, f := range fails {
			if f != nil && r.bad[i] == nil && !shardContentErr(f) {
				readErrs = append(readErrs, fmt.Errorf("store %d: %w", i, f))
			}
		}
		if len(readErrs) > 0 {
			return nil, nil, fmt.Errorf("%w: pack %s: %w (%d store(s) failed a read, first %w)", ErrUnavailable, name, err, len(readErrs), readErrs[0])
		}
		return nil, nil, err
	}
	ver := format.PackObjectVersion(data)
	size := uint64(len(data))
	_, es, err := format.OpenPackTable(r.keys, name, data)
	if err != nil {
		return nil, nil, fmt.Errorf("pack %s: %w", name, err)
	}
	built := &format.Index{Pack: id, SealedSize: size, Entries: es}
	if ver != 0 {
		built.PackVer = ver
	}
	pt := built.Encode()
	if x, err = format.DecodeIndex(pt); err != nil {
		return nil, nil, fmt.Errorf("pack %s: index from its table: %w", name, err)
	}
	if x.Pack != [16]byte(id) || len(x.Entries) != len(es) {
		return nil, nil, fmt.Errorf("%w: pack %s: index from its table names pack %x with %d of %d entries", ErrCorrupt, name, x.Pack, len(x.Entries), len(es))
	}
	for _, e := range x.Entries {
		if e.IsDelta() && x.PackVer < format.PackVersion3 {
			return nil, nil, fmt.Errorf("%w: pack %s: delta entry %v in a version %d pack", ErrCorrupt, name, e.ID, x.PackVer)
		}
	}
	if sealed, err = r.keys.Seal(format.TypeIndex, name, pt); err != nil {
		return nil, nil, err
	}
	return x, sealed, nil
}

// putRebuilt writes a rebuilt index (sealed, from packTable) where a sync
// writes one: on its homes for index version 4, on every store for older
// versions (as they were written). Stores that are not usable are left
// (check reports the copy missing once they are back). The caller holds
// the exclusive lock.
func (m *Manager) putRebuilt(ctx context.Context, r *region, x *format.Index, sealed []byte) error {
	name := packID(x.Pack).String()
	var on []int
	for i := range r.n() {
		if r.bad[i] == nil && (x.IndexVer < format.IndexVersion || r.indexHome(name, i)) {
			on = append(on, i)
		}
	}
	if len(on) == 0 {
		return fmt.Errorf("%w: index %s: none of its stores is usable", ErrUnavailable, name)
	}
	if err := m.guard(ctx, r, false); err != nil {
		return err
	}
	return r.putOn(ctx, on, indexDir+name, sealed, nil)
}

// packTables reads the own tables (packTable) of the packs of cs's lost
// indexes (with lost) and, when missing (needed chunks in no index) is not
// empty, of its unindexed packs. It returns the indexes they make: every
// lost one that reads, and the unindexed ones that hold a missing chunk
// (the others are an interrupted sync's garbage); and why the lost ones
// that do not read could not be (not those with a home away: a good copy
// may be there). unread wraps ErrUnavailable when some candidate's table
// could not be read because stores failed reads (packTable): that pack
// may hold a needed chunk or name a needed delta's base, so a caller that
// deletes (prune) must not while a needed chunk is still unlocated. A
// table of a newer pack version fails it (format.ErrUnsupportedVersion).
func (m *Manager) packTables(ctx context.Context, r *region, cs *chunkSet, missing map[format.ChunkID]bool, lost bool) (rebuild map[packID]*rebuiltIndex, unrebuilt map[packID]error, unread, err error) {
	var cands []packID
	if lost {
		cands = sortedIDs(cs.lost)
	}
	if len(missing) > 0 {
		cands = append(cands, cs.unindexed...)
	}
	var unreads []error
	for _, id := range cands {
		x, sealed, err := m.packTable(ctx, r, id)
		if err := ctx.Err(); err != nil {
			return nil, nil, nil, err
		}
		if errors.Is(err, format.ErrUnsupportedVersion) {
			// Of a newer snapfs: what it holds and the bases of its
			// deltas are not known here; fail closed, as an index of a
			// newer version does (TestLostIndexNewerPackFailsClosed).
			return nil, nil, nil, fmt.Errorf("region %q: pack %s (its index lost): %w", r.cfg.Name, id, err)
		}
		l, listed := cs.lost[id]
		if err != nil {
			m.log.Warn("a pack whose index is lost or missing: its own table cannot be read either", "region", r.cfg.Name, "pack", id.String(), "err", err)
			if errors.Is(err, ErrUnavailable) {
				unreads = append(unreads, err)
			}
			if listed && !l.away { // else a good copy may be on a home that is away
				if unrebuilt == nil {
					unrebuilt = map[packID]error{}
				}
				unrebuilt[id] = err
			}
			continue
		}
		if !listed && !slices.ContainsFunc(x.Entries, func(e format.Entry) bool { return missing[e.ID] }) {
			continue // an interrupted sync's: garbage
		}
		if rebuild == nil {
			rebuild = map[packID]*rebuiltIndex{}
		}
		rebuild[id] = &rebuiltIndex{x: x, sealed: sealed, listed: listed}
	}
	if len(unreads) > 0 {
		unread = fmt.Errorf("%d pack table(s) not read, first: %w", len(unreads), unreads[0])
	}
	return rebuild, unrebuilt, unread, nil
}

// indexCopy is a good copy (sealed) of index name for repair to put back
// when no store holds one (why: getMeta's error): this host's cached copy
// (a host that read the index before every copy on the stores went bad
// still holds one: loadChunks reads it, so this host's check finds only
// bad copies, no lost index), checked as a copy read from a store is (it
// opens under its name with the region key, decodes, names its pack);
// else the index its pack's own table makes (packTable).
func (m *Manager) indexCopy(ctx context.Context, r *region, name string, why error) ([]byte, error) {
	id, ok := parsePackID(name)
	if !ok {
		return nil, why
	}
	b, err := os.ReadFile(filepath.Join(m.cacheDir(r.cfg.Name), "index", name))
	if err == nil {
		var pt []byte
		if pt, err = r.keys.Open(format.TypeIndex, name, b); err == nil {
			var x *format.Index
			if x, err = format.DecodeIndex(pt); err == nil && x.Pack != [16]byte(id) {
				err = fmt.Errorf("%w: cached index %s names pack %x", ErrCorrupt, name, x.Pack)
			}
		}
		if err == nil {
			m.log.Info("repair: a pack index with no good copy on the stores put back from this host's cache", "region", r.cfg.Name, "pack", name)
			return b, nil
		}
	}
	_, sealed, terr := m.packTable(ctx, r, id)
	if terr != nil {
		return nil, fmt.Errorf("%w; not cached here (%w); the pack's own table: %w", why, err, terr)
	}
	m.log.Info("repair: a pack index with no good copy on the stores rebuilt from its pack's own table", "region", r.cfg.Name, "pack", name)
	return sealed, nil
}

// sortedIDs is the keys of a pack map in order.
func sortedIDs[V any](mp map[packID]V) []packID {
	out := make([]packID, 0, len(mp))
	for id := range mp {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b packID) int { return slices.Compare(a[:], b[:]) })
	return out
}

// shardContentErr reports whether err (a shard not used by a fetch) is
// about what the store holds (missing, corrupt, of another layout or
// version), not a failed read.
func shardContentErr(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, erasure.ErrCorruptShard) ||
		errors.Is(err, erasure.ErrUnsupportedVersion) || errors.Is(err, erasure.ErrInconsistent) ||
		errors.Is(err, erasure.ErrInvalidParams)
}
