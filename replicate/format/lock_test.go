package format

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// Version 2 locks carry the holder's boot id and start time under a
// checksum; version 1 locks still decode (and re-encode as version 1).
func TestLockVersions(t *testing.T) {
	l := &Lock{Host: HostID{4}, PID: 99, Created: time.Unix(0, 5).UTC(), Refreshed: time.Unix(0, 6).UTC(),
		HostName: "beta", Op: "sync", BootID: [16]byte{1, 2, 3}, Start: 12345}
	b := l.Encode()
	if b[4] != LockVersion {
		t.Fatalf("written as version %d", b[4])
	}
	got, err := DecodeLock(b)
	if err != nil || got.BootID != l.BootID || got.Start != 12345 || got.PID != 99 || got.HostName != "beta" || !got.HasProcess() || got.Version != LockVersion {
		t.Fatalf("v2 round trip: %+v %v", got, err)
	}
	for i := 5; i < len(b); i++ { // every bit past the version is covered
		d := bytes.Clone(b)
		d[i] ^= 0x10
		if _, err := DecodeLock(d); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	if _, err := DecodeLock(b[:len(b)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
	// Version 1: the layout without boot id, start and checksum.
	v1 := bytes.Clone(b[:len(b)-16-8-4])
	v1[4] = 1
	got, err = DecodeLock(v1)
	if err != nil || got.Version != 1 || got.HasProcess() || got.PID != 99 || got.Op != "sync" {
		t.Fatalf("v1 decoded as %+v, %v", got, err)
	}
	if !bytes.Equal(got.Encode(), v1) {
		t.Fatal("v1 lock re-encodes differently")
	}
	b[4] = LockVersion + 1
	if _, err := DecodeLock(b); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("v%d: %v", LockVersion+1, err)
	}
}
