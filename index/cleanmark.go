package index

import (
	"errors"

	"github.com/snapfs/snapfs/rowstore/ids"
)

// CleanerMark is how far the engine's cleaner stream (the segment log's
// second append stream, package segment) is known synced and relied on:
// written before the index is repointed to copies in it (Badger keeps write
// order, so a repoint that survives a crash implies its mark does), and
// raised at open to where the stream was recovered (or to a segment below
// every cleaner segment to come, when it has none). At open, a bad record
// in the cleaner stream's last segment before the mark is corruption to
// keep and report; one past it starts a torn tail; no cleaner segment
// numbered below the mark's is searched for as the stream's last.
type CleanerMark struct {
	Segment ids.Segment `json:"segment"`
	Offset  int64       `json:"offset"`
}

// CleanerMark reads the cleaner stream's mark; the zero mark if none.
func (t *Txn) CleanerMark() (CleanerMark, error) {
	var c CleanerMark
	err := t.getRecord(metaKey("cleaner-mark"), &c)
	if errors.Is(err, ErrNotFound) {
		return CleanerMark{}, nil
	}
	return c, err
}

// SetCleanerMark records the cleaner stream's mark in the batch.
func (b *Batch) SetCleanerMark(c CleanerMark) error {
	v, err := encodeRecord(c)
	if err != nil {
		return err
	}
	return b.wb.Set(metaKey("cleaner-mark"), v)
}
