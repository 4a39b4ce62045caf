// Command snapfs manages a snapfs store and serves it as a FUSE mount.
//
// # Commands
//
//	snapfs [--store DIR] [--json] [--log-level L] COMMAND ...
//
//	init                                   create a store (an existing one is left alone: exit 4)
//	mount MOUNTPOINT [--background]        the daemon: mount, serve the control socket, until umount/SIGINT/SIGTERM
//	umount MOUNTPOINT                      ask the daemon to flush, unmount and exit; wait until it has
//	disk create NAME --size SIZE [--block-size SIZE]
//	disk create NAME --from-snapshot SNAP --disk SRC
//	disk create NAME --from-image IMAGE
//	disk list | info NAME | resize NAME --size SIZE | delete NAME [--force]
//	disk rollback NAME --snapshot SNAP [--force]
//	snapshot create NAME --disk D [--disk D2 ...]   several disks form one consistency group
//	snapshot list [--disk D] | info NAME | delete NAME
//	snapshot diff OLD [NEW] --disk D       changed byte ranges (NEW defaults to the disk now)
//	snapshot mount NAME --disk D MOUNTPOINT [--fstype T]
//	snapshot umount MOUNTPOINT
//	image create NAME --snapshot SNAP --disk D | list | delete NAME
//	usage                                  logical, allocated and exclusive bytes per disk, snapshot, image
//	gc                                     garbage collection and segment cleaning, now
//
// Flags may follow positional arguments (disk create vol1 --size 1G).
// --store defaults to $SNAPFS_STORE, then /var/lib/snapfs. With --json every
// command that prints writes one JSON object per line, each with a "type"
// field (disk, snapshot, image, range, diff, usage, store_usage, gc, deleted,
// snapmount, mount, umount, store). `snapshot info --json` prints exactly
// what M/snapshots/NAME/snapshot.json holds.
//
// Sizes are a number with an optional suffix: K, M, G, T, P (any case) are
// powers of 1024, as in dd and qemu-img (1G = 2^30 bytes), and so are KiB,
// MiB, GiB, ...; KB, MB, GB, ... are powers of 1000. Disk sizes must be
// multiples of 512 bytes; block sizes powers of two from 4K to 1M.
//
// # Daemon and control socket
//
// `snapfs mount` opens the store (Badger allows one process per store),
// mounts the namespace (package fs) and serves the control API, HTTP+JSON
// on the unix socket <store>/control.sock (mode 0600). Every other command
// first asks that socket; when a daemon answers, the command runs in it,
// otherwise the command opens the store itself. Both paths run the same code
// (internal/service: Local in-process, Client over the socket). A store that
// is locked while its socket does not answer is reported as busy (exit 5).
//
// `mount --background` re-executes itself in a new session and returns when
// the child reports on a pipe that the mount and socket are ready, or with
// the child's error and exit code; the child logs to <store>/snapfs.log.
// The daemon holds an flock on <store>/daemon.lock for its whole life, and
// `snapfs umount` waits for it, so when umount returns the store is closed.
// Snapshots taken through the daemon contain every write acknowledged before.
// After a forced rollback or a resize the daemon drops the kernel's cached
// pages of that disk; after creating or deleting disks, snapshots or images,
// the kernel's cached names.
//
// `snapshot mount` needs a daemon: it makes a throw-away writable clone of
// the snapshot's disk (snapmount-<snapshot>-<disk>-<n>, listed by disk list),
// attaches M/disks/<clone> to a loop device read-write (so a dirty ext4 or
// xfs journal can replay) and mounts it with -o ro. It records what it did in
// <store>/snapmounts/<hash of MOUNTPOINT>.json; `snapshot umount` unmounts,
// detaches the loop device and deletes the clone.
//
// # Exit codes
//
//	0  success
//	1  any other failure
//	2  usage error or invalid argument (bad name, size, flag); nothing was changed
//	3  not found (disk, snapshot, image, store, snapshot mount)
//	4  already exists
//	5  busy (open disk without --force, busy mount, store held by another process)
//	6  corrupt data detected
//	7  no space left on the store's device
//	8  incompatible store format or daemon version
//	9  no daemon where one is needed (snapshot mount, umount)
//	10 read-only
//
// Every error is one line on stderr, starting with "snapfs: ". The codes are
// the constants of internal/exitcode and do not depend on whether a daemon
// runs.
package main
