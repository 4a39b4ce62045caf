package erasure

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"strings"
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

// goldenShardSHA256 pins the version 1 shards (SHA-256 payload checksum)
// of goldenInput with k=4 m=2: the bytes every region written before
// version 2 holds. If this test fails, the codec or the shard format
// changed: old shards in every region would no longer decode the same way.
// Do not update these hashes.
var goldenShardSHA256 = []string{
	"a453199867da48af01d949ca7ff7356900a713f7f630fbe1270b6ca92dc2b7c2",
	"5a5eb501d50c0224dd6e28f438d8c620daed765063070d88ffc54216483a9429",
	"a0ddd2defe7036daf95f41b53736d2a8d18fc51e32189e2679b271025aab7b82",
	"4cbf18f30107343e18daa802b0d8c3e02f484c5b41884c5bf6775219ebb80b66",
	"adc337ebd75bb7617da5c5e59d1f43da705b50dc0c1e4d5b745f84c892a1ef00",
	"cb61c584e21326f4793542857d01b7526e1182ec328c7edd2f67e166a5a4bfe2",
}

// goldenShardV2 pins the version 2 shards (XXH3-128 payload checksum) of
// goldenInput with k=4 m=2, the ones Encode writes. Same rule: do not
// update these hashes without a new format version.
var goldenShardV2 = []string{
	"b75771c0b40c6b1e04dc8b8d79e9d77e3a0e9481eefee51972ed449fff72d401",
	"4cc2f12d5b9eb1fc6d6075873c528024dd30525c171703c5e33ea66d3e75194f",
	"5e6752647e3d5ac1fe6f85efe00285e7dd55d754129aaacd02c2cb610be1be85",
	"189f214fc2cebdce80120e3c16fb105b216e994f63221082219f5caca07981d2",
	"5d92d51b829bd8291ea5f39b4f4a63d08fd7002e1262ce632acc2c13fc22a312",
	"5594ff20a8fa58fcaba9083173832cfdad26970d896c5a80ebc6916119818942",
}

// encodeV1 makes the version 1 (SHA-256) shards older builds wrote.
func encodeV1(t testing.TB, data []byte, k, m int) []Shard {
	t.Helper()
	shards, err := encodeInto(data, k, m, nil, 1, ChecksumSHA256)
	if err != nil {
		t.Fatal(err)
	}
	return shards
}

func TestGolden(t *testing.T) {
	v2, err := Encode(goldenInput(), 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		shards []Shard
		want   []string
		ver    int
		alg    byte
	}{
		{"v1", encodeV1(t, goldenInput(), 4, 2), goldenShardSHA256, 1, ChecksumSHA256},
		{"v2", v2, goldenShardV2, 2, ChecksumXXH3},
	} {
		if len(c.shards) != len(c.want) {
			t.Fatalf("%s: got %d shards, want %d", c.name, len(c.shards), len(c.want))
		}
		for i, s := range c.shards {
			sum := sha256.Sum256(s)
			if got := hex.EncodeToString(sum[:]); got != c.want[i] {
				t.Errorf("%s shard %d: SHA-256 %s, want %s", c.name, i, got, c.want[i])
			}
			h, _, err := DecodeShard(s)
			if err != nil || h.Version != c.ver || h.Checksum != c.alg {
				t.Errorf("%s shard %d: %+v %v", c.name, i, h, err)
			}
		}
		data, err := Decode(Bytes(c.shards))
		if err != nil || !bytes.Equal(data, goldenInput()) {
			t.Fatalf("decode golden %s: %v", c.name, err)
		}
	}
}

