package rowstore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Key errors. ErrWrongKey: a key file does not unlock what it was given for.
// ErrLocked: an encrypted disk (or snapshot, image, clone of it) is used
// while its key is not unlocked in this process.
var (
	ErrWrongKey = errors.New("wrong key")
	ErrLocked   = errors.New("locked: the disk is encrypted and its key is not unlocked")
)

// Key is the content of a key file: what a key-encryption key is derived
// from (a passphrase or random bytes). It never prints its content: String
// and the errors that mention a Key name only the file it came from.
type Key struct {
	secret []byte
	source string
}

// String names the key's source, never its content.
func (k *Key) String() string { return "key file " + k.source }

// Source is the file the key was read from.
func (k *Key) Source() string { return k.source }

// Same reports whether k and o hold the same key (their contents, compared
// in constant time), whatever files they came from: a rekey from a key to
// itself changes nothing a user could rely on (RekeyDisk refuses it).
func (k *Key) Same(o *Key) bool {
	return k != nil && o != nil && subtle.ConstantTimeCompare(k.secret, o.secret) == 1
}

// Key file limits.
const (
	MinKeyFileBytes = 8
	MaxKeyFileBytes = 64 << 10
)

// LoadKeyFile reads a key file. The file must be readable by its owner only
// (mode 0600 or 0400): one readable by group or others is refused with an
// error wrapping ErrInvalid, unless allowInsecure (the CLI's
// --allow-insecure-key-file). One trailing newline ("\n" or "\r\n") is not
// part of the key, so `echo passphrase > F` and `printf passphrase > F` are
// the same key. The key must hold MinKeyFileBytes to MaxKeyFileBytes bytes.
func LoadKeyFile(path string, allowInsecure bool) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: key file: %w", ErrInvalid, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: key file: %w", ErrInvalid, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: key file %s is not a regular file", ErrInvalid, path)
	}
	if err := CheckPrivateFile(path, fi, allowInsecure); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxKeyFileBytes+3))
	if err != nil {
		return nil, fmt.Errorf("%w: read key file %s: %w", ErrInvalid, path, err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	switch {
	case len(b) < MinKeyFileBytes:
		return nil, fmt.Errorf("%w: key file %s holds %d bytes; a key needs at least %d (e.g. head -c 32 /dev/urandom > FILE)", ErrInvalid, path, len(b), MinKeyFileBytes)
	case len(b) > MaxKeyFileBytes:
		return nil, fmt.Errorf("%w: key file %s is larger than %d bytes", ErrInvalid, path, MaxKeyFileBytes)
	}
	return &Key{secret: b, source: path}, nil
}

// CheckPrivateFile refuses (ErrInvalid) a file of secrets that group or
// others may read or write, unless allowInsecure; it is shared with the
// region key files (package replicate's callers).
func CheckPrivateFile(path string, fi os.FileInfo, allowInsecure bool) error {
	if m := fi.Mode().Perm(); m&0o077 != 0 && !allowInsecure {
		return fmt.Errorf("%w: key file %s has mode %04o: group or others may read it; run chmod 600 %s (or pass --allow-insecure-key-file)",
			ErrInvalid, path, m, path)
	}
	return nil
}

// KDF parameters (Argon2id, RFC 9106's second recommended option: 3 passes
// over 64 MiB). A key file may hold a passphrase, so the derivation is
// memory-hard. They are stored in every key envelope, so a store keeps
// opening if the defaults change.
type kdfParams struct {
	Time    uint32
	Memory  uint32 // KiB
	Threads uint8
}

var defaultKDF = kdfParams{Time: 3, Memory: 64 << 10, Threads: 2}

// kdfCache keeps derived key-encryption keys for the process's life, keyed by
// the SHA-256 of (secret, salt, parameters): mounting with one key file for
// many disks derives once. Only derived keys are kept, never key files.
var kdfCache struct {
	sync.Mutex
	m map[[32]byte][32]byte
}

func deriveKEK(k *Key, salt []byte, p kdfParams) [32]byte {
	h := sha256.New()
	h.Write([]byte("snapfs-kdf-cache"))
	var pb [9]byte
	binary.LittleEndian.PutUint32(pb[0:], p.Time)
	binary.LittleEndian.PutUint32(pb[4:], p.Memory)
	pb[8] = p.Threads
	h.Write(pb[:])
	h.Write(salt)
	h.Write(k.secret)
	var id [32]byte
	h.Sum(id[:0])
	kdfCache.Lock()
	defer kdfCache.Unlock()
	if kek, ok := kdfCache.m[id]; ok {
		return kek
	}
	var kek [32]byte
	copy(kek[:], argon2.IDKey(k.secret, salt, p.Time, p.Memory, p.Threads, 32))
	if kdfCache.m == nil {
		kdfCache.m = map[[32]byte][32]byte{}
	}
	kdfCache.m[id] = kek
	return kek
}

// Key envelope: the catalog's record of an encrypted disk's data key (the
// Crypt field of its root layer). Format version 1, 96 bytes:
//
//	0  1  format version (1)
//	1  1  block cipher (1: AES-256-GCM with per-salt HKDF subkeys, crypt.go)
//	2  1  KDF (1: Argon2id)
//	3  1  Argon2 threads
//	4  4  Argon2 passes (LE)
//	8  4  Argon2 memory, KiB (LE)
//	12 8  key family id (LE, random, not 0)
//	20 16 KDF salt
//	36 12 wrap nonce
//	48 48 the 32-byte master secret sealed with AES-256-GCM under the
//	      key-encryption key, associated data "snapfs-key-v1" + bytes 0..48
//
// The GCM tag is the envelope's checksum: a damaged envelope, like a wrong
// key, does not open.
const (
	envelopeV1    = 1
	envelopeSize  = 96
	cipherGCMHKDF = 1
	kdfArgon2id   = 1
)

type envelope struct {
	kdf     kdfParams
	family  uint64
	salt    [16]byte
	nonce   [12]byte
	wrapped [48]byte
}

func (e *envelope) header() []byte {
	b := make([]byte, 48)
	b[0], b[1], b[2], b[3] = envelopeV1, cipherGCMHKDF, kdfArgon2id, e.kdf.Threads
	binary.LittleEndian.PutUint32(b[4:], e.kdf.Time)
	binary.LittleEndian.PutUint32(b[8:], e.kdf.Memory)
	binary.LittleEndian.PutUint64(b[12:], e.family)
	copy(b[20:], e.salt[:])
	copy(b[36:], e.nonce[:])
	return b
}

func (e *envelope) encode() []byte { return append(e.header(), e.wrapped[:]...) }

func decodeEnvelope(b []byte) (envelope, error) {
	var e envelope
	if len(b) != envelopeSize {
		return e, fmt.Errorf("%w: key envelope of %d bytes, want %d", ErrCorrupt, len(b), envelopeSize)
	}
	if b[0] != envelopeV1 {
		return e, fmt.Errorf("%w: key envelope format version %d (this build reads %d)", ErrIncompatible, b[0], envelopeV1)
	}
	if b[1] != cipherGCMHKDF || b[2] != kdfArgon2id {
		return e, fmt.Errorf("%w: key envelope with cipher %d, KDF %d", ErrIncompatible, b[1], b[2])
	}
	e.kdf = kdfParams{Threads: b[3], Time: binary.LittleEndian.Uint32(b[4:]), Memory: binary.LittleEndian.Uint32(b[8:])}
	if e.kdf.Threads == 0 || e.kdf.Time == 0 || e.kdf.Time > 100 || e.kdf.Memory < 8 || e.kdf.Memory > 4<<20 {
		return e, fmt.Errorf("%w: key envelope with KDF parameters t=%d m=%d p=%d", ErrCorrupt, e.kdf.Time, e.kdf.Memory, e.kdf.Threads)
	}
	e.family = binary.LittleEndian.Uint64(b[12:])
	if e.family == 0 {
		return e, fmt.Errorf("%w: key envelope of family 0", ErrCorrupt)
	}
	copy(e.salt[:], b[20:])
	copy(e.nonce[:], b[36:])
	copy(e.wrapped[:], b[48:])
	return e, nil
}

func kekAEAD(kek [32]byte) cipher.AEAD {
	blk, err := aes.NewCipher(kek[:])
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		panic(err)
	}
	return g
}

