package rowstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// Encryption at rest (see "Encryption" in the package doc for the design
// and the byte layouts). Block sealing sits between the write-back cache
// and the segment log: appendRecord seals a data record of an encrypted
// layer once its sequence number is known (sealRecord), the read path opens
// it (openRecord); everything above sees plaintext, the log, the cleaner,
// replay and GC only sealed records, and need no key.

// recordSealed is the segment record flag of a data record whose payload is
// a sealed block (a block envelope), not the block itself.
const recordSealed uint16 = 1

// Block envelope, format version 1 (the payload of a sealed data record):
//
//	0  1  format version (1)
//	1  1  cipher (1: AES-256-GCM, subkey per salt)
//	2  2  reserved (0)
//	4  8  key family id (LE)
//	12 16 subkey salt
//	28 12 GCM nonce: the subkey's record counter (LE, 8 bytes), then 0
//	40 32 sealed digest: the block's SHA-256 encrypted with the family's
//	      digest key (deterministic; the index's Digest of the version)
//	72 n+16 the block encrypted with AES-256-GCM, then its tag
//
// Associated data: "snapfs-block-v1", bytes 0..72, then the record's layer,
// block, epoch and sequence number (LE uint64 each).
const (
	blockEnvV1       = 1
	blockEnvHeader   = 72
	blockEnvOverhead = blockEnvHeader + 16
	// subkeyUses bounds the records sealed with one subkey; its nonces are
	// a counter, unique below 2^64 (2^32 keeps far under GCM's limits).
	subkeyUses = 1 << 32
	// maxSubkeys bounds the cache of subkeys kept to open records.
	maxSubkeys = 4096
)

// family is an unlocked key family: the keys of an encrypted disk, shared by
// its snapshots, images, clones and rollbacks.
type family struct {
	id     uint64
	env    envelope
	master []byte
	digest cipher.Block // AES-256 under the digest key

	mu      sync.Mutex
	locked  bool        // LockDisk dropped the keys: nothing seals or opens
	salt    [16]byte    // the sealing subkey's salt
	seal    cipher.AEAD // the sealing subkey; nil: none yet
	uses    int         // records sealed with it: the last nonce
	subkeys map[[16]byte]cipher.AEAD
}

func newFamily(env envelope, master []byte) (*family, error) {
	f := &family{id: env.family, env: env, master: master, subkeys: map[[16]byte]cipher.AEAD{}}
	dk, err := hkdf.Key(sha256.New, master, nil, f.info("snapfs digest v1"), 32)
	if err != nil {
		return nil, err
	}
	if f.digest, err = aes.NewCipher(dk); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *family) info(purpose string) string {
	var id [8]byte
	binary.LittleEndian.PutUint64(id[:], f.id)
	return purpose + " " + string(id[:])
}

// subkeyLocked returns the AEAD of a salt (cached); f.mu is held.
func (f *family) subkeyLocked(salt [16]byte) (cipher.AEAD, error) {
	if f.locked {
		return nil, ErrLocked
	}
	if a, ok := f.subkeys[salt]; ok {
		return a, nil
	}
	k, err := hkdf.Key(sha256.New, f.master, salt[:], f.info("snapfs block v1"), 32)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	if len(f.subkeys) >= maxSubkeys {
		clear(f.subkeys)
	}
	f.subkeys[salt] = a
	return a, nil
}

// sealDigest encrypts a SHA-256 deterministically (AES-256-CBC, zero IV,
// two blocks): equal blocks of one family have equal sealed digests, and
// nobody without the key learns the SHA-256.
func (f *family) sealDigest(d [32]byte) [32]byte {
	var out [32]byte
	f.digest.Encrypt(out[:16], d[:16])
	var x [16]byte
	for i := range x {
		x[i] = d[16+i] ^ out[i]
	}
	f.digest.Encrypt(out[16:], x[:])
	return out
}

func (f *family) openDigest(s [32]byte) [32]byte {
	var d [32]byte
	f.digest.Decrypt(d[:16], s[:16])
	f.digest.Decrypt(d[16:], s[16:])
	for i := 16; i < 32; i++ {
		d[i] ^= s[i-16]
	}
	return d
}

