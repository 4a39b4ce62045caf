package rowstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// The catalog log: every catalog transaction (create, clone, snapshot,
// image, rollback, rename, resize, delete) appends one catalog record to the
// segment log carrying the new values of the keys it changed, and syncs the
// log, before the index transaction commits. So the log alone holds the
// catalog (invariant 4), and `snapfs index rebuild` recovers it. Every
// fullEvery deltas a full record (every catalog key) is written; deltas
// older than the newest full record are dead for the cleaner.

// catalogUpdate runs fn as a logged catalog transaction (not synced to the
// index: callers that need it durable call s.idx.Sync or use
// catalogUpdateSync). The caller holds catMu.
func (s *Store) catalogUpdate(fn func(*index.Txn) error) error {
	s.cleaner.catalogChanged() // the cleaner rescans (segusage.go)
	s.excl.begin()
	defer s.excl.changed() // exclusive figures (exclusive.go), once applied
	if s.catBroken != nil {
		// Supersede the failed record first (trial 8: refusing every change
		// until a reopen stranded a user whose filesystem had filled, with
		// deletes refused even once space came back).
		if err := s.writeFullCatalog(); err != nil {
			if isNoSpace(err) {
				return fmt.Errorf("%w on the store's filesystem (%s): catalog changes (deletes too) wait until an earlier failed change is superseded, which needs a little free space there: free some outside snapfs, then run the command again (%v)", ErrNoSpace, s.dir, err)
			}
			return fmt.Errorf("catalog changes refused: %w (superseding it again: %v)", s.catBroken, err)
		}
		s.log.Info("catalog: a failed catalog change is superseded; catalog changes go on", "was", s.catBroken)
		s.catBroken = nil
	}
	st, err := s.idx.UpdateCatalog(fn, s.logCatalog)
	if err != nil {
		if s.catalogInflight() && !errors.Is(err, errTestCrash) {
			// The record may be (or become) durable in the log while the
			// index never applied it: a replay or rebuild would apply a
			// change that failed. A full record of the index's catalog
			// supersedes it.
			if e := s.writeFullCatalog(); e != nil {
				s.catBroken = fmt.Errorf("a failed catalog change is in the log but not in the index (%v; superseding it: %v)", err, e)
				s.log.Error("catalog", "err", s.catBroken)
			}
		}
		return err
	}
	s.catalogApplied()
	if st.SinceFull > fullEvery(st.Entries) {
		if err := s.writeFullCatalog(); err != nil {
			// The delta is durable; a later change tries again.
			s.log.Error("write full catalog record", "err", err)
		}
	}
	return nil
}

// catalogInflight reports whether a catalog record was appended that the
// index has not applied (commit keeps the checkpoint before it).
func (s *Store) catalogInflight() bool {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	return s.catInflight != nil
}

// clearCatalogInflight lets commit move the checkpoint past the catalog
// records appended so far: the index has applied or superseded them.
func (s *Store) clearCatalogInflight() {
	s.appendMu.Lock()
	s.catInflight = nil
	s.appendMu.Unlock()
}

// catalogUpdateSync is catalogUpdate, durable when it returns: its record is
// synced in the log, and the checkpoint stays before it until the index is
// synced too (catalogApplied), so a crash that loses the index transaction
// replays it. The index is synced once the oldest unsynced change is older
// than catSyncAfter (catalogSyncSoon: by the background sync, else here),
// or by GC, the cleaner or Close: one fsync per change instead of two.
func (s *Store) catalogUpdateSync(fn func(*index.Txn) error) error {
	if err := s.catalogUpdate(fn); err != nil {
		return err
	}
	return s.catalogSyncSoon()
}

// catSyncAfter bounds how long catalog changes stay unsynced in the index
// (and the checkpoint, with it, behind them) while catalog changes go on.
const catSyncAfter = time.Second

// catalogApplied: the index applied the catalog record in flight (not
// synced). The checkpoint stays before it until syncCatalog.
func (s *Store) catalogApplied() {
	s.appendMu.Lock()
	if s.catInflight != nil {
		if s.catUnsynced == nil {
			s.catUnsynced, s.catUnsyncedAt = s.catInflight, time.Now()
		}
		s.catUnsyncedGen++
		s.catInflight = nil
	}
	s.appendMu.Unlock()
}

