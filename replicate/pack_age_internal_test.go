package replicate

import (
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
)

// A pack is started (and its records sealed under its id) when the one
// before it is full; when blocks come slowly that is long before its put.
// The time its id carries, from which Prune's grace period for unindexed
// packs counts (OrphanAge), must still be at most maxPackFill before the
// put: such a pack is renamed before it is encoded, and its chunks read
// back under the new id.
func TestPackIDTimeAtPut(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	var off atomic.Int64
	t0 := time.Now()
	now := func() time.Time { return t0.Add(time.Duration(off.Load())) }
	_, m, _, _ := newInternalRegion(t, root, Options{PackSize: 64 << 10, Now: now}, 2, 1, 5)
	r, err := m.openRegion(ctx, "r", true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	st := &Stats{BytesWritten: make([]int64, r.n())}
	p := m.startPipeline(ctx, r, st, NoProgress{}, "s", nil)
	rng := rand.New(rand.NewPCG(1, 2))
	item := func() stored {
		data := make([]byte, 16<<10)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		return stored{id: r.keys.ChunkID(sha256.Sum256(data)), data: data, rawLen: len(data), comp: format.CompNone}
	}
	// The first pack gets a block, then none for longer than maxPackFill.
	datas := map[format.ChunkID][]byte{}
	add := func() {
		t.Helper()
		it := item()
		datas[it.id] = it.data
		if err := p.add([]stored{it}); err != nil {
			t.Fatal(err)
		}
	}
	add()
	off.Store(int64(maxPackFill + 5*time.Minute))
	for range 12 {
		add()
	}
	cs := &chunkSet{chunks: map[format.ChunkID]chunkLoc{}, packs: map[packID]*format.Index{}}
	written, err := p.finish(cs)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) < 2 {
		t.Fatalf("%d packs written; the test needs several", len(written))
	}
	for _, w := range written {
		id := packID(w.x.Pack)
		if age := now().Sub(id.time()); age > maxPackFill {
			t.Errorf("pack %s put %v after the time its id carries (at most %v)", id, age, maxPackFill)
		}
	}
	// Every chunk reads back from its pack, under the pack's id.
	for cid, want := range datas {
		loc, ok := cs.lookup(cid)
		if !ok {
			t.Fatalf("chunk %v in no pack written", cid)
		}
		pt, _, _, err := m.openPack(ctx, r, loc.pack(), loc.x.SealedSize, new([]byte))
		if err != nil {
			t.Fatal(err)
		}
		got, err := format.Chunk(pt, loc.entry())
		if err != nil || string(got) != string(want) {
			t.Fatalf("chunk %v of pack %s: %v", cid, loc.pack(), err)
		}
	}
}
