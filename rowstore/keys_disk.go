package rowstore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
)

// kdfForNew is the KDF of new envelopes (tests lower it).
var kdfForNew = defaultKDF

// saltOf remembers, per key (by the SHA-256 of its content), the KDF salt of
// the first envelope this process made with it: envelopes made later with
// the same key reuse it, so the key is derived once per process. A salt
// only has to differ between stores and passphrases, not between disks.
var saltOf struct {
	sync.Mutex
	m map[[32]byte][16]byte
}

func newEnvelope(key *Key, family uint64, master []byte) (envelope, error) {
	id := sha256.Sum256(append([]byte("snapfs-salt-of\x00"), key.secret...))
	saltOf.Lock()
	salt, ok := saltOf.m[id]
	if !ok {
		if _, err := rand.Read(salt[:]); err != nil {
			saltOf.Unlock()
			return envelope{}, err
		}
		if saltOf.m == nil {
			saltOf.m = map[[32]byte][16]byte{}
		}
		saltOf.m[id] = salt
	}
	saltOf.Unlock()
	return wrapSecret(key, family, master, kdfForNew, salt)
}

// CreateEncryptedDisk creates an empty disk whose blocks, snapshots, images
// and clones are encrypted with a new random data key, wrapped by a key
// derived from key. The disk is unlocked in this Store.
func (s *Store) CreateEncryptedDisk(name string, size int64, blockSize int, key *Key) (DiskInfo, error) {
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	if err := firstErr(ValidateName("disk", name), ValidateDiskSize(size), ValidateBlockSize(blockSize)); err != nil {
		return DiskInfo{}, err
	}
	if key == nil {
		return DiskInfo{}, fmt.Errorf("%w: an encrypted disk needs a key file (--key-file or SNAPFS_KEY_FILE)", ErrInvalid)
	}
	master := make([]byte, 32)
	var fb [8]byte
	if _, err := rand.Read(master); err != nil {
		return DiskInfo{}, err
	}
	if _, err := rand.Read(fb[:]); err != nil {
		return DiskInfo{}, err
	}
	fid := binary.LittleEndian.Uint64(fb[:]) | 1 // never 0
	env, err := newEnvelope(key, fid, master)
	if err != nil {
		return DiskInfo{}, err
	}
	f, err := newFamily(env, master)
	if err != nil {
		return DiskInfo{}, err
	}
	if err := s.markEncrypted(); err != nil {
		return DiskInfo{}, err
	}
	s.addFamily(f) // before the disk exists: nothing can use it earlier
	s.crypt.any.Store(true)
	info, err := s.newDisk(name, func(t *index.Txn) (index.Layer, index.Disk, int64, error) {
		return index.Layer{Epoch: 1, BlockSize: blockSize, Crypt: env.encode()}, index.Disk{Size: size, BlockSize: blockSize}, 0, nil
	})
	info.Encrypted = err == nil
	return info, err
}