// TestMixedVersions: an object whose shards are partly version 1
// (SHA-256, written by an older build) and partly version 2 (XXH3-128,
// rebuilt by Repair of this one) decodes from any k of them, and a
// corrupt shard of either kind is caught.
func TestMixedVersions(t *testing.T) {
	const k, m = 4, 2
	data := randomData(7, 100_000)
	old := encodeV1(t, data, k, m)

	// Repair of an old object rebuilds the missing shards as version 2
	// and returns the good old ones unchanged.
	in := Bytes(old)
	in[1], in[4] = nil, nil
	full, rep, err := Repair(in)
	if err != nil || !slices.Equal(rep.Bad(), []int{1, 4}) {
		t.Fatalf("repair: %v %v", err, rep)
	}
	for i, s := range full {
		h, _, err := DecodeShard(s)
		if err != nil {
			t.Fatalf("repaired shard %d: %v", i, err)
		}
		wantVer, wantAlg := 1, byte(ChecksumSHA256)
		if i == 1 || i == 4 {
			wantVer, wantAlg = Version, ChecksumXXH3
		} else if !bytes.Equal(s, old[i]) {
			t.Fatalf("good shard %d was rewritten", i)
		}
		if h.Version != wantVer || h.Checksum != wantAlg {
			t.Fatalf("shard %d: version %d checksum %d, want %d %d", i, h.Version, h.Checksum, wantVer, wantAlg)
		}
	}
	// The rebuilt shards are the ones a fresh Encode writes.
	fresh, _ := Encode(data, k, m)
	if !bytes.Equal(full[1], fresh[1]) || !bytes.Equal(full[4], fresh[4]) {
		t.Fatal("rebuilt shards differ from Encode's")
	}
	// Every choice of k shards of the mixed set decodes, with no shard reported.
	subsets(k+m, m, func(drop []int) {
		in := slices.Clone(full)
		for _, i := range drop {
			in[i] = nil
		}
		got, rep, err := DecodeReport(in)
		if err != nil || !bytes.Equal(got, data) || len(rep.Corrupt) != 0 {
			t.Fatalf("drop %v: %v %v", drop, err, rep)
		}
	})
	// A flipped payload byte is caught in an old shard and in a new one.
	for _, i := range []int{0, 1} {
		in := slices.Clone(full)
		in[i] = bytes.Clone(in[i])
		in[i][HeaderSize+100] ^= 1
		got, rep, err := DecodeReport(in)
		if err != nil || !bytes.Equal(got, data) || len(rep.Corrupt) != 1 || rep.Corrupt[0].Index != i ||
			!errors.Is(rep.Corrupt[0].Err, ErrCorruptShard) {
			t.Fatalf("corrupt shard %d: %v %v", i, err, rep)
		}
	}
	// An old and a new encoding of the same data are the same object.
	fresh, _ = Encode(data, k, m)
	mixed := [][]byte{old[0], fresh[1], old[2], fresh[3], nil, nil}
	if got, err := Decode(mixed); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("old+new: %v", err)
	}
}

// TestChecksumAlgorithmRules: an algorithm this build does not know is an
// unsupported shard, not a corrupt one; XXH3 in a version 1 header and a
// non-zero padding of the XXH3 field are corrupt.
func TestChecksumAlgorithmRules(t *testing.T) {
	shards, _ := Encode([]byte("hello, world"), 2, 1)
	withHeader := func(edit func(b []byte)) []byte {
		b := bytes.Clone(shards[0])
		edit(b)
		binary.BigEndian.PutUint32(b[crcOffset:HeaderSize], crc32.Checksum(b[:crcOffset], castagnoli))
		return b
	}
	for _, c := range []struct {
		name string
		edit func(b []byte)
		want error
	}{
		{"unknown algorithm", func(b []byte) { b[5] = 3 }, ErrUnsupportedVersion},
		{"algorithm 0", func(b []byte) { b[5] = 0 }, ErrUnsupportedVersion},
		{"xxh3 in version 1", func(b []byte) { b[4] = 1 }, ErrCorruptShard},
		{"xxh3 padding", func(b []byte) { b[28+20] = 1 }, ErrCorruptShard},
		{"version 0", func(b []byte) { b[4] = 0 }, ErrCorruptShard},
		{"version 3", func(b []byte) { b[4] = 3 }, ErrUnsupportedVersion},
	} {
		_, _, err := DecodeShard(withHeader(c.edit))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		t.Logf("%s: %v", c.name, err)
	}
	if _, err := encodeInto([]byte("x"), 1, 1, nil, 1, ChecksumXXH3); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("encode v1 with XXH3: %v", err)
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
		// Version 1 shards (SHA-256), as older builds wrote them.
		old, err := encodeInto(randomData(uint64(n), n), 3, 2, nil, 1, ChecksumSHA256)
		if err != nil {
			f.Fatal(err)
		}
		for _, s := range old {
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
		// and agree with its layout, and carry a checksum its version allows
		// that matches the payload.
		if int64(len(payload)) != h.PayloadLen || h.PayloadLen != h.Layout().ShardSize() {
			t.Fatalf("header %+v payload %d", h, len(payload))
		}
		if !checksumOK(h.Version, h.Checksum) || payloadSum(h.Checksum, payload) != h.Sum {
			t.Fatalf("verified shard with version %d checksum %d", h.Version, h.Checksum)
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

// TestXXH3Reference pins payloadSum's XXH3-128 to the reference
// implementation's value for the empty input (XXH3_128bits, seed 0), high
// half first, so the field's byte order is the documented one.
func TestXXH3Reference(t *testing.T) {
	sum := payloadSum(ChecksumXXH3, nil)
	if got := hex.EncodeToString(sum[:]); got != "99aa06d3014798d86001c324468d497f"+strings.Repeat("0", 32) {
		t.Fatalf("XXH3-128(\"\") field %s", got)
	}
}
