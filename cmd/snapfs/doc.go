// Command snapfs manages a snapfs store and serves it as a FUSE mount.
//
// # Commands
//
//	snapfs [--store DIR] [--json] [--log-level L] COMMAND ...
//
//	init                                   create a store (an existing one is left alone: exit 4)
//	mount MOUNTPOINT [--background] [--metrics ADDR] [--pprof ADDR] [--force]
//	                                       the daemon: mount, serve the control socket, until umount/SIGINT/SIGTERM
//	status                                 the daemon's state (mounts, open disks, cache, jobs, region lag)
//	version | help [COMMAND] | completion bash|zsh|fish
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
//	region add NAME --data K --parity M --store URL ... --key-file F
//	           [--s3-endpoint E --s3-region R --s3-path-style --s3-insecure]
//	region list | info NAME | remove NAME | snapshots NAME
//	region check NAME [--read-data]        exit 12 when anything is missing or corrupt
//	region repair NAME                     exit 12 when some copies could not be rebuilt
//	region prune NAME [--keep-last N | --keep-within DURATION]   default: the region's retention
//	region retention NAME (--keep-last N | --keep-within D | --clear)
//	region add ... [--create] [--keep-last N] [--keep-within D];  region repair NAME [--new-store I]
//	sync [--region NAME] [--disk D ...]    copy every local snapshot (of those disks) not yet in the region
//	                                       (every region without --region), within the region's retention
//	policy create NAME --at HH:MM[,...] [--weekdays mon,...] [--every D] (--retain-days N | --retain-count N |
//	           --retain-forever) [--copy-to R [--copy-retain-days N | --copy-retain-count N]] [--timezone TZ]
//	           [--consistency crash|fs|app] [--freeze DISK=MP] [--pre-hook C --post-hook C] [--disk D ...]
//	policy apply NAME --disk D | cancel NAME --disk D | list | info NAME | delete NAME | quota [...]
//	snapshot create NAME --disk D [--freeze MP] [--pre-hook C] [--post-hook C] [--hook-timeout D]
//	snapshot delete NAME --dry-run         what deleting it would free
//	snapshot copy SNAP --region NAME       copy one snapshot
//	restore --region NAME --snapshot SNAP --disk D --to NEWDISK
//	check [--read-data] [--max-duration D] verify the store; exit 6 when anything is corrupt
//	index rebuild                          rebuild the index from the segment log (store unmounted)
//	repair --from-region NAME              rewrite corrupt or missing blocks from a region; exit 6 if some are left
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
// An umount refused as busy names what holds the mount (service.Holders: loop
// devices backed by its disks, processes with their cwd or files in it), as
// disk delete and disk rollback of an open disk do for its file.
// Snapshots taken through the daemon contain every write acknowledged before.
// After a forced rollback or a resize the daemon drops the kernel's cached
// pages of that disk; after creating or deleting disks, snapshots or images,
// the kernel's cached names.
//
// `snapshot mount` needs a daemon, which does every step
// (Service.MountSnapshot, with the code of the .files directories, package
// browse): a throw-away writable clone of the snapshot's disk
// (snapmount-<snapshot>-<disk>-<n>, recorded in the ledger
// <store>/snapmounts/clones/ before it is made, never listed by disk list
// or in M/disks/ but openable by name), M/disks/<clone> attached to a loop
// device read-write (so a dirty ext4 or xfs journal can replay) and
// mounted read-only, nodev, nosuid, noexec; then the record
// <store>/snapmounts/<hash of MOUNTPOINT>.json (vfs.WriteFile). A request
// whose command was killed is undone by the daemon. `snapshot umount`
// unmounts, detaches the loop device, deletes the clone and its ledger
// entry. What a daemon killed half-way left is undone at the next daemon
// start (service.CleanScratch): mount, loop device, clone, record, ledger.
//
// `M/snapshots/<s>/<d>.files/` and `M/images/<i>.files/` (mount
// --files-max, --files-idle), `snapshot diff --files` and `restore-file`
// are described in package browse's doc.go; restore-file reads through the
// daemon's mount (<M>/snapshots/<s>/<d>.files/...) and copies in this
// process, staged in the target directory: on failure nothing is left.
//
// # Two binaries: the front and the full binary
//
// `go build ./cmd/snapfs` gives a complete snapfs. Installed
// (scripts/install.sh, scripts/run.sh), snapfs is two static binaries:
// PREFIX/bin/snapfs is the front (cmd/snapfs/front), which links none of
// the engine, regions, index, metrics or FUSE and so starts like any small
// Go program; PREFIX/lib/snapfs/snapfs-full is this command. The front runs
// the hot commands, `snapshot create`, `disk create`, `disk rollback`,
// `image create`, and the read-only `status`, `snapshot list`, `disk list`
// and `image list`, itself when a daemon answers on the store's
// control socket, and otherwise execs the full binary with the same argv and
// environment: every other command, --help, --version, completion, a flag
// it does not know, a usage error, a store without a daemon. It finds the
// full binary at $SNAPFS_FULL, else at ../lib/snapfs/snapfs-full relative to
// its own path, else snapfs-full beside it. The units run the full binary
// directly; the fstab helpers and scripts call `snapfs`, which execs it.
//
// No command is written twice: the hot commands' flags, help, validation,
// control-socket call, output and exit codes are package internal/hot's,
// which this binary uses too (hotCommand in main.go): through the daemon it
// runs exactly the front's code, and without one it makes the same request
// on the store opened here and prints the answer with the same function.
// Their --json lines are the daemon's JSON object with a leading "type".
// The control socket's transport, the hot requests' types, the wire-code to
// exit-code mapping and the one-line error message are package
// internal/wire's (standard library only), which package service builds
// on. cmd/snapfs/front's tests check that the light packages link nothing
// heavy (go list -deps) and that both binaries print the same stdout,
// stderr and exit code for each hot command and for the command lines the
// front hands on, against real daemons.
//
// # Regions
//
// Package replicate does the work (layout and invariants in its doc.go);
// the commands only configure and call it. A region's configuration lives
// in <store>/regions/NAME.json (never the key, only the key file's path,
// made absolute by the command). `region add` probes every store; when the
// stores already hold the region (created by another host with the same key)
// it attaches and says "attached", otherwise "created". In `region add`,
// --store is a region store URL (repeat K+M times, in shard order); give the
// store directory with the global --store before the command, or
// $SNAPFS_STORE. S3 credentials come from s3://KEY:SECRET@bucket/prefix or
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, read by the process that
// opens the stores: with a daemon running, the daemon's environment (set it
// in its unit), not the command's. Secrets in URLs are masked in output.
//
// One replicate.Manager is made per process (by service.Local, on first
// use) and closed with it. `snapshot info` and snapshots/S/snapshot.json
// show "copies": per configured region absent, copying, available or
// degraded, with "as_of". They come from <store>/copies/REGION.json, this
// host's record, rewritten from the region's listing after each sync, check,
// repair, prune, region add and region snapshots (and set to copying when a
// sync starts on a snapshot), so reading snapshot.json never contacts a
// store. A snapshot another host copied or pruned shows up after the next
// of those commands here.
//
// M/regions/<r>/<s>/<d> (and <d>.files/) serve remote snapshots on demand
// in the daemon: service/local_remote.go lists each region's snapshots
// from its manifests (reused 10 s), shares one replicate.RemoteDisk per
// disk between its opens (closed with the last; it holds a shared region
// lock), fills the block cache in the store (mount --region-cache, default
// 1G), and opens .files over an overlay clone (an empty local disk taking
// journal replay's writes in front of the remote disk; scratch ledger as
// for local clones). A disk encrypted on its host is ENOKEY there.
//
// Progress: sync, snapshot copy, restore, region check and region repair
// draw a progress bar on stderr when it is a terminal, and otherwise (or
// with --progress plain) print one line on stderr every 5 s; --progress none
// is silent. The first SIGINT or SIGTERM cancels the job cleanly: it says
// what finished and what the next run resumes, and exits 130 (a second one
// kills at once). With --json they
// print every progress event as one JSON line on stdout, {"type": start,
// snapshot, pack, blocks or done, "op": sync, restore, check or repair,
// "region", "snapshot", "disk", "blocks", "blocks_total", "bytes",
// "error"}, then one result line (type sync, restore, check, repair,
// prune); otherwise they print only the result. Through the daemon these
// jobs are streaming calls on the control socket (see internal/service):
// events arrive as they happen and no deadline applies, however long the
// job; interrupting the command (Ctrl-C) closes the connection and cancels
// the job in the daemon (sync and restore are safe to run again).
//
// # Check, index rebuild, repair
//
// `check` verifies the superblock, the catalog (every layer, parent, disk,
// snapshot member and image reference resolves), the index (every block
// version points into an existing segment, within bounds) and, with
// --read-data, every stored block (record CRC, CRC and SHA-256 the index
// keeps) and every record of the log. Each problem names the disks,
// snapshots and images that read it, the block and the segment and offset
// (with --json, one "check" object with "problems"). It draws a progress
// bar on a terminal; --json prints progress events of op "store-check".
// --max-duration stops the data pass early and saves a cursor in
// <store>/check-cursor.json; the next check --read-data continues from it
// and says so ("resumed from"). Exit 0 clean, 6 corrupt. It works with and
// without a daemon.
//
// A store whose index does not match its log (missing, emptied, without
// Badger's MANIFEST, another store's, or behind the log) is refused by every
// command with exit 6 and a message naming `snapfs index rebuild`; nothing
// is changed. `index rebuild` needs the store unmounted (exit 5 while a
// daemon serves it): it moves the old index aside to <store>/index.bad-TIME
// (never deleted: the output names it as a safety copy to remove once
// check is clean), replays the whole segment log into a new index, block
// versions and catalog alike, and prints what it found. A corrupt record
// never makes it drop the records after it: a damaged block whose record
// header is intact is indexed so that its reads fail with EIO and check
// --read-data names it, other damaged records are listed (segment, offset,
// bytes), and it exits 6 (the index is rebuilt, the data not whole). Only
// a bad tail with nothing valid after it is cut, as after a crash, and
// listed ("cut: ...").
//
// `repair --from-region R` runs check --read-data and fetches every bad
// block from the region by its SHA-256, rewriting it where the digest
// matches (every disk, snapshot and image sharing it is repaired); what it
// could not repair is listed, exit 6. When every block was repaired, the
// segments that held bad records are cleaned and removed, so check is then
// clean.
//
// # Lineage
//
// `disk info` and `disk list` show a clone's origin as it stands: "snapshot
// S/D" or "image I", with "(deleted)" once that snapshot or image is gone
// (or was deleted and made again after the clone). There is no `disk
// promote`: a clone never depends on its origin existing. Deleting the
// origin keeps what the clone reads (the engine retains those blocks, and
// `usage` counts them), so there is no dependency to break, and a promote
// could not free any space the clone still reads.
//
// # Exit codes
//
// The exit codes, with the errno the mount returns and the code on the
// control socket for every sentinel error, are one table: package
// internal/exitcode (`snapfs help exit-codes` prints it; README's copy is
// tested against it). Every error is one line on stderr, starting with
// "snapfs: ", without package prefixes (exitcode.Message). The codes do not
// depend on whether a daemon runs.
//
// # Service, metrics, status, docs
//
// `mount --metrics ADDR` serves Prometheus metrics (internal/metrics);
// `status` reports the daemon's mounts, open disks, cache, running jobs,
// the last snapshot per disk and each region's lag (from this host's copy
// records). The daemon tells systemd it is ready (sd_notify) and pings its
// watchdog; scripts/snapfs@.service, scripts/mount.snapfs and
// scripts/install.sh run it at boot. The man page, cmd/snapfs/doc/cli.md and
// the completion scripts in cmd/snapfs/doc are generated from the command
// definitions (scripts/gendoc.sh; TestGeneratedDocsUpToDate).
package main