func blockAD(ad *[15 + blockEnvHeader + 32]byte, env []byte, r *segment.Record) []byte {
	b := ad[:0]
	b = append(b, "snapfs-block-v1"...)
	b = append(b, env[:blockEnvHeader]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Layer))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Block))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Epoch))
	return binary.LittleEndian.AppendUint64(b, uint64(r.Seq))
}

// sealBlock builds the envelope of plaintext block pt (SHA-256 digest) for
// record r (whose layer, block, epoch and sequence number are final).
// The envelope is built in buf's storage when it is large enough.
func (f *family) sealBlock(r *segment.Record, pt []byte, digest [32]byte, buf []byte) ([]byte, [32]byte, error) {
	f.mu.Lock()
	if f.locked {
		f.mu.Unlock()
		return nil, [32]byte{}, ErrLocked
	}
	if f.seal == nil || f.uses >= subkeyUses {
		var salt [16]byte
		if _, err := rand.Read(salt[:]); err != nil {
			f.mu.Unlock()
			return nil, [32]byte{}, err
		}
		a, err := f.subkeyLocked(salt)
		if err != nil {
			f.mu.Unlock()
			return nil, [32]byte{}, err
		}
		f.salt, f.seal, f.uses = salt, a, 0
	}
	f.uses++
	salt, a, n := f.salt, f.seal, f.uses
	f.mu.Unlock()
	sd := f.sealDigest(digest)
	env := buf[:0]
	if cap(env) < blockEnvOverhead+len(pt) {
		env = make([]byte, 0, blockEnvOverhead+len(pt))
	}
	env = env[:blockEnvHeader]
	clear(env)
	env[0], env[1] = blockEnvV1, cipherGCMHKDF
	binary.LittleEndian.PutUint64(env[4:], f.id)
	copy(env[12:], salt[:])
	binary.LittleEndian.PutUint64(env[28:], uint64(n)) // bytes 36..40 stay 0
	copy(env[40:], sd[:])
	var ad [15 + blockEnvHeader + 32]byte
	env = a.Seal(env, env[28:40], pt, blockAD(&ad, env, r))
	return env, sd, nil
}

// blockEnv is a decoded block envelope header.
type blockEnv struct {
	family uint64
	salt   [16]byte
	nonce  []byte
	digest [32]byte
	ct     []byte
}

func decodeBlockEnv(p []byte) (blockEnv, error) {
	var e blockEnv
	if len(p) < blockEnvOverhead {
		return e, fmt.Errorf("block envelope of %d bytes", len(p))
	}
	if p[0] != blockEnvV1 || p[1] != cipherGCMHKDF || p[2] != 0 || p[3] != 0 {
		return e, fmt.Errorf("block envelope version %d cipher %d", p[0], p[1])
	}
	e.family = binary.LittleEndian.Uint64(p[4:])
	copy(e.salt[:], p[12:28])
	e.nonce = p[28:40]
	copy(e.digest[:], p[40:72])
	e.ct = p[blockEnvHeader:]
	return e, nil
}

// openBlock authenticates and decrypts a sealed record's payload into dst
// (len(dst) must be the block size).
func (f *family) openBlock(r *segment.Record, e blockEnv, dst []byte) error {
	if len(e.ct) != len(dst)+16 {
		return fmt.Errorf("sealed block of %d bytes, want %d", len(e.ct)-16, len(dst))
	}
	f.mu.Lock()
	a, err := f.subkeyLocked(e.salt)
	f.mu.Unlock()
	if err != nil {
		return err // ErrLocked: no authentication was tried
	}
	var ad [15 + blockEnvHeader + 32]byte
	out, err := a.Open(dst[:0], e.nonce, e.ct, blockAD(&ad, r.Payload, r))
	if err != nil {
		return errors.New("authentication failed: the sealed block was altered, or is another block's")
	}
	if &out[0] != &dst[0] {
		copy(dst, out)
	}
	return nil
}

