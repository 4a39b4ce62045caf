package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/snapfs/snapfs/rowstore/ids"
)

func TestVersionKeyOrder(t *testing.T) {
	// Within a block, newer epochs sort first; blocks and layers ascend.
	keys := [][]byte{
		VersionKey(1, 5, 9), VersionKey(1, 5, 3), VersionKey(1, 5, 1),
		VersionKey(1, 6, 100), VersionKey(2, 0, 1),
	}
	if !sort.SliceIsSorted(keys, func(i, j int) bool { return bytes.Compare(keys[i], keys[j]) < 0 }) {
		t.Fatal("version keys are not in (layer, block, epoch desc) order")
	}
	l, b, e, err := ParseVersionKey(VersionKey(7, 8, 9))
	if err != nil || l != 7 || b != 8 || e != 9 {
		t.Fatalf("parse: %d %d %d %v", l, b, e, err)
	}
	l, e, b, err = ParseEpochKey(EpochKey(7, 9, 8))
	if err != nil || l != 7 || b != 8 || e != 9 {
		t.Fatalf("parse epoch key: %d %d %d %v", l, e, b, err)
	}
}

func TestVersionRoundTrip(t *testing.T) {
	v := Version{Segment: 3, Offset: 1 << 40, Length: 65584, Seq: 99, Flags: FlagZero}
	v.Digest[0], v.Digest[31] = 1, 2
	b, _ := v.MarshalBinary()
	var w Version
	if err := w.UnmarshalBinary(b); err != nil || w != v {
		t.Fatalf("round trip: %+v %v", w, err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		if err := w.UnmarshalBinary(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flipped byte %d not detected: %v", i, err)
		}
	}
	if err := w.UnmarshalBinary(b[:10]); !errors.Is(err, ErrCorrupt) {
		t.Fatal("short value accepted")
	}
}

func FuzzRecord(f *testing.F) {
	b, _ := encodeRecord(Snapshot{ID: 1, Name: "s", Members: []Member{{Disk: "d", Layer: 2, Epoch: 3}}})
	f.Add(b)
	f.Add([]byte{1, '{', '}', 0, 0, 0, 0})
	n := int64(4096)
	b, _ = encodeRecord(Snapshot{ID: 1, Name: "s", Members: []Member{{Disk: "d", Layer: 2, Epoch: 3, Allocated: &n}}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Snapshot
		if err := decodeRecord(b, &s); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// Whatever decodes survives a round trip unchanged.
		enc, err := encodeRecord(s)
		if err != nil {
			t.Fatal(err)
		}
		var s2 Snapshot
		if err := decodeRecord(enc, &s2); err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("round trip: %+v != %+v (%v)", s, s2, err)
		}
	})
}

