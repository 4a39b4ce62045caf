package format

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// Manifest layout (plaintext of the 'M' envelope, one per remote snapshot,
// on every store; big-endian, varints are unsigned LEB128, minimal):
//
//	magic "SFMF" 4 | version 4 (1) | reserved 3
//	snapshot id 8 (the local engine's id) | created 8 (unix nanoseconds)
//	sequence 8 (0 when first written; each rewrite of the same manifest,
//	  e.g. by prune, stores the previous sequence + 1: of copies that
//	  differ, the highest sequence is the newest; absent in version 1,
//	  which decodes with sequence 0)
//	host id 16 | host name str16 (the host whose snapshot this is; absent
//	  in versions 1 and 2, which decode with the zero host id: "unknown")
//	name str16 | kind str16 | disk count 2
//	per disk:
//	  name str16 | size 8 | block size 4
//	  flags 1 (bit 0: the disk was encrypted at rest on its host, so a
//	    restore must encrypt it again; other bits 0; absent before
//	    version 4, which decodes with flags 0)
//	  parent str16 (name id of the parent manifest; empty: a full map)
//	  depth 2 (0 for a full map, parent's depth + 1 for a delta)
//	  count 4
//	  count entries, ascending by block:
//	    varint (gap << 1 | zero), gap = block - (previous block + 1), first: block
//	    chunk id 32, absent when zero
//
// str16 = length 2 | bytes. A full map lists every non-zero block; a delta
// lists the blocks that differ from the parent's disk of the same name,
// with zero = 1 for a block that now reads as zeros.
const (
	manifestMagic   = "SFMF"
	ManifestVersion = 4
	// manifestVersion3 has no per-disk flags; still decoded.
	manifestVersion3 = 3
	// manifestVersion1 has no sequence field; still decoded.
	manifestVersion1 = 1
	// manifestVersion2 has no host; still decoded (host unknown).
	manifestVersion2 = 2
	// diskFlagEncrypted marks a disk encrypted at rest (ManifestDisk.Encrypted).
	diskFlagEncrypted = 1
	// MaxDepth bounds a delta chain: a manifest at this depth is written full.
	MaxDepth = 16
)

// Manifest describes one remote snapshot.
type Manifest struct {
	Name       string
	SnapshotID uint64
	Created    time.Time
	// Seq orders rewrites of one manifest: 0 when first written, +1 on
	// every rewrite.
	Seq uint64
	// Host owns the snapshot: a host's snapshots are stored under their
	// own name ids (see replicate), so two hosts never share a manifest.
	// The zero id is "unknown": a manifest written before hosts existed
	// (version 1 or 2).
	Host     HostID
	HostName string
	Kind     string
	Disks    []ManifestDisk
	// Version is the format version the manifest was decoded from (0 for
	// one built in memory); Encode always writes ManifestVersion.
	Version int
}

// HostID identifies a host (a local snapfs store): 16 random bytes made
// at init. The zero id is the unknown host of manifests that predate hosts.
type HostID [16]byte

// IsZero reports whether id is the unknown host.
func (id HostID) IsZero() bool { return id == HostID{} }

func (id HostID) String() string {
	if id.IsZero() {
		return "unknown"
	}
	return hex.EncodeToString(id[:])
}

// ManifestDisk is one disk of a remote snapshot.
type ManifestDisk struct {
	Name      string
	Size      int64
	BlockSize int
	Parent    string // name id of the parent manifest; "" for a full map
	// Encrypted: the disk is encrypted at rest on its host (rowstore), so
	// it may only be restored into an encrypted disk.
	Encrypted bool
	Depth     int
	Entries   []MapEntry
}

// MapEntry maps a block to a chunk, or marks it zero in a delta.
type MapEntry struct {
	Block uint64
	Zero  bool
	ID    ChunkID
}

