package format

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync"
)

// KeySize is the size of a region key in bytes.
const KeySize = 32

// Sentinel errors, checked with errors.Is.
var (
	// ErrCorrupt: an object failed to parse or its checksum or
	// authentication tag did not match.
	ErrCorrupt = errors.New("region format: corrupt object")
	// ErrUnsupportedVersion: an object of a newer format version.
	ErrUnsupportedVersion = errors.New("region format: unsupported version")
	// ErrWrongKey: the key does not open the region's key check.
	ErrWrongKey = errors.New("region format: wrong region key")
	// ErrBadKeyFile: the key file does not hold a 32-byte key.
	ErrBadKeyFile = errors.New("region format: bad key file")
)

// CorruptError names the object that failed to decode. It wraps ErrCorrupt.
type CorruptError struct {
	What string
	Err  error
}

func (e *CorruptError) Error() string { return fmt.Sprintf("corrupt %s: %v", e.What, e.Err) }
func (e *CorruptError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrCorrupt}
	}
	return []error{ErrCorrupt, e.Err}
}

func corrupt(what string, format string, args ...any) error {
	return &CorruptError{What: what, Err: fmt.Errorf(format, args...)}
}

// ReadKeyFile reads a region key: exactly 32 raw bytes, or 64 hex digits
// (surrounding white space allowed). Anything else is an error wrapping
// ErrBadKeyFile; the key is never part of an error message.
//
// A key file that group or others may read or write is refused too (like
// the keys of encrypted disks), unless allowInsecure (region add
// --allow-insecure-key-file, kept in the region's configuration).
func ReadKeyFile(path string, allowInsecure bool) ([KeySize]byte, error) {
	var key [KeySize]byte
	f, err := os.Open(path)
	if err != nil {
		return key, fmt.Errorf("%w: %w", ErrBadKeyFile, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return key, fmt.Errorf("%w: %w", ErrBadKeyFile, err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 && !allowInsecure {
		return key, fmt.Errorf("%w: mode %04o: group or others may read it; run chmod 600 %s (or add the region with --allow-insecure-key-file)", ErrBadKeyFile, m, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return key, fmt.Errorf("%w: %w", ErrBadKeyFile, err)
	}
	return ParseKey(b)
}

// ParseKey parses the contents of a key file; see ReadKeyFile.
func ParseKey(b []byte) ([KeySize]byte, error) {
	var key [KeySize]byte
	if len(b) == KeySize {
		copy(key[:], b)
		return key, nil
	}
	s := strings.TrimSpace(string(b))
	if len(s) == 2*KeySize {
		if _, err := hex.Decode(key[:], []byte(s)); err == nil {
			return key, nil
		}
		return key, fmt.Errorf("%w: 64 characters but not hex digits", ErrBadKeyFile)
	}
	return key, fmt.Errorf("%w: %d bytes; want 32 raw bytes or 64 hex digits", ErrBadKeyFile, len(b))
}

// Keys are the subkeys of a region, derived from the region key with
// HKDF-SHA256 (salt: the region id; info: "snapfs-region-v1 " + purpose).
type Keys struct {
	data  cipher.AEAD // packs
	meta  cipher.AEAD // indexes, manifests, markers, key check
	id    [32]byte    // chunk ids: HMAC-SHA256(id, block digest)
	names [32]byte    // object names of manifests: HMAC-SHA256(names, snapshot name)
	// chunks derives the key of a version 2 pack's chunks:
	// HMAC-SHA256(chunks, "pack/" + pack id), one AES-256-GCM key per pack.
	chunks [32]byte
	idMACs sync.Pool // hash.Hash: HMAC-SHA256 keyed with id, for ChunkID
}

// DeriveKeys derives a region's subkeys.
func DeriveKeys(key [KeySize]byte, regionID [16]byte) (*Keys, error) {
	sub := func(purpose string) ([]byte, error) {
		k, err := hkdf.Key(sha256.New, key[:], regionID[:], "snapfs-region-v1 "+purpose, 32)
		if err != nil {
			return nil, fmt.Errorf("hkdf %s: %w", purpose, err)
		}
		return k, nil
	}
	aead := func(purpose string) (cipher.AEAD, error) {
		k, err := sub(purpose)
		if err != nil {
			return nil, err
		}
		blk, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("aes: %w", err)
		}
		return cipher.NewGCM(blk)
	}
	var ks Keys
	var err error
	if ks.data, err = aead("data"); err != nil {
		return nil, err
	}
	if ks.meta, err = aead("meta"); err != nil {
		return nil, err
	}
	id, err := sub("chunk-id")
	if err != nil {
		return nil, err
	}
	copy(ks.id[:], id)
	nm, err := sub("names")
	if err != nil {
		return nil, err
	}
	copy(ks.names[:], nm)
	ch, err := sub("pack-chunks")
	if err != nil {
		return nil, err
	}
	copy(ks.chunks[:], ch)
	return &ks, nil
}

// ChunkID is a chunk's id: HMAC-SHA256 of the block's SHA-256 under the id
// key, so a store cannot test for known content.
type ChunkID [32]byte

func (c ChunkID) String() string { return hex.EncodeToString(c[:8]) }

// ChunkID returns the id of a block whose plaintext SHA-256 is digest.
// Its HMACs are reused (Reset restores the keyed state, which the first
// Reset saved: no key padding hashed again per chunk; sync computes an id
// per block).
func (k *Keys) ChunkID(digest [32]byte) ChunkID {
	h, _ := k.idMACs.Get().(hash.Hash)
	if h == nil {
		h = hmac.New(sha256.New, k.id[:])
	} else {
		h.Reset()
	}
	h.Write(digest[:])
	var id ChunkID
	h.Sum(id[:0])
	k.idMACs.Put(h)
	return id
}

// NameID returns the keyed, fixed-length id a snapshot name is stored
// under: 32 hex digits of HMAC-SHA256(names key, name).
func (k *Keys) NameID(name string) string {
	h := hmac.New(sha256.New, k.names[:])
	h.Write([]byte(name))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Object types of the envelope.
const (
	TypePack     byte = 'P'
	TypeIndex    byte = 'I'
	TypeManifest byte = 'M'
	TypeMarker   byte = 'C'
	TypeLock     byte = 'L'
	TypeTomb     byte = 'T'
)

// Envelope layout (all integers big-endian):
//
//	0  magic "SFRE"  4
//	4  version       1 (1)
//	5  type          1 ('P' pack, 'I' index, 'M' manifest, 'C' copying marker,
//	                    'L' lock, 'T' pruned-snapshot tombstone)
//	6  cipher        1 (1 = AES-256-GCM)
//	7  reserved      1 (0)
//	8  nonce        12 (random)
//	20 ciphertext    n, then the 16-byte GCM tag
//
// The additional data of the seal is the 8-byte header followed by the
// object's id (its name without the directory), so an object cannot be
// passed off under another name.
const (
	envMagic     = "SFRE"
	EnvVersion   = 1
	CipherAESGCM = 1
	envHeader    = 8
	nonceSize    = 12
	tagSize      = 16
	// EnvOverhead is the bytes an envelope adds to its plaintext.
	EnvOverhead = envHeader + nonceSize + tagSize
)

// packAEAD is the AEAD of the chunks and table of version 2 pack id: its
// own key, so the random nonces of one pack's chunks never meet another
// pack's (a region holds far more chunks than one key should seal with
// random nonces).
func (k *Keys) packAEAD(id string) (cipher.AEAD, error) {
	h := hmac.New(sha256.New, k.chunks[:])
	h.Write([]byte("pack/"))
	h.Write([]byte(id))
	blk, err := aes.NewCipher(h.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(blk)
}

func (k *Keys) aead(typ byte) cipher.AEAD {
	if typ == TypePack {
		return k.data
	}
	return k.meta
}

// Seal encrypts and authenticates plaintext as an object of type typ
// stored under id.
func (k *Keys) Seal(typ byte, id string, plaintext []byte) ([]byte, error) {
	out := make([]byte, envHeader+nonceSize, EnvOverhead+len(plaintext))
	copy(out, envMagic)
	out[4], out[5], out[6] = EnvVersion, typ, CipherAESGCM
	if _, err := rand.Read(out[envHeader : envHeader+nonceSize]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	ad := append(append([]byte(nil), out[:envHeader]...), id...)
	return k.aead(typ).Seal(out, out[envHeader:envHeader+nonceSize], plaintext, ad), nil
}

// Open checks and decrypts an envelope of type typ stored under id.
func (k *Keys) Open(typ byte, id string, b []byte) ([]byte, error) {
	what := fmt.Sprintf("object %c/%s", typ, id)
	if len(b) < EnvOverhead {
		return nil, corrupt(what, "%d bytes, shorter than an envelope", len(b))
	}
	if string(b[:4]) != envMagic {
		return nil, corrupt(what, "bad magic %q", b[:4])
	}
	if b[4] != EnvVersion {
		return nil, fmt.Errorf("%w: %s: envelope version %d", ErrUnsupportedVersion, what, b[4])
	}
	if b[5] != typ {
		return nil, corrupt(what, "type %q, want %q", b[5], typ)
	}
	if b[6] != CipherAESGCM || b[7] != 0 {
		return nil, fmt.Errorf("%w: %s: cipher %d", ErrUnsupportedVersion, what, b[6])
	}
	ad := append(append([]byte(nil), b[:envHeader]...), id...)
	pt, err := k.aead(typ).Open(nil, b[envHeader:envHeader+nonceSize], b[envHeader+nonceSize:], ad)
	if err != nil {
		return nil, corrupt(what, "authentication failed (wrong key or damaged object)")
	}
	return pt, nil
}

// reader is a bounds-checked big-endian decoder; the first error sticks.
type reader struct {
	b    []byte
	err  error
	what string
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = corrupt(r.what, format, args...)
	}
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("truncated: need %d bytes, %d left", n, len(r.b))
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16() uint16 {
	b := r.bytes(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *reader) u32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) u64() uint64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str16() string { return string(r.bytes(int(r.u16()))) }

func (r *reader) end() {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
}

func appendStr16(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}