// CopyToEncryptedDisk creates encrypted disk name (a new data key wrapped by
// key) holding a full copy of disk of snapshot: the way an unencrypted
// snapshot becomes encrypted. Only the source's stored blocks are copied.
// A source that is already encrypted is refused (ErrInvalid): a clone of it
// (CloneDisk) is encrypted with its key. On failure the new disk is deleted.
func (s *Store) CopyToEncryptedDisk(name, snapshot, disk string, key *Key) (DiskInfo, error) {
	if err := firstErr(s.checkOpen(), ValidateName("disk", name), checkNewDiskName(name), ValidateName("snapshot", snapshot), ValidateName("disk", disk)); err != nil {
		return DiskInfo{}, err
	}
	var m index.Member
	var chain []link
	if err := s.idx.View(func(t *index.Txn) error {
		var err error
		if m, err = memberOf(t, snapshot, disk); err != nil {
			return err
		}
		chain, err = chainOf(t, m.Layer, m.Epoch)
		return err
	}); err != nil {
		return DiskInfo{}, err
	}
	if enc, _ := s.encryptionOf(m.Layer); enc {
		return DiskInfo{}, fmt.Errorf("%w: disk %q of snapshot %q is encrypted already: create the disk without --encrypt (a clone, encrypted with the same key)", ErrInvalid, disk, snapshot)
	}
	if exists, err := s.exists(index.KindDisk, name); err != nil {
		return DiskInfo{}, err
	} else if exists {
		return DiskInfo{}, fmt.Errorf("%w: disk %q", ErrExists, name)
	}
	r, err := s.OpenSnapshotDisk(snapshot, disk)
	if err != nil {
		return DiskInfo{}, err
	}
	defer r.Close()
	// The copy is built under a temporary name (tempdisk.go) and renamed
	// when complete (trial 10: a daemon killed mid-copy left a half-copied
	// disk under the new name, listed as an ordinary disk); a killed copy's
	// disk is removed at the daemon's next start (CleanTempDisks).
	tmp, release := NewTempDiskName()
	defer release()
	if _, err := s.CreateEncryptedDisk(tmp, m.Size, m.BlockSize, key); err != nil {
		return DiskInfo{}, err
	}
	var h *Disk
	fail := func(err error) (DiskInfo, error) {
		if h != nil {
			_ = h.Close()
		}
		if derr := s.DeleteDisk(tmp, true); derr != nil {
			s.log.Error("copy to an encrypted disk: could not delete the partial copy", "disk", tmp, "err", derr)
		}
		return DiskInfo{}, fmt.Errorf("copy disk %q of snapshot %q to encrypted disk %q: %w", disk, snapshot, name, err)
	}
	if h, err = s.OpenDisk(tmp); err != nil {
		return fail(err)
	}
	var blocks []ids.Block
	nblocks := blockCount(m.Size, m.BlockSize)
	if err := s.storedShown(chain, 0, nblocks, func(b ids.Block, _ bool) error { // lazy.go
		blocks = append(blocks, b)
		return nil
	}); err != nil {
		return fail(err)
	}
	buf := make([]byte, m.BlockSize)
	for _, b := range blocks {
		off := int64(b) * int64(m.BlockSize)
		n := min(int64(m.BlockSize), m.Size-off)
		if _, err := r.ReadAt(buf[:n], off); err != nil {
			return fail(err)
		}
		if _, err := h.WriteAt(buf[:n], off); err != nil {
			return fail(err)
		}
	}
	if err := h.Sync(); err != nil {
		return fail(err)
	}
	origin := "encrypted copy of snapshot " + snapshot + "/" + disk
	s.catMu.Lock()
	err = s.catalogUpdateSync(func(t *index.Txn) error {
		var rec index.Disk
		if err := t.Get(index.KindDisk, tmp, &rec); err != nil {
			return err
		}
		rec.Origin = origin
		return t.Put(index.KindDisk, tmp, rec)
	})
	s.catMu.Unlock()
	if err != nil {
		return fail(err)
	}
	h.d.mu.Lock()
	h.d.origin = origin
	h.d.mu.Unlock()
	cerr := h.Close()
	h = nil
	if cerr != nil {
		return fail(cerr)
	}
	if err := s.RenameDisk(tmp, name); err != nil {
		return fail(err)
	}
	return s.GetDisk(name)
}

// rootOfDisk returns the root layer of a disk's chain (the layer holding its
// key envelope) and the envelope (nil: not encrypted).
func (s *Store) rootOfDisk(name string) (index.Layer, error) {
	if err := ValidateName("disk", name); err != nil {
		return index.Layer{}, err
	}
	var root index.Layer
	err := s.idx.View(func(t *index.Txn) error {
		var rec index.Disk
		if err := t.Get(index.KindDisk, name, &rec); err != nil {
			return notFound("disk", name, err)
		}
		chain, err := chainOf(t, rec.Layer, 0)
		if err != nil {
			return err
		}
		root, err = t.Layer(chain[len(chain)-1].layer)
		return err
	})
	return root, err
}

// UnlockDisk unlocks an encrypted disk with key: the disk, and every
// snapshot, image and clone sharing its key, can be read and written. A key
// that does not open the disk's envelope is ErrWrongKey and changes nothing;
// an unencrypted disk is ErrInvalid. Unlocking an unlocked disk is a no-op
// (after checking the key).
func (s *Store) UnlockDisk(name string, key *Key) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	root, err := s.rootOfDisk(name)
	if err != nil {
		return err
	}
	if root.Crypt == nil {
		return fmt.Errorf("%w: disk %q is not encrypted", ErrInvalid, name)
	}
	env, err := decodeEnvelope(root.Crypt)
	if err != nil {
		return fmt.Errorf("disk %q: %w", name, err)
	}
	master, err := env.unwrap(key)
	if err != nil {
		return fmt.Errorf("disk %q: %w", name, err)
	}
	f, err := newFamily(env, master)
	if err != nil {
		return err
	}
	s.addFamily(f)
	return nil
}

// UnlockResult says what UnlockAll did.
type UnlockResult struct {
	Unlocked []string // key sources that unlocked at least one key family
	Unused   []string // key sources that unlocked nothing
	Locked   int      // key families still locked
}

// UnlockAll tries every key on every locked key family of the store (the
// mount's --key-file). Keys that fit nothing are reported, not an error.
func (s *Store) UnlockAll(keys []*Key) (UnlockResult, error) {
	var res UnlockResult
	if err := s.checkOpen(); err != nil {
		return res, err
	}
	var envs []envelope
	err := s.idx.View(func(t *index.Txn) error {
		return t.Layers(func(l index.Layer) error {
			if l.Crypt == nil {
				return nil
			}
			e, err := decodeEnvelope(l.Crypt)
			if err != nil {
				return fmt.Errorf("key envelope of layer %d: %w", l.ID, err)
			}
			envs = append(envs, e)
			return nil
		})
	})
	if err != nil {
		return res, err
	}
	used := make([]bool, len(keys))
	for _, e := range envs {
		if s.unlockedFamily(e.family) != nil {
			continue
		}
		ok := false
		for i, k := range keys {
			master, err := e.unwrap(k)
			if err != nil {
				continue
			}
			f, err := newFamily(e, master)
			if err != nil {
				return res, err
			}
			s.addFamily(f)
			used[i], ok = true, true
			break
		}
		if !ok {
			res.Locked++
		}
	}
	for i, k := range keys {
		if used[i] {
			res.Unlocked = append(res.Unlocked, k.source)
		} else {
			res.Unused = append(res.Unused, k.source)
		}
	}
	return res, nil
}

