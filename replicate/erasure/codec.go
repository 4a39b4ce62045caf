package erasure

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/reedsolomon"
)

// ShardError names a shard that was dropped and why. Err wraps
// ErrCorruptShard or ErrUnsupportedVersion.
type ShardError struct {
	Index int // position in the slice given to Decode or Repair
	Err   error
}

func (e ShardError) Error() string { return fmt.Sprintf("shard %d: %v", e.Index, e.Err) }
func (e ShardError) Unwrap() error { return e.Err }

// Report tells which shards Decode or Repair could use. A non-empty Missing
// or Corrupt means the object is degraded and repair is required.
type Report struct {
	Layout  Layout       // the layout the good shards agree on (zero if none)
	Good    []int        // verified shard indexes, ascending
	Missing []int        // indexes given as nil or empty, ascending
	Corrupt []ShardError // shards dropped after verification, by index
}

// NeedsRepair reports whether any shard was missing or corrupt.
func (r Report) NeedsRepair() bool { return len(r.Missing) > 0 || len(r.Corrupt) > 0 }

// Bad returns the indexes of missing and corrupt shards, ascending: the ones
// Repair rebuilds.
func (r Report) Bad() []int {
	bad := slices.Clone(r.Missing)
	for _, c := range r.Corrupt {
		if c.Index < r.Layout.Shards() {
			bad = append(bad, c.Index)
		}
	}
	slices.Sort(bad)
	return slices.Compact(bad)
}

func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "k=%d m=%d good=%v missing=%v", r.Layout.K, r.Layout.M, r.Good, r.Missing)
	for _, c := range r.Corrupt {
		fmt.Fprintf(&b, " corrupt[%v]", c)
	}
	return b.String()
}

// TooFewShardsError is returned when fewer than k good shards remain. It
// wraps ErrTooFewShards.
type TooFewShardsError struct {
	Good, Need int // Need is 0 when no shard was readable, so k is unknown
	Report     Report
}

func (e *TooFewShardsError) Error() string {
	if e.Need == 0 {
		return fmt.Sprintf("%v: %d good, none readable (%v)", ErrTooFewShards, e.Good, e.Report)
	}
	return fmt.Sprintf("%v: %d good of %d needed (%v)", ErrTooFewShards, e.Good, e.Need, e.Report)
}

func (e *TooFewShardsError) Unwrap() error { return ErrTooFewShards }

var encoders sync.Map // [2]int{k, m} -> reedsolomon.Encoder (safe for concurrent use)

func encoder(k, m int) (reedsolomon.Encoder, error) {
	key := [2]int{k, m}
	if enc, ok := encoders.Load(key); ok {
		return enc.(reedsolomon.Encoder), nil
	}
	enc, err := reedsolomon.New(k, m)
	if err != nil {
		return nil, fmt.Errorf("%w: reedsolomon k=%d m=%d: %w", ErrInvalidParams, k, m, err)
	}
	actual, _ := encoders.LoadOrStore(key, enc)
	return actual.(reedsolomon.Encoder), nil
}

// Encode splits data into k data and m parity shards, each with a header.
// Shard i belongs to store i of a region. data is not retained.
func Encode(data []byte, k, m int) ([]Shard, error) {
	return EncodeInto(data, k, m, nil)
}

// EncodeInto is Encode into the caller's buffers: shard i is made in
// bufs[i] when its capacity suffices (else in a new buffer), so a caller
// that encodes one object after another (sync's packs) reuses the same
// memory. Any old content of a buffer is overwritten (the padding is
// cleared). The result aliases bufs.
func EncodeInto(data []byte, k, m int, bufs [][]byte) ([]Shard, error) {
	return encodeInto(data, k, m, bufs, Version, ChecksumXXH3)
}