// Disk returns the disk named name, or nil.
func (m *Manifest) Disk(name string) *ManifestDisk {
	for i := range m.Disks {
		if m.Disks[i].Name == name {
			return &m.Disks[i]
		}
	}
	return nil
}

// Blocks is the number of blocks of the disk.
func (d *ManifestDisk) Blocks() uint64 {
	if d.BlockSize <= 0 {
		return 0
	}
	return uint64((d.Size + int64(d.BlockSize) - 1) / int64(d.BlockSize))
}

// Encode returns the manifest plaintext. Entries must be ascending by block.
func (m *Manifest) Encode() ([]byte, error) {
	b := append([]byte(manifestMagic), ManifestVersion, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, m.SnapshotID)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Created.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = append(b, m.Host[:]...)
	if len(m.HostName) > 0xffff {
		return nil, fmt.Errorf("manifest %q: host name too long", m.Name)
	}
	b = appendStr16(b, m.HostName)
	if len(m.Name) > 0xffff || len(m.Kind) > 0xffff || len(m.Disks) > 0xffff {
		return nil, fmt.Errorf("manifest %q: field too long", m.Name)
	}
	b = appendStr16(b, m.Name)
	b = appendStr16(b, m.Kind)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Disks)))
	for _, d := range m.Disks {
		if len(d.Name) > 0xffff || len(d.Parent) > 0xffff || d.Depth > 0xffff || d.Depth < 0 || len(d.Entries) > 1<<32-1 {
			return nil, fmt.Errorf("manifest %q disk %q: field out of range", m.Name, d.Name)
		}
		b = appendStr16(b, d.Name)
		b = binary.BigEndian.AppendUint64(b, uint64(d.Size))
		b = binary.BigEndian.AppendUint32(b, uint32(d.BlockSize))
		var flags byte
		if d.Encrypted {
			flags |= diskFlagEncrypted
		}
		b = append(b, flags)
		b = appendStr16(b, d.Parent)
		b = binary.BigEndian.AppendUint16(b, uint16(d.Depth))
		b = binary.BigEndian.AppendUint32(b, uint32(len(d.Entries)))
		next := uint64(0)
		for _, e := range d.Entries {
			if e.Block < next {
				return nil, fmt.Errorf("manifest %q disk %q: blocks not ascending at %d", m.Name, d.Name, e.Block)
			}
			v := (e.Block - next) << 1
			if e.Zero {
				v |= 1
			}
			b = binary.AppendUvarint(b, v)
			if !e.Zero {
				b = append(b, e.ID[:]...)
			}
			next = e.Block + 1
		}
	}
	return b, nil
}