// syncCatalog syncs the index and lets the checkpoint pass the catalog
// records it applied before the sync.
func (s *Store) syncCatalog() error {
	s.appendMu.Lock()
	pending, gen := s.catUnsynced != nil, s.catUnsyncedGen
	s.appendMu.Unlock()
	if !pending {
		return nil
	}
	if err := s.idx.Sync(); err != nil {
		return fmt.Errorf("index: sync: %w", err)
	}
	s.appendMu.Lock()
	if s.catUnsyncedGen == gen { // else one applied meanwhile: the next sync
		s.catUnsynced = nil
	}
	s.appendMu.Unlock()
	return nil
}

// syncCatalogIfStale is syncCatalog when the oldest unsynced catalog change
// is older than catSyncAfter.
func (s *Store) syncCatalogIfStale() error {
	if !s.catalogStale() {
		return nil
	}
	return s.syncCatalog()
}

// catalogStale reports whether the oldest catalog change the index has not
// synced is older than catSyncAfter.
func (s *Store) catalogStale() bool {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	return s.catUnsynced != nil && time.Since(s.catUnsyncedAt) > catSyncAfter
}

// catalogSyncSoon is syncCatalogIfStale, done by the background sync when
// there is one (Options.SyncInterval > 0): a snapshot or a commit then
// never waits for the index's fsync, which no acknowledgement needs (the
// catalog record is synced in the log, and the checkpoint stays before it
// until the index is synced).
func (s *Store) catalogSyncSoon() error {
	if s.opts.SyncInterval <= 0 {
		return s.syncCatalogIfStale()
	}
	if s.catalogStale() {
		select {
		case s.catSyncKick <- struct{}{}:
		default:
		}
	}
	return nil
}

// fullEvery is how many deltas may follow a full catalog record before the
// next one: proportional to the catalog's size, so a full record costs O(1)
// per change on average.
func fullEvery(entries int) int { return 64 + entries/2 }

// logCatalog appends a catalog record and makes it durable (with every
// record appended before it); it returns the record's sequence number.
func (s *Store) logCatalog(payload []byte) (ids.Seq, error) {
	r := &segment.Record{Kind: segment.KindCatalog, Payload: payload}
	if err := s.appendCatalog(r); err != nil {
		return 0, err
	}
	if err := s.commit(); err != nil {
		return 0, fmt.Errorf("catalog: %w", err)
	}
	if h := testHookCatalogLogged; h != nil {
		if err := h(); err != nil {
			return 0, err
		}
	}
	return r.Seq, nil
}

// testHookCatalogLogged, when set (tests only), runs once a catalog record
// is durable in the log and before the index transaction commits; an error
// aborts that transaction (errTestCrash: and nothing else is done, as after
// a crash at that point).
var testHookCatalogLogged func() error

var errTestCrash = errors.New("simulated crash")

// appendCatalog appends a catalog record with the next sequence number.
func (s *Store) appendCatalog(r *segment.Record) error {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	r.Seq = s.nextSeq
	pos, err := s.seg.Append(r)
	if err != nil {
		if errors.Is(err, syscallENOSPC) {
			return fmt.Errorf("%w: append catalog record: %v", ErrNoSpace, err)
		}
		return fmt.Errorf("append catalog record: %w", err)
	}
	s.nextSeq++
	s.dirty = true
	if s.catInflight == nil {
		s.catInflight = &pos
	}
	return nil
}

// writeFullCatalog logs the whole catalog; older catalog records become
// dead. The caller holds catMu (or is alone: Open).
func (s *Store) writeFullCatalog() error {
	var dump []index.CatalogChange
	if err := s.idx.View(func(t *index.Txn) error {
		var err error
		dump, err = t.CatalogDump()
		return err
	}); err != nil {
		return err
	}
	seq, err := s.logCatalog(index.EncodeCatalog(true, dump))
	if err != nil {
		return err
	}
	// The log holds the index's whole catalog: it supersedes any catalog
	// record before it that the index did not apply.
	s.clearCatalogInflight()
	if err := s.idx.Update(func(t *index.Txn) error {
		st, err := t.CatalogState()
		if err != nil {
			return err
		}
		return t.SetCatalogState(index.CatalogState{Seq: max(st.Seq, seq), FullSeq: seq, Entries: len(dump)})
	}); err != nil {
		return err
	}
	s.catFullSeq.Store(seq)
	return nil
}
