package format

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testKeys(t testing.TB) *Keys {
	t.Helper()
	var key [KeySize]byte
	for i := range key {
		key[i] = byte(i)
	}
	ks, err := DeriveKeys(key, [16]byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// samplePack is a version 1 pack plaintext.
func samplePack(t testing.TB) []byte {
	ks := testKeys(t)
	p := newPackBuilderV1(1024)
	p.Add(ks.ChunkID([32]byte{1}), []byte("hello"), 4096, CompZstd)
	p.Add(ks.ChunkID([32]byte{2}), bytes.Repeat([]byte{7}, 100), 100, CompNone)
	return p.Finish()
}

func sampleManifest() *Manifest {
	return &Manifest{Name: "snap-1", SnapshotID: 42, Created: time.Unix(1700000000, 123).UTC(), Kind: "manual",
		Disks: []ManifestDisk{
			{Name: "vol1", Size: 1 << 20, BlockSize: 65536, Entries: []MapEntry{{Block: 0, ID: ChunkID{1}}, {Block: 3, ID: ChunkID{2}}, {Block: 15, ID: ChunkID{3}}}},
			{Name: "vol2", Size: 1 << 20, BlockSize: 4096, Parent: "abcd", Depth: 3, Entries: []MapEntry{{Block: 1, Zero: true}, {Block: 2, ID: ChunkID{9}}}},
		}}
}

func TestPackRoundTrip(t *testing.T) {
	b := samplePack(t)
	es, err := DecodePack(b)
	if err != nil || len(es) != 2 {
		t.Fatalf("decode: %v %v", es, err)
	}
	c, err := Chunk(b, es[0])
	if err != nil || string(c) != "hello" {
		t.Fatalf("chunk: %q %v", c, err)
	}
	if _, err := DecodePack(b[:len(b)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated pack: %v", err)
	}
}

func TestIndexRoundTrip(t *testing.T) {
	es, _ := DecodePack(samplePack(t))
	x := &Index{Pack: [16]byte{5}, SealedSize: 999, Entries: es}
	y, err := DecodeIndex(x.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(y.Encode(), x.Encode()) || len(y.Entries) != 2 || y.SealedSize != 999 {
		t.Fatalf("round trip: %+v", y)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := sampleManifest()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	n, err := DecodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	n.Version = 0
	if !reflect.DeepEqual(m, n) {
		t.Fatalf("round trip:\n%+v\n%+v", m, n)
	}
}

func TestMarkerRoundTrip(t *testing.T) {
	mk := &Marker{Name: "s", SnapshotID: 7, Created: time.Unix(5, 0).UTC(), Started: time.Unix(9, 1).UTC()}
	mk.Host, mk.HostName = HostID{4}, "h4"
	n, err := DecodeMarker(mk.Encode())
	if err == nil {
		n.Version = 0
	}
	if err != nil || !reflect.DeepEqual(mk, n) {
		t.Fatalf("%+v %v", n, err)
	}
}

func TestConfigAndWrongKey(t *testing.T) {
	ks := testKeys(t)
	c := &Config{K: 4, M: 2, Index: 3, RegionID: [16]byte{1, 2, 3}, Created: time.Unix(100, 0).UTC()}
	if err := c.Seal(ks); err != nil {
		t.Fatal(err)
	}
	d, err := DecodeConfig(c.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Verify(ks); err != nil {
		t.Fatal(err)
	}
	var other [KeySize]byte
	other[0] = 1
	ks2, _ := DeriveKeys(other, d.RegionID)
	if err := d.Verify(ks2); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	b := c.Encode()
	b[5] = 3
	if _, err := DecodeConfig(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped k: %v", err)
	}
}

func TestEnvelope(t *testing.T) {
	ks := testKeys(t)
	b, err := ks.Seal(TypeIndex, "abc", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := ks.Open(TypeIndex, "abc", b); err != nil || string(pt) != "secret" {
		t.Fatalf("%q %v", pt, err)
	}
	if _, err := ks.Open(TypeIndex, "abd", b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("renamed object opened: %v", err)
	}
	if _, err := ks.Open(TypeManifest, "abc", b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("retyped object opened: %v", err)
	}
	b[len(b)-1] ^= 1
	if _, err := ks.Open(TypeIndex, "abc", b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped tag opened: %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte{0xab}, 32)
	hexKey := []byte("abababababababababababababababababababababababababababababababab\n")
	short := []byte("tooshort")
	for name, tc := range map[string]struct {
		b  []byte
		ok bool
	}{"raw": {raw, true}, "hex": {hexKey, true}, "short": {short, false}, "badhex": {bytes.Repeat([]byte{'z'}, 64), false}} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, tc.b, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := ReadKeyFile(p, false)
		if tc.ok != (err == nil) {
			t.Fatalf("%s: %v", name, err)
		}
		if tc.ok && k[0] != 0xab {
			t.Fatalf("%s: key %x", name, k[:2])
		}
		if !tc.ok && !errors.Is(err, ErrBadKeyFile) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "missing"), false); !errors.Is(err, ErrBadKeyFile) {
		t.Fatal(err)
	}
	// Issue 12 finding 1: a key file others may read is refused (the mode
	// and the fix are named, never the key), unless allowed.
	p := filepath.Join(dir, "hex")
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadKeyFile(p, false)
	if !errors.Is(err, ErrBadKeyFile) || !strings.Contains(err.Error(), "0644") || strings.Contains(err.Error(), "abab") {
		t.Fatalf("0644 key file: %v", err)
	}
	if k, err := ReadKeyFile(p, true); err != nil || k[0] != 0xab {
		t.Fatalf("0644 key file, allowed: %v", err)
	}
}

func FuzzDecodePack(f *testing.F) {
	f.Add(samplePack(f))
	f.Add([]byte("SFPK\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := DecodePack(b)
		if err != nil {
			return
		}
		for _, e := range es {
			if _, err := Chunk(b, e); err != nil {
				t.Fatalf("decoded entry out of range: %v", err)
			}
		}
	})
}

func FuzzDecodeIndex(f *testing.F) {
	es, _ := DecodePack(samplePack(f))
	f.Add((&Index{Pack: [16]byte{1}, SealedSize: 5, Entries: es}).Encode())
	base := ChunkID{9}
	f.Add((&Index{Pack: [16]byte{1}, SealedSize: 1 << 20, Entries: []Entry{
		{ID: ChunkID{1}, Offset: 8, Length: 100, RawLen: 16384, Sealed: true, PackVer: PackVersion3},
		{ID: ChunkID{2}, Offset: 108, Length: 100, RawLen: 16384, Sealed: true, PackVer: PackVersion3, Base: &base}}}).Encode())
	f.Add((&Index{Pack: [16]byte{1}, SealedSize: 1 << 20, IndexVer: IndexVersion3, Entries: []Entry{
		{ID: ChunkID{2}, Offset: 108, Length: 100, RawLen: 16384, Sealed: true, PackVer: PackVersion3, Base: &base}}}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := DecodeIndex(b)
		if err != nil {
			return
		}
		if !bytes.Equal(x.Encode(), b) {
			t.Fatalf("re-encode differs")
		}
	})
}

func FuzzDecodeManifest(f *testing.F) {
	b, _ := sampleManifest().Encode()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil || m.Version != ManifestVersion {
			return // older versions re-encode as the current one
		}
		c, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded manifest does not encode: %v", err)
		}
		if !bytes.Equal(c, b) {
			t.Fatalf("re-encode differs")
		}
	})
}

func FuzzDecodeMarker(f *testing.F) {
	f.Add((&Marker{Name: "x", SnapshotID: 1}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMarker(b)
		if err != nil || m.Version != MarkerVersion {
			return
		}
		if !bytes.Equal(m.Encode(), b) {
			t.Fatalf("re-encode differs")
		}
	})
}

func FuzzDecodeConfig(f *testing.F) {
	ks := testKeys(f)
	c := &Config{K: 4, M: 2, Index: 1, RegionID: [16]byte{1, 2, 3}}
	if err := c.Seal(ks); err != nil {
		f.Fatal(err)
	}
	f.Add(c.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeConfig(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Encode(), b) {
			t.Fatalf("re-encode differs")
		}
		_ = c.Verify(ks)
	})
}

func FuzzOpen(f *testing.F) {
	ks := testKeys(f)
	b, _ := ks.Seal(TypeManifest, "id", []byte("x"))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ks.Open(TypeManifest, "id", b)
	})
}

