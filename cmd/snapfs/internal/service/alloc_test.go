package service

import (
	"bytes"
	"context"
	"testing"

	"github.com/snapfs/snapfs/rowstore"
)

// TestAllocationReported: what a disk, snapshot, clone, rollback and image
// report as allocated, through the Local and through the socket, is the
// engine's running count (nothing is counted on these paths), and survives
// a restart of the store.
func TestAllocationReported(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := rowstore.Create(dir, rowstore.Options{}); err != nil {
		t.Fatal(err)
	}
	open := func() *Local {
		st, err := rowstore.Open(dir, rowstore.Options{GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return NewLocal(st, dir)
	}
	l := open()
	const bs = 16 << 10
	if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "d", Size: 64 * bs, BlockSize: bs}); err != nil {
		t.Fatal(err)
	}
	h, err := l.Store().OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(bytes.Repeat([]byte{9}, 5*bs), 3*bs); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	h.Close()
	c := serve(t, l)
	want := int64(5 * bs)
	for i, s := range []Service{l, c} {
		sn := []string{"s0", "s1"}[i]
		snap, err := s.CreateSnapshot(ctx, sn, []string{"d"})
		if err != nil || snap.Disks[0].Allocated != want {
			t.Fatalf("create snapshot: %+v %v", snap, err)
		}
		ss, err := s.ListSnapshots(ctx, "")
		if err != nil || len(ss) != i+1 || ss[i].Disks[0].Allocated != want {
			t.Fatalf("list snapshots: %+v %v", ss, err)
		}
		cl, err := s.CreateDisk(ctx, CreateDiskRequest{Name: "c" + sn, FromSnapshot: sn, FromDisk: "d"})
		if err != nil || cl.Allocated != want {
			t.Fatalf("clone: %+v %v", cl, err)
		}
		im, err := s.CreateImage(ctx, "i"+sn, sn, "d")
		if err != nil || im.Allocated != want {
			t.Fatalf("image: %+v %v", im, err)
		}
		fi, err := s.CreateDisk(ctx, CreateDiskRequest{Name: "f" + sn, FromImage: "i" + sn})
		if err != nil || fi.Allocated != want {
			t.Fatalf("disk from image: %+v %v", fi, err)
		}
		rb, err := s.RollbackDisk(ctx, "d", sn, false)
		if err != nil || rb.Allocated != want {
			t.Fatalf("rollback: %+v %v", rb, err)
		}
	}
	check := func(s Service) {
		t.Helper()
		ds, err := s.ListDisks(ctx)
		if err != nil || len(ds) != 5 {
			t.Fatalf("disks: %+v %v", ds, err)
		}
		for _, d := range ds {
			if d.Allocated != want {
				t.Fatalf("disk %s: allocated %d, want %d", d.Name, d.Allocated, want)
			}
		}
		ims, err := s.ListImages(ctx)
		if err != nil || len(ims) != 2 || ims[0].Allocated != want || ims[1].Allocated != want {
			t.Fatalf("images: %+v %v", ims, err)
		}
		u, err := s.Usage(ctx)
		if err != nil || len(u.Snapshots) != 2 || u.Snapshots[0].Allocated != want || u.Images[0].Allocated != want {
			t.Fatalf("usage: %+v %v", u, err)
		}
	}
	check(l)
	check(c)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open()
	defer l.Close()
	check(l)
}
