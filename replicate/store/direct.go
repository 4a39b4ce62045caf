package store

import "github.com/snapfs/snapfs/rowstore/vfs"

// Large objects (a pack's shards) are written with direct I/O (O_DIRECT):
// the bytes go from the caller's buffer to the device, not through the
// page cache. Measured on this project's virtio disk (dd, 2 MiB writes,
// then fsync): 810 MB/s and 0.06 s of system time per 512 MiB direct,
// 233 MB/s and 0.94 s buffered: a buffered write copies every byte into
// the page cache, and the fsync that must follow it (an object is durable
// before anything names it) then writes it back from there, while a
// region's shards are not read again soon. What makes the object durable
// is unchanged: the temporary file is fsynced (its size and extents; the
// device's cache), renamed over the name, the directory fsynced.
//
// Direct I/O needs the buffer, the file offset and the length aligned to
// the device's logical block (directAlign covers every common device):
// the aligned prefix of the object is written directly (from the caller's
// buffer when it is aligned, which Go's large allocations are, else
// through an aligned bounce buffer), the unaligned tail (under a block)
// through the page cache on the same descriptor. A file system that
// refuses O_DIRECT (EINVAL, as tmpfs before Linux 6.6 did, or
// EOPNOTSUPP) is remembered and written to as before (vfs.WriteFile); so
// is any object a direct write fails on that way. The write itself is
// vfs.WriteFileDirect, beside vfs.WriteFile: the one write-temp-then-rename.

const (
	// directMin is the smallest object written directly: below it the
	// page cache costs little, and small objects (indexes, manifests,
	// locks) are read back soon.
	directMin = 1 << 20
	// directAlign is the alignment of buffers, offsets and lengths.
	directAlign = vfs.DirectAlign
)

// Reads stay buffered. Restore's way of reading (8 data shards of 2 MiB
// at once from a cold cache) was measured both ways, interleaved
// (BenchmarkReadIntoCold of an earlier version, load 13-15): buffered
// 813-1132 MB/s and 0.29-0.33 CPU-s per GB, direct through an aligned
// bounce buffer (a shard's payload goes to an arbitrary offset of the
// pack, so the caller's buffer is not aligned) 615-955 MB/s and 0.29-0.48
// CPU-s per GB: the copy out of the bounce buffer costs what the page
// cache's did, and the kernel's readahead of a whole small file beats
// synchronous direct reads.
