package format

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Lock layout (plaintext of the 'L' envelope, stored as locks/<lock id> on
// every store the operation uses; see replicate's package doc for the
// protocol):
//
//	magic "SFLK" 4 | version 1 (1) | reserved 3
//	host id 16 | pid 4 | exclusive 1 (0 shared, 1 exclusive)
//	created 8 (unix ns) | refreshed 8 (unix ns, the holder's clock)
//	host name str16 | operation str16 (sync, restore, prune, repair, ...)
//
// The times are the holder's clock, for people reading `region locks`:
// readers judge a lock's liveness by the store's time of the object's last
// put (see replicate's package doc, "Clocks"), not by refreshed.
const (
	lockMagic   = "SFLK"
	LockVersion = 1
)

// Lock is a region lock object.
type Lock struct {
	Host      HostID
	PID       uint32
	Exclusive bool
	Created   time.Time
	Refreshed time.Time
	HostName  string
	Op        string
}

// Encode returns the lock plaintext.
func (l *Lock) Encode() []byte {
	b := append([]byte(lockMagic), LockVersion, 0, 0, 0)
	b = append(b, l.Host[:]...)
	b = binary.BigEndian.AppendUint32(b, l.PID)
	ex := byte(0)
	if l.Exclusive {
		ex = 1
	}
	b = append(b, ex)
	b = binary.BigEndian.AppendUint64(b, uint64(l.Created.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(l.Refreshed.UnixNano()))
	b = appendStr16(b, trim16(l.HostName))
	return appendStr16(b, trim16(l.Op))
}

func trim16(s string) string {
	if len(s) > 0xffff {
		return s[:0xffff]
	}
	return s
}

// DecodeLock parses a lock plaintext.
func DecodeLock(b []byte) (*Lock, error) {
	r := &reader{b: b, what: "lock"}
	if mg := r.bytes(4); r.err == nil && string(mg) != lockMagic {
		r.fail("bad magic")
	}
	if v := r.u8(); r.err == nil && v != LockVersion {
		return nil, fmt.Errorf("%w: lock version %d", ErrUnsupportedVersion, v)
	}
	if res := r.bytes(3); r.err == nil && (res[0]|res[1]|res[2]) != 0 {
		r.fail("reserved bytes set")
	}
	l := &Lock{}
	copy(l.Host[:], r.bytes(16))
	l.PID = r.u32()
	switch ex := r.u8(); {
	case r.err != nil:
	case ex > 1:
		r.fail("exclusive flag %d", ex)
	default:
		l.Exclusive = ex == 1
	}
	l.Created = time.Unix(0, int64(r.u64())).UTC()
	l.Refreshed = time.Unix(0, int64(r.u64())).UTC()
	l.HostName, l.Op = r.str16(), r.str16()
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return l, nil
}

// Tombstone layout (plaintext of the 'T' envelope, stored as
// pruned/<name id> on every store when prune removes a snapshot, so that
// the host that made it never ships it again):
//
//	magic "SFTS" 4 | version 1 (1) | reserved 3
//	host id 16 | snapshot id 8 | created 8 (unix ns) | pruned 8 (unix ns)
//	name str16
const (
	tombMagic   = "SFTS"
	TombVersion = 1
)

// Tombstone records a remote snapshot that prune removed.
type Tombstone struct {
	Host       HostID
	SnapshotID uint64
	Created    time.Time
	Pruned     time.Time
	Name       string
}

// Encode returns the tombstone plaintext.
func (t *Tombstone) Encode() []byte {
	b := append([]byte(tombMagic), TombVersion, 0, 0, 0)
	b = append(b, t.Host[:]...)
	b = binary.BigEndian.AppendUint64(b, t.SnapshotID)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Created.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(t.Pruned.UnixNano()))
	return appendStr16(b, trim16(t.Name))
}

// DecodeTombstone parses a tombstone plaintext.
func DecodeTombstone(b []byte) (*Tombstone, error) {
	r := &reader{b: b, what: "tombstone"}
	if mg := r.bytes(4); r.err == nil && string(mg) != tombMagic {
		r.fail("bad magic")
	}
	if v := r.u8(); r.err == nil && v != TombVersion {
		return nil, fmt.Errorf("%w: tombstone version %d", ErrUnsupportedVersion, v)
	}
	if res := r.bytes(3); r.err == nil && (res[0]|res[1]|res[2]) != 0 {
		r.fail("reserved bytes set")
	}
	t := &Tombstone{}
	copy(t.Host[:], r.bytes(16))
	t.SnapshotID = r.u64()
	t.Created = time.Unix(0, int64(r.u64())).UTC()
	t.Pruned = time.Unix(0, int64(r.u64())).UTC()
	t.Name = r.str16()
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return t, nil
}
