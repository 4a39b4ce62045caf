package index

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// A lazy layer is written as format version 3, an ordinary one still as
// version 1 (older builds keep reading it); both decode.
func TestLazyLayerRecord(t *testing.T) {
	plain := Layer{ID: 4, Epoch: 2, BlockSize: 16384, Created: time.Unix(1, 0).UTC()}
	b, err := encodeRecord(plain)
	if err != nil || b[0] != recordV1 {
		t.Fatalf("plain layer: version %d, %v", b[0], err)
	}
	lazy := plain
	lazy.Lazy = &LazyOrigin{Format: LazyFormat, Region: "r", Snapshot: "s", Disk: "d", Size: 1 << 30, BlockSize: 16384}
	b, err = encodeRecord(&lazy)
	if err != nil || b[0] != recordV3 {
		t.Fatalf("lazy layer: version %d, %v", b[0], err)
	}
	var got Layer
	if err := decodeRecord(b, &got); err != nil || !reflect.DeepEqual(got, lazy) {
		t.Fatalf("lazy layer round trip: %+v, %v", got, err)
	}
	// An origin of a format this build does not know is refused.
	bad := lazy
	bad.Lazy = &LazyOrigin{Format: LazyFormat + 1}
	b, _ = encodeRecord(bad)
	if err := decodeRecord(b, &got); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unknown origin format: %v", err)
	}
	// A record version past this build's is refused.
	b[0] = recordV3 + 1
	if err := decodeRecord(b, &got); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unknown record version: %v", err)
	}
}

func FuzzLayerRecord(f *testing.F) {
	b, _ := encodeRecord(Layer{ID: 2, Epoch: 1, BlockSize: 4096})
	f.Add(b)
	b, _ = encodeRecord(Layer{ID: 3, Epoch: 2, BlockSize: 4096, Lazy: &LazyOrigin{Format: 1, Region: "r", Snapshot: "s", Disk: "d", Size: 8192, BlockSize: 4096}})
	f.Add(b)
	f.Add([]byte{3, '{', '"', 'l', 'a', 'z', 'y', '"', ':', '{', '}', '}', 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l Layer
		if err := decodeRecord(b, &l); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		enc, err := encodeRecord(l)
		if err != nil {
			t.Fatal(err)
		}
		var l2 Layer
		if err := decodeRecord(enc, &l2); err != nil || !reflect.DeepEqual(l, l2) {
			t.Fatalf("round trip: %+v != %+v (%v)", l, l2, err)
		}
	})
}
