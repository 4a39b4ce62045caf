package rowstore

import (
	"context"
	"log/slog"
	"math/rand"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// Trial 11: `snapfs check --read-data` while fio rewrote a disk and
// `snapfs gc` ran reported "record unreadable: segment N: file does not
// exist" for blocks of the disk's head and exited 6 (corrupt); the next
// check, unraced, was clean. A block rewritten in the head's own epoch
// replaces its index entry (same key, a newer sequence number) and the
// cleaner then removes the old record's segment: that is not corruption.
// Unlike TestCheckDuringGC, no snapshot separates the rewrites, so every
// rewrite lands on the same key.
func TestTrial11CheckDuringHeadRewritesAndGC(t *testing.T) {
	n := checkWhileRewriting(t, 11, 64, 2*time.Second, nil)
	t.Logf("%d clean checks during head rewrites and gc", n)
}

// countHandler counts the log records by message.
type countHandler map[string]*atomic.Int64

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if n := h[r.Message]; n != nil {
		n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// Trial 11: a daemon under `ulimit -n 64` with 20 disks written: once the
// descriptors ran out, the background cleaner failed every round (every
// 20 ms) and logged a multi-kilobyte "background cleaner failed" line each
// time, for as long as the condition lasted, with nothing written any more
// (931 lines in 20 s). A persistent failure now backs the cleaner off (1 s
// doubling to 30 s, a waiting writer ends a pause after its first second),
// logs it once a minute, and says when the cleaner works again. Here the
// segments cannot be read (the cleaner cannot move a record): 223 rounds in
// 2 s before, 3-4 after.
func TestTrial11CleanerBacksOffOnPersistentFailure(t *testing.T) {
	var failing atomic.Bool
	var refused atomic.Int64 // segment reads failed: the cleaner's moves
	efs := vfs.NewErrorFS(vfs.Default, vfs.InjectorFunc(func(op vfs.Op) bool {
		if failing.Load() && strings.Contains(op.Path, "segments") && op.Kind == vfs.OpReadAt {
			refused.Add(1)
			return true
		}
		return false
	}))
	var fails, recovered atomic.Int64
	opts := overwriteOptions(true)
	opts.FS = efs
	opts.SegmentSize = 512 << 10
	opts.Logger = slog.New(countHandler{"background cleaner failed": &fails, "background cleaner works again": &recovered})
	dir := filepath.Join(fastTempDir(t), "store")
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const size = 8 << 20
	if _, err := s.CreateDisk("d", size, 4096); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, size)
	write := func() {
		t.Helper()
		rand.Read(buf)
		if _, err := h.WriteAt(buf, 0); err != nil {
			t.Fatal(err)
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	write()
	// Segments cannot be read (the cleaner cannot move a record); the
	// foreground's whole-block writes need no reads and make the log due
	// for cleaning.
	failing.Store(true)
	for pass := 0; pass < 3; pass++ {
		write()
	}
	time.Sleep(2 * time.Second)
	n, tries := fails.Load(), refused.Load()
	failing.Store(false)
	if tries == 0 {
		t.Fatal("the cleaner never tried: the test did not provoke what it checks")
	}
	t.Logf("in 2 s of failure: %d failures logged, %d segment reads tried", n, tries)
	if n > 2 || tries > 10 {
		t.Fatalf("in 2 s of a persistent failure the cleaner logged %d failures and tried %d segment reads; want it to back off", n, tries)
	}
	for deadline := time.Now().Add(20 * time.Second); recovered.Load() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the cleaner did not work again within 20 s of the failure ending")
		}
	}
}
