package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// IdentityName is the file in the index directory that names the store the
// index belongs to. It is read before Badger opens the directory.
const IdentityName = "SNAPFS-INDEX"

// identity file: 32 bytes, little-endian
//
//	0  8  magic "SNAPFSIX"
//	8  2  format version (1)
//	10 2  reserved (0)
//	12 16 store UUID (the superblock's)
//	28 4  CRC32C of bytes 0..28
const (
	identitySize    = 32
	identityMagic   = "SNAPFSIX"
	identityVersion = 1
)

// ErrRefused marks an index directory that must not be opened: it is
// missing, empty, lacks Badger's MANIFEST or belongs to another store.
var ErrRefused = errors.New("index refused")

// EncodeIdentity encodes the identity file of the store with this UUID.
func EncodeIdentity(uuid [16]byte) []byte {
	b := make([]byte, identitySize)
	copy(b, identityMagic)
	binary.LittleEndian.PutUint16(b[8:], identityVersion)
	copy(b[12:28], uuid[:])
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

// DecodeIdentity decodes an identity file; anything else is an error
// wrapping ErrCorrupt (a newer version too: it is refused, never misread).
func DecodeIdentity(b []byte) ([16]byte, error) {
	var id [16]byte
	if len(b) != identitySize || string(b[:8]) != identityMagic {
		return id, fmt.Errorf("%w: not a snapfs index identity (%d bytes)", ErrCorrupt, len(b))
	}
	if got, want := crc32.Checksum(b[:28], castagnoli), binary.LittleEndian.Uint32(b[28:]); got != want {
		return id, fmt.Errorf("%w: index identity checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != identityVersion {
		return id, fmt.Errorf("%w: index identity version %d (this build reads %d)", ErrCorrupt, v, identityVersion)
	}
	copy(id[:], b[12:28])
	return id, nil
}

// WriteIdentity writes the identity file of dir durably.
func WriteIdentity(dir string, uuid [16]byte) error {
	return vfs.WriteFile(vfs.Default, filepath.Join(dir, IdentityName), EncodeIdentity(uuid), 0o600)
}

// DirState is what Inspect found in an index directory without opening it.
type DirState struct {
	Missing     bool     // the directory does not exist
	Empty       bool     // it holds no file at all
	HasManifest bool     // Badger's MANIFEST is there
	HasIdentity bool     // the identity file is there (and decodes)
	UUID        [16]byte // from the identity file
}

// Inspect looks at an index directory without opening Badger (Badger, when
// its MANIFEST is missing, starts a new empty one and deletes the table
// files it does not know: opening is not a safe way to look).
func Inspect(dir string) (DirState, error) {
	var st DirState
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		st.Missing, st.Empty = true, true
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("index: inspect %s: %w", dir, err)
	}
	st.Empty = true
	for _, e := range ents {
		if e.Name() == "LOCK" || vfs.IsTemp(e.Name()) {
			continue
		}
		st.Empty = false
		switch e.Name() {
		case "MANIFEST":
			st.HasManifest = true
		case IdentityName:
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return st, fmt.Errorf("index: read identity: %w", err)
			}
			if st.UUID, err = DecodeIdentity(b); err != nil {
				return st, fmt.Errorf("index: %s: %w", filepath.Join(dir, IdentityName), err)
			}
			st.HasIdentity = true
		}
	}
	return st, nil
}
