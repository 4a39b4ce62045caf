package rowstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/rowstore/segment"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

func init() {
	// Cheap KDF for the tests' envelopes (the format stores the parameters;
	// TestKeyEnvelopeDefaultKDF covers the default).
	kdfForNew = kdfParams{Time: 1, Memory: 64, Threads: 1}
}

// writeKeyFile writes a key file with mode perm and loads it.
func writeKeyFile(t *testing.T, name, content string, perm os.FileMode) (string, *Key) {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeyFile(p, false)
	if perm&0o077 == 0 && err != nil {
		t.Fatal(err)
	}
	return p, k
}

// knownBlock is a block of a distinctive pattern: block i of a disk.
func knownBlock(bs, i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("KNOWN-PLAINTEXT-%04d|", i)), bs/21+1)[:bs]
}

// scanStore fails if any file under dir holds a needle.
func scanStore(t *testing.T, s *Store, dir, when string, needles map[string][]byte) {
	t.Helper()
	indexApplied(t, s)
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		for what, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s: %s found in %s", when, what, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Fatalf("%s: only %d files scanned", when, files)
	}
}

// indexApplied waits until the index holds every version written (Sync
// returns once the log is synced; the index batch is applied after it by a
// goroutine, store.go commitLog), so that a scan of the store's files sees
// what the index will hold. s may be nil (a closed store).
func indexApplied(t *testing.T, s *Store) {
	t.Helper()
	if s == nil {
		return
	}
	if err := s.commit(); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, s *Store, disk string, data []byte, off int64) {
	t.Helper()
	h, err := s.OpenDisk(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, ra interface {
	ReadAt([]byte, int64) (int, error)
}, n int, off int64) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := ra.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncryptedKnownPlaintext writes a distinctive pattern to an encrypted
// disk and looks for it (and for the SHA-256 of its blocks, in binary and
// hex) in every byte of the store after writes, snapshots, a clone, an
// image, a rollback, deletes, GC with cleaning, a reopen and an index
// rebuild; the same pattern written to a plain disk is found (the scan
// works). Reads give the pattern back wherever it was written.
func TestEncryptedKnownPlaintext(t *testing.T) {
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	_, key := writeKeyFile(t, "k", "correct horse battery staple\n", 0o600)
	const bs, nb = 4096, 24
	if _, err := s.CreateEncryptedDisk("sec", nb*bs, bs, key); err != nil {
		t.Fatal(err)
	}
	var data []byte
	needles := map[string][]byte{"pattern": []byte("KNOWN-PLAINTEXT-00")}
	for i := 0; i < nb; i++ {
		blk := knownBlock(bs, i)
		data = append(data, blk...)
		sum := sha256.Sum256(blk)
		needles[fmt.Sprintf("SHA-256 of block %d", i)] = sum[:]
		needles[fmt.Sprintf("hex SHA-256 of block %d", i)] = []byte(hex.EncodeToString(sum[:]))
	}
	mustWrite(t, s, "sec", data, 0)
	mustWrite(t, s, "sec", data[:100], 3*bs+17) // a partial block through the cache
	want := append([]byte(nil), data...)
	copy(want[3*bs+17:], data[:100])
	scanStore(t, s, dir, "after writes", needles)
	if sb, err := readSuperblock(vfs.Default, dir); err != nil || sb.Incompat&IncompatEncryption == 0 {
		t.Fatalf("superblock %+v, %v: want IncompatEncryption", sb, err)
	}

	if _, err := s.CreateSnapshot("s1", []string{"sec"}, "manual"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, s, "sec", knownBlock(bs, 99), 5*bs)
	if _, err := s.CloneDisk("cl", "s1", "sec"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, s, "cl", knownBlock(bs, 98), 6*bs)
	if _, err := s.CreateImage("im", "s1", "sec"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSnapshot("s2", []string{"sec", "cl"}, "manual"); err != nil {
		t.Fatal(err)
	}
	if err := s.RollbackDisk("sec", "s1", false); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, s, "sec", knownBlock(bs, 97), 7*bs)
	for _, n := range []string{"cl", "sec"} {
		if di, err := s.GetDisk(n); err != nil || !di.Encrypted || di.Locked {
			t.Fatalf("GetDisk(%s) = %+v, %v: want encrypted, unlocked", n, di, err)
		}
	}
	scanStore(t, s, dir, "after snapshot, clone, image, rollback", needles)
	if err := s.DeleteSnapshot("s2"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, s, "sec", data, 0) // dead versions for GC and the cleaner
	mustWrite(t, s, "sec", data, 0)
	if _, err := s.GC(); err != nil {
		t.Fatal(err)
	}
	scanStore(t, s, dir, "after gc", needles)

	// A plain disk with a pattern like it: the scan finds it and its digest.
	if _, err := s.CreateDisk("plain", nb*bs, bs); err != nil {
		t.Fatal(err)
	}
	ctl := bytes.ReplaceAll(knownBlock(bs, 1), []byte("KNOWN"), []byte("CTRL-"))
	mustWrite(t, s, "plain", ctl, 0)
	sum := sha256.Sum256(ctl)
	indexApplied(t, s) // the digest is in the index only
	for what, needle := range map[string][]byte{"pattern": []byte("CTRL--PLAINTEXT-0001"), "digest": sum[:]} {
		found := false
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if b, _ := os.ReadFile(p); bytes.Contains(b, needle) {
				found = true
			}
			return nil
		})
		if !found {
			t.Fatalf("the plain disk's %s is not found in the store: the scan proves nothing", what)
		}
	}
	if err := s.DeleteDisk("plain", true); err != nil {
		t.Fatal(err)
	}

	check := func(s *Store, when string) {
		t.Helper()
		h, err := s.OpenDisk("cl")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		got := mustRead(t, h, nb*bs, 0)
		h.Close()
		w := append([]byte(nil), want...)
		copy(w[6*bs:], knownBlock(bs, 98))
		if !bytes.Equal(got, w) {
			t.Fatalf("%s: clone reads other data", when)
		}
		im, err := s.OpenImage("im")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if got := mustRead(t, im, nb*bs, 0); !bytes.Equal(got, want) {
			t.Fatalf("%s: image reads other data", when)
		}
		im.Close()
		rep, err := s.Check(context.Background(), CheckOptions{ReadData: true})
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("%s: check: %v %+v", when, err, rep.Problems)
		}
	}
	check(s, "before reopen")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scanStore(t, nil, dir, "after close", needles)

	// Reopened without a key: listed as locked, refuses to open, check
	// still verifies what it can; other disks unaffected.
	s2, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if di, err := s2.GetDisk("sec"); err != nil || !di.Encrypted || !di.Locked {
		t.Fatalf("GetDisk(sec) without key = %+v, %v: want locked", di, err)
	}
	if _, err := s2.OpenDisk("sec"); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "unlock") {
		t.Fatalf("OpenDisk of a locked disk: %v", err)
	}
	if _, err := s2.OpenImage("im"); !errors.Is(err, ErrLocked) {
		t.Fatalf("OpenImage of a locked image: %v", err)
	}
	if _, err := s2.OpenSnapshotDisk("s1", "sec"); !errors.Is(err, ErrLocked) {
		t.Fatalf("OpenSnapshotDisk of a locked snapshot: %v", err)
	}
	if r, err := s2.OpenSnapshotDiskMeta("s1", "sec"); err != nil {
		t.Fatalf("OpenSnapshotDiskMeta while locked: %v", err)
	} else {
		if a, err := r.Allocated(); err != nil || a == 0 {
			t.Fatalf("allocation while locked: %d %v", a, err)
		}
		if _, err := r.ReadAt(make([]byte, 4096), 0); !errors.Is(err, ErrLocked) {
			t.Fatalf("read through a meta reader while locked: %v", err)
		}
		r.Close()
	}
	if _, err := s2.Diff(nil, Point{Snapshot: "s1", Disk: "sec"}, func(Change) error { return nil }); !errors.Is(err, ErrLocked) {
		t.Fatalf("Diff of a locked snapshot: %v", err)
	}
	if rep, err := s2.Check(context.Background(), CheckOptions{ReadData: true}); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check while locked: %v %+v", err, rep.Problems)
	}
	s2.Close()

	// Index rebuilt from the log (replay reads sealed digests without a key),
	// then opened with the key: everything as before.
	if _, err := Rebuild(dir, opts); err != nil {
		t.Fatal(err)
	}
	o := opts
	o.Keys = []*Key{key}
	s3, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	check(s3, "after rebuild and reopen with the key")
	scanStore(t, s3, dir, "after rebuild", needles)
}

