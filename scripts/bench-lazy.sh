#!/usr/bin/env bash
# Lazy restore figures (issue 11, deliverable 1): time to first byte after
# `restore --lazy`, and hydration throughput against the eager `restore`,
# interleaved in one run. Run as root (FUSE, loop devices).
#
#   scripts/bench-lazy.sh
#
# First-byte times print as "restore command + the rest" (losetup, mount,
# read), then the total.
#
# A 4+2 file:// region; host A: a BENCH_SIZE [2G] disk with ext4 holding
# BENCH_DATA [256M] of random data and a small file, synced; and a 32 GiB
# disk (sparse: ext4 and the small file only), synced. Host B, each round:
# eager restore (time, MB/s of stored data); restore --lazy --wait,
# unbounded (time, MB/s); restore --lazy, then losetup, a read-only mount
# and a read of the small file (time from the command to the bytes), for
# both disks. Every timed step starts from a cold page cache.
#
# Environment: BENCH_SIZE [2G], BENCH_DATA [256M], BENCH_ROUNDS [2],
# BENCH_DIR [/var/tmp], BENCH_BIN (a snapfs binary to time instead of
# building this tree's: A/B runs), BENCH_LOG_LEVEL [info] (host B's daemon; with
# debug, its log, kept as BENCH_KEEP_LOG if set, times each restore --lazy's
# steps).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
[ "$(id -u)" = 0 ] || { echo "bench-lazy.sh: run as root" >&2; exit 2; }
for t in jq:jq; do
	command -v "${t%%:*}" >/dev/null && continue
	apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || true
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${t#*:}" >&2
done
size=${BENCH_SIZE:-2G}
data=$(numfmt --from=iec "${BENCH_DATA:-256M}")
rounds=${BENCH_ROUNDS:-2}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-bench-lazy.XXXXXX")
undo=()
cleanup() {
	local i
	for ((i = ${#undo[@]} - 1; i >= 0; i--)); do eval "${undo[i]}" >/dev/null 2>&1 || true; done
	[ -z "${BENCH_KEEP_LOG:-}" ] || cp "$work/b/snapfs.log" "$BENCH_KEEP_LOG" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "work $work; $(nproc) cores; size $size; data $data; rounds $rounds; $(uptime)"
if [ -n "${BENCH_BIN:-}" ]; then cp "$BENCH_BIN" "$work/snapfs"; else go build -o "$work/snapfs" ./cmd/snapfs; fi
a=("$work/snapfs" --progress none --store "$work/a")
b=("$work/snapfs" --progress none --store "$work/b")
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/key"
echo >>"$work/key"
chmod 600 "$work/key"
add=(region add dr --data 4 --parity 2 --key-file "$work/key")
for i in 0 1 2 3 4 5; do mkdir -p "$work/s$i"; add+=(--store "file://$work/s$i"); done
mkdir -p "$work/ma" "$work/mb" "$work/vol"
"${a[@]}" init --host-name a >/dev/null
"${b[@]}" init --host-name b >/dev/null
"${a[@]}" mount --background "$work/ma" >/dev/null
undo+=("'$work/snapfs' --store '$work/a' umount '$work/ma' || umount -l '$work/ma'")
"${b[@]}" --log-level "${BENCH_LOG_LEVEL:-info}" mount --background "$work/mb" >/dev/null
undo+=("'$work/snapfs' --store '$work/b' umount '$work/mb' || umount -l '$work/mb'")
"${a[@]}" "${add[@]}" >/dev/null
"${b[@]}" "${add[@]}" >/dev/null
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { local t=$EPOCHREALTIME; echo "${t/./}"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e6 }'; }
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { if (s + 0 == 0) print "-"; else printf "%.1f", n / s / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

head -c 4099 /dev/urandom >"$work/small"
make_disk() { # NAME SIZE DATA
	"${a[@]}" disk create "$1" --size "$2" >/dev/null
	mkfs.ext4 -q -F -E nodiscard "$work/ma/disks/$1"
	local loop
	loop=$(losetup -f --show "$work/ma/disks/$1")
	mount "$loop" "$work/vol"
	cp "$work/small" "$work/vol/small"
	[ "$3" = 0 ] || head -c "$3" /dev/urandom >"$work/vol/data"
	sync
	umount "$work/vol"
	losetup -d "$loop"
}
make_disk big "$size" "$data"
make_disk flat32 32G 0
"${a[@]}" snapshot create s1 --disk big --disk flat32 >/dev/null
t0=$(now)
"${a[@]}" sync --region dr >/dev/null
echo "sync of both disks: $(secs "$t0" "$(now)") s"
stored=$("${a[@]}" --json disk info big | jq -r .allocated)
echo "disk big: $(numfmt --to=iec "$stored") stored"

ttfb() { # DISK TO -> seconds from restore --lazy to the small file's bytes
	drop_caches
	local t0 loop
	t0=$(now)
	"${b[@]}" restore --region dr --snapshot s1 --host a --disk "$1" --to "$2" --lazy >/dev/null
	printf '%s+' "$(secs "$t0" "$(now)")"
	loop=$(losetup -f --show -r "$work/mb/disks/$2")
	mount -o ro,noload "$loop" "$work/vol"
	cmp -s "$work/vol/small" "$work/small" || { echo "small file differs on $2" >&2; exit 1; }
	printf '= %s' "$(secs "$t0" "$(now)")"
	umount "$work/vol"
	losetup -d "$loop"
	# Its hydration stops: the next figure is not shared with it. losetup -d
	# releases the loop device asynchronously: the disk may still be open.
	local i
	for i in $(seq 1 50); do
		"${b[@]}" disk delete "$2" >/dev/null 2>&1 && return
		sleep 0.1
	done
	"${b[@]}" disk delete "$2" >/dev/null
}
for r in $(seq 1 "$rounds"); do
	drop_caches
	t0=$(now)
	"${b[@]}" restore --region dr --snapshot s1 --host a --disk big --to eager >/dev/null
	te=$(secs "$t0" "$(now)")
	drop_caches
	t0=$(now)
	"${b[@]}" restore --region dr --snapshot s1 --host a --disk big --to lazy --lazy --wait >/dev/null
	tl=$(secs "$t0" "$(now)")
	t2=$(ttfb big ttfb2)
	t32=$(ttfb flat32 ttfb32)
	echo "round $r ($(uptime | sed 's/.*load/load/')): eager restore ${te} s ($(mbps "$stored" "$te") MB/s); lazy --wait ${tl} s ($(mbps "$stored" "$tl") MB/s, $(ratio "$te" "$tl") of eager's throughput); first byte: $size ${t2} s, 32G ${t32} s"
	for d in eager lazy; do "${b[@]}" disk delete "$d" >/dev/null; done
done
