#!/usr/bin/env bash
# verify-units.sh: systemd-analyze verify of the units in scripts/ (installs
# systemd if missing), and a check that the fstab helper parses its options.
# Run by TestUnitsVerify (integration); exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v systemd-analyze >/dev/null; then
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq systemd >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The units name their binaries; verify checks that they exist.
bin=${SNAPFS_BIN:-}
if [ -z "$bin" ]; then
	export PATH=$PATH:/usr/local/go/bin
	go build -o "$tmp/snapfs" ./cmd/snapfs
	bin=$tmp/snapfs
fi
mkdir -p "$tmp/units"
sed "s|/usr/local/bin/snapfs|$bin|g" scripts/snapfs@.service >"$tmp/units/snapfs@.service"
sed "s|/usr/local/lib/snapfs/snapfs-sync.sh|$PWD/scripts/snapfs-sync.sh|g" scripts/snapfs-sync.service >"$tmp/units/snapfs-sync@.service"
cp scripts/snapfs-sync.timer "$tmp/units/snapfs-sync@.timer"
out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
	"$tmp/units/snapfs@mnt-snapfs.service" "$tmp/units/snapfs-sync@dr.service" "$tmp/units/snapfs-sync@dr.timer" 2>&1) || {
	echo "$out" >&2
	exit 1
}
# verify prints findings about the host's own units too; ours must have none.
if echo "$out" | grep -E 'snapfs(-sync)?@' >&2; then
	exit 1
fi
echo "units verified"
