package format

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"
)

// Config layout (128 bytes, big-endian; one per store, name "config"):
//
//	 0 magic "SFRC"            4
//	 4 version                 1 (1)
//	 5 k                       1 data shards
//	 6 m                       1 parity shards
//	 7 store index             1 (0..k+m-1: which shard this store holds)
//	 8 region id              16 (random; HKDF salt)
//	24 cipher                  1 (1 = AES-256-GCM)
//	25 kdf                     1 (1 = HKDF-SHA256)
//	26 chunk id                1 (1 = HMAC-SHA256 of the block's SHA-256)
//	27 compression             1 (1 = zstd per chunk)
//	28 created                 8 unix seconds
//	36 key check              60 nonce(12) | AES-GCM(meta key, 32 known bytes) | tag(16),
//	                              additional data = bytes [0,36)
//	96 SHA-256 of [0,96)      32
const (
	ConfigSize    = 128
	ConfigVersion = 1
	configMagic   = "SFRC"
	keyCheckOff   = 36
	keyCheckLen   = nonceSize + 32 + tagSize
	KDFHKDFSHA256 = 1
	ChunkIDHMAC   = 1
	CompressZstd  = 1
)

var keyCheckPlain = []byte("snapfs region key check, v1 ....")

// Config is the decoded config object of one store.
type Config struct {
	Version  int
	K, M     int
	Index    int
	RegionID [16]byte
	Created  time.Time
	keyCheck [keyCheckLen]byte
}

// NewRegionID returns a random region id.
func NewRegionID() ([16]byte, error) {
	var id [16]byte
	_, err := rand.Read(id[:])
	return id, err
}

func (c *Config) header() []byte {
	b := make([]byte, keyCheckOff, ConfigSize)
	copy(b, configMagic)
	b[4], b[5], b[6], b[7] = byte(c.Version), byte(c.K), byte(c.M), byte(c.Index)
	copy(b[8:24], c.RegionID[:])
	b[24], b[25], b[26], b[27] = CipherAESGCM, KDFHKDFSHA256, ChunkIDHMAC, CompressZstd
	binary.BigEndian.PutUint64(b[28:36], uint64(c.Created.Unix()))
	return b
}

// Seal fills in the key check for keys (derived from the region key and
// c.RegionID). Call it after any field changes.
func (c *Config) Seal(keys *Keys) error {
	if c.K < 1 || c.M < 0 || c.K+c.M > 255 || c.Index < 0 || c.Index >= c.K+c.M {
		return fmt.Errorf("config: k=%d m=%d index=%d out of range", c.K, c.M, c.Index)
	}
	c.Version = ConfigVersion
	var nonce [nonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return fmt.Errorf("nonce: %w", err)
	}
	sealed := keys.meta.Seal(nonce[:], nonce[:], keyCheckPlain, c.header())
	copy(c.keyCheck[:], sealed)
	return nil
}

// Verify checks the key check with keys: a wrong key is ErrWrongKey.
func (c *Config) Verify(keys *Keys) error {
	pt, err := keys.meta.Open(nil, c.keyCheck[:nonceSize], c.keyCheck[nonceSize:], c.header())
	if err != nil || !bytes.Equal(pt, keyCheckPlain) {
		return fmt.Errorf("%w: the key does not open the region's key check", ErrWrongKey)
	}
	return nil
}

// Encode returns the config's bytes.
func (c *Config) Encode() []byte {
	b := append(c.header(), c.keyCheck[:]...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// DecodeConfig parses and checksums a config object. It does not check the
// key (Verify does).
func DecodeConfig(b []byte) (*Config, error) {
	const what = "config"
	if len(b) < 8 || string(b[:4]) != configMagic {
		return nil, corrupt(what, "bad magic or length %d", len(b))
	}
	if b[4] != ConfigVersion {
		return nil, fmt.Errorf("%w: config version %d", ErrUnsupportedVersion, b[4])
	}
	if len(b) != ConfigSize {
		return nil, corrupt(what, "%d bytes, want %d", len(b), ConfigSize)
	}
	if sum := sha256.Sum256(b[:96]); !bytes.Equal(sum[:], b[96:]) {
		return nil, corrupt(what, "checksum mismatch")
	}
	if b[24] != CipherAESGCM || b[25] != KDFHKDFSHA256 || b[26] != ChunkIDHMAC || b[27] != CompressZstd {
		return nil, fmt.Errorf("%w: config algorithms %v", ErrUnsupportedVersion, b[24:28])
	}
	c := &Config{Version: int(b[4]), K: int(b[5]), M: int(b[6]), Index: int(b[7])}
	if c.K < 1 || c.K+c.M > 255 || c.Index >= c.K+c.M {
		return nil, corrupt(what, "k=%d m=%d index=%d out of range", c.K, c.M, c.Index)
	}
	copy(c.RegionID[:], b[8:24])
	c.Created = time.Unix(int64(binary.BigEndian.Uint64(b[28:36])), 0).UTC()
	copy(c.keyCheck[:], b[keyCheckOff:keyCheckOff+keyCheckLen])
	return c, nil
}
