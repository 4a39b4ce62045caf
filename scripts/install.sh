#!/usr/bin/env bash
# install.sh: build and install snapfs as a service.
#
#   scripts/install.sh [PREFIX]        (as root; PREFIX defaults to /usr/local)
#
# Installs the binaries: PREFIX/bin/snapfs, the light front (cmd/snapfs/front),
# which runs snapshot create, disk create, disk rollback, image create,
# status, snapshot list, disk list and image list itself over the daemon's control socket and execs the full binary,
# PREFIX/lib/snapfs/snapfs-full (cmd/snapfs), for everything else; the
# units run the full binary directly. Then the fstab helpers
# (/sbin/mount.snapfs, also as mount.fuse.snapfs, and /sbin/umount.fuse.snapfs), the units
# (/etc/systemd/system/snapfs@.service, snapfs-sync@.service and .timer),
# the man page, the shell completions, and an example environment file
# (/etc/snapfs/example.env). It enables nothing. Then, for /mnt/snapfs:
#
#   printf 'SNAPFS_STORE=/var/lib/snapfs\n' > /etc/snapfs/mnt-snapfs.env
#   snapfs --store /var/lib/snapfs init
#   systemctl enable --now snapfs@mnt-snapfs
#
# or in /etc/fstab:  /var/lib/snapfs /mnt/snapfs snapfs defaults,_netdev 0 0
# DESTDIR=/some/root installs into a staging tree (packaging, tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PATH:/usr/local/go/bin
prefix=${1:-/usr/local}
d=${DESTDIR:-}
version=${SNAPFS_VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# CGO_ENABLED=0: static binaries that start faster (see scripts/run.sh).
# The front is built without urfave/cli's man-page generator (it never
# prints help: the full binary does).
CGO_ENABLED=0 go build -ldflags "-X main.version=$version" -o "$tmp/snapfs-full" ./cmd/snapfs
CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o "$tmp/snapfs" ./cmd/snapfs/front

install -D -m 0755 "$tmp/snapfs-full" "$d$prefix/lib/snapfs/snapfs-full"
install -D -m 0755 "$tmp/snapfs" "$d$prefix/bin/snapfs"
# The fstab helpers look for snapfs under this prefix first (then /usr/local/bin, /usr/bin, PATH).
sed "s|for c in /usr/local/bin/snapfs|for c in $prefix/bin/snapfs /usr/local/bin/snapfs|" scripts/mount.snapfs >"$tmp/mount.snapfs"
sed "s|for c in /usr/local/bin/snapfs|for c in $prefix/bin/snapfs /usr/local/bin/snapfs|" scripts/umount.fuse.snapfs >"$tmp/umount.fuse.snapfs"
install -D -m 0755 "$tmp/mount.snapfs" "$d/sbin/mount.snapfs"
install -D -m 0755 "$tmp/umount.fuse.snapfs" "$d/sbin/umount.fuse.snapfs"
ln -sf mount.snapfs "$d/sbin/mount.fuse.snapfs" # fstab type fuse.snapfs works too
sed "s|/usr/local/bin/snapfs|$prefix/lib/snapfs/snapfs-full|g" scripts/snapfs@.service >"$tmp/snapfs@.service"
install -D -m 0644 "$tmp/snapfs@.service" "$d/etc/systemd/system/snapfs@.service"
install -D -m 0755 scripts/snapfs-sync.sh "$d$prefix/lib/snapfs/snapfs-sync.sh"
install -D -m 0644 scripts/snapfs-sync.service "$d/etc/systemd/system/snapfs-sync@.service"
install -D -m 0644 scripts/snapfs-sync.timer "$d/etc/systemd/system/snapfs-sync@.timer"
install -D -m 0644 cmd/snapfs/doc/snapfs.8 "$d$prefix/share/man/man8/snapfs.8"
install -D -m 0644 cmd/snapfs/doc/snapfs.bash "$d/etc/bash_completion.d/snapfs"
install -D -m 0644 cmd/snapfs/doc/snapfs.zsh "$d$prefix/share/zsh/site-functions/_snapfs"
install -D -m 0644 cmd/snapfs/doc/snapfs.fish "$d$prefix/share/fish/vendor_completions.d/snapfs.fish"
mkdir -p "$d/etc/snapfs"
cat >"$d/etc/snapfs/example.env" <<'ENV'
# Copy to /etc/snapfs/<escaped mount point>.env (systemd-escape --path /mnt/snapfs).
SNAPFS_STORE=/var/lib/snapfs
# Extra options of snapfs mount, e.g. Prometheus metrics:
SNAPFS_MOUNT_OPTIONS=--metrics 127.0.0.1:9477
ENV
if [ -z "$d" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
fi
echo "installed snapfs $version under $d$prefix (units in $d/etc/systemd/system)"