// wrapSecret makes an envelope of master for family under key, with this
// KDF salt and a new nonce.
func wrapSecret(key *Key, family uint64, master []byte, p kdfParams, salt [16]byte) (envelope, error) {
	e := envelope{kdf: p, family: family, salt: salt}
	if _, err := rand.Read(e.nonce[:]); err != nil {
		return e, err
	}
	kek := deriveKEK(key, e.salt[:], p)
	ad := append([]byte("snapfs-key-v1"), e.header()...)
	out := kekAEAD(kek).Seal(nil, e.nonce[:], master, ad)
	copy(e.wrapped[:], out)
	return e, nil
}

// unwrap opens the envelope with key: the master secret, or ErrWrongKey.
func (e *envelope) unwrap(key *Key) ([]byte, error) {
	kek := deriveKEK(key, e.salt[:], e.kdf)
	ad := append([]byte("snapfs-key-v1"), e.header()...)
	m, err := kekAEAD(kek).Open(nil, e.nonce[:], e.wrapped[:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: %s does not unlock it", ErrWrongKey, key)
	}
	return m, nil
}

// privateStoreDir makes the store directory 0700 (owner only) if group or
// others had any access: the store holds every version of its disks, and
// the keys of encrypted disks are only as safe as who may copy it. Files
// the engine creates are 0600. A failure is logged, not fatal (a store on a
// filesystem without modes still opens).
func privateStoreDir(dir string, log *slog.Logger) {
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	if err := os.Chmod(dir, fi.Mode().Perm()&0o700); err != nil && log != nil {
		log.Warn("could not make the store directory private (chmod 0700)", "dir", dir, "err", err)
	} else if log != nil {
		log.Info("store directory made private to its owner", "dir", dir, "was", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
}
