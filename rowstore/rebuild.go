package rowstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/snapfs/snapfs/index"
)

// RebuildReport says what Rebuild found in the log.
type RebuildReport struct {
	MovedAside     string `json:"moved_aside,omitempty"` // where the old index directory went ("" if there was none)
	Segments       int    `json:"segments"`
	Records        int64  `json:"block_records"`
	CatalogRecords int    `json:"catalog_records"`
	Skipped        int64  `json:"records_of_deleted_layers"`
	Disks          int    `json:"disks"`
	Snapshots      int    `json:"snapshots"`
	Images         int    `json:"images"`
	Layers         int    `json:"layers"`
	Corrupt        int    `json:"corrupt_segments"` // segments where the scan met a corrupt record
	// CorruptBlocks: corrupt data records indexed as their block's version
	// (reads of the block fail, check names it; its digest is unknown, so
	// repair, which fetches by digest, lists it as unrepaired).
	CorruptBlocks int `json:"corrupt_blocks"`
	// CorruptSuperseded: corrupt data records whose block has a newer
	// version (nothing reads them).
	CorruptSuperseded int `json:"corrupt_superseded"`
	// Unattributed: corrupt records whose content could not be tied to a
	// block (damaged header, hole or catalog record): not in the index.
	Unattributed []BadRecordReport `json:"unattributed,omitempty"`
	// TornTails: tails cut from a stream's last segment (a bad record with
	// no valid record after it). After a crash that is a torn write; after
	// a clean shutdown it was data.
	TornTails []BadRecordReport `json:"torn_tails,omitempty"`
}

// Whole reports whether the log was recovered whole: no corrupt record met
// (a cut torn tail is not counted: see TornTails).
func (r RebuildReport) Whole() bool {
	return r.Corrupt == 0 && len(r.Unattributed) == 0 && r.CorruptBlocks == 0
}

// Rebuild recreates the whole index of the store in dir, block versions and
// catalog, from the segment log alone. It needs the store closed (it takes
// the store's lock: ErrBusy otherwise). The old index directory, if any, is
// moved aside to index.bad-<time> (never deleted: RebuildReport.MovedAside
// names it, a safety copy for the operator to remove); if the log holds no
// catalog (a store last written by a snapfs older than the catalog log), the
// old index is put back and the error wraps ErrCorrupt. Corrupt records
// in the log are reported, not an error (doc.go, "Rebuild and corrupt
// records"): see RebuildReport.Whole.
func Rebuild(dir string, opts Options) (RebuildReport, error) {
	var rep RebuildReport
	opts.fill()
	opts.SyncInterval, opts.GCInterval = -1, -1
	sb, err := readSuperblock(opts.FS, dir)
	if err != nil {
		return rep, err
	}
	lock, err := lockStore(dir)
	if err != nil {
		return rep, err
	}
	idxDir := filepath.Join(dir, "index")
	if _, err := os.Stat(idxDir); err == nil {
		rep.MovedAside = filepath.Join(dir, "index.bad-"+time.Now().UTC().Format("20060102T150405Z"))
		for i := 1; ; i++ {
			if _, err := os.Stat(rep.MovedAside); errors.Is(err, os.ErrNotExist) {
				break
			}
			rep.MovedAside = filepath.Join(dir, fmt.Sprintf("index.bad-%s-%d", time.Now().UTC().Format("20060102T150405Z"), i))
		}
		if err := os.Rename(idxDir, rep.MovedAside); err != nil {
			lock.Close()
			return rep, fmt.Errorf("move the old index aside: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		lock.Close()
		return rep, fmt.Errorf("index: %w", err)
	}
	putBack := func() {
		bad := idxDir + ".rebuild-failed-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(idxDir, bad); err != nil && !errors.Is(err, os.ErrNotExist) {
			return
		}
		if rep.MovedAside != "" {
			if err := os.Rename(rep.MovedAside, idxDir); err == nil {
				rep.MovedAside = ""
			}
		}
	}
	if err := initIndex(idxDir, sb.UUID, opts); err != nil {
		putBack()
		lock.Close()
		return rep, err
	}
	lock.Close() // Open takes it again
	opts.rebuild = true
	s, err := Open(dir, opts)
	if err != nil {
		putBack()
		return rep, fmt.Errorf("rebuild: %w", err)
	}
	rep.Records, rep.CatalogRecords, rep.Skipped = s.replay.Records, s.replay.CatalogRecords, s.replay.Skipped
	rep.Segments = len(s.seg.Segments())
	s.corruptMu.Lock()
	rep.Corrupt = len(s.corruptSegs)
	s.corruptMu.Unlock()
	rep.CorruptBlocks, rep.CorruptSuperseded, rep.Unattributed = s.replay.BadIndexed, s.replay.BadSuperseded, s.replay.Unattributed
	for _, t := range s.tornTails {
		why := "torn or corrupt tail cut"
		if t.Err != nil {
			why += ": " + t.Err.Error()
		}
		rep.TornTails = append(rep.TornTails, BadRecordReport{Segment: t.Segment, Offset: t.Offset, Bytes: t.Bytes, Why: why})
	}
	err = s.idx.View(func(t *index.Txn) error {
		count := func(kind index.CatalogKind) (n int, err error) {
			err = t.List(kind, func(func(any) error) error { n++; return nil })
			return n, err
		}
		var err error
		if rep.Disks, err = count(index.KindDisk); err != nil {
			return err
		}
		if rep.Snapshots, err = count(index.KindSnapshot); err != nil {
			return err
		}
		if rep.Images, err = count(index.KindImage); err != nil {
			return err
		}
		return t.Layers(func(index.Layer) error { rep.Layers++; return nil })
	})
	if e := s.Close(); err == nil {
		err = e
	}
	return rep, err
}
