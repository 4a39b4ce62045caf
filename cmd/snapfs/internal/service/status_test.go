package service

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
)

// TestStatusReport: snapfs status's report is made by the Service, the same
// in-process and through the control socket: disks with their snapshot
// count and newest snapshot, open disks, the snapshot mounts recorded in the
// store (unreadable records skipped), sorted by mountpoint.
func TestStatusReport(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	dir, st := l.Dir(), l.Store()
	for _, d := range []string{"a", "b", "c"} {
		if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: d, Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.CreateSnapshot(ctx, "s1", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	s2, err := l.CreateSnapshot(ctx, "s2", []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := st.OpenDisk("c")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	recs := filepath.Join(dir, SnapMountDir)
	if err := os.MkdirAll(recs, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"2.json": `{"version":1,"mountpoint":"/mnt/z","snapshot":"s2","disk":"b","clone":"x","loop":"/dev/loop9"}`,
		"1.json": `{"version":1,"mountpoint":"/mnt/y","snapshot":"s1","disk":"a","clone":"y","loop":"/dev/loop8"}`,
		"3.json": `not json`,
	} {
		if err := os.WriteFile(filepath.Join(recs, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	local, err := l.StatusReport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := StatusReport{
		Status:         Status{Store: dir},
		SnapshotMounts: []StatusMount{{"/mnt/y", "s1", "a"}, {"/mnt/z", "s2", "b"}},
		OpenDisks:      []StatusOpenDisk{{Name: "c", Handles: 1}},
		Disks: []StatusDisk{
			{Name: "a", Snapshots: 2, LastSnapshot: "s2", LastTime: s2.Created},
			{Name: "b", Snapshots: 1, LastSnapshot: "s2", LastTime: s2.Created},
			{Name: "c"},
		},
	}
	if !reflect.DeepEqual(local, want) {
		t.Fatalf("local report:\n%+v\nwant\n%+v", local, want)
	}

	remote, err := serve(t, l).StatusReport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Times come back through JSON: compare them as instants.
	for i := range remote.Disks {
		if !remote.Disks[i].LastTime.Equal(want.Disks[i].LastTime) {
			t.Fatalf("disk %s: last snapshot time %v, want %v", remote.Disks[i].Name, remote.Disks[i].LastTime, want.Disks[i].LastTime)
		}
		remote.Disks[i].LastTime = want.Disks[i].LastTime
	}
	if !reflect.DeepEqual(remote, want) {
		t.Fatalf("report through the socket:\n%+v\nwant\n%+v", remote, want)
	}
}

// TestLag: a region's lag counts the snapshots not available there.
func TestLag(t *testing.T) {
	now := time.Now()
	snaps := SnapshotStates([]Snapshot{
		{Name: "old", Created: now.Add(-time.Hour), Disks: []SnapshotDisk{{Name: "d", Allocated: 10}},
			Copies: []SnapshotCopy{{Region: "r", State: replicate.StateAvailable}}},
		{Name: "mid", Created: now.Add(-30 * time.Minute), Disks: []SnapshotDisk{{Name: "d", Allocated: 20}, {Name: "e", Allocated: 1}}},
		{Name: "new", Created: now.Add(-time.Minute), Disks: []SnapshotDisk{{Name: "d", Allocated: 5}},
			Copies: []SnapshotCopy{{Region: "r", State: replicate.StateCopying}}},
	})
	l := Lag("r", snaps, now)
	if l.Snapshots != 2 || l.Bytes != 26 || l.Oldest != "mid" || l.Seconds != 1800 {
		t.Fatalf("lag %+v", l)
	}
	if l := Lag("r", nil, now); l != (RegionLag{Region: "r"}) {
		t.Fatalf("lag of nothing %+v", l)
	}
}

// TestOriginsListed: disk list marks a clone's origin "(deleted)" exactly
// as disk info does (it reads one listing instead of a record per clone):
// origin present, deleted, deleted and made again, image present and
// deleted.
func TestOriginsListed(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "d", Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"keep", "gone", "again"} {
		if _, err := l.CreateSnapshot(ctx, s, []string{"d"}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "c-" + s, FromSnapshot: s, FromDisk: "d"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, im := range []string{"ikeep", "igone"} {
		if _, err := l.CreateImage(ctx, im, "keep", "d"); err != nil {
			t.Fatal(err)
		}
		if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "c-" + im, FromImage: im}); err != nil {
			t.Fatal(err)
		}
	}
	for _, del := range []func() error{
		func() error { return l.DeleteSnapshot(ctx, "gone") },
		func() error { return l.DeleteSnapshot(ctx, "again") },
		func() error { _, err := l.CreateSnapshot(ctx, "again", []string{"d"}); return err },
		func() error { return l.DeleteImage(ctx, "igone") },
	} {
		if err := del(); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{
		"d":       "",
		"c-keep":  "snapshot keep/d",
		"c-gone":  "snapshot gone/d (deleted)",
		"c-again": "snapshot again/d (deleted)",
		"c-ikeep": "image ikeep",
		"c-igone": "image igone (deleted)",
	}
	ds, err := l.ListDisks(ctx)
	if err != nil || len(ds) != len(want) {
		t.Fatalf("disk list: %+v %v", ds, err)
	}
	for _, d := range ds {
		one, err := l.GetDisk(ctx, d.Name)
		if err != nil {
			t.Fatal(err)
		}
		if d.Origin != want[d.Name] || one.Origin != want[d.Name] {
			t.Errorf("disk %s: listed origin %q, disk info %q, want %q", d.Name, d.Origin, one.Origin, want[d.Name])
		}
	}
}
