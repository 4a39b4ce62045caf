package service

import (
	"bytes"
	"context"
	"testing"
)

// TestRemoteReaderCloseAfterLocalClose: a reader of M/regions closed after
// the service closed every remote disk (daemon shutdown with a file still
// open) does not panic and does not close another open of the same key;
// a disk opened again under that key stays readable while the old reader
// is closed.
func TestRemoteReaderCloseAfterLocalClose(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	dir := t.TempDir()
	req := fileRegion(t, dir)
	if _, err := l.AddRegion(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateDisk(ctx, CreateDiskRequest{Name: "d", Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("remote"), 1000)
	h, err := l.Store().OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateSnapshot(ctx, "s1", []string{"d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Sync(ctx, SyncRequest{Region: "dr"}, nil); err != nil {
		t.Fatal(err)
	}
	old, err := l.OpenRemoteDisk(ctx, "dr", "s1", "d")
	if err != nil {
		t.Fatal(err)
	}
	l.closeRemote() // what Local.Close does with the reader still open
	again, err := l.OpenRemoteDisk(ctx, "dr", "s1", "d")
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatalf("Close of a reader whose disk the service closed: %v", err)
	}
	got := make([]byte, len(want))
	if _, err := again.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the disk opened again was closed by the old reader: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}
