package rowstore

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// ErrIndexRefused marks an index that Open refused because it does not
// match the store or its log. Such errors also wrap ErrCorrupt (exit 6).
// Nothing was changed on disk; `snapfs index rebuild` rebuilds the index.
var ErrIndexRefused = errors.New("index refused")

// IndexError says why the index of a store was refused.
type IndexError struct {
	Dir     string // the index directory
	Problem string
}

func (e *IndexError) Error() string {
	return fmt.Sprintf("index %s %s; nothing was changed: run `snapfs index rebuild` (with the store unmounted) to rebuild it from the segment log", e.Dir, e.Problem)
}

// Unwrap returns ErrCorrupt and ErrIndexRefused.
func (e *IndexError) Unwrap() []error { return []error{ErrCorrupt, ErrIndexRefused} }

// logSegments lists the segments in the log directory (number -> size)
// and whether any of them holds more than its file header (a record),
// without opening the log (which would write).
func (s *Store) logSegments(dir string) (sizes map[ids.Segment]int64, hasRecords bool, err error) {
	segDir := path.Join(dir, "segments")
	names, err := s.fs.List(segDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("list segments: %w", err)
	}
	for _, n := range names {
		var num ids.Segment
		if len(n) != 20 || path.Ext(n) != ".seg" {
			continue
		}
		if _, err := fmt.Sscanf(n, "%016x.seg", &num); err != nil {
			continue
		}
		fi, err := s.fs.Stat(path.Join(segDir, n))
		if err != nil {
			return nil, false, fmt.Errorf("stat segment: %w", err)
		}
		if sizes == nil {
			sizes = map[ids.Segment]int64{}
		}
		sizes[num] = fi.Size()
		if fi.Size() > segment.FileHeaderSize {
			hasRecords = true
		}
	}
	return sizes, hasRecords, nil
}

// checkIndexDir looks at the index directory before Badger opens it (Badger
// treats a directory without MANIFEST as a new database and deletes the
// table and value-log files it does not know: index/doc.go). It refuses a
// directory that is missing, empty or lacks its MANIFEST while the log holds
// records, and one whose identity names another store. legacy reports an
// index written before identities existed (upgraded by finishOpen).
func (s *Store) checkIndexDir(dir string) (legacy bool, err error) {
	idxDir := filepath.Join(dir, "index")
	st, err := index.Inspect(idxDir)
	if err != nil {
		return false, &IndexError{Dir: idxDir, Problem: fmt.Sprintf("cannot be read (%v)", err)}
	}
	_, hasRecords, err := s.logSegments(dir)
	if err != nil {
		return false, err
	}
	refuse := func(problem string) error { return &IndexError{Dir: idxDir, Problem: problem} }
	switch {
	case st.Empty && !hasRecords:
		// A store made by an older Create and never written: make its index.
		if err := initIndex(idxDir, s.sb.UUID, s.opts); err != nil {
			return false, err
		}
		return false, nil
	case st.Missing:
		return false, refuse("is missing but the segment log holds data")
	case st.Empty:
		return false, refuse("is empty but the segment log holds data")
	case !st.HasManifest:
		return false, refuse("has no MANIFEST (Badger would start an empty index and delete the others' files)")
	case st.HasIdentity && st.UUID != s.sb.UUID:
		return false, refuse(fmt.Sprintf("belongs to another store (index of store %x, superblock of store %x)", st.UUID, s.sb.UUID))
	}
	return !st.HasIdentity, nil
}

// verifyIndex opens the index read-only and checks it against the store
// and the log: the store id inside it, and a checkpoint the log can still
// replay from.
func (s *Store) verifyIndex(dir string, legacy bool) error {
	idxDir := filepath.Join(dir, "index")
	refuse := func(problem string) error { return &IndexError{Dir: idxDir, Problem: problem} }
	db, err := index.Open(idxDir, index.Options{Logger: s.log, ReadOnly: true, MemTableSize: s.opts.IndexMemTableSize, BlockCacheSize: s.opts.IndexBlockCacheSize})
	if errors.Is(err, index.ErrNeedsWrite) {
		// After a crash Badger must truncate its memtable log before it can
		// be read: verify after the read-write open (which changes nothing
		// but Badger's own recovery).
		return errVerifyLater
	}
	if err != nil {
		return refuse(fmt.Sprintf("cannot be opened (%v)", err))
	}
	return s.checkIndex(db, dir, legacy)
}

var errVerifyLater = errors.New("verify the index after opening it")

