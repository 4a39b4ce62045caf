// Package vfs is the single door to durable I/O of the snapfs engine.
//
// It owns the FS and File interfaces and three implementations:
//
//   - Default, the operating system's files (os package, fsync, fdatasync, statfs);
//   - ErrorFS, which wraps an FS and fails the i-th operation (or every operation
//     matching a predicate) with ErrInjected, for "fail at op 0, 1, 2, ..." loops;
//   - CrashFS, an in-memory FS that can produce a possible state after power
//     loss: data and directory entries that were synced are kept; what was
//     written but not synced is kept, lost or torn (a prefix of it kept), chosen
//     by a seeded random source so every crash state is replayable.
//
// Invariants: Sync on a File promises that every byte written to it before the
// call survives a crash; SyncDir promises the same for the directory's entries.
// Nothing else promises durability. The engine must not touch files other than
// through an FS.
package vfs