// TestEncryptedTamper: a flipped byte of a sealed block, and two sealed
// payloads swapped in a segment with their record checksums made valid
// again, both read as ErrCorrupt (EIO) and are reported by check.
func TestEncryptedTamper(t *testing.T) {
	for _, mode := range []string{"flip", "swap"} {
		t.Run(mode, func(t *testing.T) {
			opts := testOptions()
			s, dir := newTestStore(t, opts)
			_, key := writeKeyFile(t, "k", "0123456789abcdef", 0o600)
			const bs = 4096
			if _, err := s.CreateEncryptedDisk("sec", 8*bs, bs, key); err != nil {
				t.Fatal(err)
			}
			var data []byte
			for i := 0; i < 4; i++ {
				data = append(data, knownBlock(bs, i)...)
			}
			mustWrite(t, s, "sec", data, 0)
			s.Close()
			segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*"))
			var recs []int // offsets of sealed data records
			var file string
			var b []byte
			for _, f := range segs {
				b, _ = os.ReadFile(f)
				recs = recs[:0]
				for off := segment.FileHeaderSize; off < len(b); {
					r, n, err := segment.Decode(b[off:])
					if err != nil {
						break
					}
					if r.Kind == segment.KindData && r.Flags&recordSealed != 0 {
						recs = append(recs, off)
					}
					off += n
				}
				if len(recs) >= 2 {
					file = f
					break
				}
			}
			if file == "" {
				t.Fatal("no segment with two sealed records")
			}
			if mode == "flip" {
				b[recs[1]+segment.HeaderSize+blockEnvHeader+100] ^= 0x01
			} else {
				r0, n0, _ := segment.Decode(b[recs[0]:])
				r1, n1, _ := segment.Decode(b[recs[1]:])
				p0 := append([]byte(nil), r0.Payload...)
				r0.Payload, r1.Payload = append([]byte(nil), r1.Payload...), p0
				e0, e1 := segment.Encode(nil, &r0), segment.Encode(nil, &r1)
				if len(e0) != n0 || len(e1) != n1 {
					t.Fatal("record sizes changed")
				}
				copy(b[recs[0]:], e0)
				copy(b[recs[1]:], e1)
			}
			if err := os.WriteFile(file, b, 0o600); err != nil {
				t.Fatal(err)
			}
			o := opts
			o.Keys = []*Key{key}
			s2, err := Open(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			h, err := s2.OpenDisk("sec")
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			bad := 0
			for i := 0; i < 4; i++ {
				got := make([]byte, bs)
				_, err := h.ReadAt(got, int64(i*bs))
				switch {
				case errors.Is(err, ErrCorrupt):
					bad++
				case err != nil:
					t.Fatalf("block %d: %v", i, err)
				case !bytes.Equal(got, knownBlock(bs, i)):
					t.Fatalf("block %d: tampered data returned", i)
				}
			}
			if want := map[string]int{"flip": 1, "swap": 2}[mode]; bad != want {
				t.Fatalf("%d blocks read as corrupt, want %d", bad, want)
			}
			rep, err := s2.Check(context.Background(), CheckOptions{ReadData: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) == 0 {
				t.Fatal("check found no problem")
			}
		})
	}
}

// TestKeyErrors: wrong key, missing key, key file permissions, lock and
// unlock, rekey: clear errors that change nothing, other disks unaffected.
func TestKeyErrors(t *testing.T) {
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	kp, key := writeKeyFile(t, "k", "the right passphrase", 0o600)
	_, wrong := writeKeyFile(t, "w", "a wrong passphrase!!", 0o600)
	const bs = 4096
	if _, err := s.CreateEncryptedDisk("sec", 8*bs, bs, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("create without key: %v", err)
	}
	if _, err := s.CreateEncryptedDisk("sec", 8*bs, bs, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDisk("plain", 8*bs, bs); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, s, "sec", knownBlock(bs, 1), 0)
	mustWrite(t, s, "plain", knownBlock(bs, 2), 0)

	// Key files: group/other readable refused (the path is named, never the
	// content), too short refused, missing refused.
	p, _ := writeKeyFile(t, "open", "the right passphrase", 0o644)
	_, err := LoadKeyFile(p, false)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "0644") || strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("0644 key file: %v", err)
	}
	if k, err := LoadKeyFile(p, true); err != nil || k.String() != "key file "+p {
		t.Fatalf("0644 key file with allowInsecure: %v %v", k, err)
	}
	if fmt.Sprintf("%v %+v", key, key) != "key file "+kp+" key file "+kp {
		t.Fatalf("a Key prints as %v", key)
	}
	sp := filepath.Join(t.TempDir(), "short")
	os.WriteFile(sp, []byte("abc\n"), 0o600)
	if _, err := LoadKeyFile(sp, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short key: %v", err)
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "nope"), false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("missing key file: %v", err)
	}
	// A trailing newline is not part of the key.
	_, nl := writeKeyFile(t, "nl", "the right passphrase\n", 0o600)

	if err := s.LockDisk("plain"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("lock of a plain disk: %v", err)
	}
	h, _ := s.OpenDisk("sec")
	if err := s.LockDisk("sec"); !errors.Is(err, ErrBusy) {
		t.Fatalf("lock of an open disk: %v", err)
	}
	h.Close()
	if err := s.LockDisk("sec"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenDisk("sec"); !errors.Is(err, ErrLocked) {
		t.Fatalf("open of a locked disk: %v", err)
	}
	if got := mustReadDisk(t, s, "plain", bs); !bytes.Equal(got, knownBlock(bs, 2)) {
		t.Fatal("plain disk affected by the lock")
	}
	if err := s.UnlockDisk("sec", wrong); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), `"sec"`) {
		t.Fatalf("unlock with a wrong key: %v", err)
	}
	if _, err := s.OpenDisk("sec"); !errors.Is(err, ErrLocked) {
		t.Fatalf("a wrong key unlocked: %v", err)
	}
	if err := s.UnlockDisk("sec", nl); err != nil {
		t.Fatal(err)
	}
	if got := mustReadDisk(t, s, "sec", bs); !bytes.Equal(got, knownBlock(bs, 1)) {
		t.Fatal("unlocked disk reads other data")
	}

	// Rekey: a wrong old key changes nothing; then only the new key opens.
	_, nk := writeKeyFile(t, "new", "a brand new key file", 0o600)
	if err := s.RekeyDisk("sec", wrong, nk); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("rekey with a wrong key: %v", err)
	}
	if err := s.RekeyDisk("plain", key, nk); !errors.Is(err, ErrInvalid) {
		t.Fatalf("rekey of a plain disk: %v", err)
	}
	if err := s.RekeyDisk("sec", key, nk); err != nil {
		t.Fatal(err)
	}
	s.Close()
	o := opts
	o.Keys = []*Key{key}
	s2, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if di, _ := s2.GetDisk("sec"); !di.Locked {
		t.Fatal("the old key still unlocks after rekey")
	}
	if err := s2.UnlockDisk("sec", nk); err != nil {
		t.Fatal(err)
	}
	if got := mustReadDisk(t, s2, "sec", bs); !bytes.Equal(got, knownBlock(bs, 1)) {
		t.Fatal("rekeyed disk reads other data")
	}
	// Forbidden and redundant conversions.
	if _, err := s2.CreateSnapshot("s", []string{"sec", "plain"}, "manual"); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.CopyToEncryptedDisk("copy", "s", "sec", nk); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "encrypted already") {
		t.Fatalf("encrypted copy of an encrypted snapshot: %v", err)
	}
	if _, err := s2.GetDisk("copy"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused copy left a disk: %v", err)
	}
	info, err := s2.CopyToEncryptedDisk("copy", "s", "plain", nk)
	if err != nil || !info.Encrypted {
		t.Fatalf("encrypted copy of a plain snapshot: %+v %v", info, err)
	}
	if got := mustReadDisk(t, s2, "copy", bs); !bytes.Equal(got, knownBlock(bs, 2)) {
		t.Fatal("encrypted copy reads other data")
	}
	s2.Close()
}

