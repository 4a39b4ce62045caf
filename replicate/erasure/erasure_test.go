package erasure

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// goldenInput is the fixed input of the golden test: 1001 bytes, which is
// not a multiple of k, so the padding is covered.
func goldenInput() []byte {
	b := make([]byte, 1001)
	for i := range b {
		b[i] = byte(i*31 + 7)
	}
	return b
}

// goldenShardSHA256 pins the encoded shards of goldenInput with k=4 m=2.
// If this test fails, the codec or the shard format changed: old shards in
// every region would no longer decode the same way. Do not update these
// hashes without a new format version.
var goldenShardSHA256 = []string{
	"a453199867da48af01d949ca7ff7356900a713f7f630fbe1270b6ca92dc2b7c2",
	"5a5eb501d50c0224dd6e28f438d8c620daed765063070d88ffc54216483a9429",
	"a0ddd2defe7036daf95f41b53736d2a8d18fc51e32189e2679b271025aab7b82",
	"4cbf18f30107343e18daa802b0d8c3e02f484c5b41884c5bf6775219ebb80b66",
	"adc337ebd75bb7617da5c5e59d1f43da705b50dc0c1e4d5b745f84c892a1ef00",
	"cb61c584e21326f4793542857d01b7526e1182ec328c7edd2f67e166a5a4bfe2",
}

func TestGolden(t *testing.T) {
	shards, err := Encode(goldenInput(), 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != len(goldenShardSHA256) {
		t.Fatalf("got %d shards, want %d", len(shards), len(goldenShardSHA256))
	}
	for i, s := range shards {
		sum := sha256.Sum256(s)
		if got := hex.EncodeToString(sum[:]); got != goldenShardSHA256[i] {
			t.Errorf("shard %d: SHA-256 %s, want %s", i, got, goldenShardSHA256[i])
		}
	}
	data, err := Decode(Bytes(shards))
	if err != nil || !bytes.Equal(data, goldenInput()) {
		t.Fatalf("decode golden: %v", err)
	}
}

func randomData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// subsets calls fn with every subset of {0..n-1} of size at most max.
func subsets(n, max int, fn func([]int)) {
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		fn(cur)
		if len(cur) == max {
			return
		}
		for i := start; i < n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(0, nil)
}

func clone(shards []Shard) [][]byte {
	out := make([][]byte, len(shards))
	for i, s := range shards {
		out[i] = bytes.Clone(s)
	}
	return out
}

func TestEncodeDecodeSizes(t *testing.T) {
	for _, km := range [][2]int{{1, 1}, {2, 1}, {4, 2}, {3, 3}, {10, 4}, {200, 56}} {
		for _, n := range []int{0, 1, 2, 3, 7, 64, 1000, 4097} {
			t.Run(fmt.Sprintf("k%d_m%d_n%d", km[0], km[1], n), func(t *testing.T) {
				data := randomData(uint64(n), n)
				shards, err := Encode(data, km[0], km[1])
				if err != nil {
					t.Fatal(err)
				}
				got, rep, err := DecodeReport(Bytes(shards))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatal("data differs")
				}
				if rep.NeedsRepair() || len(rep.Good) != km[0]+km[1] {
					t.Fatalf("report %v", rep)
				}
			})
		}
	}
}

