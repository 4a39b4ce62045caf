package ids

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"
)

// TestArithmetic: the block helpers agree with the byte arithmetic they
// replace, and the Next methods step by one.
func TestArithmetic(t *testing.T) {
	for _, bs := range []int{4096, 65536} {
		for _, off := range []int64{0, 1, int64(bs) - 1, int64(bs), 5*int64(bs) + 7} {
			b := BlockAt(off, bs)
			if uint64(b) != uint64(off/int64(bs)) || b.Offset(bs) > off || b.Offset(bs)+int64(bs) <= off {
				t.Fatalf("BlockAt(%d, %d) = %d, offset %d", off, bs, b, b.Offset(bs))
			}
		}
	}
	if b := Block(10).Add(5); b != 15 || b.Since(10) != 5 {
		t.Fatalf("Add/Since: %d %d", b, b.Since(10))
	}
	if Epoch(3).Next() != 4 || Seq(7).Next() != 8 || Segment(9).Next() != 10 {
		t.Fatal("Next")
	}
	var a Atomic[Segment]
	a.Store(42)
	if a.Load() != 42 {
		t.Fatal("Atomic")
	}
}

// TestFormatting: the types print and log as the plain numbers they were
// (segment file names are "%016x.seg"; log handlers see uint64 values).
func TestFormatting(t *testing.T) {
	if got := fmt.Sprintf("%016x.seg %d %v", Segment(0x2a), Layer(7), Epoch(3)); got != "000000000000002a.seg 7 3" {
		t.Fatalf("formatted %q", got)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "segment", Segment(5), "seq", Seq(6), "block", Block(7))
	if !bytes.Contains(buf.Bytes(), []byte(`"segment":5,"seq":6,"block":7`)) {
		t.Fatalf("logged %s", buf.Bytes())
	}
	if v := slog.AnyValue(Layer(9)).Resolve(); v.Kind() != slog.KindUint64 || v.Uint64() != 9 {
		t.Fatalf("resolved %v", v)
	}
}
