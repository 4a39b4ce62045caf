package rowstore

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"

	"github.com/snapfs/snapfs/index"
)

// freshSnapshots is ListSnapshots without its cache: every record decoded.
func freshSnapshots(t *testing.T, s *Store) []SnapshotInfo {
	t.Helper()
	out, err := listCatalog(s, index.KindSnapshot, snapshotInfo)
	if err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func sameSnapshots(t *testing.T, s *Store, when string) []SnapshotInfo {
	t.Helper()
	got, err := s.ListSnapshots()
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	if want := freshSnapshots(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: ListSnapshots = %+v, the records say %+v", when, got, want)
	}
	return got
}

// TestListSnapshotsCached: the cached snapshot list always equals the
// records, after creates, deletes, failed creates, writes and a reopen, and a
// caller changing the list it got changes nothing for the next caller.
func TestListSnapshotsCached(t *testing.T) {
	opts := testOptions()
	s, dir := newTestStore(t, opts)
	const bs = 4096
	for _, d := range []string{"a", "b"} {
		if _, err := s.CreateDisk(d, 64*bs, bs); err != nil {
			t.Fatal(err)
		}
	}
	if got := sameSnapshots(t, s, "empty"); len(got) != 0 {
		t.Fatalf("empty store lists %d snapshots", len(got))
	}
	if _, err := s.CreateSnapshot("s1", []string{"a"}, "manual"); err != nil {
		t.Fatal(err)
	}
	sameSnapshots(t, s, "after s1")
	h, err := s.OpenDisk("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(make([]byte, 3*bs), 0); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if _, err := s.CreateSnapshotWith("s2", []string{"a", "b"}, SnapshotOptions{Kind: "automatic", Policy: "p"}); err != nil {
		t.Fatal(err)
	}
	got := sameSnapshots(t, s, "after s2")
	if len(got) != 2 || got[1].Name != "s2" || len(got[1].Disks) != 2 || got[1].Policy != "p" {
		t.Fatalf("after s2: %+v", got)
	}
	// The caller's copy is its own.
	got[0].Name, got[1].Disks[0].Name, got[1].Disks[0].Allocated = "changed", "changed", -1
	again := sameSnapshots(t, s, "after changing a returned list")
	if again[0].Name != "s1" || again[1].Disks[0].Name != "a" {
		t.Fatalf("a caller's change reached the cache: %+v", again)
	}
	if _, err := s.CreateSnapshot("s2", []string{"b"}, "manual"); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate snapshot: %v, want ErrExists", err)
	}
	sameSnapshots(t, s, "after a failed create")
	// Changes of other records keep the list (and it stays right).
	if _, err := s.CloneDisk("c", "s2", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateImage("i", "s2", "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.RollbackDisk("a", "s1", true); err != nil {
		t.Fatal(err)
	}
	sameSnapshots(t, s, "after a clone, an image and a rollback")
	if _, err := s.CreateSnapshot("s3", []string{"c"}, "manual"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.snapList.get(s.snapList.gen.Load()); !ok {
		t.Fatal("a snapshot create dropped the cached list instead of adding to it")
	}
	sameSnapshots(t, s, "after s3")
	if err := s.DeleteSnapshot("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete of a missing snapshot: %v", err)
	}
	sameSnapshots(t, s, "after a failed delete")
	if err := s.DeleteSnapshot("s3"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.snapList.get(s.snapList.gen.Load()); !ok {
		t.Fatal("a snapshot delete dropped the cached list instead of removing from it")
	}
	if err := s.DeleteSnapshot("s1"); err != nil {
		t.Fatal(err)
	}
	if got := sameSnapshots(t, s, "after deleting s1"); len(got) != 1 || got[0].Name != "s2" {
		t.Fatalf("after deleting s1: %+v", got)
	}
	if err := s.DeleteDisk("b", true); err != nil {
		t.Fatal(err)
	}
	sameSnapshots(t, s, "after deleting disk b")
	before := sameSnapshots(t, s, "before reopen")
	s2 := reopenStore(t, s, dir, opts)
	defer s2.Close()
	if after := sameSnapshots(t, s2, "after reopen"); !reflect.DeepEqual(before, after) {
		t.Fatalf("reopen: %+v, before %+v", after, before)
	}
}

// TestListSnapshotsCachedConcurrent: lists read while snapshots are created
// and deleted never serve a stale list once the changes returned.
func TestListSnapshotsCachedConcurrent(t *testing.T) {
	s, _ := newTestStore(t, testOptions())
	if _, err := s.CreateDisk("a", 1<<20, 4096); err != nil {
		t.Fatal(err)
	}
	const writers, each = 3, 15
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, writers+2)
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.ListSnapshots(); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	var ww sync.WaitGroup
	for w := 0; w < writers; w++ {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for i := 0; i < each; i++ {
				name := fmt.Sprintf("w%d-%d", w, i)
				if _, err := s.CreateSnapshot(name, []string{"a"}, "manual"); err != nil {
					errc <- err
					return
				}
				// Each writer sees its own snapshot at once.
				list, err := s.ListSnapshots()
				if err != nil {
					errc <- err
					return
				}
				found := false
				for _, si := range list {
					found = found || si.Name == name
				}
				if !found {
					errc <- fmt.Errorf("snapshot %s created but not listed", name)
					return
				}
				if i%3 == 0 {
					if err := s.DeleteSnapshot(name); err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	ww.Wait()
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if got := sameSnapshots(t, s, "at the end"); len(got) != writers*(each-each/3) {
		t.Fatalf("%d snapshots listed, want %d", len(got), writers*(each-each/3))
	}
}

// TestSnapshotListRacingRead: a list read while a change lands may already
// hold it; it is tagged with the generation before the change, so the
// change's patch applies to it and must not add the snapshot twice (or
// fail to remove it); a list read before a change is never served after it.
func TestSnapshotListRacingRead(t *testing.T) {
	a := SnapshotInfo{ID: 1, Name: "a"}
	b := SnapshotInfo{ID: 5, Name: "b"}
	var c snapshotList
	g := c.gen.Load()
	c.put(g, []SnapshotInfo{a, b}) // read while b was being created
	c.changed(withSnapshot(b))
	if got, ok := c.get(c.gen.Load()); !ok || !reflect.DeepEqual(got, []SnapshotInfo{a, b}) {
		t.Fatalf("after a racing read and the create's patch: %+v %v", got, ok)
	}
	g = c.gen.Load()
	c.put(g, []SnapshotInfo{a}) // read while b was being deleted
	c.changed(withoutSnapshot("b"))
	if got, ok := c.get(c.gen.Load()); !ok || !reflect.DeepEqual(got, []SnapshotInfo{a}) {
		t.Fatalf("after a racing read and the delete's patch: %+v %v", got, ok)
	}
	// A reader that loaded the old generation stores its (older) list late:
	// it neither replaces the newer one nor is served.
	old := c.gen.Load()
	c.changed(withSnapshot(b))
	c.put(old, []SnapshotInfo{a})
	if got, ok := c.get(c.gen.Load()); !ok || !reflect.DeepEqual(got, []SnapshotInfo{a, b}) {
		t.Fatalf("a late older list replaced the newer one: %+v %v", got, ok)
	}
	if _, ok := c.get(old); ok {
		t.Fatal("a list of an older generation is served")
	}
	// A failed change drops the list.
	c.changed(nil)
	if _, ok := c.get(c.gen.Load()); ok {
		t.Fatal("the list survived a failed change")
	}
	// IDs stay in order whatever order the patches come in.
	c.put(c.gen.Load(), []SnapshotInfo{b})
	c.changed(withSnapshot(a))
	if got, _ := c.get(c.gen.Load()); !reflect.DeepEqual(got, []SnapshotInfo{a, b}) {
		t.Fatalf("not in ID order: %+v", got)
	}
}
