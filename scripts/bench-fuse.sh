#!/usr/bin/env bash
# End-to-end throughput through a real snapfs mount of the real engine,
# compared in the same run with a plain file on the filesystem that holds
# the store (both with dd: 1 MiB blocks, fsync at the end; reads after
# dropping the page cache and again cached). Run as root.
#
#   scripts/bench-fuse.sh [SIZE_MIB]     default 1024
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PATH:/usr/local/go/bin
mib=${1:-1024}
work=$(mktemp -d /var/tmp/snapfs-bench.XXXXXX)
bin=$work/snapfs
store=$work/store mnt=$work/mnt
cleanup() {
	"$bin" --store "$store" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$bin" ./cmd/snapfs
"$bin" --store "$store" init >/dev/null
"$bin" --store "$store" mount --background "$mnt" >/dev/null
"$bin" --store "$store" disk create bench --size "$((mib + 64))M" >/dev/null
: >"$work/plain" && truncate -s "$((mib + 64))M" "$work/plain"

# dd prints "... copied, S s, R MB/s" on stderr; keep the rate in MB/s.
rate() { dd "$@" 2>&1 | awk '/copied/ { for (i = 1; i <= NF; i++) if ($i ~ /^[kMG]B\/s$/) { v = $(i-1); u = $i } }
	END { if (u == "GB/s") v *= 1000; if (u == "kB/s") v /= 1000; print v }'; }
head -c "$((mib << 20))" /dev/urandom >"$work/src"
declare -A r
r[write_plain]=$(rate if="$work/src" of="$work/plain" bs=1M conv=notrunc,fsync)
r[write_snapfs]=$(rate if="$work/src" of="$mnt/disks/bench" bs=1M conv=notrunc,fsync)
sync; echo 3 >/proc/sys/vm/drop_caches
r[read_cold_plain]=$(rate if="$work/plain" of=/dev/null bs=1M count="$mib")
r[read_cold_snapfs]=$(rate if="$mnt/disks/bench" of=/dev/null bs=1M count="$mib")
r[read_warm_plain]=$(rate if="$work/plain" of=/dev/null bs=1M count="$mib")
r[read_warm_snapfs]=$(rate if="$mnt/disks/bench" of=/dev/null bs=1M count="$mib")
for op in write read_cold read_warm; do
	awk -v op="$op" -v p="${r[${op}_plain]}" -v s="${r[${op}_snapfs]}" \
		'BEGIN { printf "%-10s plain %8.1f MB/s  snapfs %8.1f MB/s  %5.2fx\n", op, p, s, s / p }'
done