func TestDecodeEveryMissingCombination(t *testing.T) {
	for _, km := range [][2]int{{4, 2}, {3, 3}, {6, 3}, {1, 2}} {
		k, m := km[0], km[1]
		data := randomData(uint64(k*10+m), 4321)
		shards, err := Encode(data, k, m)
		if err != nil {
			t.Fatal(err)
		}
		subsets(k+m, m, func(missing []int) {
			in := clone(shards)
			for _, i := range missing {
				in[i] = nil
			}
			got, rep, err := DecodeReport(in)
			if err != nil {
				t.Fatalf("k=%d m=%d missing %v: %v", k, m, missing, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("k=%d m=%d missing %v: data differs", k, m, missing)
			}
			if fmt.Sprint(rep.Missing) != fmt.Sprint(missing) && len(missing) > 0 {
				t.Fatalf("k=%d m=%d missing %v: report %v", k, m, missing, rep)
			}
			repaired, _, err := Repair(in)
			if err != nil {
				t.Fatalf("repair %v: %v", missing, err)
			}
			for i := range repaired {
				if !bytes.Equal(repaired[i], shards[i]) {
					t.Fatalf("k=%d m=%d missing %v: repaired shard %d differs", k, m, missing, i)
				}
			}
		})
	}
}

func TestCorruptByteDetected(t *testing.T) {
	const k, m = 4, 2
	data := randomData(42, 999)
	shards, err := Encode(data, k, m)
	if err != nil {
		t.Fatal(err)
	}
	shardLen := len(shards[0])
	r := rand.New(rand.NewPCG(1, 2))
	// Every byte position of every shard, header included.
	for i := range shards {
		for off := range shardLen {
			in := clone(shards)
			in[i][off] ^= byte(1 + r.IntN(255))
			got, rep, err := DecodeReport(in)
			if err != nil {
				t.Fatalf("shard %d byte %d: %v", i, off, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("shard %d byte %d: data differs", i, off)
			}
			// A damaged version byte reads as a newer, unsupported version.
			if len(rep.Corrupt) != 1 || rep.Corrupt[0].Index != i ||
				!(errors.Is(rep.Corrupt[0].Err, ErrCorruptShard) || off == 4 && errors.Is(rep.Corrupt[0].Err, ErrUnsupportedVersion)) {
				t.Fatalf("shard %d byte %d: report %v", i, off, rep)
			}
			if !rep.NeedsRepair() {
				t.Fatalf("shard %d byte %d: NeedsRepair false", i, off)
			}
		}
	}
}

func TestUpToMCorruptDecodes(t *testing.T) {
	const k, m = 4, 2
	data := randomData(7, 5000)
	shards, err := Encode(data, k, m)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	subsets(k+m, m, func(bad []int) {
		in := clone(shards)
		for _, i := range bad {
			in[i][r.IntN(len(in[i]))] ^= 0x5a
		}
		got, err := Decode(in)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("bad %v: %v", bad, err)
		}
		repaired, rep, err := Repair(in)
		if err != nil {
			t.Fatalf("repair bad %v: %v", bad, err)
		}
		if fmt.Sprint(rep.Bad()) != fmt.Sprint(append([]int{}, bad...)) && len(bad) > 0 {
			t.Fatalf("bad %v: report %v", bad, rep)
		}
		for i := range repaired {
			if !bytes.Equal(repaired[i], shards[i]) {
				t.Fatalf("bad %v: repaired shard %d differs", bad, i)
			}
		}
	})
}

func TestMoreThanMBad(t *testing.T) {
	const k, m = 4, 2
	data := randomData(9, 300)
	shards, err := Encode(data, k, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		missing, flip []int
		wantGood      int
	}{
		{"3 missing", []int{0, 2, 5}, nil, 3},
		{"3 corrupt", nil, []int{1, 3, 4}, 3},
		{"2 missing 1 corrupt", []int{0, 1}, []int{5}, 3},
		{"all missing", []int{0, 1, 2, 3, 4, 5}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := clone(shards)
			for _, i := range tc.missing {
				in[i] = nil
			}
			for _, i := range tc.flip {
				in[i][len(in[i])-1] ^= 1
			}
			_, err := Decode(in)
			if !errors.Is(err, ErrTooFewShards) {
				t.Fatalf("err %v, want ErrTooFewShards", err)
			}
			var tf *TooFewShardsError
			if !errors.As(err, &tf) || tf.Good != tc.wantGood {
				t.Fatalf("err %#v, want %d good", err, tc.wantGood)
			}
			if _, _, err := Repair(in); !errors.Is(err, ErrTooFewShards) {
				t.Fatalf("repair err %v", err)
			}
		})
	}
}