func mustReadDisk(t *testing.T, s *Store, name string, n int) []byte {
	t.Helper()
	h, err := s.OpenDisk(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	return mustRead(t, h, n, 0)
}

// TestKeyEnvelopeDefaultKDF: an envelope made with the default (memory-hard)
// parameters opens with the right key only.
func TestKeyEnvelopeDefaultKDF(t *testing.T) {
	if testing.Short() {
		t.Log("short: the default Argon2id parameters take a second or more here; checked with cheap ones")
	}
	p := defaultKDF
	if testing.Short() {
		p = kdfForNew
	}
	k := &Key{secret: []byte("passphrase-1"), source: "a"}
	master := bytes.Repeat([]byte{7}, 32)
	e, err := wrapSecret(k, 42, master, p, [16]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeEnvelope(e.encode())
	if err != nil {
		t.Fatal(err)
	}
	if m, err := d.unwrap(k); err != nil || !bytes.Equal(m, master) {
		t.Fatalf("unwrap: %v", err)
	}
	if _, err := d.unwrap(&Key{secret: []byte("passphrase-2"), source: "b"}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	b := e.encode()
	b[13] ^= 1 // another family id: the AD no longer matches
	if d, err := decodeEnvelope(b); err == nil {
		if _, err := d.unwrap(k); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("altered envelope opened: %v", err)
		}
	}
}

// FuzzKeyEnvelope: the envelope decoder never panics, and what it accepts
// encodes back to the same bytes.
func FuzzKeyEnvelope(f *testing.F) {
	k := &Key{secret: []byte("passphrase-1"), source: "a"}
	e, _ := wrapSecret(k, 42, make([]byte, 32), kdfForNew, [16]byte{})
	f.Add(e.encode())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		if !bytes.Equal(e.encode(), b) {
			t.Fatal("envelope does not round-trip")
		}
	})
}

