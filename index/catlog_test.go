package index

import (
	"bytes"
	"errors"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
)

func TestCatalogRoundTrip(t *testing.T) {
	changes := []CatalogChange{
		{Key: catalogKey(KindDisk, "vol1"), Value: []byte("disk record")},
		{Key: layerKey(7), Value: []byte{}},
		{Key: catalogKey(KindSnapshot, "s1")},
		{Key: metaKey("next-id"), Value: []byte{0, 0, 0, 0, 0, 0, 0, 9}},
	}
	full, got, err := DecodeCatalog(EncodeCatalog(false, changes))
	if err != nil || full {
		t.Fatalf("decode: %v full=%v", err, full)
	}
	if len(got) != len(changes) {
		t.Fatalf("%d changes, want %d", len(got), len(changes))
	}
	for i := range got {
		if !bytes.Equal(got[i].Key, changes[i].Key) || !bytes.Equal(got[i].Value, changes[i].Value) || (got[i].Value == nil) != (changes[i].Value == nil) {
			t.Errorf("change %d: %+v, want %+v", i, got[i], changes[i])
		}
	}
	b := EncodeCatalog(true, changes[:2])
	if full, _, err := DecodeCatalog(b); err != nil || !full {
		t.Fatalf("full: %v %v", full, err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		if _, _, err := DecodeCatalog(c); !errors.Is(err, ErrCorrupt) {
			t.Errorf("flip at %d: %v", i, err)
		}
	}
	if _, _, err := DecodeCatalog(EncodeCatalog(true, changes)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("deletion in a full record: %v", err)
	}
	if _, _, err := DecodeCatalog(EncodeCatalog(false, []CatalogChange{{Key: VersionKey(1, 2, 3), Value: []byte{1}}})); !errors.Is(err, ErrCorrupt) {
		t.Errorf("version key in a catalog record: %v", err)
	}
}

func FuzzDecodeCatalog(f *testing.F) {
	f.Add(EncodeCatalog(false, []CatalogChange{{Key: catalogKey(KindDisk, "a"), Value: []byte("x")}, {Key: layerKey(3)}}))
	f.Add(EncodeCatalog(true, nil))
	f.Add([]byte{1, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		full, ch, err := DecodeCatalog(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		again := EncodeCatalog(full, ch)
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func TestIdentity(t *testing.T) {
	id := [16]byte{1, 2, 3}
	b := EncodeIdentity(id)
	got, err := DecodeIdentity(b)
	if err != nil || got != id {
		t.Fatalf("%x %v", got, err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 1
		if _, err := DecodeIdentity(c); !errors.Is(err, ErrCorrupt) {
			t.Errorf("flip at %d: %v", i, err)
		}
	}
}

func FuzzDecodeIdentity(f *testing.F) {
	f.Add(EncodeIdentity([16]byte{9}))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := DecodeIdentity(b)
		if err == nil && !bytes.Equal(EncodeIdentity(id), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

// TestCatalogTracked: UpdateCatalog logs exactly the catalog keys a
// transaction changed (not versions or the checkpoint), last change per key.
func TestCatalogTracked(t *testing.T) {
	db, err := Open(t.TempDir(), Options{MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var logged []byte
	st, err := db.UpdateCatalog(func(t *Txn) error {
		id, _ := t.NextLayer()
		t.PutLayer(Layer{ID: id})
		t.Put(KindDisk, "d", Disk{ID: 9, Name: "d", Layer: id})
		t.Put(KindDisk, "d", Disk{ID: 9, Name: "d", Layer: id, Size: 5})
		t.SetVersion(1, 2, 3, Version{Seq: 1})
		return t.SetCheckpoint(Checkpoint{Seq: 4})
	}, func(p []byte) (ids.Seq, error) { logged = p; return 42, nil })
	if err != nil {
		t.Fatal(err)
	}
	if st.Seq != 42 || st.SinceFull != 1 {
		t.Errorf("state %+v", st)
	}
	_, ch, err := DecodeCatalog(logged)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 3 {
		t.Fatalf("%d changes logged, want 3 (next-id, layer, disk): %q", len(ch), ch)
	}
}
