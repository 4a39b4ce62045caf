// Package store is where a region's shards and metadata live: one Store is
// one failure domain of a region (shard position i of a pack goes to store
// i). It owns the Store interface, the backends behind it, and the wrappers
// that add behaviour to any backend. It knows nothing of shards, packs or
// encryption: it moves named byte strings.
//
// # Promises
//
// The Store interface (store.go) writes down every promise a backend keeps;
// the conformance suite in storetest checks them all against every backend.
// In short:
//
//   - Put is atomic (a reader sees the whole new object, the whole old one,
//     or none) and idempotent (putting a name again replaces it).
//   - Get reads [off, off+length) exactly, or fails: a missing object wraps
//     ErrNotFound, a range outside the object wraps ErrShortRead.
//   - List calls fn once per object with the prefix, in lexical order.
//   - Delete of a missing object succeeds.
//   - Names are slash-separated relative paths of [A-Za-z0-9._-]
//     components (no "", ".", ".."), checked by every method (ValidName,
//     ErrInvalidName); a name is never also a "directory" of another.
//
// # Backends
//
// Open picks the backend from the URL:
//
//   - file:///abs/path: Local, a directory, which must exist: Open never
//     creates it (a missing one, e.g. an unmounted NAS, is ErrMissing, so a
//     "remote" copy never lands on the local disk). CreateLocal, used when
//     a region is created, makes it only inside a mounted file system other
//     than / (its parent must exist on another device). Put writes through
//     vfs.WriteFile (a temporary file in the target directory, fsynced,
//     renamed into place, the directory fsynced); List skips temporary
//     names (vfs.IsTemp, and "~put-*" of older versions) and removes those
//     in the directories it walks older than TempOrphanAge (an hour, by
//     modification time: a killed put's leftover, never a live put's
//     file), so every prune, repair and lock listing sweeps them. Objects of 1 MiB
//     or more (a pack's shards) are written the same way with direct I/O,
//     bypassing the page cache (direct.go: sync's way of putting shards,
//     BenchmarkPutShards, went 1.4x as fast for a quarter of the CPU); a
//     file system that refuses O_DIRECT gets buffered writes. Reads stay
//     buffered (measured: no faster direct, no cheaper).
//   - s3://bucket/prefix: any S3-compatible service (AWS S3, Alibaba OSS,
//     MinIO, Ceph RGW, SeaweedFS, versitygw), through minio-go. If the
//     bucket does not exist Open creates it (in Options.Region); a store
//     owns its prefix, not the bucket. Options default from the standard
//     AWS_* environment variables. Objects above 64 MiB go up as multipart
//     uploads, which S3 also publishes atomically. No S3 call hangs for
//     ever: a response's headers must come within 30 s of the request,
//     and a connection in use that moves no byte either way for
//     Options.IdleTimeout (default $SNAPFS_S3_IDLE_TIMEOUT, else 60 s) fails
//     its call, a body stalled mid-transfer included (a deadline pushed on
//     every read and write of the connection, both ways: a long upload is
//     progress for the read waiting on its answer). No library: the
//     standard net.Conn deadlines do it in 40 lines.
//
// Why minio-go (github.com/minio/minio-go/v7): Apache-2.0, a small
// dependency tree next to the AWS SDK v2, and written for any
// S3-compatible service (path-style addressing, custom endpoints, plain
// HTTP, signature v4 and v2), which is what regions are built from. It does
// ranged GETs, recursive prefix listings and multipart uploads, and it is
// tested daily against services other than AWS.
//
// # Wrappers
//
// Wrap stacks behaviour on a backend; each wrapper implements the whole
// interface and keeps its promises:
//
//   - fault injection (Faults): fail the n-th call of a method, or the
//     calls a function picks by name; make the store "down"; corrupt the
//     bytes Get returns; delay calls by name; or, seeded, random delays,
//     errors and lost acknowledgements (a Put or Delete that takes effect
//     and then fails). For tests of the layers above: degraded reads,
//     repair, resumable sync, the region lock protocol.
//   - retry (RetryOptions): exponential backoff with jitter, honouring ctx,
//     never retrying permanent errors (see Permanent: ErrNotFound,
//     ErrInvalidName, ErrShortRead, a cancelled context). A failed List is
//     resumed after the last name delivered, so fn still sees each object
//     once.
//
// Open returns the bare backend; callers that want retries wrap it.
//
// # Tests
//
// storetest.Run is the conformance suite; this package runs it against
// Local, Local behind the wrappers, and S3 against a real versitygw server
// on 127.0.0.1 started by s3test.Start (scripts/versitygw.sh installs it;
// SNAPFS_REQUIRE_S3=1 turns a missing server from a skip into a failure).
package store