// A version 1 manifest (no sequence field) still decodes, with Seq 0.
func TestManifestVersion1Decodes(t *testing.T) {
	m := &Manifest{Name: "s", SnapshotID: 7, Created: time.Unix(0, 42).UTC(), Seq: 3, Kind: "k",
		Disks: []ManifestDisk{{Name: "d", Size: 8192, BlockSize: 4096, Entries: []MapEntry{{Block: 1, ID: ChunkID{1}}}}}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(b)
	if err != nil || got.Seq != 3 {
		t.Fatalf("v2: seq %v err %v", got, err)
	}
	// Version 3: no per-disk flags byte (header 58 bytes for these names,
	// then the disk's name 3, size 8, block size 4, flags 1).
	const flagsAt = 58 + 3 + 8 + 4
	if b[flagsAt] != 0 {
		t.Fatalf("flags byte of a plain disk is %#x", b[flagsAt])
	}
	v3 := append(append([]byte{}, b[:flagsAt]...), b[flagsAt+1:]...)
	v3[4] = manifestVersion3
	got, err = DecodeManifest(v3)
	if err != nil || got.Seq != 3 || got.Disks[0].Encrypted || got.Disks[0].Entries[0].ID != (ChunkID{1}) {
		t.Fatalf("v3: %+v %v", got, err)
	}
	v1 := append(append([]byte{}, v3[:24]...), v3[32+16+2:]...) // no sequence, no host
	v1[4] = manifestVersion1
	got, err = DecodeManifest(v1)
	if err != nil || got.Seq != 0 || got.Name != "s" || len(got.Disks) != 1 || got.Disks[0].Entries[0].ID != (ChunkID{1}) {
		t.Fatalf("v1: %+v %v", got, err)
	}
	b[4] = ManifestVersion + 1
	if _, err := DecodeManifest(b); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("v%d: %v", ManifestVersion+1, err)
	}
}

