package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

// syncedLocal is a Local with region "dr" holding snapshot s1 of its 4 MiB
// disk d.
func syncedLocal(t *testing.T) (*Local, *replicate.Manager) {
	t.Helper()
	return syncedDisk(t, 4<<20, bytes.Repeat([]byte("lazy"), 1<<20))
}

// syncedDisk is a Local with region "dr" holding snapshot s1 of its disk
// d of size bytes, data written at its start (nothing if data is nil).
func syncedDisk(t *testing.T, size int64, data []byte) (*Local, *replicate.Manager) {
	t.Helper()
	ctx := context.Background()
	l := newLocal(t)
	if _, err := l.AddRegion(ctx, fileRegion(t, t.TempDir())); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "d", Size: size}); err != nil {
		t.Fatal(err)
	}
	if data != nil {
		h, err := l.Store().OpenDisk("d")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.CreateSnapshot(ctx, "s1", []string{"d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Sync(ctx, SyncRequest{Region: "dr"}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := l.manager()
	if err != nil {
		t.Fatal(err)
	}
	return l, m
}

// killedLazyRestore leaves on l (from syncedLocal) what a restore --lazy
// of s1's d to lz killed after its hold leaves: a temporary lazy disk
// (the process that built it gone) and its hold naming disk lz; a local
// snapshot "old" holds an earlier, unrelated disk lz, deleted since.
func killedLazyRestore(t *testing.T, l *Local, m *replicate.Manager) {
	t.Helper()
	ctx := context.Background()
	if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "lz", Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateSnapshot(ctx, "old", []string{"lz"}); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteDisk(ctx, "lz", false); err != nil {
		t.Fatal(err)
	}
	tmp, release := rowstore.NewTempDiskName()
	origin := rowstore.LazyOrigin{Region: "dr", Snapshot: "s1", Disk: "d", Size: 4 << 20, BlockSize: 64 << 10}
	if _, err := l.store.CreateLazyDisk(tmp, origin, 64); err != nil {
		t.Fatal(err)
	}
	layer, err := l.lazyLayerOf(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.PutHold(ctx, "dr", "", "s1", "d", layer, "lz"); err != nil {
		t.Fatal(err)
	}
	release() // the process that built it is gone
}

func holdDisks(t *testing.T, m *replicate.Manager) []string {
	t.Helper()
	hs, err := m.Holds(context.Background(), "dr")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range hs {
		out = append(out, h.Disk)
	}
	return out
}

func diskList(t *testing.T, l *Local) []string {
	t.Helper()
	ds, err := l.store.ListDisks()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	slices.Sort(out)
	return out
}

// TestLazyRestoreNameTakenBeforeRename: a disk of the name asked for made
// while restore --lazy builds its temporary disk (after its hold) is not
// replaced: the restore fails with ErrExists, says it kept nothing and
// released the hold, and leaves neither its temporary disk nor its hold.
func TestLazyRestoreNameTakenBeforeRename(t *testing.T) {
	ctx := context.Background()
	l, m := syncedLocal(t)
	testLazyStep = func(step string) {
		if step == "lazy-held" {
			if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "lz", Size: 1 << 20}); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { testLazyStep = nil })
	_, err := l.Restore(ctx, RestoreRequest{Region: "dr", Snapshot: "s1", Disk: "d", To: "lz", Lazy: true, Rate: 1}, nil)
	if !errors.Is(err, rowstore.ErrExists) || !strings.Contains(err.Error(), "was not kept; its hold was released") {
		t.Fatalf("restore --lazy onto a name taken meanwhile: %v", err)
	}
	if got := diskList(t, l); !slices.Equal(got, []string{"d", "lz"}) {
		t.Fatalf("disks after the failed restore: %q", got)
	}
	if d, err := l.store.GetDisk("lz"); err != nil || d.Size != 1<<20 {
		t.Fatalf("disk lz (made meanwhile) after the failed restore: %+v, %v", d, err)
	}
	if got := holdDisks(t, m); len(got) != 0 {
		t.Fatalf("holds after the failed restore: %q", got)
	}
	// The name taken from the start: refused before the region is read.
	if _, err := l.Restore(ctx, RestoreRequest{Region: "dr", Snapshot: "s1", Disk: "d", To: "lz", Lazy: true}, nil); !errors.Is(err, rowstore.ErrExists) {
		t.Fatalf("restore --lazy onto an existing disk: %v", err)
	}
}

// TestLazyKilledRestoreCleanedAtStart: what a restore --lazy killed after
// its hold leaves (a temporary lazy disk, its hold naming disk lz) is gone
// after the daemon's start: the disk before the mount lists it
// (CleanRegionLeftovers), the hold by the start's sweep although a local
// snapshot holds an earlier disk named lz, and the layer by a GC. Before
// the start told such a layer by what reads it, the hold stayed (a snapshot of an lz could read the
// layer) and so did the layer, re-attached at every start.
func TestLazyKilledRestoreCleanedAtStart(t *testing.T) {
	l, m := syncedLocal(t)
	killedLazyRestore(t, l, m)
	l.CleanRegionLeftovers()
	if got := diskList(t, l); !slices.Equal(got, []string{"d"}) {
		t.Fatalf("disks after the start's cleanup: %q", got)
	}
	l.resumeLazy()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ls, err := l.store.ListLazy()
		if err != nil {
			t.Fatal(err)
		}
		holds := holdDisks(t, m)
		if len(ls) == 0 && len(holds) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the start: lazy layers %+v, holds %q; want none", ls, holds)
		}
	}
}

// TestLazyRestoreOfEmptyDisk: restore --lazy of a disk that stores no
// block (all zeros) succeeds every time: its hydration ends at once and
// the store closes the region disk, which must not be before the hold is
// written through it (the restore failed "disk not kept" then).
func TestLazyRestoreOfEmptyDisk(t *testing.T) {
	ctx := context.Background()
	l, m := syncedLocal(t)
	if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "z", Size: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateSnapshot(ctx, "s2", []string{"z"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Sync(ctx, SyncRequest{Region: "dr"}, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		to := fmt.Sprintf("e%d", i)
		if _, err := l.Restore(ctx, RestoreRequest{Region: "dr", Snapshot: "s2", Disk: "z", To: to, Lazy: true}, nil); err != nil {
			t.Fatalf("restore --lazy #%d of an empty disk: %v", i, err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); len(holdDisks(t, m)) > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("holds of hydrated empty disks left: %q", holdDisks(t, m))
		}
	}
}

// TestLazyWaitInterruptedReleasesHoldWhenHydrated: restore --lazy --wait
// interrupted (the user's Ctrl-C) keeps the disk hydrating; once it is
// whole its hold is released then, not at the next daemon start or sync.
func TestLazyWaitInterruptedReleasesHoldWhenHydrated(t *testing.T) {
	l, m := syncedLocal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := l.Restore(ctx, RestoreRequest{Region: "dr", Snapshot: "s1", Disk: "d", To: "lz", Lazy: true, Wait: true, Rate: 2 << 20}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("restore --lazy --wait interrupted: %v (hydration done within 300 ms: lower the rate)", err)
	}
	if got := holdDisks(t, m); !slices.Equal(got, []string{"lz"}) {
		t.Fatalf("holds while lz hydrates: %q", got)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, lazy, err := l.store.LazyStatusOf("lz")
		if err != nil {
			t.Fatal(err)
		}
		got := holdDisks(t, m)
		if !lazy && len(got) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lz lazy %v, holds %q: the hold of a hydrated disk stays", lazy, got)
		}
	}
}
