package rowstore

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"
	"time"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// The superblock identifies a store and its format. Layout (little-endian):
//
//	0  8  magic "SNAPFSSB"
//	8  2  format version (1)
//	10 2  reserved (0)
//	12 4  incompatible feature bits: a reader that does not know one refuses the store
//	16 4  compatible feature bits: safe to ignore
//	20 4  reserved (0)
//	24 8  creation time, unix nanoseconds
//	32 16 store UUID
//	48 4  CRC32C of bytes 0..48
const (
	superblockName    = "superblock"
	superblockSize    = 52
	superblockMagic   = "SNAPFSSB"
	FormatVersion     = 1
	knownIncompatBits = IncompatEncryption
)

// IncompatEncryption: the store holds encrypted disks (set when the first
// one is made). A snapfs that does not know it would see sealed blocks as
// corrupt and could "repair" them with plaintext: it refuses the store.
const IncompatEncryption uint32 = 1 << 0

// Superblock is the decoded superblock.
type Superblock struct {
	Version  uint16
	Incompat uint32
	Compat   uint32
	Created  time.Time
	UUID     [16]byte
}

func (sb Superblock) encode() []byte {
	b := make([]byte, superblockSize)
	copy(b, superblockMagic)
	binary.LittleEndian.PutUint16(b[8:], sb.Version)
	binary.LittleEndian.PutUint32(b[12:], sb.Incompat)
	binary.LittleEndian.PutUint32(b[16:], sb.Compat)
	binary.LittleEndian.PutUint64(b[24:], uint64(sb.Created.UnixNano()))
	copy(b[32:48], sb.UUID[:])
	binary.LittleEndian.PutUint32(b[48:], crc32.Checksum(b[:48], castagnoli))
	return b
}

// decodeSuperblock decodes and checks a superblock. A newer format version or
// an unknown incompatible feature is an error wrapping ErrIncompatible; any
// other damage wraps ErrCorrupt.
func decodeSuperblock(b []byte) (Superblock, error) {
	var sb Superblock
	if len(b) != superblockSize || string(b[:8]) != superblockMagic {
		return sb, fmt.Errorf("%w: not a snapfs superblock", ErrCorrupt)
	}
	if got, want := crc32.Checksum(b[:48], castagnoli), binary.LittleEndian.Uint32(b[48:]); got != want {
		return sb, &CorruptError{What: "superblock", Err: fmt.Errorf("checksum %08x, want %08x", got, want)}
	}
	sb.Version = binary.LittleEndian.Uint16(b[8:])
	sb.Incompat = binary.LittleEndian.Uint32(b[12:])
	sb.Compat = binary.LittleEndian.Uint32(b[16:])
	sb.Created = time.Unix(0, int64(binary.LittleEndian.Uint64(b[24:]))).UTC()
	copy(sb.UUID[:], b[32:48])
	if sb.Version > FormatVersion {
		return sb, fmt.Errorf("%w: store format version %d is newer than this snapfs (%d); upgrade snapfs", ErrIncompatible, sb.Version, FormatVersion)
	}
	if unknown := sb.Incompat &^ knownIncompatBits; unknown != 0 {
		return sb, fmt.Errorf("%w: store uses features %#x this snapfs does not know; upgrade snapfs", ErrIncompatible, unknown)
	}
	return sb, nil
}

func readSuperblock(fsys vfs.FS, dir string) (Superblock, error) {
	f, err := fsys.Open(path.Join(dir, superblockName))
	if errors.Is(err, os.ErrNotExist) {
		return Superblock{}, fmt.Errorf("%w: %s is not a snapfs store (no superblock; run snapfs init)", ErrNotFound, dir)
	}
	if err != nil {
		return Superblock{}, fmt.Errorf("open superblock: %w", err)
	}
	defer f.Close()
	b := make([]byte, superblockSize+1)
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return Superblock{}, fmt.Errorf("read superblock: %w", err)
	}
	return decodeSuperblock(b[:n])
}

// writeSuperblock writes a new superblock durably and atomically
// (vfs.WriteFile: temporary file, sync, rename, sync of the directory).
func writeSuperblock(fsys vfs.FS, dir string, sb Superblock) error {
	if err := vfs.WriteFile(fsys, path.Join(dir, superblockName), sb.encode(), 0o600); err != nil {
		return fmt.Errorf("superblock: %w", err)
	}
	return nil
}

func newSuperblock() Superblock {
	sb := Superblock{Version: FormatVersion, Created: time.Now().UTC()}
	_, _ = rand.Read(sb.UUID[:])
	return sb
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
