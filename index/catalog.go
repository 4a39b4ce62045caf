package index

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/snapfs/snapfs/rowstore/ids"
)

// CatalogKind distinguishes the named catalog records.
type CatalogKind byte

const (
	KindDisk     CatalogKind = 'd'
	KindSnapshot CatalogKind = 's'
	KindImage    CatalogKind = 'i'
)

func (k CatalogKind) String() string {
	switch k {
	case KindDisk:
		return "disk"
	case KindSnapshot:
		return "snapshot"
	case KindImage:
		return "image"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Disk is the catalog record of a read-write disk.
type Disk struct {
	ID        uint64    `json:"id"`
	Name      string    `json:"name"`
	Layer     ids.Layer `json:"layer"` // INVARIANT: the disk's head layer exists
	Size      int64     `json:"size"`
	BlockSize int       `json:"block_size"`
	Created   time.Time `json:"created"`
	Origin    string    `json:"origin,omitempty"` // "snapshot S/D", "image I" or ""
}

// Layer is the catalog record of a layer: a sequence of epochs of block
// versions, on top of an optional parent (layer, epoch).
type Layer struct {
	ID          ids.Layer `json:"id"`
	Parent      ids.Layer `json:"parent,omitempty"`       // 0: no parent
	ParentEpoch ids.Epoch `json:"parent_epoch,omitempty"` // versions of Parent at or below it
	Epoch       ids.Epoch `json:"epoch"`                  // current epoch; writes go here
	BlockSize   int       `json:"block_size"`
	Created     time.Time `json:"created"`
	// Crypt is the key envelope of an encrypted disk (rowstore/keys.go),
	// on the root layer of its chain only; nil: not encrypted.
	Crypt []byte `json:"crypt,omitempty"`
	// Lazy marks the bottom layer of a lazily restored disk: blocks it does
	// not hold yet come from this origin (rowstore/lazy.go). Nil: an
	// ordinary layer. A layer carrying it is written as record format
	// version 3, so a build that does not know lazy layers refuses it
	// instead of reading its missing blocks as zeros.
	Lazy *LazyOrigin `json:"lazy,omitempty"`
}

// LazyOrigin is where the blocks a lazy layer lacks come from: a disk of a
// snapshot in a region.
type LazyOrigin struct {
	Format    int    `json:"format"` // LazyFormat
	Region    string `json:"region"`
	Host      string `json:"host,omitempty"` // the host the snapshot was synced from ("": this store's)
	Snapshot  string `json:"snapshot"`
	Disk      string `json:"disk"`
	Size      int64  `json:"size"`
	BlockSize int    `json:"block_size"`
	Rate      int64  `json:"rate,omitempty"` // hydration's bound, bytes/s (0: none)
	// The identity of the snapshot read (trial 9; absent in records
	// written before): its host's id, its id and creation time. A source
	// of another identity (the name reused after a prune) is refused.
	HostID     string    `json:"host_id,omitempty"`
	SnapshotID uint64    `json:"snapshot_id,omitempty"`
	Created    time.Time `json:"created,omitzero"`
}

// LazyFormat is the version of LazyOrigin this build writes and reads.
const LazyFormat = 1

// Member is one disk of a snapshot.
type Member struct {
	Disk      string    `json:"disk"`
	DiskID    uint64    `json:"disk_id"`
	Layer     ids.Layer `json:"layer"`
	Epoch     ids.Epoch `json:"epoch"`
	Size      int64     `json:"size"`
	BlockSize int       `json:"block_size"`
	// Allocated is the bytes of stored blocks the disk showed when the
	// snapshot was taken (the engine's running count; a member never
	// changes). Nil in records written before format version 2: unknown.
	Allocated *int64 `json:"allocated,omitempty"`
}

// Snapshot is the catalog record of a snapshot of one or more disks.
type Snapshot struct {
	ID      uint64    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Kind    string    `json:"kind"` // "manual", "policy", ...
	Members []Member  `json:"members"`
	// Policy names the policy that took an automatic snapshot;
	// Consistency is "crash", "filesystem" or "application" (empty: crash).
	Policy      string `json:"policy,omitempty"`
	Consistency string `json:"consistency,omitempty"`
}

// Image is the catalog record of an image: a named read-only (layer, epoch).
type Image struct {
	ID        uint64    `json:"id"`
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	Layer     ids.Layer `json:"layer"`
	Epoch     ids.Epoch `json:"epoch"`
	Size      int64     `json:"size"`
	BlockSize int       `json:"block_size"`
	Snapshot  string    `json:"snapshot"` // where it was made from
	Disk      string    `json:"disk"`
	// Allocated is the bytes of stored blocks the image shows (its
	// snapshot member's). Nil in records before format version 2: unknown.
	Allocated *int64 `json:"allocated,omitempty"`
}

// AllocState is the space accounting of every disk head as of one
// checkpoint (meta record "alloc", written in the checkpoint's
// transaction): the number of stored blocks each head shows.
type AllocState struct {
	Segment ids.Segment `json:"segment"` // the checkpoint it goes with
	Offset  int64       `json:"offset"`
	Disks   []DiskAlloc `json:"disks"`
}

// DiskAlloc is the count of one disk head in an AllocState.
type DiskAlloc struct {
	Disk   uint64    `json:"disk"`   // disk id
	Layer  ids.Layer `json:"layer"`  // its head layer when counted
	Blocks int64     `json:"blocks"` // stored (non-zero) blocks visible in the head
}

// Checkpoint records how far the segment log has been applied to the index:
// every record before (Segment, Offset) is reflected, and Seq is the highest
// sequence number handed out so far.
type Checkpoint struct {
	Segment ids.Segment `json:"segment"`
	Offset  int64       `json:"offset"`
	Seq     ids.Seq     `json:"seq"`
}

// Record format versions. Version 2 is written for snapshot and image
// records, which carry their allocation (Member.Allocated,
// Image.Allocated); every other record is still written as version 1.
// This build reads both; an older build refuses a version-2 record.
// Version 3 is written for layer records that carry a LazyOrigin.
const (
	recordV1 = 1
	recordV2 = 2
	recordV3 = 3
)

// recordVersion is the format version a record is written with.
func recordVersion(v any) byte {
	switch x := v.(type) {
	case Snapshot, *Snapshot, Image, *Image:
		return recordV2
	case Layer:
		if x.Lazy != nil {
			return recordV3
		}
	case *Layer:
		if x.Lazy != nil {
			return recordV3
		}
	}
	return recordV1
}

// encodeRecord encodes a catalog or meta record: format version (1 byte),
// JSON, CRC32C (4 bytes LE) of what precedes.
func encodeRecord(v any) ([]byte, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("index: encode record: %w", err)
	}
	b := make([]byte, 0, 1+len(js)+4)
	b = append(b, recordVersion(v))
	b = append(b, js...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// decodeRecord decodes a value made by encodeRecord into v.
func decodeRecord(b []byte, v any) error {
	if len(b) < 1+4 {
		return fmt.Errorf("%w: record of %d bytes", ErrCorrupt, len(b))
	}
	if b[0] != recordV1 && b[0] != recordV2 && b[0] != recordV3 {
		return fmt.Errorf("%w: record format version %d (this build reads %d to %d)", ErrCorrupt, b[0], recordV1, recordV3)
	}
	n := len(b) - 4
	if got, want := crc32.Checksum(b[:n], castagnoli), binary.LittleEndian.Uint32(b[n:]); got != want {
		return fmt.Errorf("%w: record checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	if err := json.Unmarshal(b[1:n], v); err != nil {
		return fmt.Errorf("%w: record: %v", ErrCorrupt, err)
	}
	if l, ok := v.(*Layer); ok && l.Lazy != nil && l.Lazy.Format != LazyFormat {
		return fmt.Errorf("%w: lazy layer %d: origin format %d (this build reads %d)", ErrCorrupt, l.ID, l.Lazy.Format, LazyFormat)
	}
	return nil
}
