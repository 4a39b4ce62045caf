// Package vfs is the single door to durable I/O of the snapfs engine.
//
// It owns the FS and File interfaces and three implementations:
//
//   - Default, the operating system's files: File.Sync is fdatasync(2)
//     (data and the size, not timestamps), SyncDir opens the directory and
//     fsyncs it, Statfs is statfs(2) with Free = blocks available to an
//     unprivileged user, List reads the directory and sorts the names.
//
//   - ErrorFS, which wraps an FS and asks an Injector before every
//     operation whether to fail it. Counted operations are the FS methods and
//     the File methods ReadAt, WriteAt, Write, Sync, Truncate and Stat;
//     File.Close is neither counted nor failed, so cleanup always releases
//     the inner file. Ops are numbered from 0 in arrival order (Op.Index);
//     mutating ones (create, remove, rename, mkdir, write, truncate, sync,
//     syncdir) also get Op.WriteIndex. FailAt(i) fails op i, FailWrites(i)
//     the i-th mutating op. A failed op does nothing and returns an
//     *os.PathError naming the op and path and wrapping ErrInjected.
//     ErrorFS.Ops tells a test how many ops a run took, for the loop "fail op
//     0, 1, 2, ... until a run succeeds".
//
//   - CrashFS, an in-memory FS that can produce a possible state after power
//     loss with Crash(seed). For every file it keeps the content as of the
//     last Sync and the writes and truncations since; for the namespace, a log
//     of the creates, mkdirs, removes and renames not yet made durable. After
//     a crash: synced content and namespace changes made durable by SyncDir
//     are kept; each later write is kept, lost, or torn (a random-length
//     prefix of it kept) and each later truncation kept or lost; each
//     unsynced namespace change independently happened or not (an unsynced
//     new file may vanish; an unsynced rename happened or not, atomically).
//     SyncDir(d) makes durable the changes touching d and the earlier changes
//     of the same files. Choices come from math/rand seeded with seed, so a
//     state is replayable; Crash returns a new FS and the old one refuses
//     every further operation with ErrCrashed (Crash itself may be repeated
//     on it with other seeds). SetCapacity simulates a disk of that size:
//     Statfs reports it and a write or truncation that would exceed it fails
//     with an error wrapping syscall.ENOSPC and changes nothing.
//
// MkdirAllSync creates a directory path durably (it syncs the parent of every
// directory it creates); use it instead of MkdirAll for the store's
// directories, since under CrashFS a directory whose parent was never synced
// may vanish, as on a real disk.
//
// WriteFile replaces a file atomically and durably (unique temporary name,
// sync, rename, directory sync); WriteFileDirect does the same on the OS
// file system with O_DIRECT for large objects (a region's shards). Both go
// through one writeAtomic: there is no other write-temp-then-rename.
//
// RealPath and Contains resolve and compare paths (a mountpoint or a
// region store against the store's directory) on the OS file system,
// whose last elements may not exist yet.
//
// Errors from CrashFS are *os.PathError wrapping syscall.Errno values
// (ENOENT, EISDIR, ENOTDIR, ENOTEMPTY, ENOSPC, EBADF), so errors.Is works
// with both os.ErrNotExist and the errno.
//
// Invariants: Sync on a File promises that every byte written to it before the
// call survives a crash; SyncDir promises the same for the directory's entries
// (a new file needs both: Sync of the file and SyncDir of its directory).
// Nothing else promises durability. The engine must not touch files other than
// through an FS.
package vfs
