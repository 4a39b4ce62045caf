// Package ids holds the engine's distinct number types: layer ids, epochs,
// block numbers, segment numbers and sequence numbers. All five are uint64
// underneath and were plain uint64 before; a call such as
// VersionKey(layer, epoch, block) with two of them swapped compiled and
// silently addressed another version. As named types (Pebble does the same
// with SeqNum and DiskFileNum) a swapped argument, field or map key no
// longer compiles.
//
// It is a package of its own, with no imports of the project, because both
// package index (keys, Version, catalog records) and package
// rowstore/segment (Record, Pos, Log) use the types and neither may import
// the other; rowstore imports both.
//
// Conversions between the types, and from plain integers, belong at the
// edges: decoding bytes, user input, rowstore's exported API (which keeps
// uint64 so that its callers compile unchanged), and arithmetic that truly
// mixes kinds (a block number from a byte offset). Each one is written as a
// visible conversion. Arithmetic within one kind uses the methods below
// (Epoch.Next, Block.Add, Seq.Next) or the operators, which keep the type.
//
// The types have no String method on purpose: fmt's %x and %v of them print
// the number, as before (segment file names are "%016x.seg").
package ids