func FuzzDecodeLock(f *testing.F) {
	f.Add((&Lock{Host: HostID{1}, PID: 7, Exclusive: true, HostName: "h", Op: "prune"}).Encode())
	f.Add((&Lock{Version: 1, Host: HostID{1}, PID: 7, HostName: "h", Op: "sync"}).Encode())
	f.Add((&Lock{Host: HostID{1}, PID: 7, HostName: "h", Op: "sync", BootID: [16]byte{9}, Start: 77}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeLock(b)
		if err != nil {
			return
		}
		if !bytes.Equal(l.Encode(), b) {
			t.Fatalf("re-encode differs")
		}
	})
}

func FuzzDecodeTombstone(f *testing.F) {
	f.Add((&Tombstone{Host: HostID{2}, SnapshotID: 9, Name: "s"}).Encode())
	f.Add((&Tombstone{Version: 1, Host: HostID{2}, SnapshotID: 9, Name: "s"}).Encode())
	f.Add((&Tombstone{Version: 2, Host: HostID{3}, SnapshotID: 7, Name: "t", Seq: 5}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := DecodeTombstone(b)
		if err != nil {
			return
		}
		if !bytes.Equal(x.Encode(), b) {
			t.Fatalf("re-encode differs")
		}
	})
}

// Version 2 manifests and version 1 markers (no host) still decode, with
// the unknown host.
func TestHostlessVersionsDecode(t *testing.T) {
	m := &Manifest{Name: "s", SnapshotID: 7, Created: time.Unix(0, 42).UTC(), Seq: 3, Kind: "k", Host: HostID{9}, HostName: "h",
		Disks: []ManifestDisk{{Name: "d", Size: 8192, BlockSize: 4096, Entries: []MapEntry{{Block: 1, ID: ChunkID{1}}}}}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Cut the disk's flags byte (version 4) and the host out, and mark it
	// version 2.
	const flagsAt = 59 + 3 + 8 + 4
	b = append(append([]byte{}, b[:flagsAt]...), b[flagsAt+1:]...)
	hostAt := 4 + 4 + 8 + 8 + 8
	v2 := append(append([]byte{}, b[:hostAt]...), b[hostAt+16+2+1:]...)
	v2[4] = 2
	got, err := DecodeManifest(v2)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Host.IsZero() || got.HostName != "" || got.Name != "s" || got.Seq != 3 || got.Version != 2 || got.Host.String() != "unknown" {
		t.Fatalf("v2 manifest decoded as %+v", got)
	}
	mk := &Marker{Name: "x", SnapshotID: 1, Host: HostID{3}, HostName: "hh"}
	mb := mk.Encode()
	v1 := append([]byte{}, mb[:len(mb)-16-2-2]...)
	v1[4] = 1
	gm, err := DecodeMarker(v1)
	if err != nil {
		t.Fatal(err)
	}
	if !gm.Host.IsZero() || gm.Name != "x" {
		t.Fatalf("v1 marker decoded as %+v", gm)
	}
	if l, err := DecodeLock((&Lock{Host: HostID{1}, Exclusive: true, Op: "prune"}).Encode()); err != nil || !l.Exclusive || l.Op != "prune" {
		t.Fatalf("lock round trip: %+v %v", l, err)
	}
}

// A disk encrypted at rest is recorded as such (version 4), and unknown
// flag bits are refused, never ignored.
func TestManifestDiskEncrypted(t *testing.T) {
	m := &Manifest{Name: "s", SnapshotID: 7, Created: time.Unix(0, 42).UTC(), Kind: "k",
		Disks: []ManifestDisk{{Name: "d", Size: 8192, BlockSize: 4096, Encrypted: true, Entries: []MapEntry{{Block: 1, ID: ChunkID{1}}}},
			{Name: "e", Size: 4096, BlockSize: 4096}}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(b)
	if err != nil || !got.Disks[0].Encrypted || got.Disks[1].Encrypted {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	const flagsAt = 58 + 3 + 8 + 4
	b[flagsAt] |= 2
	if _, err := DecodeManifest(b); err == nil {
		t.Fatal("unknown disk flag accepted")
	}
}

// TestTombstoneVersions: a version 1 tombstone (no seq, written before
// issue 14) still decodes and re-encodes as it was; version 2 carries the
// removed manifest's seq; a newer version is refused.
func TestTombstoneVersions(t *testing.T) {
	v1 := (&Tombstone{Version: 1, Host: HostID{1}, SnapshotID: 4, Name: "daily", Seq: 9}).Encode()
	x, err := DecodeTombstone(v1)
	if err != nil || x.Version != 1 || x.HasSeq() || x.Seq != 0 || x.Name != "daily" || !bytes.Equal(x.Encode(), v1) {
		t.Fatalf("version 1: %+v %v", x, err)
	}
	v2 := (&Tombstone{Host: HostID{1}, SnapshotID: 4, Name: "daily", Seq: 9}).Encode()
	x, err = DecodeTombstone(v2)
	if err != nil || x.Version != 2 || !x.HasSeq() || x.Seq != 9 || len(v2) != len(v1)+8 {
		t.Fatalf("version 2: %+v %v", x, err)
	}
	v3 := append([]byte(nil), v2...)
	v3[4] = 3
	if _, err := DecodeTombstone(v3); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("version 3: %v", err)
	}
}
