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
	want := bytes.Repeat([]byte("remote"), 1000)
	l, _ := syncedDisk(t, 1<<20, want)
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
