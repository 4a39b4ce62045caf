#!/usr/bin/env bash
# Sets up and runs snapfs on its embedded default: a store in a local
# directory (SNAPFS_STORE, default /var/lib/snapfs), mounted in the
# background at MOUNTPOINT (default /mnt/snapfs). Run as root on Debian.
#
#   scripts/run.sh [MOUNTPOINT]
#
# It builds snapfs as install.sh lays it out: the light front as
# /usr/local/bin/snapfs (it serves snapshot create, disk create, disk rollback,
# image create, status and the lists of snapshots, disks and images through the daemon and hands everything else on) and the
# full binary as /usr/local/lib/snapfs/snapfs-full; it installs the tools the
# quick start uses (mkfs.ext4, losetup) if missing, creates the store if it
# does not exist yet, and mounts it. Stop it with: snapfs umount MOUNTPOINT
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PATH:/usr/local/go/bin
mnt=${1:-/mnt/snapfs}
store=${SNAPFS_STORE:-/var/lib/snapfs}

if ! command -v go >/dev/null; then
	echo "run.sh: Go is not installed (Go 1.26 or newer at /usr/local/go)" >&2
	exit 1
fi
need=()
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v losetup >/dev/null || need+=(mount)
if ((${#need[@]})); then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
modprobe fuse 2>/dev/null || true

# CGO_ENABLED=0: a static binary; every CLI command starts ~1.5 ms sooner
# (measured: snapfs --version 9.4-11.9 ms vs 10.8-15.7 ms a run, load 9-12).
mkdir -p /usr/local/lib/snapfs
CGO_ENABLED=0 go build -o /usr/local/lib/snapfs/snapfs-full ./cmd/snapfs
CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o /usr/local/bin/snapfs ./cmd/snapfs/front
if [[ ! -e $store/superblock ]]; then
	snapfs --store "$store" init
fi
mkdir -p "$mnt"
if mountpoint -q "$mnt"; then
	echo "run.sh: $mnt is already mounted" >&2
	exit 0
fi
snapfs --store "$store" mount --background "$mnt"
echo "snapfs: store $store mounted at $mnt (stop: snapfs --store $store umount $mnt)"
