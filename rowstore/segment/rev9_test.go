package segment

import (
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// TestRev9CrashWhileSyncing: the power fails at a random instant while one
// goroutine appends (rotating often: tiny segments, some explicit Rotates,
// pre-created files on or off) and another syncs in a loop. Whatever the
// instant, the log after the crash is a prefix of what was appended, in
// order, and holds every record appended before a Sync that returned nil
// began. This is the durability contract whatever a rotation does with the
// sealed segment's fsync (inline, or in the background while the next
// segment gathers).
func TestRev9CrashWhileSyncing(t *testing.T) {
	rounds := 40
	if testing.Short() {
		rounds = 15
	}
	deadline := time.Now().Add(3 * time.Second)
	for round := 0; round < rounds && time.Now().Before(deadline); round++ {
		rng := rand.New(rand.NewSource(int64(round)))
		mem := vfs.NewCrashFS()
		size := int64(1024 + rng.Intn(4096))
		l := mustOpen(t, mem, "log", size)
		l.SetPrecreate(round%2 == 1)

		var appended atomic.Int64 // records whose Append returned
		var acked atomic.Int64    // records covered by a Sync that returned nil
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // appender
			defer wg.Done()
			arng := rand.New(rand.NewSource(int64(round) + 1000))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := l.Append(rec(i)); err != nil {
					return // crashed
				}
				appended.Store(int64(i + 1))
				if arng.Intn(50) == 0 {
					if err := l.Rotate(); err != nil {
						return
					}
				}
			}
		}()
		go func() { // syncer
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				before := appended.Load()
				if err := l.Sync(); err != nil {
					return
				}
				for {
					cur := acked.Load()
					if before <= cur || acked.CompareAndSwap(cur, before) {
						break
					}
				}
			}
		}()
		time.Sleep(time.Duration(1+rng.Intn(20)) * time.Millisecond)
		crashed := mem.Crash(int64(round))
		close(stop)
		wg.Wait()
		_ = l.Close()
		want := acked.Load()

		l2, err := Open(crashed, "log", Options{SegmentSize: size})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		got, _ := scanAll(t, l2) // checks order and content: a prefix
		if int64(len(got)) < want {
			t.Fatalf("round %d: %d records after the crash, but %d were acknowledged by Sync (appended %d)",
				round, len(got), want, appended.Load())
		}
		if err := l2.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
	}
}
