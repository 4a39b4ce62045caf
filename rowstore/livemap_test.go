package rowstore

import (
	"math"
	"math/rand"
	"testing"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/segment"
)

// TestLiveMapTableModel: the compact table equals a Go map under random
// inserts, replacements and deletions, through growth, with keys crowded
// into few home slots (long runs, wrap-around) and spread wide.
func TestLiveMapTableModel(t *testing.T) {
	for seed := int64(0); seed < 6; seed++ {
		rng := rand.New(rand.NewSource(seed))
		tab := newLiveTable(rng.Intn(100))
		ref := map[vkey]liveEntry{}
		keys := 50 + rng.Intn(5000)
		steps := 20000
		if testing.Short() {
			steps = 5000
		}
		key := func() vkey {
			i := uint64(rng.Intn(keys))
			if seed%2 == 0 {
				return vkey{ids.Layer(1 + i%3), ids.Block(i), ids.Epoch(i % 5)}
			}
			return vkey{ids.Layer(rng.Intn(math.MaxUint32)), ids.Block(rng.Uint64()), ids.Epoch(rng.Intn(math.MaxUint32))}
		}
		for step := 0; step < steps; step++ {
			k := key()
			if seed%2 == 1 && len(ref) > 0 && rng.Intn(2) == 0 {
				for rk := range ref { // an existing key
					k = rk
					break
				}
			}
			switch r := rng.Intn(10); {
			case r < 6:
				v := index.Version{Segment: ids.Segment(rng.Intn(1000)), Offset: rng.Int63n(math.MaxUint32), Length: 1 + uint32(rng.Intn(70000)), Seq: ids.Seq(rng.Uint64()), Flags: uint8(rng.Intn(2)) << 1}
				e, ok := liveEntryOf(k, v)
				if !ok {
					t.Fatalf("seed %d: %v %+v does not fit", seed, k, v)
				}
				old, had := tab.put(e)
				want, wantHad := ref[k]
				if had != wantHad || old != want {
					t.Fatalf("seed %d step %d: put %v replaced %+v %v, want %+v %v", seed, step, k, old, had, want, wantHad)
				}
				ref[k] = e
			case r < 9:
				old, had := tab.del(k)
				want, wantHad := ref[k]
				if had != wantHad || old != want {
					t.Fatalf("seed %d step %d: del %v gave %+v %v, want %+v %v", seed, step, k, old, had, want, wantHad)
				}
				delete(ref, k)
			default:
				got, ok := tab.get(k)
				want, wantOK := ref[k]
				if ok != wantOK || got != want {
					t.Fatalf("seed %d step %d: get %v gave %+v %v, want %+v %v", seed, step, k, got, ok, want, wantOK)
				}
			}
			if tab.len() != len(ref) {
				t.Fatalf("seed %d step %d: %d entries, want %d", seed, step, tab.len(), len(ref))
			}
			if step%1000 == 999 || step == steps-1 {
				n := 0
				for si := range tab.shards {
					sh := &tab.shards[si]
					used := 0
					for i := range sh.slots {
						if e := sh.slots[i]; e.len != 0 {
							used++
							if ref[e.key()] != e {
								t.Fatalf("seed %d step %d: shard %d slot %d holds %+v, reference %+v", seed, step, si, i, e, ref[e.key()])
							}
						}
					}
					if used != sh.n || sh.n*liveTableLoadDen > len(sh.slots)*liveTableLoadNum {
						t.Fatalf("seed %d step %d: shard %d: %d slots used of %d, counted %d", seed, step, si, used, len(sh.slots), sh.n)
					}
					n += used
				}
				for k, e := range ref {
					if got, ok := tab.get(k); !ok || got != e {
						t.Fatalf("seed %d step %d: %v: %+v %v, want %+v", seed, step, k, got, ok, e)
					}
				}
				if n != len(ref) {
					t.Fatalf("seed %d step %d: %d slots used, %d entries", seed, step, n, len(ref))
				}
			}
		}
	}
}

