package service

import (
	"bytes"
	"context"
	"testing"

	"github.com/snapfs/snapfs/rowstore"
)

// TestTrial9LazyDiskNeverReadsAnotherSnapshot (trial 9): a lazy disk
// names its source by region, host, snapshot name and disk. Once its hold
// is gone (released by hand, `region release`, as the README allows for a
// host gone for good, or lost) and the snapshot pruned, its host may ship
// a new snapshot of the same name (names such as "nightly" are reused).
// At the next attach (daemon start) the lazy disk must not take the new
// snapshot as its source: its missing blocks must fail (EIO), as the
// README promises, never read as another snapshot's data.
//
// Seen on main 7e801ae: the attach checked only the disk's size and
// block size; every missing block then read as the new snapshot's.
func TestTrial9LazyDiskNeverReadsAnotherSnapshot(t *testing.T) {
	ctx := context.Background()
	open := func(dir string) *Local {
		st, err := rowstore.Open(dir, rowstore.Options{GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return NewLocal(st, dir)
	}
	adir, bdir := t.TempDir(), t.TempDir()
	for _, d := range []string{adir, bdir} {
		if err := rowstore.Create(d, rowstore.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := open(adir), open(bdir)
	t.Cleanup(func() { a.Close() })
	dir := t.TempDir()
	req := fileRegion(t, dir)
	for _, l := range []*Local{a, b} {
		if _, err := l.AddRegion(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	const size = 4 << 20
	if _, err := a.CreateDisk(ctx, CreateDiskRequest{Name: "d", Size: size}); err != nil {
		t.Fatal(err)
	}
	fill := func(pattern string) []byte {
		t.Helper()
		data := bytes.Repeat([]byte(pattern), size/len(pattern))
		h, err := a.Store().OpenDisk("d")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if _, err := h.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		return data
	}
	old := fill("old!")
	if _, err := a.CreateSnapshot(ctx, "nightly", []string{"d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx, SyncRequest{Region: "dr"}, nil); err != nil {
		t.Fatal(err)
	}
	am, err := a.manager()
	if err != nil {
		t.Fatal(err)
	}
	aid := am.Host().ID.String()
	if _, err := b.Restore(ctx, RestoreRequest{Region: "dr", Host: aid, Snapshot: "nightly", Disk: "d", To: "lz", Lazy: true, Rate: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil { // the daemon stops
		t.Fatal(err)
	}

	// a's operator releases b's hold by hand, prunes the old nightly and
	// ships a new one of the same name and shape.
	if _, err := a.ReleaseHolds(ctx, ReleaseHoldsRequest{Region: "dr", Snapshot: "nightly"}); err != nil {
		t.Fatal(err)
	}
	fill("new?")
	if _, err := a.CreateSnapshot(ctx, "other", []string{"d"}); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteSnapshot(ctx, "nightly"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx, SyncRequest{Region: "dr"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PruneRegion(ctx, PruneRequest{Region: "dr", KeepLast: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateSnapshot(ctx, "nightly", []string{"d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx, SyncRequest{Region: "dr"}, nil); err != nil {
		t.Fatal(err)
	}

	b = open(bdir) // the daemon starts again
	t.Cleanup(func() { b.Close() })
	b.SetDaemon("", Hooks{})
	h, err := b.Store().OpenDisk("lz")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	bs := 64 << 10
	buf := make([]byte, bs)
	wrong := 0
	for off := 0; off < size; off += bs {
		if _, err := h.ReadAt(buf, int64(off)); err != nil {
			continue // missing and unreadable: EIO, as promised
		}
		if !bytes.Equal(buf, old[off:off+bs]) {
			wrong++
		}
	}
	if wrong > 0 {
		t.Fatalf("%d of %d blocks of the lazy disk read as another snapshot's data", wrong, size/bs)
	}
}