// encodeInto is EncodeInto writing shards of format version ver with
// checksum alg; the tests use it to make shards of older versions.
func encodeInto(data []byte, k, m int, bufs [][]byte, ver int, alg byte) ([]Shard, error) {
	if !checksumOK(ver, alg) {
		return nil, fmt.Errorf("%w: version %d with checksum %s", ErrInvalidParams, ver, checksumName(alg))
	}
	l, err := NewLayout(k, m, int64(len(data)))
	if err != nil {
		return nil, err
	}
	enc, err := encoder(k, m)
	if err != nil {
		return nil, err
	}
	size := l.ShardSize()
	shards := make([]Shard, l.Shards())
	payloads := make([][]byte, l.Shards())
	for i := range shards {
		var buf []byte
		if i < len(bufs) && int64(cap(bufs[i])) >= HeaderSize+size {
			buf = bufs[i][:HeaderSize+size]
		} else {
			buf = make([]byte, HeaderSize+size)
		}
		shards[i] = buf
		payloads[i] = buf[HeaderSize:]
		start, end := l.DataRange(i)
		n := copy(payloads[i], data[start:end])
		if i < l.K {
			clear(payloads[i][n:]) // padding (a reused buffer holds old bytes)
		}
	}
	if err := enc.Encode(payloads); err != nil {
		return nil, fmt.Errorf("erasure: encode k=%d m=%d: %w", k, m, err)
	}
	// The payloads' checksums are independent: large ones are hashed in
	// parallel (a pack's shards are MiBs each; with XXH3 this matters
	// little, with SHA-256 it did).
	sums := make([][32]byte, len(shards))
	if size >= 1<<20 {
		var wg sync.WaitGroup
		for i := range shards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sums[i] = payloadSum(alg, payloads[i])
			}()
		}
		wg.Wait()
	} else {
		for i := range shards {
			sums[i] = payloadSum(alg, payloads[i])
		}
	}
	for i := range shards {
		putHeader(shards[i], Header{
			Version: ver, Checksum: alg, K: k, M: m, Index: i,
			DataLen: l.DataLen, PayloadLen: size,
			Sum: sums[i],
		})
	}
	return shards, nil
}

// verified is the outcome of checking a set of shards: the report, and the
// payloads of the good shards at their indexes (nil elsewhere).
type verified struct {
	report   Report
	payloads [][]byte
}

// verify checks every shard, drops bad ones, and picks the encoding that the
// most good shards agree on. Position i of shards must hold shard i.
func verify(shards [][]byte) (verified, error) {
	type good struct {
		pos     int
		h       Header
		payload []byte
	}
	var (
		rep    Report
		ok     []good
		groups []Header // distinct encodings, in order of first appearance
		counts []int
	)
	for i, b := range shards {
		if len(b) == 0 {
			continue
		}
		h, payload, err := DecodeShard(b)
		if err != nil {
			rep.Corrupt = append(rep.Corrupt, ShardError{Index: i, Err: err})
			continue
		}
		if h.Index != i {
			rep.Corrupt = append(rep.Corrupt, ShardError{Index: i,
				Err: fmt.Errorf("%w: shard %d found at position %d", ErrCorruptShard, h.Index, i)})
			continue
		}
		ok = append(ok, good{pos: i, h: h, payload: payload})
		g := slices.IndexFunc(groups, h.sameObject)
		if g < 0 {
			groups = append(groups, h)
			counts = append(counts, 0)
			g = len(groups) - 1
		}
		counts[g]++
	}
	if len(groups) == 0 {
		rep.Missing = emptyPositions(shards, len(shards))
		return verified{report: rep}, &TooFewShardsError{Good: 0, Need: 0, Report: rep}
	}
	best := 0
	for g := range groups {
		if counts[g] > counts[best] {
			best = g
		}
	}
	for g := range groups {
		if g != best && counts[g] == counts[best] {
			rep.Missing = emptyPositions(shards, len(shards))
			return verified{report: rep}, fmt.Errorf("%w: %d shards say %+v, %d say %+v",
				ErrInconsistent, counts[best], groups[best].Layout(), counts[g], groups[g].Layout())
		}
	}
	want := groups[best]
	rep.Layout = want.Layout()
	payloads := make([][]byte, rep.Layout.Shards())
	for _, s := range ok {
		if !s.h.sameObject(want) {
			rep.Corrupt = append(rep.Corrupt, ShardError{Index: s.pos,
				Err: fmt.Errorf("%w: header %+v disagrees with the majority %+v", ErrCorruptShard, s.h.Layout(), rep.Layout)})
			continue
		}
		payloads[s.pos] = s.payload
		rep.Good = append(rep.Good, s.pos)
	}
	slices.SortFunc(rep.Corrupt, func(a, b ShardError) int { return a.Index - b.Index })
	rep.Missing = emptyPositions(shards, rep.Layout.Shards())
	if len(rep.Good) < rep.Layout.K {
		return verified{report: rep}, &TooFewShardsError{Good: len(rep.Good), Need: rep.Layout.K, Report: rep}
	}
	return verified{report: rep, payloads: payloads}, nil
}