// cryptState is the store's encryption state in memory.
type cryptState struct {
	// any: the store has (or had) an encrypted layer. Until then every layer
	// is plain without a look at the catalog, so a store that never used
	// encryption behaves exactly as before it existed.
	any      atomic.Bool
	mu       sync.RWMutex
	layerFam map[ids.Layer]uint64 // layer -> key family (0: not encrypted); never changes
	fams     map[uint64]*family   // unlocked families
	// sealBuf is reused for the envelopes appendRecord seals (under
	// appendMu; segment.Log.Append copies the payload).
	sealBuf []byte
}

// layerFamily returns the key family of a layer: that of the root of its
// chain (clones and rollbacks share their origin's), 0 if not encrypted.
func (s *Store) layerFamily(layer ids.Layer) (uint64, error) {
	c := &s.crypt
	if !c.any.Load() {
		return 0, nil
	}
	c.mu.RLock()
	f, ok := c.layerFam[layer]
	c.mu.RUnlock()
	if ok {
		return f, nil
	}
	var env []byte
	err := s.idx.View(func(t *index.Txn) error {
		chain, err := chainOf(t, layer, 0)
		if err != nil {
			return err
		}
		root, err := t.Layer(chain[len(chain)-1].layer)
		if err != nil {
			return err
		}
		env = root.Crypt
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("key of layer %d: %w", layer, err)
	}
	if env != nil {
		e, err := decodeEnvelope(env)
		if err != nil {
			return 0, fmt.Errorf("key of layer %d: %w", layer, err)
		}
		f = e.family
	}
	c.mu.Lock()
	if c.layerFam == nil {
		c.layerFam = map[ids.Layer]uint64{}
	}
	c.layerFam[layer] = f
	c.mu.Unlock()
	return f, nil
}

// unlocked returns the family if its key is unlocked.
func (s *Store) unlockedFamily(id uint64) *family {
	s.crypt.mu.RLock()
	defer s.crypt.mu.RUnlock()
	return s.crypt.fams[id]
}

func (s *Store) addFamily(f *family) {
	s.crypt.mu.Lock()
	defer s.crypt.mu.Unlock()
	if s.crypt.fams == nil {
		s.crypt.fams = map[uint64]*family{}
	}
	if _, ok := s.crypt.fams[f.id]; !ok {
		s.crypt.fams[f.id] = f
	}
}

func lockedError(what string) error {
	return fmt.Errorf("%s: %w (unlock it: snapfs disk unlock NAME --key-file FILE, or mount with --key-file)", what, ErrLocked)
}

// sealRecord is the write hook (appendRecord, with the sequence number
// assigned): a data record of an encrypted layer gets a sealed payload, and
// its version the sealed digest and the CRC32C of that digest.
func (s *Store) sealRecord(r *segment.Record, v *index.Version) error {
	return s.sealRecordInto(r, v, &s.crypt.sealBuf)
}

// sealRecordInto is sealRecord building the envelope in *buf (kept there
// for the next call); the caller serializes the uses of buf.
func (s *Store) sealRecordInto(r *segment.Record, v *index.Version, buf *[]byte) error {
	if r.Kind != segment.KindData {
		return nil
	}
	fid, err := s.layerFamily(r.Layer)
	if err != nil || fid == 0 {
		return err
	}
	f := s.unlockedFamily(fid)
	if f == nil {
		return lockedError(fmt.Sprintf("layer %d", r.Layer))
	}
	env, sd, err := f.sealBlock(r, r.Payload, v.Digest, *buf)
	*buf = env
	if errors.Is(err, ErrLocked) {
		return lockedError(fmt.Sprintf("layer %d", r.Layer))
	}
	if err != nil {
		return fmt.Errorf("seal block %d: %w", r.Block, err)
	}
	r.Payload, r.Flags = env, r.Flags|recordSealed
	v.Digest = sd
	return nil
}

// openRecord is the read hook (checkVersion): for a record of an encrypted
// layer (or a sealed one) it checks the record is the indexed version of
// block b, opens it into dst and reports done. A plain record of a plain
// layer is left to the caller.
func (s *Store) openRecord(r *segment.Record, v index.Version, b ids.Block, dst []byte, what string) (bool, error) {
	fid, err := s.layerFamily(r.Layer)
	if err != nil {
		return true, err
	}
	sealed := r.Flags&recordSealed != 0
	if fid == 0 && !sealed {
		return false, nil
	}
	place := func(e error) error {
		return &CorruptError{What: fmt.Sprintf("%s: block %d (segment %d offset %d)", what, b, v.Segment, v.Offset), Err: e}
	}
	switch {
	case r.Kind != segment.KindData || r.Block != b || r.Seq != v.Seq:
		return true, place(fmt.Errorf("record (kind %d block %d seq %d) is not the indexed version (block %d seq %d)", r.Kind, r.Block, r.Seq, b, v.Seq))
	case !sealed:
		return true, place(errors.New("a plain record in an encrypted layer"))
	case fid == 0:
		return true, place(errors.New("a sealed record in a layer that is not encrypted"))
	}
	e, err := decodeBlockEnv(r.Payload)
	if err != nil {
		return true, place(err)
	}
	if e.family != fid {
		return true, place(fmt.Errorf("sealed with key family %x, the layer's is %x", e.family, fid))
	}
	f := s.unlockedFamily(fid)
	if f == nil {
		return true, lockedError(what)
	}
	if err := f.openBlock(r, e, dst); errors.Is(err, ErrLocked) {
		return true, lockedError(what)
	} else if err != nil {
		return true, place(err)
	}
	return true, nil
}

// recordDigest is the replay hook: the index digest and CRC of a sealed
// record, read from its envelope without a key.
func recordDigest(r *segment.Record, v *index.Version) error {
	if r.Flags&recordSealed == 0 {
		return nil
	}
	e, err := decodeBlockEnv(r.Payload)
	if err != nil {
		return err
	}
	v.Digest = e.digest
	return nil
}

// checkSealed is the check hook (verifyVersionLocked): for a record of an
// encrypted layer it checks the envelope against the index and, when the
// key is unlocked, authenticates the block and its SHA-256. done is false
// for a plain record of a plain layer.
func (s *Store) checkSealed(r *segment.Record, layer ids.Layer, v index.Version) (bool, error) {
	fid, err := s.layerFamily(layer)
	if err != nil {
		return true, err
	}
	sealed := r.Flags&recordSealed != 0
	if fid == 0 && !sealed {
		return false, nil
	}
	switch {
	case !sealed:
		return true, errors.New("a plain record in an encrypted layer")
	case fid == 0:
		return true, errors.New("a sealed record in a layer that is not encrypted")
	}
	e, err := decodeBlockEnv(r.Payload)
	switch {
	case err != nil:
		return true, err
	case e.family != fid:
		return true, fmt.Errorf("sealed with key family %x, the layer's is %x", e.family, fid)
	case e.digest != v.Digest:
		return true, errors.New("sealed digest differs from the index's")
	}
	f := s.unlockedFamily(fid)
	if f == nil {
		return true, nil // what can be checked without the key was
	}
	pt := make([]byte, len(e.ct)-16)
	if err := f.openBlock(r, e, pt); err != nil {
		return true, err
	}
	if f.sealDigest(sha256.Sum256(pt)) != v.Digest {
		return true, errors.New("block SHA-256 differs from the index's")
	}
	return true, nil
}

// plainDigest turns an index digest of a version of layer into the block's
// SHA-256 (for Diff and repair): itself for a plain layer, opened with the
// family's digest key for an encrypted one (ErrLocked when locked).
func (s *Store) plainDigests(layer ids.Layer, what string) (func([32]byte) [32]byte, error) {
	fid, err := s.layerFamily(layer)
	if err != nil {
		return nil, err
	}
	if fid == 0 {
		return func(d [32]byte) [32]byte { return d }, nil
	}
	f := s.unlockedFamily(fid)
	if f == nil {
		return nil, lockedError(what)
	}
	return f.openDigest, nil
}

// sealRepair seals a repaired block (plaintext in r.Payload, its SHA-256
// plain) for the version it replaces; a no-op for a plain layer.
func (s *Store) sealRepair(r *segment.Record, plain [32]byte) error {
	v := index.Version{Digest: plain}
	var buf []byte // not under appendMu: its own buffer
	return s.sealRecordInto(r, &v, &buf)
}

// requireUnlocked refuses (ErrLocked) to open a disk, snapshot or image of
// an encrypted layer whose key is locked.
func (s *Store) requireUnlocked(layer ids.Layer, what string) error {
	fid, err := s.layerFamily(layer)
	if err != nil || fid == 0 {
		return err
	}
	if s.unlockedFamily(fid) == nil {
		return lockedError(what)
	}
	return nil
}

// encryptionOf reports whether a layer is encrypted and whether its key is
// locked (for listings).
func (s *Store) encryptionOf(layer ids.Layer) (encrypted, locked bool) {
	fid, err := s.layerFamily(layer)
	if err != nil || fid == 0 {
		return false, false
	}
	return true, s.unlockedFamily(fid) == nil
}

// plainChanges wraps a Diff callback so that it gets SHA-256 digests of an
// encrypted layer's blocks, not the sealed ones the index keeps.
func (s *Store) plainChanges(layer ids.Layer, what string, fn func(Change) error) (func(Change) error, error) {
	plain, err := s.plainDigests(layer, what)
	if err != nil {
		return nil, err
	}
	return func(c Change) error {
		if !c.Zero {
			c.Digest = plain(c.Digest)
		}
		return fn(c)
	}, nil
}

// unlockAtOpen unlocks what Options.Keys unlock, and logs (key file names
// only) what stays locked.
func (s *Store) unlockAtOpen() {
	err := s.idx.View(func(t *index.Txn) error {
		return t.Layers(func(l index.Layer) error {
			if l.Crypt != nil {
				s.crypt.any.Store(true)
			}
			return nil
		})
	})
	if err != nil {
		s.log.Error("list layers", "err", err)
		s.crypt.any.Store(true) // look each layer up instead
	}
	if len(s.opts.Keys) == 0 {
		return
	}
	res, err := s.UnlockAll(s.opts.Keys)
	s.opts.Keys = nil // used once: the store keeps data keys, not key files
	if err != nil {
		s.log.Error("unlock encrypted disks", "err", err)
		return
	}
	for _, src := range res.Unused {
		s.log.Warn("key file unlocks no encrypted disk", "key_file", src)
	}
	if res.Locked > 0 {
		s.log.Info("encrypted disks stay locked (no key file given opens them)", "key_families", res.Locked)
	}
}

// refuseLocked closes and refuses (ErrLocked) a reader of an encrypted
// layer whose key is locked.
func (s *Store) refuseLocked(r *Reader, err error) (*Reader, error) {
	if err != nil {
		return nil, err
	}
	if err := s.requireUnlocked(r.chain[0].layer, r.what); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// checkRecords checks and copies (checkRecord) the records of a coalesced
// read: buf holds them back to back from vs[0].Offset. Sealed records are
// opened on every core when there are enough (decryption is most of an
// encrypted read's CPU time); plain ones in order, as before.
func (s *Store) checkRecords(buf []byte, vs []index.Version, blocks []ids.Block, dsts [][]byte, what string) error {
	one := func(k int) error {
		off := vs[k].Offset - vs[0].Offset
		return s.checkRecord(buf[off:off+int64(vs[k].Length)], vs[k], blocks[k], dsts[k], what)
	}
	workers := min(runtime.GOMAXPROCS(0), len(vs)/4)
	if !s.crypt.any.Load() || workers < 2 {
		for k := range vs {
			if err := one(k); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(vs))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for k := w; k < len(vs); k += workers {
				errs[k] = one(k)
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err // the first block's error, as the serial loop would
		}
	}
	return nil
}

// SnapshotDiskEncrypted reports whether disk of snapshot is encrypted (its
// blocks sealed with a disk key): what a region records so that a restore
// of it must be encrypted again.
func (s *Store) SnapshotDiskEncrypted(snapshot, disk string) (bool, error) {
	if err := firstErr(s.checkOpen(), ValidateName("snapshot", snapshot), ValidateName("disk", disk)); err != nil {
		return false, err
	}
	var m index.Member
	if err := s.idx.View(func(t *index.Txn) error {
		var err error
		m, err = memberOf(t, snapshot, disk)
		return err
	}); err != nil {
		return false, err
	}
	enc, _ := s.encryptionOf(m.Layer)
	return enc, nil
}
