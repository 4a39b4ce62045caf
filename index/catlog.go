package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/dgraph-io/badger/v4"
	"github.com/snapfs/snapfs/rowstore/ids"
)

// CatalogChange is one change of a catalog key (a disk, snapshot, image or
// layer record, or the id counter): the new value, or nil for a deletion.
type CatalogChange struct {
	Key   []byte
	Value []byte // encoded as stored in the index; nil: deleted
}

// Catalog log payload (the payload of a catalog record of the segment log),
// little-endian:
//
//	0  1  format version (1)
//	1  1  flags (bit 0: full, the whole catalog: keys not in it do not exist)
//	2  2  reserved (0)
//	4  4  number of entries n
//	8  …  n entries: op (1 set, 2 delete), key length (2), key,
//	      and for a set: value length (4), value
//	…  4  CRC32C of everything before
const (
	catlogVersion = 1
	catlogFull    = 1
	opSet         = 1
	opDelete      = 2
	maxCatValue   = 16 << 20
)

// IsCatalogKey reports whether key belongs to the catalog (what the log
// must carry so the catalog can be rebuilt without the index).
func IsCatalogKey(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	switch k[0] {
	case prefixCatalog:
		return len(k) >= 2
	case prefixLayer:
		return len(k) == 9
	case prefixMeta:
		return string(k[1:]) == "next-id"
	}
	return false
}

// EncodeCatalog encodes a catalog log payload.
func EncodeCatalog(full bool, changes []CatalogChange) []byte {
	n := 12
	for _, c := range changes {
		n += 3 + len(c.Key) + 4 + len(c.Value)
	}
	b := make([]byte, 8, n)
	b[0] = catlogVersion
	if full {
		b[1] = catlogFull
	}
	binary.LittleEndian.PutUint32(b[4:], uint32(len(changes)))
	for _, c := range changes {
		if c.Value == nil {
			b = append(b, opDelete)
		} else {
			b = append(b, opSet)
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(c.Key)))
		b = append(b, c.Key...)
		if c.Value != nil {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(c.Value)))
			b = append(b, c.Value...)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// DecodeCatalog decodes a catalog log payload. Anything malformed is an
// error wrapping ErrCorrupt; keys outside the catalog are refused too.
func DecodeCatalog(b []byte) (full bool, changes []CatalogChange, err error) {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("%w: catalog log record: %s", ErrCorrupt, fmt.Sprintf(f, a...))
	}
	if len(b) < 12 {
		return false, nil, bad("%d bytes", len(b))
	}
	if b[0] != catlogVersion {
		return false, nil, bad("format version %d (this build reads %d)", b[0], catlogVersion)
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return false, nil, bad("checksum %08x, want %08x", got, want)
	}
	if b[1]&^catlogFull != 0 || b[2] != 0 || b[3] != 0 {
		return false, nil, bad("unknown flags %#x", b[1:4])
	}
	full = b[1]&catlogFull != 0
	n := binary.LittleEndian.Uint32(b[4:])
	if int64(n) > int64(len(body))/3 {
		return false, nil, bad("%d entries in %d bytes", n, len(body))
	}
	p := body[8:]
	changes = make([]CatalogChange, 0, n)
	for i := uint32(0); i < n; i++ {
		if len(p) < 3 {
			return false, nil, bad("entry %d truncated", i)
		}
		op, kl := p[0], int(binary.LittleEndian.Uint16(p[1:]))
		p = p[3:]
		if len(p) < kl {
			return false, nil, bad("entry %d: key truncated", i)
		}
		c := CatalogChange{Key: append([]byte(nil), p[:kl]...)}
		p = p[kl:]
		if !IsCatalogKey(c.Key) {
			return false, nil, bad("entry %d: key %q is not a catalog key", i, c.Key)
		}
		switch op {
		case opSet:
			if len(p) < 4 {
				return false, nil, bad("entry %d: value length truncated", i)
			}
			vl := binary.LittleEndian.Uint32(p)
			p = p[4:]
			if vl > maxCatValue || int64(len(p)) < int64(vl) {
				return false, nil, bad("entry %d: value of %d bytes", i, vl)
			}
			c.Value = append([]byte{}, p[:vl]...)
			p = p[vl:]
		case opDelete:
			if full {
				return false, nil, bad("deletion in a full catalog")
			}
		default:
			return false, nil, bad("entry %d: op %d", i, op)
		}
		changes = append(changes, c)
	}
	if len(p) != 0 {
		return false, nil, bad("%d bytes after the entries", len(p))
	}
	return full, changes, nil
}

// CatalogState is the index's record of the catalog log: the sequence
// number of the last catalog record applied, of the newest full one, and
// how many deltas were written since it.
type CatalogState struct {
	Seq       ids.Seq `json:"seq"`
	FullSeq   ids.Seq `json:"full_seq"`
	SinceFull int     `json:"since_full"`
	Entries   int     `json:"entries"` // catalog keys at the last full record
}