// FuzzBlockEnvelope: the block envelope decoder and opener never panic on
// any payload, and accept none but the sealed one.
func FuzzBlockEnvelope(f *testing.F) {
	env, _ := decodeEnvelope(func() []byte {
		e, _ := wrapSecret(&Key{secret: []byte("passphrase-1")}, 42, make([]byte, 32), kdfForNew, [16]byte{})
		return e.encode()
	}())
	fam, err := newFamily(env, make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	pt := bytes.Repeat([]byte("x"), 64)
	r := &segment.Record{Kind: segment.KindData, Layer: 3, Block: 4, Epoch: 5, Seq: 6}
	sealed, _, err := fam.sealBlock(r, pt, sha256.Sum256(pt), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(sealed[:blockEnvOverhead])
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeBlockEnv(b)
		if err != nil {
			return
		}
		rr := *r
		rr.Payload = b
		dst := make([]byte, 64)
		if err := fam.openBlock(&rr, e, dst); err == nil && !bytes.Equal(b, sealed) {
			t.Fatal("an altered envelope opened")
		}
	})
}

// TestStorePrivate: a store's directory is made 0700 (even when it existed
// with wider modes), its superblock and segment files are 0600.
func TestStorePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	opts := testOptions()
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o750) // widened after Create: Open narrows it again
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDisk("d", 1<<20, 4096); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, s, "d", knownBlock(4096, 0), 0)
	s.Close()
	check := func(p string, want os.FileMode) {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), want)
		}
	}
	check(dir, 0o700)
	check(filepath.Join(dir, "superblock"), 0o600)
	check(filepath.Join(dir, "segments"), 0o700)
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*"))
	if len(segs) == 0 {
		t.Fatal("no segment")
	}
	for _, p := range segs {
		check(p, 0o600)
	}
}

