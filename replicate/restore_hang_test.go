package replicate_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
)

// A store that accepts a read and never answers costs an eager restore
// (whole packs: fetchData, fetchPack) one bounded wait per store: the
// packs are decoded from the other k shards, the store is passed over
// for the packs that follow, and the restored disk is the snapshot's.
// Without a deadline the restore would wait as long as the store hangs.
func TestRestoreHungStore(t *testing.T) {
	defer replicate.SetRestoreShardTimeout(300 * time.Millisecond)()
	ctx := context.Background()
	hs, _ := fleet(t, 2, 1, "a", "b")
	a, b := hs[0], hs[1]
	mkDisk(t, a.host, "v", 64)
	for i := uint64(0); i < 4; i++ { // several syncs: several packs
		writeBlocks(t, a.host, "v", 10+i, span(i*16, i*16+16))
		snapshot(t, a.host, "s"+string(rune('1'+i)), "v")
		if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	img := readSnapshot(t, a.host, "s4", "v")
	for i, f := range b.faults {
		f.DelayMatching(func(m store.Method, name string) time.Duration {
			if m == store.MethodGet && strings.HasPrefix(name, "packs/") && i == 0 {
				return time.Hour
			}
			return 0
		})
	}
	defer b.eachFault(func(f *store.Faults) { f.DelayMatching(nil) })
	type result struct {
		st  replicate.RestoreStats
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		st, err := b.mgr.RestoreFrom(ctx, "r1", "", "s4", "v", "w", nil)
		done <- result{st, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("restore hangs with one store hanging")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	el := time.Since(start)
	t.Logf("restore with store 0 hanging: %v, %+v", el, res.st)
	if res.st.PacksRead < 2 || res.st.Degraded != res.st.PacksRead {
		t.Fatalf("restore read %d packs, %d degraded: want several, all degraded", res.st.PacksRead, res.st.Degraded)
	}
	// One bounded wait per pack read at once, not one per pack in turn
	// (the store is passed over once it did not answer).
	if el > time.Duration(res.st.PacksRead)*300*time.Millisecond+10*time.Second {
		t.Fatalf("restore took %v for %d packs", el, res.st.PacksRead)
	}
	if got := readDisk(t, b.host, "w"); !bytes.Equal(got, img) {
		t.Fatal("restored disk differs from the snapshot")
	}
}
