package format

import (
	"encoding/binary"
	"fmt"
	"time"
)

// TypeHold is the envelope type of a hold.
const TypeHold byte = 'H'

// Hold layout (plaintext of the 'H' envelope, stored as
// holds/<manifest name id>.<holder host id hex>.<layer> on every store; see
// replicate's package doc, "Holds"). The envelope's GCM tag is its
// checksum and binds it to its object name:
//
//	magic "SFHD" 4 | version 1 (1) | reserved 3
//	holder host id 16 | layer 8 (the holder's lazy layer id)
//	created 8 (unix ns) | snapshot host id 16
//	holder name str16 | disk str16 (the holder's disk name)
//	snapshot str16 | snapshot's disk str16 | snapshot's host name str16
const (
	holdMagic   = "SFHD"
	HoldVersion = 1
)

// Hold keeps a remote snapshot from prune while a host's lazily restored
// disk still reads from it.
type Hold struct {
	Holder           HostID
	Layer            uint64
	Created          time.Time
	SnapshotHost     HostID
	HolderName       string
	Disk             string
	Snapshot         string
	SnapshotDisk     string
	SnapshotHostName string
}

// Encode returns the hold plaintext.
func (h *Hold) Encode() []byte {
	b := append([]byte(holdMagic), HoldVersion, 0, 0, 0)
	b = append(b, h.Holder[:]...)
	b = binary.BigEndian.AppendUint64(b, h.Layer)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Created.UnixNano()))
	b = append(b, h.SnapshotHost[:]...)
	b = appendStr16(b, trim16(h.HolderName))
	b = appendStr16(b, trim16(h.Disk))
	b = appendStr16(b, trim16(h.Snapshot))
	b = appendStr16(b, trim16(h.SnapshotDisk))
	return appendStr16(b, trim16(h.SnapshotHostName))
}

// DecodeHold parses a hold plaintext.
func DecodeHold(b []byte) (*Hold, error) {
	r := &reader{b: b, what: "hold"}
	if mg := r.bytes(4); r.err == nil && string(mg) != holdMagic {
		r.fail("bad magic")
	}
	if v := r.u8(); r.err == nil && v != HoldVersion {
		return nil, fmt.Errorf("%w: hold version %d", ErrUnsupportedVersion, v)
	}
	if res := r.bytes(3); r.err == nil && (res[0]|res[1]|res[2]) != 0 {
		r.fail("reserved bytes set")
	}
	h := &Hold{}
	copy(h.Holder[:], r.bytes(16))
	h.Layer = r.u64()
	h.Created = time.Unix(0, int64(r.u64())).UTC()
	copy(h.SnapshotHost[:], r.bytes(16))
	h.HolderName, h.Disk, h.Snapshot, h.SnapshotDisk = r.str16(), r.str16(), r.str16(), r.str16()
	h.SnapshotHostName = r.str16()
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return h, nil
}