func openTest(t *testing.T) *DB {
	db, err := Open(t.TempDir(), Options{MemTableSize: 1 << 20, BlockCacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestFinder: one seek finds the newest version at or below an epoch.
func TestFinder(t *testing.T) {
	db := openTest(t)
	rng := rand.New(rand.NewSource(1))
	type key struct {
		l ids.Layer
		b ids.Block
		e ids.Epoch
	}
	want := map[key]ids.Seq{}
	b := db.NewBatch()
	for i := 0; i < 2000; i++ {
		k := key{ids.Layer(1 + rng.Intn(3)), ids.Block(rng.Intn(50)), ids.Epoch(1 + rng.Intn(20))}
		seq := ids.Seq(i + 1)
		want[k] = seq
		if err := b.SetVersion(k.l, k.b, k.e, Version{Seq: seq}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	err := db.View(func(tx *Txn) error {
		f := tx.NewFinder()
		defer f.Close()
		for l := ids.Layer(1); l <= 3; l++ {
			for blk := ids.Block(0); blk < 50; blk++ {
				for e := ids.Epoch(0); e <= 21; e++ {
					var wantSeq ids.Seq
					var wantAt ids.Epoch
					for x := e; x >= 1; x-- {
						if s, ok := want[key{l, blk, x}]; ok {
							wantSeq, wantAt = s, x
							break
						}
					}
					v, at, ok, err := f.Find(l, blk, e)
					if err != nil {
						return err
					}
					if ok != (wantSeq != 0) || (ok && (v.Seq != wantSeq || at != wantAt)) {
						t.Fatalf("Find(%d,%d,%d) = %v seq %d at %d; want seq %d at %d", l, blk, e, ok, v.Seq, at, wantSeq, wantAt)
					}
				}
			}
		}
		// Epoch scan lists exactly the versions in the range.
		n := 0
		if err := tx.ScanEpochs(2, 5, 9, func(e ids.Epoch, blk ids.Block) error {
			if _, ok := want[key{2, blk, e}]; !ok || e < 5 || e > 9 {
				t.Fatalf("ScanEpochs gave (%d,%d)", e, blk)
			}
			n++
			return nil
		}); err != nil {
			return err
		}
		m := 0
		for k := range want {
			if k.l == 2 && k.e >= 5 && k.e <= 9 {
				m++
			}
		}
		if n != m {
			t.Fatalf("ScanEpochs listed %d versions, want %d", n, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCatalog(t *testing.T) {
	db := openTest(t)
	now := time.Now().UTC().Truncate(time.Second)
	err := db.UpdateSync(func(tx *Txn) error {
		id, err := tx.NextID()
		if err != nil || id != 1 {
			t.Fatalf("first id %d %v", id, err)
		}
		if id, _ := tx.NextID(); id != 2 {
			t.Fatalf("second id %d", id)
		}
		if err := tx.PutLayer(Layer{ID: 1, Epoch: 3, BlockSize: 4096, Created: now}); err != nil {
			return err
		}
		return tx.Put(KindDisk, "vol", Disk{ID: 2, Name: "vol", Layer: 1, Size: 1 << 20, BlockSize: 4096, Created: now})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *Txn) error {
		var d Disk
		if err := tx.Get(KindDisk, "vol", &d); err != nil || d.Layer != 1 || !d.Created.Equal(now) {
			t.Fatalf("get disk: %+v %v", d, err)
		}
		if err := tx.Get(KindDisk, "nope", &d); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing disk: %v", err)
		}
		l, err := tx.Layer(1)
		if err != nil || l.Epoch != 3 {
			t.Fatalf("layer: %+v %v", l, err)
		}
		cp, err := tx.Checkpoint()
		if err != nil || cp != (Checkpoint{}) {
			t.Fatalf("fresh checkpoint: %+v %v", cp, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRecordVersions: snapshot and image records are written as format
// version 2 (they carry their allocation); a version-1 record still
// decodes, without it; an unknown version is refused as corrupt.
func TestRecordVersions(t *testing.T) {
	n := int64(8192)
	b, err := encodeRecord(Snapshot{ID: 1, Name: "s", Members: []Member{{Disk: "d", Allocated: &n}}})
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != recordV2 {
		t.Fatalf("snapshot record written as version %d, want %d", b[0], recordV2)
	}
	var s Snapshot
	if err := decodeRecord(b, &s); err != nil || s.Members[0].Allocated == nil || *s.Members[0].Allocated != n {
		t.Fatalf("decode v2: %+v, %v", s, err)
	}
	if b, _ := encodeRecord(Image{ID: 2, Allocated: &n}); b[0] != recordV2 {
		t.Fatalf("image record written as version %d", b[0])
	}
	if b, _ := encodeRecord(Checkpoint{}); b[0] != recordV1 {
		t.Fatalf("checkpoint written as version %d, want 1", b[0])
	}
	// A record an older build wrote: version 1, no allocation.
	js := []byte(`{"id":1,"name":"s","members":[{"disk":"d","layer":2,"epoch":3}]}`)
	v1 := append([]byte{recordV1}, js...)
	v1 = binary.LittleEndian.AppendUint32(v1, crc32.Checksum(v1, castagnoli))
	s = Snapshot{}
	if err := decodeRecord(v1, &s); err != nil || s.Members[0].Allocated != nil {
		t.Fatalf("decode v1: %+v, %v", s, err)
	}
	bad := append([]byte{recordV3 + 1}, v1[1:len(v1)-4]...) // past this build's (3: lazy layers)
	bad = binary.LittleEndian.AppendUint32(bad, crc32.Checksum(bad, castagnoli))
	if err := decodeRecord(bad, &s); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("version %d record: %v, want ErrCorrupt", recordV3+1, err)
	}
}

// TestAllocState: the accounting record round-trips and is absent in a new index.
func TestAllocState(t *testing.T) {
	db := openTest(t)
	if err := db.View(func(tx *Txn) error {
		_, ok, err := tx.AllocState()
		if ok || err != nil {
			t.Fatalf("new index: ok %v err %v", ok, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := AllocState{Segment: 3, Offset: 4096, Disks: []DiskAlloc{{Disk: 5, Layer: 6, Blocks: 7}}}
	if err := db.Update(func(tx *Txn) error { return tx.SetAllocState(want) }); err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx *Txn) error {
		got, ok, err := tx.AllocState()
		if !ok || err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v ok %v err %v", got, ok, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestFinderOrders: one Finder answers lookups in any order the same as
// the versions say: ascending runs (the seek it skips when the iterator is
// already at or past the target), descending, random jumps, blocks with no
// version, layers with none, and past every key.
func TestFinderOrders(t *testing.T) {
	db := openTest(t)
	rng := rand.New(rand.NewSource(2))
	type key struct {
		l ids.Layer
		b ids.Block
		e ids.Epoch
	}
	want := map[key]ids.Seq{}
	b := db.NewBatch()
	for i := 0; i < 3000; i++ {
		// Layers 2 and 4 only, blocks in clusters with gaps.
		k := key{ids.Layer(2 + 2*rng.Intn(2)), ids.Block(rng.Intn(40) + 100*rng.Intn(3)), ids.Epoch(1 + rng.Intn(8))}
		want[k] = ids.Seq(i + 1)
		if err := b.SetVersion(k.l, k.b, k.e, Version{Seq: ids.Seq(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	err := db.View(func(tx *Txn) error {
		f := tx.NewFinder()
		defer f.Close()
		check := func(l ids.Layer, blk ids.Block, e ids.Epoch) {
			var wantSeq ids.Seq
			var wantAt ids.Epoch
			for x := e; x >= 1; x-- {
				if s, ok := want[key{l, blk, x}]; ok {
					wantSeq, wantAt = s, x
					break
				}
			}
			v, at, ok, err := f.Find(l, blk, e)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (wantSeq != 0) || (ok && (v.Seq != wantSeq || at != wantAt)) {
				t.Fatalf("Find(%d,%d,%d) = %v seq %d at %d; want seq %d at %d", l, blk, e, ok, v.Seq, at, wantSeq, wantAt)
			}
		}
		for i := 0; i < 20000; i++ {
			l, e := ids.Layer(rng.Intn(6)), ids.Epoch(rng.Intn(10))
			blk := ids.Block(rng.Intn(300))
			switch rng.Intn(3) {
			case 0: // an ascending run, like a sequential write or read
				for n := rng.Intn(70); n > 0; n-- {
					check(l, blk, e)
					blk++
				}
			case 1: // descending
				for n := rng.Intn(10); n > 0 && blk > 0; n-- {
					check(l, blk, e)
					blk--
				}
			default:
				check(l, blk, e)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