func TestMisplacedAndForeignShards(t *testing.T) {
	a, _ := Encode(randomData(1, 100), 2, 2)
	b, _ := Encode(randomData(2, 200), 2, 2)

	// Swapped positions: both are dropped as corrupt, the rest decode.
	in := Bytes(a)
	in[0], in[1] = in[1], in[0]
	got, rep, err := DecodeReport(in)
	if err != nil || !bytes.Equal(got, randomData(1, 100)) || len(rep.Corrupt) != 2 {
		t.Fatalf("swapped: %v %v", err, rep)
	}

	// One shard of another object: outvoted and reported.
	in = Bytes(a)
	in[3] = b[3]
	got, rep, err = DecodeReport(in)
	if err != nil || !bytes.Equal(got, randomData(1, 100)) || len(rep.Corrupt) != 1 || rep.Corrupt[0].Index != 3 {
		t.Fatalf("foreign: %v %v", err, rep)
	}

	// Half and half: no majority.
	in = [][]byte{a[0], a[1], b[2], b[3]}
	if _, err := Decode(in); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("half and half: %v", err)
	}
}

func TestUnsupportedVersion(t *testing.T) {
	shards, _ := Encode([]byte("hello"), 1, 1)
	s := bytes.Clone(shards[0])
	s[4] = Version + 1
	if _, _, err := DecodeShard(s); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("got %v", err)
	}
}

func TestInvalidParams(t *testing.T) {
	for _, km := range [][2]int{{0, 1}, {1, 0}, {-1, 2}, {200, 57}, {256, 1}} {
		if _, err := Encode([]byte("x"), km[0], km[1]); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("k=%d m=%d: %v", km[0], km[1], err)
		}
	}
}

func TestLayout(t *testing.T) {
	l, err := NewLayout(4, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if l.ShardSize() != 3 || l.Padding() != 2 || l.Shards() != 6 {
		t.Fatalf("%+v size %d padding %d", l, l.ShardSize(), l.Padding())
	}
	wantRanges := [][2]int64{{0, 3}, {3, 6}, {6, 9}, {9, 10}, {0, 0}, {0, 0}}
	for i, w := range wantRanges {
		if s, e := l.DataRange(i); s != w[0] || e != w[1] {
			t.Errorf("DataRange(%d) = %d,%d want %v", i, s, e, w)
		}
	}
	for off := range l.DataLen {
		shard, so := l.Locate(off)
		s, _ := l.DataRange(shard)
		if s+so != off {
			t.Errorf("Locate(%d) = %d,%d", off, shard, so)
		}
	}
	// Padding-only data shards.
	l = Layout{K: 4, M: 1, DataLen: 3}
	if s, e := l.DataRange(3); s != e {
		t.Errorf("padding shard range %d,%d", s, e)
	}
}

func FuzzDecodeShard(f *testing.F) {
	for _, n := range []int{0, 1, 100} {
		shards, err := Encode(randomData(uint64(n), n), 3, 2)
		if err != nil {
			f.Fatal(err)
		}
		for _, s := range shards {
			f.Add([]byte(s))
		}
	}
	f.Add([]byte("SFEC"))
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := DecodeShard(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptShard) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		// A shard that verifies must round-trip through the header encoder
		// and agree with its layout.
		if int64(len(payload)) != h.PayloadLen || h.PayloadLen != h.Layout().ShardSize() {
			t.Fatalf("header %+v payload %d", h, len(payload))
		}
		again := make([]byte, HeaderSize)
		putHeader(again, h)
		if !bytes.Equal(again, b[:HeaderSize]) {
			t.Fatalf("header does not round-trip: %x vs %x", again, b[:HeaderSize])
		}
		// A single verified shard is enough for k=1 objects only.
		in := make([][]byte, h.Index+1)
		in[h.Index] = b
		if _, err := Decode(in); err == nil && h.K > 1 {
			t.Fatalf("decoded k=%d from one shard", h.K)
		}
	})
}