// TestLiveMapEntryRange: versions the table cannot hold are refused, so
// the build is abandoned or the map dropped (the cleaner then scans), and
// an entry gives back exactly what went in otherwise.
func TestLiveMapEntryRange(t *testing.T) {
	v := index.Version{Segment: math.MaxUint32, Offset: math.MaxUint32, Length: math.MaxUint32, Seq: math.MaxUint64, Flags: 0xfe}
	k := vkey{math.MaxUint32, math.MaxUint64, math.MaxUint32}
	e, ok := liveEntryOf(k, v)
	if !ok || e.key() != k || e.version() != v || !e.at(segment.Pos{Segment: v.Segment, Offset: v.Offset}, v.Seq) {
		t.Fatalf("round trip: %+v %v", e, ok)
	}
	for _, c := range []struct {
		k vkey
		v index.Version
	}{
		{vkey{math.MaxUint32 + 1, 0, 0}, index.Version{Length: 100}},
		{vkey{0, 0, math.MaxUint32 + 1}, index.Version{Length: 100}},
		{vkey{}, index.Version{Segment: math.MaxUint32 + 1, Length: 100}},
		{vkey{}, index.Version{Offset: math.MaxUint32 + 1, Length: 100}},
		{vkey{}, index.Version{Offset: -1, Length: 100}},
		{vkey{}, index.Version{}},
	} {
		if _, ok := liveEntryOf(c.k, c.v); ok {
			t.Errorf("%v %+v accepted", c.k, c.v)
		}
	}
	// Installed map: a version that does not fit drops it.
	lm := &liveMap{}
	lm.beginBuild()
	b := lm.newLiveBuild()
	b.add(vkey{1, 1, 1}, index.Version{Segment: 1, Length: 100, Seq: 1})
	if !lm.finishBuild(b, 0) {
		t.Fatal("not installed")
	}
	lm.record([]liveChange{{k: vkey{1, 2, 1}, v: index.Version{Segment: math.MaxUint32 + 1, Length: 100, Seq: 2}}})
	if lm.has() {
		t.Fatal("map kept after a version it cannot hold")
	}
	// Build: abandoned.
	lm.beginBuild()
	b = lm.newLiveBuild()
	b.add(vkey{math.MaxUint32 + 1, 1, 1}, index.Version{Segment: 1, Length: 100, Seq: 1})
	if lm.finishBuild(b, 0) {
		t.Fatal("installed a build with a version it cannot hold")
	}
	// Journal: abandoned.
	lm.beginBuild()
	b = lm.newLiveBuild()
	lm.committed(map[vkey]index.Version{{1, 1, math.MaxUint32 + 1}: {Segment: 1, Length: 100, Seq: 1}})
	if lm.finishBuild(b, 0) {
		t.Fatal("installed a build whose journal holds a version it cannot hold")
	}
}

// TestLiveMapRepoint: repointMap writes the index value the record had,
// digest included (from the map, without an index read), with the new
// position, and the map follows.
func TestLiveMapRepoint(t *testing.T) {
	const bs = 4096
	s, _ := newTestStore(t, testOptions())
	if _, err := s.CreateDisk("d", 16*bs, bs); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, 16*bs)
	rand.New(rand.NewSource(1)).Read(buf)
	if _, err := h.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(); err != nil {
		t.Fatal(err)
	}
	if !s.cleaner.lm.has() {
		t.Fatal("no live map")
	}
	var keys []vkey
	var vals []index.Version
	err = s.idx.View(func(t *index.Txn) error {
		return t.EachVersion(func(l ids.Layer, b ids.Block, e ids.Epoch, v index.Version) error {
			keys, vals = append(keys, vkey{l, b, e}), append(vals, v)
			return nil
		})
	})
	if err != nil || len(keys) < 2 {
		t.Fatal(err, len(keys))
	}
	move := func(i int, seq ids.Seq) relocation {
		v := vals[i]
		return relocation{
			old: segment.Pos{Segment: v.Segment, Offset: v.Offset, Length: v.Length},
			new: segment.Pos{Segment: v.Segment + 100, Offset: v.Offset + 8, Length: v.Length},
			r:   segment.Record{Kind: segment.KindData, Layer: keys[i].layer, Block: keys[i].block, Epoch: keys[i].epoch, Seq: seq},
		}
	}
	get := func(k vkey) index.Version {
		var v index.Version
		err := s.idx.View(func(t *index.Txn) (err error) {
			v, err = t.GetVersion(k.layer, k.block, k.epoch)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// A live record: moved, digest kept.
	if err := s.repointMap([]relocation{move(0, vals[0].Seq)}); err != nil {
		t.Fatal(err)
	}
	want := vals[0]
	want.Segment, want.Offset = want.Segment+100, want.Offset+8
	if got := get(keys[0]); got != want {
		t.Fatalf("repointed to %+v, want %+v", got, want)
	}
	if e, ok := s.cleaner.lm.m.get(keys[0]); !ok || e.version() != want {
		t.Fatalf("map after repoint: %+v %v", e, ok)
	}
}