// CatalogState reads the catalog log state (zero if none: an index written
// before the catalog log existed).
func (t *Txn) CatalogState() (CatalogState, error) {
	var c CatalogState
	err := t.getRecord(metaKey("catalog-log"), &c)
	if errors.Is(err, ErrNotFound) {
		return CatalogState{}, nil
	}
	return c, err
}

// SetCatalogState writes the catalog log state.
func (t *Txn) SetCatalogState(c CatalogState) error { return t.putRecord(metaKey("catalog-log"), c) }

// StoreID reads the store UUID recorded in the index (ok false if none).
func (t *Txn) StoreID() (id [16]byte, ok bool, err error) {
	item, err := t.t.Get(metaKey("store"))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return id, false, nil
	}
	if err != nil {
		return id, false, err
	}
	err = item.Value(func(b []byte) error {
		id, err = DecodeIdentity(b)
		return err
	})
	return id, err == nil, err
}

// SetStoreID records the store UUID in the index.
func (t *Txn) SetStoreID(id [16]byte) error { return t.t.Set(metaKey("store"), EncodeIdentity(id)) }

// CatalogDump returns every catalog key and value, in key order.
func (t *Txn) CatalogDump() ([]CatalogChange, error) {
	var out []CatalogChange
	for _, p := range [][]byte{{prefixCatalog}, {prefixLayer}, metaKey("next-id")} {
		it := t.t.NewIterator(badger.IteratorOptions{Prefix: p})
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			if !IsCatalogKey(k) {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				it.Close()
				return nil, err
			}
			out = append(out, CatalogChange{Key: k, Value: v})
		}
		it.Close()
	}
	return out, nil
}

// ApplyCatalog writes one catalog change as is (replay of the log).
func (b *Batch) ApplyCatalog(c CatalogChange) error {
	if !IsCatalogKey(c.Key) {
		return fmt.Errorf("%w: %q is not a catalog key", ErrCorrupt, c.Key)
	}
	if c.Value == nil {
		return b.wb.Delete(c.Key)
	}
	return b.wb.Set(c.Key, c.Value)
}

// SetCatalogState records the catalog log state in the batch.
func (b *Batch) SetCatalogState(c CatalogState) error {
	v, err := encodeRecord(c)
	if err != nil {
		return err
	}
	return b.wb.Set(metaKey("catalog-log"), v)
}

// LayerOfKey returns the layer id of a layer key (ok false for other keys).
func LayerOfKey(k []byte) (ids.Layer, bool) {
	if len(k) != 9 || k[0] != prefixLayer {
		return 0, false
	}
	return ids.Layer(binary.BigEndian.Uint64(k[1:])), true
}

// DecodeLayer decodes a layer record's value.
func DecodeLayer(v []byte) (Layer, error) {
	var l Layer
	return l, decodeRecord(v, &l)
}

// UpdateCatalog runs fn in a read-write transaction that records every
// catalog key it changes. If it changed any, logFn is called (inside the
// transaction, before it commits) with the encoded changes and returns the
// sequence number the engine's log gave them once they are durable there;
// the catalog state then advances in the same transaction. The commit is
// not synced (call Sync).
func (d *DB) UpdateCatalog(fn func(*Txn) error, logFn func(payload []byte) (ids.Seq, error)) (CatalogState, error) {
	var st CatalogState
	err := d.db.Update(func(bt *badger.Txn) error {
		var changes []CatalogChange
		t := &Txn{t: bt, changes: &changes}
		if err := fn(t); err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		changes = dedupChanges(changes)
		seq, err := logFn(EncodeCatalog(false, changes))
		if err != nil {
			return err
		}
		t.changes = nil
		if st, err = t.CatalogState(); err != nil {
			return err
		}
		st.Seq = seq
		st.SinceFull++
		return t.SetCatalogState(st)
	})
	return st, err
}

// dedupChanges keeps the last change of each key, in first-change order.
func dedupChanges(ch []CatalogChange) []CatalogChange {
	last := map[string]int{}
	for i, c := range ch {
		last[string(c.Key)] = i
	}
	out := ch[:0:0]
	for i, c := range ch {
		if last[string(c.Key)] == i {
			out = append(out, c)
		}
	}
	return out
}

// track records a catalog change made in a transaction that logs them.
func (t *Txn) track(key, value []byte) {
	if t.changes == nil || !IsCatalogKey(key) {
		return
	}
	c := CatalogChange{Key: bytes.Clone(key)}
	if value != nil {
		c.Value = bytes.Clone(value)
	}
	*t.changes = append(*t.changes, c)
}

// EachVersion calls fn for every block version, in key order (layer,
// block, newest epoch first).
func (t *Txn) EachVersion(fn func(layer ids.Layer, block ids.Block, epoch ids.Epoch, v Version) error) error {
	it := t.t.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixVersion}})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		layer, block, epoch, err := ParseVersionKey(it.Item().Key())
		if err != nil {
			return err
		}
		var v Version
		if err := it.Item().Value(v.UnmarshalBinary); err != nil {
			return fmt.Errorf("version of block %d of layer %d: %w", block, layer, err)
		}
		if err := fn(layer, block, epoch, v); err != nil {
			return err
		}
	}
	return nil
}
