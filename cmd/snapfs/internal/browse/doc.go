// Package browse opens the filesystems inside snapshot disks and images:
// the M/snapshots/<s>/<d>.files and M/images/<i>.files directories of the
// mount, `snapshot mount`, `snapshot diff --files` and `restore-file`. It
// owns everything it opens on the host (scratch clones through its Host,
// loop devices, kernel mounts) and its cleanup.
//
// # What a .files directory shows (naming scheme)
//
// Probe reads a few sectors of the image (never the whole disk) and finds:
//   - a filesystem on the whole disk (ext2/3/4, xfs or btrfs superblock):
//     <d>.files is its root;
//   - a GPT (protective MBR + "EFI PART" header, header and partition
//     array checksums verified) or an MBR (primary slots only; logical
//     partitions are not shown): <d>.files has one directory per partition
//     holding one of those filesystems, named pN with the kernel's numbers
//     (GPT entry index + 1, MBR slot + 1): p1/, p2/, ...;
//   - nothing readable: no .files entry, and Layout.Reason says why (shown
//     by `snapshot info` in its FILES column and in snapshot.json).
//
// Layouts are cached per source (snapshot or image ID: immutable).
//
// # How a filesystem is opened, and why the kernel
//
// Acquire makes a scratch clone of the source (constant time, a new layer
// over the snapshot; recorded in service's scratch ledger before it exists,
// never listed), attaches M/disks/<clone> (the daemon's own mount) to a
// writable loop device per filesystem (offset and size limit of the
// partition: kernels built without partition table support, as the 6.18
// one these tests run on, ignore partition scanning), and mounts it
// read-only, nodev, nosuid, noexec under Options.Dir (<store>/files/<n>/,
// 0700), with errors=remount-ro for ext4 (overriding errors=panic in a
// hostile superblock) and nouuid for xfs (the clone has the UUID of its
// origin). A journal that needs replay is replayed by the kernel into the
// writable clone, so the files are shown as after replay and the snapshot
// is never written.
//
// Chosen over an in-process reader because the kernel reads every feature
// of ext4, xfs and btrfs and replays their journals correctly, and no Go
// library does (the ones that exist read a subset of ext4 and no journal).
// The costs, and how they are paid: loop devices and mounts to clean up
// (autoclear loop devices; Release/ReleaseAll/Close; Clean and the scratch
// ledger at the next start after a crash), and a hostile image reaches the
// kernel's filesystem code (a mount that does not answer in MountTimeout
// fails and is detached when it returns; the options above; the residual
// risk is a kernel bug in a filesystem driver, which is also what a user
// mounting the image by hand takes). Measured: entering a 10 GiB ext4
// holding 100,000 files took 0.38 s at a load average of 30 on 2 cores
// (clone, loop device, mount; ls of the root).
//
// # Bounded
//
// At most Options.MaxOpen sources are open; opening another releases the
// least recently used one not in use (a tree is in use while a FUSE
// operation runs in it or a file in it is open); when all are in use the
// open waits up to 10 s for one to be released, then fails with
// ErrTooMany (EBUSY). Opening and closing are serialized
// (opMu), so the count of trees in any state between "mounting" and
// "unmounted" never exceeds MaxOpen. A janitor releases trees unused for
// Options.Idle. ReleaseAll (before the daemon unmounts its mount, which the
// loop devices hold) closes the files opened in trees and unmounts
// everything, lazily if a mount stays busy for a second.
//
// # Deadlocks
//
// The loop devices read M/disks/<clone> through the daemon's own FUSE
// mount. That is safe because: the kernel mounts are outside the mount
// (<store>/files); go-fuse serves requests on as many goroutines as are
// needed (only readers of /dev/fuse are capped), so a FUSE request that
// waits on the inner filesystem, which waits on a loop read, which is a
// FUSE request, always finds a goroutine; and nothing here calls the
// Service's hooks (kernel cache invalidation) from inside a FUSE request.
//
// # File diff and copy
//
// Walk stats every entry of a tree (statx, with the birth time, 4
// goroutines per directory level); Compare matches files by inode number
// and birth time, so a rename is found as such and a reused inode number is
// not. The engine's block diff is asked first: no changed block, no
// changed file, answered without mounting anything. Measured on a 10 GiB
// ext4 with 100,100 entries (1000 appends, 500 deletions, 500 creations,
// 200 renames between the snapshots), load average 30 on 2 cores: 5.8 s
// with both trees cold, 2.5 s with them open. Using the changed blocks
// further (skipping the statx of inodes whose inode-table block did not
// change) would at most halve that, since the older tree must still be
// listed whole to give paths: not done. Copy is restore-file: cp -a semantics, staged inside the target and
// moved into place only when everything was copied.
package browse