// TestCrashEncrypted is TestCrash on an encrypted disk (and the clones the
// workload makes of it): after a crash at a random point and a reopen with
// the key (half of the runs rebuilding the index from the log, without a
// key until Open unlocks), every acknowledged write and snapshot reads
// back, nothing reads as an error, and the store keeps working.
func TestCrashEncrypted(t *testing.T) {
	const bs = 4096
	runs := 24
	if testing.Short() {
		runs = 6
	}
	key := &Key{secret: []byte("crash test passphrase"), source: "test"}
	for k := 0; k < runs; k++ {
		seed := int64(5000 + k)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			s, dir, opts, cfs := newCrashStore(t)
			m := newCrashModel(bs)
			if _, err := s.CreateEncryptedDisk("a", 64*bs, bs, key); err != nil {
				t.Fatal(err)
			}
			m.data["a"], m.allowed["a"] = make([]byte, 64*bs), map[int][][]byte{}
			if err := crashWorkload(s, m, rng, 20+rng.Intn(200)); err != nil {
				t.Fatalf("seed %d: workload: %v", seed, err)
			}
			opts.Keys = []*Key{key}
			s2 := reopenAfterCrash(t, s, dir, opts, cfs.Crash(seed), k%2 == 1)
			checkCrashState(t, s2, m, fmt.Sprintf("seed %d (rebuild %v)", seed, k%2 == 1))
			if rep, err := s2.Check(context.Background(), CheckOptions{ReadData: true}); err != nil || len(rep.Problems) > 0 {
				t.Fatalf("seed %d: check after crash: %v %+v", seed, err, rep.Problems)
			}
			h, err := s2.OpenDisk("a")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.WriteAt(bytes.Repeat([]byte{7}, bs), 0); err != nil {
				t.Fatal(err)
			}
			if err := h.Sync(); err != nil {
				t.Fatal(err)
			}
			h.Close()
		})
	}
}

// TestModelEncrypted is TestModel with half of the disks encrypted: reads,
// diffs, snapshots, clones, images, rollbacks, deletes, GC and reopens
// agree with the in-memory model.
func TestModelEncrypted(t *testing.T) {
	ops := *flagOps
	if raceEnabled && ops > 1000 {
		ops = 1000
	}
	key := &Key{secret: []byte("model test passphrase"), source: "test"}
	for _, seed := range []int64{11, 12} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("seed %d, %d operations", seed, ops)
			runModelWith(t, seed, ops, key)
		})
	}
}