// emptyPositions lists the positions in [0, n) that hold no shard.
func emptyPositions(shards [][]byte, n int) []int {
	var out []int
	for i := range n {
		if i >= len(shards) || len(shards[i]) == 0 {
			out = append(out, i)
		}
	}
	return out
}

// Decode verifies the shards (position i holding shard i; nil for missing)
// and returns the original data. See DecodeReport.
func Decode(shards [][]byte) ([]byte, error) {
	data, _, err := DecodeReport(shards)
	return data, err
}

// DecodeReport is Decode that also reports which shards were good, missing
// or corrupt, so the caller can schedule a repair. The report is filled in
// on failure too, as far as verification got.
func DecodeReport(shards [][]byte) ([]byte, Report, error) {
	v, err := verify(shards)
	if err != nil {
		return nil, v.report, err
	}
	l := v.report.Layout
	for i := range l.K {
		if v.payloads[i] == nil {
			enc, err := encoder(l.K, l.M)
			if err != nil {
				return nil, v.report, err
			}
			if err := enc.ReconstructData(v.payloads); err != nil {
				return nil, v.report, fmt.Errorf("erasure: reconstruct (%v): %w", v.report, err)
			}
			break
		}
	}
	data := make([]byte, l.DataLen)
	for i := range l.K {
		start, end := l.DataRange(i)
		copy(data[start:end], v.payloads[i])
	}
	return data, v.report, nil
}

// Repair verifies the shards and returns a full set of k+m shards, with
// headers, in which every missing or corrupt shard (Report.Bad) is rebuilt
// from the good ones. Good shards are returned as given. The caller writes
// the rebuilt shards back to their stores. Rebuilt shards are of the
// newest version and checksum (XXH3-128), whatever the good ones are: a
// repaired old object holds shards of both, which Decode accepts.
func Repair(shards [][]byte) ([][]byte, Report, error) {
	v, err := verify(shards)
	if err != nil {
		return nil, v.report, err
	}
	l := v.report.Layout
	out := make([][]byte, l.Shards())
	bad := v.report.Bad()
	if len(bad) == 0 {
		copy(out, shards)
		return out, v.report, nil
	}
	enc, err := encoder(l.K, l.M)
	if err != nil {
		return nil, v.report, err
	}
	if err := enc.Reconstruct(v.payloads); err != nil {
		return nil, v.report, fmt.Errorf("erasure: reconstruct (%v): %w", v.report, err)
	}
	for _, i := range v.report.Good {
		out[i] = shards[i]
	}
	for _, i := range bad {
		buf := make([]byte, HeaderSize+l.ShardSize())
		copy(buf[HeaderSize:], v.payloads[i])
		putHeader(buf, Header{
			Version: Version, Checksum: ChecksumXXH3, K: l.K, M: l.M, Index: i,
			DataLen: l.DataLen, PayloadLen: l.ShardSize(),
			Sum: payloadSum(ChecksumXXH3, buf[HeaderSize:]),
		})
		out[i] = buf
	}
	return out, v.report, nil
}