// checkIndex checks an open index against the store and the log.
func (s *Store) checkIndex(db *index.DB, dir string, legacy bool) (err error) {
	if db != s.idx { // the read-only open of verifyIndex
		defer func() {
			if e := db.Close(); err == nil && e != nil {
				err = &IndexError{Dir: filepath.Join(dir, "index"), Problem: fmt.Sprintf("cannot be closed (%v)", e)}
			}
		}()
	}
	idxDir := filepath.Join(dir, "index")
	refuse := func(problem string) error { return &IndexError{Dir: idxDir, Problem: problem} }
	var id [16]byte
	var ok bool
	var cst index.CatalogState
	var cp index.Checkpoint
	err = db.View(func(t *index.Txn) error {
		var err error
		if id, ok, err = t.StoreID(); err != nil {
			return err
		}
		if cp, err = t.Checkpoint(); err != nil {
			return err
		}
		cst, err = t.CatalogState()
		return err
	})
	if err != nil {
		return refuse(fmt.Sprintf("cannot be read (%v)", err))
	}
	if ok && id != s.sb.UUID {
		return refuse(fmt.Sprintf("belongs to another store (index of store %x, superblock of store %x)", id, s.sb.UUID))
	}
	if !ok && !legacy {
		return refuse("carries no store identity")
	}
	sizes, hasRecords, err := s.logSegments(dir)
	if err != nil {
		return err
	}
	var newest ids.Segment
	for n := range sizes {
		newest = max(newest, n)
	}
	if cp.Segment > 0 && !s.opts.rebuild && !s.opts.RebuildIndex {
		// The index has applied the log up to the checkpoint, which was
		// synced first: a log that ends before it lost segments or data the
		// index points at. (An empty last segment is removed at open, and its
		// number used again: a checkpoint at its start is fine.)
		size, ok := sizes[cp.Segment]
		switch {
		case ok && cp.Offset > size:
			return refuse(fmt.Sprintf("is ahead of the log: it has applied segment %d up to offset %d, but the segment has %d bytes", cp.Segment, cp.Offset, size))
		case !ok && cp.Segment > newest && !(cp.Segment == newest.Next() && cp.Offset <= segment.FileHeaderSize):
			return refuse(fmt.Sprintf("is ahead of the log: it has applied the log up to segment %d, but the newest segment is %d", cp.Segment, newest))
		}
	}
	nums := make([]ids.Segment, 0, len(sizes))
	for n := range sizes {
		nums = append(nums, n)
	}
	if hasRecords && cp == (index.Checkpoint{}) && cst == (index.CatalogState{}) && !s.opts.rebuild && !s.opts.RebuildIndex {
		return refuse("has applied nothing but the segment log holds data")
	}
	if len(nums) > 0 && cp.Segment > 0 && !s.opts.rebuild && !s.opts.RebuildIndex {
		oldest := nums[0]
		for _, n := range nums {
			oldest = min(oldest, n)
		}
		// A checkpoint older than every segment left is normal when the
		// cleaner removed the checkpoint's segment (it repoints and syncs the
		// index first) before the next commit; an index that missed those
		// repoints (an old copy) still points into removed segments. Only in
		// this rare case is every version looked at.
		if oldest > cp.Segment {
			var gone index.Version
			var missing bool
			stop := errors.New("stop")
			err = db.View(func(t *index.Txn) error {
				return t.EachVersion(func(_ ids.Layer, _ ids.Block, _ ids.Epoch, v index.Version) error {
					if _, ok := sizes[v.Segment]; !v.Zero() && !ok {
						gone, missing = v, true
						return stop
					}
					return nil
				})
			})
			if err != nil && !errors.Is(err, stop) {
				return refuse(fmt.Sprintf("cannot be read (%v)", err))
			}
			if missing {
				return refuse(fmt.Sprintf("is behind the log: it has applied the log up to segment %d, the oldest segment left is %d, and it points at segment %d, which is gone", cp.Segment, oldest, gone.Segment))
			}
		}
	}
	return nil
}

// finishOpen upgrades an index written before identities and the catalog
// log: the store id and the identity file, and a first full catalog record
// so the catalog can be rebuilt from the log from now on.
func (s *Store) finishOpen(legacy bool) error {
	var cst index.CatalogState
	if err := s.idx.View(func(t *index.Txn) error {
		var err error
		cst, err = t.CatalogState()
		return err
	}); err != nil {
		return err
	}
	if legacy {
		if err := s.idx.UpdateSync(func(t *index.Txn) error { return t.SetStoreID(s.sb.UUID) }); err != nil {
			return fmt.Errorf("upgrade index: %w", err)
		}
		if err := index.WriteIdentity(filepath.Join(s.dir, "index"), s.sb.UUID); err != nil {
			return fmt.Errorf("upgrade index: %w", err)
		}
	}
	s.catFullSeq.Store(cst.FullSeq)
	if cst.FullSeq == 0 {
		if s.opts.rebuild && s.replay.Records+s.replay.Skipped > 0 {
			return &CorruptError{What: "segment log", Err: errors.New("it holds no catalog record (last written by a snapfs older than the catalog log); the old index was put back")}
		}
		if err := s.writeFullCatalog(); err != nil {
			return fmt.Errorf("write the first full catalog record: %w", err)
		}
		if err := s.idx.Sync(); err != nil {
			return err
		}
	}
	s.verified.Store(true)
	return nil
}