// LockDisk forgets the key of an encrypted disk in this process: the disk
// and every snapshot, image and clone sharing its key refuse to open
// (ErrLocked) until unlocked again. The cached writes of the family's disks
// are flushed and committed first. A disk of the family with open handles
// is ErrBusy; an unencrypted disk is ErrInvalid.
func (s *Store) LockDisk(name string) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	root, err := s.rootOfDisk(name)
	if err != nil {
		return err
	}
	if root.Crypt == nil {
		return fmt.Errorf("%w: disk %q is not encrypted", ErrInvalid, name)
	}
	fid, err := s.layerFamily(root.ID)
	if err != nil {
		return err
	}
	s.disksMu.Lock()
	var ds []*diskState
	for _, d := range s.disks {
		ds = append(ds, d)
	}
	s.disksMu.Unlock()
	for _, d := range ds {
		d.mu.Lock()
		if f, err := s.layerFamily(d.chain[0].layer); err != nil || f != fid {
			d.mu.Unlock()
			continue
		}
		var err error
		if d.opens > 0 && !d.deleted {
			err = fmt.Errorf("%w: disk %q (sharing the key of %q) is open (%d handles); close it first", ErrBusy, d.name, name, d.opens)
		} else {
			err = d.flushLocked()
		}
		d.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if err := s.commit(); err != nil {
		return err
	}
	s.crypt.mu.Lock()
	f := s.crypt.fams[fid]
	delete(s.crypt.fams, fid)
	s.crypt.mu.Unlock()
	if f != nil {
		// A seal or open that found f before it left the map fails with
		// ErrLocked from here on, never with a key made of cleared bytes.
		f.mu.Lock()
		f.locked, f.seal = true, nil
		clear(f.master)
		clear(f.subkeys)
		f.mu.Unlock()
	}
	// The process forgets what it derived from key files too: unlocking
	// again takes the key file (and its Argon2id cost).
	kdfCache.Lock()
	clear(kdfCache.m)
	kdfCache.Unlock()
	return nil
}

// RekeyDisk wraps the data key of an encrypted disk (and of everything
// sharing it) with a key derived from newKey instead of oldKey. No block is
// rewritten. oldKey must open the envelope (else ErrWrongKey, nothing
// changed); a newKey with the same content as oldKey is ErrInvalid, nothing
// changed. The disk's lock state is unchanged.
func (s *Store) RekeyDisk(name string, oldKey, newKey *Key) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if oldKey == nil || newKey == nil {
		return fmt.Errorf("%w: rekey needs the current key file and the new one", ErrInvalid)
	}
	if oldKey.Same(newKey) {
		return fmt.Errorf("%w: the new key file %s holds the same key as the current one (%s): rekey needs a different key; nothing was changed",
			ErrInvalid, newKey.source, oldKey.source)
	}
	s.catMu.Lock()
	defer s.catMu.Unlock()
	return s.catalogUpdateSync(func(t *index.Txn) error {
		var rec index.Disk
		if err := t.Get(index.KindDisk, name, &rec); err != nil {
			return notFound("disk", name, err)
		}
		chain, err := chainOf(t, rec.Layer, 0)
		if err != nil {
			return err
		}
		root, err := t.Layer(chain[len(chain)-1].layer)
		if err != nil {
			return err
		}
		if root.Crypt == nil {
			return fmt.Errorf("%w: disk %q is not encrypted", ErrInvalid, name)
		}
		env, err := decodeEnvelope(root.Crypt)
		if err != nil {
			return err
		}
		master, err := env.unwrap(oldKey)
		if err != nil {
			return fmt.Errorf("disk %q: %w", name, err)
		}
		ne, err := newEnvelope(newKey, env.family, master)
		if err != nil {
			return err
		}
		root.Crypt = ne.encode()
		return t.PutLayer(root)
	})
}

// markEncrypted sets IncompatEncryption in the superblock (once; durable:
// vfs.WriteFile) before the store's first encrypted disk exists.
func (s *Store) markEncrypted() error {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	if s.sb.Incompat&IncompatEncryption != 0 {
		return nil
	}
	sb := s.sb
	sb.Incompat |= IncompatEncryption
	if err := writeSuperblock(s.fs, s.dir, sb); err != nil {
		return fmt.Errorf("mark the store as holding encrypted disks: %w", err)
	}
	s.sb = sb
	return nil
}
