package index

import (
	"encoding/binary"
	"fmt"

	"github.com/snapfs/snapfs/rowstore/ids"
)

// Key prefixes. One byte each; every key of the index starts with one of them.
const (
	prefixVersion = 'v' // 'v' layer block ^epoch -> Version
	prefixEpoch   = 'e' // 'e' layer epoch block  -> empty (versions by epoch, for diffs)
	prefixCatalog = 'c' // 'c' kind name          -> catalog record
	prefixLayer   = 'l' // 'l' layer              -> Layer record
	prefixMeta    = 'm' // 'm' name               -> meta values (checkpoint, counters)
)

// VersionKeyLen is the length of a block-version key.
const VersionKeyLen = 1 + 8 + 8 + 8

// VersionKey encodes (layer, block, epoch) so that keys sort by layer, then
// block, then epoch DESCENDING: a seek to VersionKey(l, b, e) lands on the
// newest version of block b in layer l at or below epoch e, if there is one.
func VersionKey(layer ids.Layer, block ids.Block, epoch ids.Epoch) []byte {
	k := make([]byte, VersionKeyLen)
	k[0] = prefixVersion
	binary.BigEndian.PutUint64(k[1:], uint64(layer))
	binary.BigEndian.PutUint64(k[9:], uint64(block))
	binary.BigEndian.PutUint64(k[17:], ^uint64(epoch))
	return k
}

// ParseVersionKey decodes a key made by VersionKey.
func ParseVersionKey(k []byte) (layer ids.Layer, block ids.Block, epoch ids.Epoch, err error) {
	if len(k) != VersionKeyLen || k[0] != prefixVersion {
		return 0, 0, 0, fmt.Errorf("index: not a version key: %x", k)
	}
	return ids.Layer(binary.BigEndian.Uint64(k[1:])), ids.Block(binary.BigEndian.Uint64(k[9:])), ids.Epoch(^binary.BigEndian.Uint64(k[17:])), nil
}

// LayerVersionPrefix is the prefix of every version key of a layer.
func LayerVersionPrefix(layer ids.Layer) []byte {
	k := make([]byte, 9)
	k[0] = prefixVersion
	binary.BigEndian.PutUint64(k[1:], uint64(layer))
	return k
}

// EpochKey encodes (layer, epoch, block) so that the versions written in a
// layer at a range of epochs can be listed in time proportional to their number.
func EpochKey(layer ids.Layer, epoch ids.Epoch, block ids.Block) []byte {
	k := make([]byte, VersionKeyLen)
	k[0] = prefixEpoch
	binary.BigEndian.PutUint64(k[1:], uint64(layer))
	binary.BigEndian.PutUint64(k[9:], uint64(epoch))
	binary.BigEndian.PutUint64(k[17:], uint64(block))
	return k
}

// ParseEpochKey decodes a key made by EpochKey.
func ParseEpochKey(k []byte) (layer ids.Layer, epoch ids.Epoch, block ids.Block, err error) {
	if len(k) != VersionKeyLen || k[0] != prefixEpoch {
		return 0, 0, 0, fmt.Errorf("index: not an epoch key: %x", k)
	}
	return ids.Layer(binary.BigEndian.Uint64(k[1:])), ids.Epoch(binary.BigEndian.Uint64(k[9:])), ids.Block(binary.BigEndian.Uint64(k[17:])), nil
}

// LayerEpochPrefix is the prefix of every epoch key of a layer.
func LayerEpochPrefix(layer ids.Layer) []byte {
	k := make([]byte, 9)
	k[0] = prefixEpoch
	binary.BigEndian.PutUint64(k[1:], uint64(layer))
	return k
}

func layerKey(id ids.Layer) []byte {
	k := make([]byte, 9)
	k[0] = prefixLayer
	binary.BigEndian.PutUint64(k[1:], uint64(id))
	return k
}

func catalogKey(kind CatalogKind, name string) []byte {
	k := make([]byte, 0, 2+len(name))
	return append(append(k, prefixCatalog, byte(kind)), name...)
}

func metaKey(name string) []byte { return append([]byte{prefixMeta}, name...) }