// DecodeManifest parses a manifest plaintext.
func DecodeManifest(b []byte) (*Manifest, error) {
	r := &reader{b: b, what: "manifest"}
	if mg := r.bytes(4); r.err == nil && string(mg) != manifestMagic {
		r.fail("bad magic")
	}
	v := r.u8()
	if r.err == nil && v != ManifestVersion && v != manifestVersion1 && v != manifestVersion2 && v != manifestVersion3 {
		return nil, fmt.Errorf("%w: manifest version %d", ErrUnsupportedVersion, v)
	}
	if res := r.bytes(3); r.err == nil && (res[0]|res[1]|res[2]) != 0 {
		r.fail("reserved bytes set")
	}
	m := &Manifest{SnapshotID: r.u64(), Version: int(v)}
	m.Created = time.Unix(0, int64(r.u64())).UTC()
	if v != manifestVersion1 {
		m.Seq = r.u64()
	}
	if v >= manifestVersion3 {
		copy(m.Host[:], r.bytes(16))
		m.HostName = r.str16()
	}
	m.Name, m.Kind = r.str16(), r.str16()
	nd := r.u16()
	for range nd {
		if r.err != nil {
			break
		}
		d := ManifestDisk{Name: r.str16(), Size: int64(r.u64()), BlockSize: int(r.u32())}
		if v >= ManifestVersion {
			flags := r.u8()
			if r.err == nil && flags&^diskFlagEncrypted != 0 {
				r.fail("disk %q: unknown flags %#x", d.Name, flags)
			}
			d.Encrypted = flags&diskFlagEncrypted != 0
		}
		d.Parent, d.Depth = r.str16(), int(r.u16())
		if r.err == nil && (d.Size < 0 || d.BlockSize <= 0 || d.BlockSize > MaxChunk) {
			r.fail("disk %q: size %d block size %d", d.Name, d.Size, d.BlockSize)
		}
		if r.err == nil && (d.Parent == "") != (d.Depth == 0) {
			r.fail("disk %q: parent %q with depth %d", d.Name, d.Parent, d.Depth)
		}
		n := r.u32()
		if r.err == nil && uint64(n) > uint64(len(r.b)) { // every entry takes at least one byte
			r.fail("disk %q: %d entries in %d bytes", d.Name, n, len(r.b))
		}
		nblocks := d.Blocks()
		next := uint64(0)
		if r.err == nil {
			d.Entries = make([]MapEntry, 0, n)
		}
		for range n {
			v := r.uvarint()
			if r.err != nil {
				break
			}
			e := MapEntry{Block: next + v>>1, Zero: v&1 == 1}
			if e.Block < next || e.Block >= nblocks {
				r.fail("disk %q: block %d out of range", d.Name, e.Block)
				break
			}
			if e.Zero && d.Parent == "" {
				r.fail("disk %q: zero entry in a full map", d.Name)
				break
			}
			if !e.Zero {
				copy(e.ID[:], r.bytes(32))
			}
			d.Entries = append(d.Entries, e)
			next = e.Block + 1
		}
		m.Disks = append(m.Disks, d)
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

// Marker layout (plaintext of the 'C' envelope: a copy in progress, put
// on every store before the first pack, deleted after the manifest):
//
//	magic "SFCM" 4 | version 2 (1) | reserved 3
//	snapshot id 8 | created 8 (unix ns) | started 8 (unix ns) | name str16
//	host id 16 | host name str16 (absent in version 1: unknown host)
const (
	markerMagic    = "SFCM"
	MarkerVersion  = 2
	markerVersion1 = 1
)

// Marker records a snapshot being copied.
type Marker struct {
	Name       string
	SnapshotID uint64
	Created    time.Time
	Started    time.Time
	Host       HostID
	HostName   string
	// Version is the format version decoded (0: built in memory).
	Version int
}

// Encode returns the marker plaintext.
func (mk *Marker) Encode() []byte {
	b := append([]byte(markerMagic), MarkerVersion, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, mk.SnapshotID)
	b = binary.BigEndian.AppendUint64(b, uint64(mk.Created.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(mk.Started.UnixNano()))
	b = appendStr16(b, mk.Name)
	b = append(b, mk.Host[:]...)
	return appendStr16(b, mk.HostName)
}

// DecodeMarker parses a marker plaintext.
func DecodeMarker(b []byte) (*Marker, error) {
	r := &reader{b: b, what: "copying marker"}
	if mg := r.bytes(4); r.err == nil && string(mg) != markerMagic {
		r.fail("bad magic")
	}
	v := r.u8()
	if r.err == nil && v != MarkerVersion && v != markerVersion1 {
		return nil, fmt.Errorf("%w: marker version %d", ErrUnsupportedVersion, v)
	}
	if res := r.bytes(3); r.err == nil && (res[0]|res[1]|res[2]) != 0 {
		r.fail("reserved bytes set")
	}
	mk := &Marker{SnapshotID: r.u64(), Version: int(v)}
	mk.Created = time.Unix(0, int64(r.u64())).UTC()
	mk.Started = time.Unix(0, int64(r.u64())).UTC()
	mk.Name = r.str16()
	if v >= MarkerVersion {
		copy(mk.Host[:], r.bytes(16))
		mk.HostName = r.str16()
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return mk, nil
}
