package index

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/ristretto/v2/z"
	"github.com/snapfs/snapfs/rowstore/ids"
)

// TestMemoryBudget: the Badger options keep the index's fixed share of the
// Go heap within heapBudget (see "Memory" at Open), counted as Badger
// allocates it at worst: every memtable and one more being flushed, each an
// arena of its size and room for a batch (Badger: 15 % more and the nodes
// of a batch, within 20 %); the flush's table buffer (twice the memtable);
// each compactor's 8 table builders in flight, each twice its table's size
// and growing to about three times it. A change that raises any of them
// must revisit the daemon's budget (cmd/snapfs daemonMemoryLimit).
func TestMemoryBudget(t *testing.T) {
	o := badgerOptions(t.TempDir(), Options{})
	if o.MemTableSize != DefaultMemTableSize || o.NumMemtables != numMemtables ||
		o.BaseTableSize != baseTableSize || o.TableSizeMultiplier != 1 ||
		o.IndexCacheSize != 0 || o.Compression != options.None || o.NumCompactors != numCompactors {
		t.Fatalf("options changed: memtable %d ×%d, tables %d ×%d, index cache %d, compression %v, compactors %d",
			o.MemTableSize, o.NumMemtables, o.BaseTableSize, o.TableSizeMultiplier, o.IndexCacheSize, o.Compression, o.NumCompactors)
	}
	arenas := int64(o.NumMemtables+1) * o.MemTableSize * 12 / 10
	flush := 2 * o.MemTableSize
	builders := int64(o.NumCompactors) * 8 * 3 * o.BaseTableSize // multiplier 1: every level's tables are BaseTableSize
	if got := arenas + flush + builders; got > heapBudget {
		t.Fatalf("index heap at worst %d MiB (arenas %d, flush %d, builders %d) > heapBudget %d MiB",
			got>>20, arenas>>20, flush>>20, builders>>20, heapBudget>>20)
	}
}

// sstResident returns the resident bytes of the mappings of dir's tables.
func sstResident(t *testing.T, dir string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rss int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		switch {
		case len(fl) > 0 && strings.Contains(fl[0], "-") && !strings.HasSuffix(fl[0], ":"):
			in = len(fl) >= 6 && strings.HasPrefix(fl[5], dir) && strings.HasSuffix(fl[5], ".sst")
		case in && len(fl) >= 2 && fl[0] == "Rss:":
			kb, err := strconv.ParseInt(fl[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			rss += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rss
}

// TestReleaseTables: the resident pages of the index's table mappings are
// released, and every version reads back the same afterwards.
func TestReleaseTables(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps"); err != nil {
		t.Fatalf("needs /proc/self/smaps (Linux): %v", err)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const n = 60000 // ~7 MB of keys and values: several tables of 1 MiB memtables
	version := func(i uint64) Version {
		return Version{Segment: ids.Segment(i / 100), Offset: int64(i) * 4096, Length: 4096 + 64, Seq: ids.Seq(i + 1), Digest: [32]byte{byte(i), byte(i >> 8)}}
	}
	db, err := Open(dir, Options{MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	for i := uint64(0); i < n; i++ {
		if err := b.SetVersion(1, ids.Block(i), 1, version(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // flushes the memtables to tables
		t.Fatal(err)
	}
	db, err = Open(dir, Options{MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	readAll := func(what string) {
		t.Helper()
		err := db.View(func(tx *Txn) error {
			f := tx.NewFinder()
			defer f.Close()
			for i := uint64(0); i < n; i++ {
				v, _, ok, err := f.Find(1, ids.Block(i), 1)
				if err != nil || !ok || v != version(i) {
					t.Fatalf("%s: block %d: %+v %v %v, want %+v", what, i, v, ok, err, version(i))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The index's own releaser waits until the explicit release is
	// measured (it may run between the reads and the measure otherwise).
	releasePaused.Store(true)
	defer releasePaused.Store(false)
	readAll("before the release")
	before := sstResident(t, dir)
	if before < 1<<20 {
		t.Fatalf("only %d bytes of the tables resident after reading them all", before)
	}
	if z.ReleaseTables() == 0 {
		t.Fatal("no table mapping advised")
	}
	// Badger may compact meanwhile (the tables it writes or opens are
	// resident until the next release): most of it, not all, is gone.
	after := sstResident(t, dir)
	if after > before/4 {
		t.Fatalf("%d bytes of the tables still resident after the release (%d before)", after, before)
	}
	readAll("after the release")
	t.Logf("tables resident: %d KiB before the release, %d KiB after", before>>10, after>>10)
	// The index's own releaser (not called here) gives back what the reads
	// made resident again, within about releaseAfter.
	again := sstResident(t, dir)
	releasePaused.Store(false)
	deadline := time.Now().Add(5 * releaseAfter)
	for sstResident(t, dir) > again/4 {
		if time.Now().After(deadline) {
			t.Fatalf("the releaser left %d bytes of the tables resident for %v (%d after the reads)", sstResident(t, dir), 5*releaseAfter, again)
		}
		time.Sleep(releaseEvery)
	}
}

// TestCloseTwice: a second Close does nothing; the table-page releaser is
// counted down once, so it still runs for the next index opened.
func TestCloseTwice(t *testing.T) {
	db, err := Open(t.TempDir(), Options{MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	db2, err := Open(t.TempDir(), Options{MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	releaser.Lock()
	open := releaser.open
	releaser.Unlock()
	if open != 1 {
		t.Fatalf("releaser counts %d open indexes, want 1", open)
	}
}
