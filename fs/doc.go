// Package fs is snapfs's FUSE layer: the mount's namespace, built on go-fuse
// v2's node API. It translates FUSE requests into calls on a Backend (an
// adapter over the engine, handed in through Options) and knows nothing of
// how data is stored.
//
// # Namespace
//
//	M/disks/<disk>                        read-write raw disk image, size = disk size
//	M/snapshots/<snapshot>/               read-only directory, one per snapshot
//	M/snapshots/<snapshot>/<disk>         the disk's image as of the snapshot
//	M/snapshots/<snapshot>/snapshot.json  its metadata (SnapshotEntry.JSON)
//	M/images/<image>                      read-only image
//	M/snapshots/<snapshot>/<disk>.files/  the files inside the disk, read-only
//	M/images/<image>.files/               the same for an image
//	M/regions/<r>/<s>/<d>                 a disk of snapshot s of region r, read-only,
//	                                      read from the region on demand (Options.Regions)
//	M/regions/<r>/<s>/<d>.files/          the files inside it, read-only
//
// A .files directory exists when Options.Files says the image holds a
// filesystem it can show: its root for a filesystem on the whole disk, or
// p1/, p2/, ... for the partitions of a GPT or MBR disk (the kernel's
// partition numbers). What opens it is behind the Files interface
// (node_files.go); this package only presents the directory tree it is
// handed (a host directory) as a read-only passthrough.
//
// The root and its three directories are fixed. disks/, snapshots/ and
// images/ are dynamic: Lookup and Readdir ask the Backend every time, so new
// names appear and deleted ones disappear without remounting.
//
// # Invariants
//
//   - Inode numbers derive from Backend IDs (ino.go): kind tag in the top
//     byte, the ID below. They are stable across lookups and remounts and a
//     recreated name (new ID) gets a new inode.
//   - Every errno comes from toErrno (errno.go): the errno an error wraps, else
//     Options.Errno, the caller's one mapping from the engine's sentinel
//     errors (inside .files, errors of the host filesystem go through
//     filesErrno, node_files.go: corruption is EIO); every Backend error is
//     logged once, at the boundary, by mountState.fail.
//   - No panic escapes a FUSE request: methods that call the Backend recover
//     and return EIO (logging the stack), and go-fuse's PanicHandler backs
//     that up for everything else.
//   - Reads return their full length inside the image in every open mode
//     (buffered, O_DIRECT, FOPEN_DIRECT_IO): they are answered with
//     fuse.ReadResultData from a buffer filled by a loop over ReadAt, never
//     from a file descriptor (go-fuse's splice path has shortened those).
//   - There is no package-level state: two mounts work in one process.
//
// # Decisions
//
//   - disks/: create, unlink, rename, mkdir, link, symlink, mknod fail with
//     EPERM (disks are made and deleted with the CLI; EROFS would wrongly
//     claim the file system is read-only). The same holds in the root.
//   - snapshots/ and images/ and below: every change (open for writing,
//     O_TRUNC, write, setattr including utimes, create, unlink, mkdir, rmdir,
//     rename, link, symlink, mknod, fallocate, access(W_OK)) fails with
//     EROFS; a rename with a read-only side fails with EROFS too.
//     snapshot.json is read at open and served with
//     FOPEN_DIRECT_IO and no attribute caching, because its content (e.g. a
//     replication state) may change.
//   - Size: truncate to a larger size grows the disk (Backend ResizeDisk);
//     to a smaller one fails with EINVAL: disks never shrink. Note that an
//     open with O_TRUNC is a shrink to 0 and fails: use dd conv=notrunc.
//   - Writes: a write starting at or past the end fails with EFBIG (disks
//     grow only by truncate or fallocate); a write crossing the end is cut
//     short at the end (short count, as a block device does).
//   - chmod and chown of a disk fail with EPERM unless they change nothing
//     (mode 0600, owner = the daemon's user; images 0400: node_disk.go): mode and owner are fixed, and
//     claiming otherwise would mislead. utimes is accepted and ignored, so
//     that touch and cp -p do not fail; times come from storage.
//   - fallocate: PUNCH_HOLE|KEEP_SIZE and ZERO_RANGE[|KEEP_SIZE] call
//     Backend PunchHole on the part inside the disk (this is how ext4 on a
//     loop device passes discard/fstrim down). Mode 0 and KEEP_SIZE inside
//     the disk succeed doing nothing (storage is allocated on write). Mode 0
//     or ZERO_RANGE reaching past the end grows the disk, as
//     posix_fallocate(3) promises (EOPNOTSUPP would make glibc emulate it
//     with writes, which then fail with EFBIG). Other modes: EOPNOTSUPP.
//   - fsync and fdatasync call Backend Sync. Flush (every close(2)) calls
//     Sync when the handle wrote since its last sync, so close reports
//     write errors; read-only opens never sync.
//   - Extended attributes are disabled (DisableXAttrs): setxattr fails with
//     EOPNOTSUPP, and ls does not pay for getxattr round trips.
//
// # regions/ (node_regions.go)
//
// With Options.Regions, the root has a fourth directory, regions/: one
// directory per configured region, in each one per remote snapshot (a
// name shared by several hosts' snapshots is shown as name@host-id), in
// each its disks and their .files directories. Listing fetches no disk
// data: names come from Regions (manifests), and <d>.files is listed for
// every disk without probing it (probing a remote disk fetches blocks;
// the kernel looks up every name a READDIRPLUS lists), so a disk without
// a filesystem snapfs can show has a <d>.files that is ENOENT inside.
// The first lookup or listing inside probes and opens it as a local
// .files directory is opened. Disks are read-only (EROFS), opened with
// FOPEN_DIRECT_IO like snapshot disks; a block that cannot be fetched or
// verified is EIO, whatever errno its cause wraps (a store's ECONNREFUSED,
// a region lock's EAGAIN: remoteReads). Listing, opening and probing hide
// a raw errno of the cause too (EIO) but keep what Options.Errno maps
// (ENOENT, ENOKEY, a wrong key: remoteErr). Inode numbers are kind tags 7 to 9 with 56 bits of
// FNV-1a of the path (region, snapshot host and id, disk); <d>.files
// directories use the .files kind with bit 54 set.
//
// # .files directories (node_files.go)
//
//   - Looking up or listing <d>.files opens nothing: its attributes are
//     synthetic (0555, the snapshot's time); entering it (lookup or readdir
//     inside) calls Files.Enter, and every operation inside holds the tree
//     for its duration (open files until release), so the implementation
//     may release idle trees and open them again on the next access.
//   - Inode numbers: kind tag, a per-mount tree number, and the inode
//     number inside the filesystem (stable across a release and reopen;
//     hard links keep one inode, so cp -a keeps them); numbers that do not
//     fit, or that are on another device (btrfs subvolumes), are numbered in
//     order of first sight.
//   - Owners, modes, times, sizes, st_blocks, symlink targets and extended
//     attributes are the filesystem's; extended attributes are turned on
//     for the whole mount when Options.Files is set (the other nodes have
//     none). Files open with FOPEN_DIRECT_IO (as images; the host
//     filesystem caches) and answer SEEK_DATA/SEEK_HOLE, so cp and tar
//     keep holes. Every change is EROFS.
//   - Errors of the host filesystem that mean corruption (EUCLEAN, EBADMSG,
//     ...) and anything unexpected are EIO; ordinary ones (ENOENT, ENODATA,
//     ENOTDIR, ...) pass. A filesystem that cannot be mounted is EIO on
//     entering.
//   - Access: the mount is reachable by its owner only unless AllowOther.
//     With AllowOther, a caller other than root and the owner gets what the
//     stored modes allow (read to open or list, search to look up: owner,
//     group by the caller's primary group, other); the daemon itself
//     reads as root. Supplementary groups and ACLs are not consulted.
//
// # Mount options and why
//
//   - Mounted with mount(2) directly when running as root (DirectMountStrict),
//     falling back to fusermount3 when not root or when that fails and
//     fusermount3 is on PATH. Type "fuse.snapfs", source Options.FsName
//     (default "snapfs"). allow_other only with Options.AllowOther.
//   - MaxWrite 1 MiB (go-fuse caps it at what the kernel allows; it also
//     sets max_read and max_pages): fewer, larger requests for sequential
//     I/O; the engine's block size goes up to 1 MiB. A request maps at most
//     max_pages (256) pages of the caller's buffer, so a 1 MiB write from a
//     buffer that is not page-aligned (fio's buffered jobs: malloc) arrives
//     as two requests, 1 MiB less the misalignment and the rest, sent one
//     after the other (measured: 1 MiB - 16 B and 16 B; 15-25 % of the
//     sequential-write throughput against page-aligned buffers, rowstore
//     doc "Data path"). Only /proc/sys/fs/fuse/max_pages_limit above 256
//     with a MaxWrite of 1 MiB + 4 KiB would make it one; page-aligned
//     callers (loop devices, VMs, O_DIRECT) are not affected. MaxReadAhead 1 MiB
//     (the kernel clamps it to its readahead window).
//   - Async read on (go-fuse default): the kernel may issue readahead and
//     concurrent reads; the Backend handles concurrent ReadAt. Requests are
//     served concurrently (go-fuse default; not SingleThreaded).
//   - MaxBackground 64 (kernel default 12): loop devices and VMs keep many
//     asynchronous reads in flight. Congestion threshold 3/4 of it.
//   - Asynchronous direct I/O (CAP_ASYNC_DIO), as the userspace loopback of
//     the benchmark has it: without it the kernel serves an asynchronous
//     direct read or write (libaio, io_uring, a loop device with direct-io)
//     synchronously inside the submitting call, so a queue of 16 reaches
//     the daemon one request at a time (measured: random 4 KiB direct reads
//     at iodepth 16 went from 4.9k and 1.3k to 9.1k and 5.7k IOPS, two
//     interleaved pairs, load 42 to 48). A request split in pieces that
//     fails in one of them fails whole (the kernel returns the error, not a
//     short count).
//   - Disks, snapshot disks and images open with FOPEN_DIRECT_IO: every
//     read(2) reaches the Backend whole, so a read that covers a corrupt
//     block fails as a whole with EIO (issue 7, finding 5). Through the
//     page cache it could not: the kernel's readahead request fails, it then
//     reads the first page alone (fine), copies it, fails on the next and
//     returns a short count, which loop devices and VMs take for the end of
//     the disk (measured on 6.18: a 16 KiB pread returned 4096; test
//     integration/TestEIONotShortCount). mmap still works
//     (CAP_DIRECT_IO_ALLOW_MMAP, Linux 6.6+). The cost: no page cache for
//     reads, so small reads each make a round trip (loop devices and VMs
//     cache above us anyway).
//   - Writeback cache off by default (Options.WritebackCache turns it on).
//     fsync semantics would still hold with it (the kernel writes dirty
//     pages back before sending FSYNC, and before FLUSH on close), but: the
//     kernel becomes authoritative for size and mtime, so a write past the
//     end would be accepted into the page cache and fail only at writeback,
//     where no application sees the error; a forced rollback could be
//     overwritten by dirty pages written back after it; and measured here
//     (BenchmarkSequentialWrite) it is an order of magnitude slower for
//     1 MiB sequential writes, as FUSE's strict dirty limits throttle it.
//     Without it every write(2) reaches the Backend synchronously, which has
//     its own write-back cache.
//   - ExplicitDataCacheControl: the kernel does not drop cached pages when it
//     sees a disk's mtime change (every write changes it, so it would drop
//     them all the time). This mount is the only writer of disks; changes
//     made behind its back (forced rollback, resize, restore) are announced
//     with Server.InvalidateDisk (only mmap'd pages are cached: reads and
//     writes are direct).
//   - Timeouts: the fixed directories and the files of a snapshot directory
//     are cached for an hour (they never change); names and disk attributes
//     in the dynamic directories for Options.NameTimeout (default 0: every
//     path walk asks the Backend, which is cheap, and st_blocks is always
//     current); negative lookups are never cached. Server.InvalidateNames
//     drops cached names at once for callers that choose a longer timeout.
//   - statfs (df): every node outside .files reports the filesystem that
//     holds the store (Options.StatfsPath), what disks can still take; a
//     .files tree reports the filesystem inside the disk. go-fuse answers
//     all zeros for a node without Statfs, so each node type has one.
//   - Passthrough disabled (CAP_PASSTHROUGH): go-fuse would negotiate it as
//     root, and we never hand out file descriptors. Splice disabled for the
//     same reason.
package fs
