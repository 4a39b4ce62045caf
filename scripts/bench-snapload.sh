#!/usr/bin/env bash
# Snapshots under a full-speed write load (issue 8, deliverable 1): fio writes
# to a snapfs disk through the mount while `snapfs snapshot create` runs once
# a second from the CLI through the daemon. Prints, per load, the p50/p99/max
# latency of snapshot create and fio's throughput without and with the
# snapshots, measured in alternating runs (without, with, without, with, ...)
# so that a drift of the machine's load hits both alike, and the daemon's
# CPU time per MB written in each (what a snapshot costs the writers on a
# machine whose load blurs the throughput). Run as root.
#
#   scripts/bench-snapload.sh [--profile DIR]
#
# Loads: random 4 KiB writes, libaio iodepth 16, direct; sequential 1 MiB
# writes, libaio iodepth 4, direct.
# Environment: BENCH_SIZE disk and fio file [1G], BENCH_LOAD seconds per fio
# run [15], BENCH_PAIRS alternating pairs per load [2], BENCH_DIR [/var/tmp],
# BENCH_BINDIR a directory holding the binaries to measure, snapfs (the
# light front) and snapfs-full, instead of building this tree's as
# scripts/install.sh does (before/after comparisons: build both, run them in
# turns), BENCH_LOADS the loads to run [randwrite4k seqwrite1m].
# The commands run as installed: the front (cmd/snapfs/front) serves
# `snapshot create` over the control socket itself and execs snapfs-full
# for the rest.
# --profile DIR saves the daemon's CPU, block and mutex profiles of the
# first run with snapshots of each load, and its debug log (snapfs.log:
# per-phase timings of every snapshot create, "snapshot create" lines).
set -euo pipefail
{
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
profile_dir=""
while [ $# -gt 0 ]; do
	case $1 in
	--profile) profile_dir=$(realpath -m "${2:?--profile needs a directory}"); shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-snapload.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || { echo "bench-snapload.sh: run as root (FUSE)" >&2; exit 2; }
SIZE=${BENCH_SIZE:-1G} LOAD=${BENCH_LOAD:-15} PAIRS=${BENCH_PAIRS:-2}
for t in fio:fio jq:jq curl:curl; do
	if ! command -v "${t%%:*}" >/dev/null; then
		apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || true
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${t#*:}" >&2
	fi
done
[ -z "$profile_dir" ] || mkdir -p "$profile_dir"
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-snapload.XXXXXX")
cleanup() {
	"$work/bin/snapfs" --store "$work/store" umount "$work/mnt" >/dev/null 2>&1 || umount -l "$work/mnt" 2>/dev/null || true
	[ -z "$profile_dir" ] || cp "$work/store/snapfs.log" "$profile_dir/" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/bin" "$work/mnt" "$work/fio"
if [ -n "${BENCH_BINDIR:-}" ]; then
	cp "$BENCH_BINDIR/snapfs" "$BENCH_BINDIR/snapfs-full" "$work/bin/"
else
	CGO_ENABLED=0 go build -o "$work/bin/snapfs-full" ./cmd/snapfs
	CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o "$work/bin/snapfs" ./cmd/snapfs/front
fi
export SNAPFS_FULL=$work/bin/snapfs-full
snapfs() { "$work/bin/snapfs" --store "$work/store" "$@"; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
pct() { sort -n "$1" | awk -v p="$2" '{ a[NR] = $1 } END { i = int((NR * p + 99) / 100); if (i < 1) i = 1; printf "%.1f", a[i] / 1000 }'; }
echo "bench-snapload: $(nproc) cores; size $SIZE; load ${LOAD}s x $PAIRS pairs; $(uptime)"
snapfs init >/dev/null
pprof_addr=127.0.0.1:$((20000 + $$ % 20000))
margs=(--background) gargs=(--json)
[ -z "$profile_dir" ] || margs+=(--pprof "$pprof_addr") gargs+=(--log-level debug)
snapfs "${gargs[@]}" mount "${margs[@]}" "$work/mnt" >/dev/null
daemon=$(pgrep -n -f "^$work/bin/snapfs-full .*mount") || { echo "bench-snapload.sh: no daemon" >&2; exit 1; }
ticks() { awk '{ print $14 + $15 }' "/proc/$daemon/stat"; } # the daemon's CPU time, in clock ticks
size=$(numfmt --from=iec "$SIZE")
snapfs disk create bench --size "$((size + (64 << 20)))" >/dev/null
disk=$work/mnt/disks/bench
# Written once first: partial writes then complete real blocks.
fio --name=fill --filename="$disk" --rw=write --bs=1M --size="$size" --ioengine=psync --end_fsync=1 \
	--refill_buffers --output-format=json --output="$work/fio/fill.json" >/dev/null

n=0
run() { # run NAME WITH(0|1) fio args... -> IOPS and MB/s in $work/fio/NAME.json; latencies appended to $work/lat-$load.us
	local name=$1 with=$2 json=$work/fio/$1.json pid t0 t1 left prof=() p
	shift 2
	if [ "$with" = 1 ] && [ -n "$profile_dir" ] && [ ! -e "$profile_dir/$load.cpu.pb.gz" ]; then
		for k in profile block mutex; do
			curl -sf -o "$profile_dir/$load.${k/profile/cpu}.pb.gz" "http://$pprof_addr/debug/pprof/$k?seconds=$LOAD" & prof+=($!)
		done
	fi
	local c0
	c0=$(ticks)
	fio --name="$name" --filename="$disk" --size="$size" --fallocate=none --randrepeat=0 --refill_buffers \
		--time_based --runtime="$LOAD" --output-format=json --output="$json" "$@" >/dev/null &
	pid=$!
	if [ "$with" = 1 ]; then
		sleep 1
		while kill -0 "$pid" 2>/dev/null; do
			t0=$(now_us)
			snapfs snapshot create "load-$n" --disk bench >/dev/null
			t1=$(now_us)
			echo $((t1 - t0)) >>"$work/lat-$load.us"
			n=$((n + 1))
			left=$((1000000 - (t1 - t0)))
			[ "$left" -le 0 ] || sleep "$(awk -v u="$left" 'BEGIN { printf "%.3f", u / 1e6 }')"
		done
	fi
	wait "$pid"
	for p in "${prof[@]}"; do wait "$p" || true; done
	echo $(($(ticks) - c0)) >"$work/fio/$name.ticks"
}
declare -A args=(
	[randwrite4k]="--rw=randwrite --bs=4k --ioengine=libaio --iodepth=16 --direct=1 --norandommap"
	[seqwrite1m]="--rw=write --bs=1M --ioengine=libaio --iodepth=4 --direct=1"
)
for load in ${BENCH_LOADS:-randwrite4k seqwrite1m}; do
	: >"$work/lat-$load.us"
	for ((p = 0; p < PAIRS; p++)); do
		# shellcheck disable=SC2086
		run "$load-without-$p" 0 ${args[$load]}
		# shellcheck disable=SC2086
		run "$load-with-$p" 1 ${args[$load]}
	done
	sum() { # sum without|with iops|bw
		for ((p = 0; p < PAIRS; p++)); do jq ".jobs[0].write.${2}" "$work/fio/$load-$1-$p.json"; done |
			awk '{ s += $1 } END { printf "%.1f", s / NR }'
	}
	wo=$(sum without iops) wi=$(sum with iops) bwo=$(sum without bw_bytes) bwi=$(sum with bw_bytes)
	printf '%s: snapshot create p50 %s ms, p99 %s ms, max %s ms (%d snapshots); fio %s IOPS (%.0f MB/s) without, %s IOPS (%.0f MB/s) with: dip %.1f %%\n' \
		"$load" "$(pct "$work/lat-$load.us" 50)" "$(pct "$work/lat-$load.us" 99)" "$(pct "$work/lat-$load.us" 100)" \
		"$(wc -l <"$work/lat-$load.us")" "$wo" "$(awk -v b="$bwo" 'BEGIN { print b / 1e6 }')" "$wi" \
		"$(awk -v b="$bwi" 'BEGIN { print b / 1e6 }')" "$(awk -v a="$wo" -v b="$wi" 'BEGIN { print (1 - b / a) * 100 }')"
	cpu() { # cpu without|with: the daemon's CPU ms per MB written
		for ((p = 0; p < PAIRS; p++)); do
			echo "$(cat "$work/fio/$load-$1-$p.ticks") $(jq '.jobs[0].write.io_bytes' "$work/fio/$load-$1-$p.json")"
		done | awk -v hz="$(getconf CLK_TCK)" '{ t += $1; b += $2 } END { printf "%.2f", t / hz * 1000 / (b / 1e6) }'
	}
	printf '  daemon CPU per MB written: %s ms without, %s ms with\n' "$(cpu without)" "$(cpu with)"
	for ((p = 0; p < PAIRS; p++)); do
		printf '  pair %d: %s / %s IOPS\n' "$p" "$(jq '.jobs[0].write.iops' "$work/fio/$load-without-$p.json")" \
			"$(jq '.jobs[0].write.iops' "$work/fio/$load-with-$p.json")"
	done
done
echo "bench-snapload: done; $(uptime)"
exit 0
}
