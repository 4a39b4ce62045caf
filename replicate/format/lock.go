package format

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"
)

// Lock layout (plaintext of the 'L' envelope, stored as locks/<lock id> on
// every store the operation uses; see replicate's package doc for the
// protocol):
//
//	magic "SFLK" 4 | version 2 (1) | reserved 3
//	host id 16 | pid 4 | exclusive 1 (0 shared, 1 exclusive)
//	created 8 (unix ns) | refreshed 8 (unix ns, the holder's clock)
//	host name str16 | operation str16 (sync, restore, prune, repair, ...)
//	boot id 16 | process start 8 | crc32c 4                 (version 2)
//
// The times are the holder's clock, for people reading `region locks`:
// readers judge a lock's liveness by the store's time of the object's last
// put (see replicate's package doc, "Clocks"), not by refreshed.
//
// Version 2 (issue unlock7) names the holder process beyond its pid, so
// that its own host can prove it gone even when the pid was reused: the
// kernel's boot id (/proc/sys/kernel/random/boot_id, zero when unknown)
// and the process's start time (clock ticks after boot, field 22 of
// /proc/<pid>/stat; 0 when unknown). The crc32c (Castagnoli) covers every
// byte before it; the 'L' envelope's AES-GCM tag authenticates the whole
// on top. Version 1 locks (no boot id, start or crc) are still read and
// re-encoded as version 1 (Version 1). A binary that knows only version 1
// takes a version 2 lock for unreadable, which blocks it like a live
// exclusive lock while the lock exists: hosts sharing a region are
// upgraded together.
const (
	lockMagic   = "SFLK"
	LockVersion = 2
	lockV1      = 1
)

// Lock is a region lock object.
type Lock struct {
	// Version is the layout read (1 or 2); 0 encodes as LockVersion.
	Version   uint8
	Host      HostID
	PID       uint32
	Exclusive bool
	Created   time.Time
	Refreshed time.Time
	HostName  string
	Op        string
	// BootID and Start identify the holder process on its host (version
	// 2; zero: unknown).
	BootID [16]byte
	Start  uint64
}

// HasProcess reports whether the lock names its holder's boot and start
// time (version 2, written where /proc gives them).
func (l *Lock) HasProcess() bool { return l.BootID != [16]byte{} && l.Start != 0 }

var lockCRC = crc32.MakeTable(crc32.Castagnoli)

// Encode returns the lock plaintext.
func (l *Lock) Encode() []byte {
	v := uint8(LockVersion)
	if l.Version == lockV1 {
		v = lockV1
	}
	b := append([]byte(lockMagic), v, 0, 0, 0)
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
	b = appendStr16(b, trim16(l.Op))
	if v == lockV1 {
		return b
	}
	b = append(b, l.BootID[:]...)
	b = binary.BigEndian.AppendUint64(b, l.Start)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, lockCRC))
}

func trim16(s string) string {
	if len(s) > 0xffff {
		return s[:0xffff]
	}
	return s
}

// DecodeLock parses a lock plaintext (version 1 or 2).
func DecodeLock(b []byte) (*Lock, error) {
	r := &reader{b: b, what: "lock"}
	if mg := r.bytes(4); r.err == nil && string(mg) != lockMagic {
		r.fail("bad magic")
	}
	v := r.u8()
	if r.err == nil && v != LockVersion && v != lockV1 {
		return nil, fmt.Errorf("%w: lock version %d", ErrUnsupportedVersion, v)
	}
	if r.err == nil && v == LockVersion {
		switch n := len(r.b); {
		case n < 4:
			r.fail("truncated: no checksum")
		case crc32.Checksum(b[:len(b)-4], lockCRC) != binary.BigEndian.Uint32(b[len(b)-4:]):
			r.fail("checksum mismatch")
		default:
			r.b = r.b[:n-4]
		}
	}
	if res := r.bytes(3); r.err == nil && (res[0]|res[1]|res[2]) != 0 {
		r.fail("reserved bytes set")
	}
	l := &Lock{Version: v}
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
	if v == LockVersion {
		copy(l.BootID[:], r.bytes(16))
		l.Start = r.u64()
	}
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
//	magic "SFTS" 4 | version 2 (1) | reserved 3
//	host id 16 | snapshot id 8 | created 8 (unix ns) | pruned 8 (unix ns)
//	name str16
//	seq 8 (version 2: the sequence of the manifest prune removed)
//
// Version 1 (no seq; written before issue 14) still decodes (Version 1,
// HasSeq false) and re-encodes as it was. The seq lets a reader tell a
// manifest put again after the prune (an explicit copy writes a higher
// one) from a copy of the pruned one that a stale store kept.
const (
	tombMagic   = "SFTS"
	TombVersion = 2
)

// Tombstone records a remote snapshot that prune removed.
type Tombstone struct {
	// Version is the layout read (1 or 2); 0 encodes as TombVersion.
	Version    uint8
	Host       HostID
	SnapshotID uint64
	Created    time.Time
	Pruned     time.Time
	Name       string
	// Seq is the removed manifest's sequence (version 2).
	Seq uint64
}

// HasSeq reports whether the tombstone records the removed manifest's
// sequence (version 2).
func (t *Tombstone) HasSeq() bool { return t.Version == 0 || t.Version >= 2 }

// Encode returns the tombstone plaintext.
func (t *Tombstone) Encode() []byte {
	v := t.Version
	if v == 0 {
		v = TombVersion
	}
	b := append([]byte(tombMagic), v, 0, 0, 0)
	b = append(b, t.Host[:]...)
	b = binary.BigEndian.AppendUint64(b, t.SnapshotID)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Created.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(t.Pruned.UnixNano()))
	b = appendStr16(b, trim16(t.Name))
	if v >= 2 {
		b = binary.BigEndian.AppendUint64(b, t.Seq)
	}
	return b
}

// DecodeTombstone parses a tombstone plaintext.
func DecodeTombstone(b []byte) (*Tombstone, error) {
	r := &reader{b: b, what: "tombstone"}
	if mg := r.bytes(4); r.err == nil && string(mg) != tombMagic {
		r.fail("bad magic")
	}
	v := r.u8()
	if r.err == nil && (v < 1 || v > TombVersion) {
		return nil, fmt.Errorf("%w: tombstone version %d", ErrUnsupportedVersion, v)
	}
	if res := r.bytes(3); r.err == nil && (res[0]|res[1]|res[2]) != 0 {
		r.fail("reserved bytes set")
	}
	t := &Tombstone{Version: v}
	copy(t.Host[:], r.bytes(16))
	t.SnapshotID = r.u64()
	t.Created = time.Unix(0, int64(r.u64())).UTC()
	t.Pruned = time.Unix(0, int64(r.u64())).UTC()
	t.Name = r.str16()
	if v >= 2 {
		t.Seq = r.u64()
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return t, nil
}
