package format

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestHoldRoundTrip(t *testing.T) {
	h := &Hold{Holder: HostID{1}, Layer: 42, Created: time.Unix(0, 1234567).UTC(), SnapshotHost: HostID{2},
		HolderName: "alpha", Disk: "lz", Snapshot: "s1", SnapshotDisk: "vol", SnapshotHostName: "beta"}
	b := h.Encode()
	got, err := DecodeHold(b)
	if err != nil || *got != *h {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	b[4] = HoldVersion + 1
	if _, err := DecodeHold(b); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("newer version: %v", err)
	}
	if _, err := DecodeHold(h.Encode()[:20]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
}

func FuzzDecodeHold(f *testing.F) {
	f.Add((&Hold{Holder: HostID{1}, Layer: 3, HolderName: "a", Disk: "d", Snapshot: "s", SnapshotDisk: "v"}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := DecodeHold(b)
		if err != nil {
			return
		}
		if !bytes.Equal(x.Encode(), b) {
			t.Fatalf("re-encode differs")
		}
	})
}
