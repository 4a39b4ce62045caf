package ids

import (
	"log/slog"
	"math"
	"sync/atomic"
)

// Layer is a layer's id (a catalog id from the index's "next-id" counter;
// 0: none, as the parent of a root layer).
type Layer uint64

// Epoch is an epoch of a layer: a snapshot is a (Layer, Epoch) pair, taken
// by moving the layer to the next epoch.
type Epoch uint64

// MaxEpoch is the largest epoch: "every version of the layer".
const MaxEpoch Epoch = math.MaxUint64

// Next is the epoch after e.
func (e Epoch) Next() Epoch { return e + 1 }

// Block is a block number within a disk (byte offset / block size).
type Block uint64

// MaxBlock is the largest block number.
const MaxBlock Block = math.MaxUint64

// Add is the block n blocks after b (the end of a run of n blocks).
func (b Block) Add(n uint64) Block { return b + Block(n) }

// Since is the number of blocks from a to b (b >= a).
func (b Block) Since(a Block) uint64 { return uint64(b - a) }

// BlockAt is the block that holds byte offset off of a disk with blocks of
// bs bytes (off >= 0, bs > 0).
func BlockAt(off int64, bs int) Block { return Block(off / int64(bs)) }

// Offset is the byte offset of block b in a disk with blocks of bs bytes.
func (b Block) Offset(bs int) int64 { return int64(b) * int64(bs) }

// Segment is a segment file's number; numbers are never reused.
type Segment uint64

// Next is the segment number after s.
func (s Segment) Next() Segment { return s + 1 }

// Seq is a record's sequence number in the segment log: it grows with every
// record appended, and relocation keeps it, so the newest version of a
// block is the one with the largest Seq.
type Seq uint64

// Next is the sequence number after s.
func (s Seq) Next() Seq { return s + 1 }

// Atomic is an atomic.Uint64 that holds one kind of number, so that a
// field such as the newest checkpoint's segment keeps its type.
type Atomic[T ~uint64] struct{ v atomic.Uint64 }

// Load returns the value.
func (a *Atomic[T]) Load() T { return T(a.v.Load()) }

// Store sets the value.
func (a *Atomic[T]) Store(x T) { a.v.Store(uint64(x)) }

// LogValue makes each type log as the plain number it was (slog would
// otherwise record a named type as KindAny).
func (l Layer) LogValue() slog.Value { return slog.Uint64Value(uint64(l)) }

// LogValue logs the epoch as a number.
func (e Epoch) LogValue() slog.Value { return slog.Uint64Value(uint64(e)) }

// LogValue logs the block number as a number.
func (b Block) LogValue() slog.Value { return slog.Uint64Value(uint64(b)) }

// LogValue logs the segment number as a number.
func (s Segment) LogValue() slog.Value { return slog.Uint64Value(uint64(s)) }

// LogValue logs the sequence number as a number.
func (s Seq) LogValue() slog.Value { return slog.Uint64Value(uint64(s)) }
