#!/usr/bin/env bash
# Bounded space through the mount (issue 7, deliverable 3): a snapfs disk of
# 4 KiB blocks is filled, then rewritten BENCH_SPACE_PASSES times by fio with
# random 4 KiB writes (libaio, iodepth 16, direct, an fsync every 256
# writes), once without the background cleaner (mount's hidden --no-cleaner,
# benchmarks only) and once with it, each on a fresh store. While fio runs,
# the store's segment bytes (du of STORE/segments), the writers' throttled
# seconds and the bytes written through the mount so far (mount --metrics)
# are sampled every second, the segment bytes against the live bytes (the
# disk's size: every block written, no snapshots). Prints the write throughput without and with the cleaner and
# their ratio (the issue's target: >= 0.8), the max and final segments/live
# (target: <= 1.5 with the cleaner; the max is over the samples after the
# first pass's time and the final size), and the samples; writes JSON to scripts/bench-results/.
# Run as root (FUSE).
#
#   scripts/bench-space.sh [--smoke] [--out FILE.json]
#
# Environment (defaults in brackets; --smoke: 64M, 3 passes):
#   BENCH_SPACE_SIZE    disk size [256M]
#   BENCH_SPACE_PASSES  rewrites of the whole disk [50]
#   BENCH_SPACE_PAIRS   (without, with) pairs, run alternately [1]
#   BENCH_DIR           where the work directory is made [/var/tmp]
#   BENCH_SPACE_BIN     a snapfs binary to run instead of building this tree
#                       (to compare builds; it needs mount --no-cleaner)
#   BENCH_SPACE_PPROF   1: mount with --pprof and keep, per run, a CPU profile
#                       of BENCH_SPACE_PPROF_SECS [20] seconds from 3 s into the
#                       rewrite, and the block and mutex profiles at its end,
#                       in BENCH_SPACE_PPROF_DIR [/var/tmp/snapfs-space-pprof]
# Every run also reports the machine's idle CPU fraction during the rewrite
# (/proc/stat), the daemon's CPU seconds, and the cleaner's counters
# (mount --metrics): moved per byte written, throttled seconds; and fio's
# latency percentiles (50/99/99.9, ms) of write completions and fsyncs.
# The run without the cleaner keeps every overwritten block until the end:
# it needs about SIZE x (PASSES + 1) of free space in BENCH_DIR.
set -euo pipefail
{ # the whole script is parsed before it runs: editing it during a run is safe
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
smoke=0 out=""
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) smoke=1 ;;
	--out) out=$(realpath -m "${2:?--out needs a file}"); shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-space.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || { echo "bench-space.sh: run as root (FUSE)" >&2; exit 2; }
if [ "$smoke" = 1 ]; then
	SIZE=${BENCH_SPACE_SIZE:-64M} PASSES=${BENCH_SPACE_PASSES:-3}
else
	SIZE=${BENCH_SPACE_SIZE:-256M} PASSES=${BENCH_SPACE_PASSES:-50}
fi
PAIRS=${BENCH_SPACE_PAIRS:-1}
for t in fio:fio jq:jq; do
	if ! command -v "${t%%:*}" >/dev/null; then
		apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || true
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${t#*:}" >&2
	fi
done
size=$(numfmt --from=iec "$SIZE")
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-space.XXXXXX")
need=$((size * (PASSES + 2)))
free=$(($(stat -f -c '%a * %S' "$work")))
if [ "$free" -lt "$need" ]; then
	echo "bench-space.sh: $(numfmt --to=iec "$free") free in $work, the run without the cleaner needs about $(numfmt --to=iec "$need")" >&2
	rmdir "$work"
	exit 2
fi
store="" mnt=$work/mnt sampler=""
cleanup() {
	[ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true
	[ -z "$store" ] || "$work/bin/snapfs" --store "$store" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/bin" "$mnt" "$work/res"
if [ -n "${BENCH_SPACE_BIN:-}" ]; then
	cp "$BENCH_SPACE_BIN" "$work/bin/snapfs"
else
	go build -o "$work/bin/snapfs" ./cmd/snapfs
fi
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "${BENCH_SPACE_BIN:-}" ] || commit="binary $BENCH_SPACE_BIN (scripts at $commit)"
uptime_start=$(uptime)
echo "bench-space: $(nproc) cores; disk $SIZE, $PASSES passes of random 4 KiB writes, $PAIRS pair(s); commit $commit; $uptime_start"

# run NAME CLEANER(0|1): a fresh store, fill, rewrite, samples; results in $work/res/NAME.*
# cpustat: "busy idle" jiffies of the machine; daemoncpu: the daemon's user+system jiffies.
cpustat() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; }
daemoncpu() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
metric() { curl -s "http://$maddr/metrics" | awk -v n="$1" '$1 == n { printf "%.0f", $2 }'; }
pprof_dir=${BENCH_SPACE_PPROF_DIR:-/var/tmp/snapfs-space-pprof}
run() {
	local name=$1 cleaner=$2 margs=(--background) t0 disk pid c0 c1 d0 d1 port paddr prof=""
	store=$work/store-$name
	"$work/bin/snapfs" --store "$store" init >/dev/null
	[ "$cleaner" = 1 ] || margs+=(--no-cleaner)
	[ "${BENCH_SPACE_PPROF:-0}" != 1 ] || mkdir -p "$pprof_dir"
	# Random ports for the metrics and pprof listeners: another program may
	# hold one (the machine is shared), so a failed mount tries new ones.
	local try pargs
	for try in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 20000))
		maddr=127.0.0.1:$port paddr=127.0.0.1:$((port + 1))
		pargs=(--metrics "$maddr")
		[ "${BENCH_SPACE_PPROF:-0}" != 1 ] || pargs+=(--pprof "$paddr")
		if "$work/bin/snapfs" --store "$store" mount "${margs[@]}" "${pargs[@]}" "$mnt" >/dev/null; then
			break
		fi
		[ "$try" -lt 5 ] || { echo "bench-space.sh: mount failed 5 times" >&2; exit 1; }
	done
	"$work/bin/snapfs" --store "$store" disk create bench --size "$size" --block-size 4K >/dev/null
	disk=$mnt/disks/bench
	fio --name=fill --filename="$disk" --rw=write --bs=1M --size="$size" --ioengine=psync --end_fsync=1 \
		--refill_buffers --output-format=json --output="$work/res/$name.fill.json" >/dev/null
	# Samples: seconds since the rewrite started, segment bytes.
	t0=$EPOCHREALTIME
	(
		while :; do
			s=$(du -sb --apparent-size "$store/segments" 2>/dev/null | cut -f1) || s=0
			# The writers' throttled seconds and the bytes written through
			# the mount so far.
			m=$(curl -s "http://$maddr/metrics" | awk '$1 == "snapfs_cleaner_throttled_seconds_total" { th = $2 }
				$1 ~ /^snapfs_io_bytes_total\{.*op="write"/ { w += $2 } END { printf "%.2f %.0f", th, w }') || m=""
			awk -v t="$EPOCHREALTIME" -v t0="$t0" -v s="${s:-0}" -v m="${m:-0 0}" 'BEGIN { printf "%.1f %s %s\n", t - t0, s, m }'
			sleep 1
		done
	) >"$work/res/$name.samples" &
	sampler=$!
	pid=$(for p in /proc/[0-9]*; do
		if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -F -- "$store" | grep -qw mount; then echo "${p#/proc/}"; fi
	done | head -1) || true
	read -r c0 i0 <<<"$(cpustat)"
	d0=$(daemoncpu "$pid")
	if [ "${BENCH_SPACE_PPROF:-0}" = 1 ]; then
		(sleep 3; curl -s -o "$pprof_dir/$name.cpu.pb.gz" "http://$paddr/debug/pprof/profile?seconds=${BENCH_SPACE_PPROF_SECS:-20}") &
		prof=$!
	fi
	fio --name="$name" --filename="$disk" --size="$size" --io_size=$((size * PASSES)) --rw=randwrite --bs=4k \
		--ioengine=libaio --iodepth=16 --direct=1 --fsync=256 --norandommap --randrepeat=0 --refill_buffers \
		--output-format=json --output="$work/res/$name.json" >/dev/null
	read -r c1 i1 <<<"$(cpustat)"
	d1=$(daemoncpu "$pid")
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	sampler=""
	if [ -n "$prof" ]; then
		wait "$prof" || true
		curl -s -o "$pprof_dir/$name.block.pb.gz" "http://$paddr/debug/pprof/block"
		curl -s -o "$pprof_dir/$name.mutex.pb.gz" "http://$paddr/debug/pprof/mutex"
	fi
	awk -v b=$((c1 - c0)) -v i=$((i1 - i0)) -v d=$((d1 - d0)) -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.3f %.1f\n", i / (b + i), d / hz }' >"$work/res/$name.cpu"
	echo "$(metric snapfs_cleaner_relocated_bytes_total) $(metric snapfs_cleaner_throttled_seconds_total)" >"$work/res/$name.cleaner"
	du -sb --apparent-size "$store/segments" | cut -f1 >"$work/res/$name.final"
	"$work/bin/snapfs" --store "$store" --json usage >"$work/res/$name.usage.json" 2>/dev/null || echo '{}' >"$work/res/$name.usage.json"
	"$work/bin/snapfs" --store "$store" umount "$mnt" >/dev/null
	rm -rf "$store"
	store=""
}
for ((p = 0; p < PAIRS; p++)); do
	run "without-$p" 0
	run "with-$p" 1
done
uptime_end=$(uptime)

# Summaries, per run: MB/s (fio's write bandwidth, fsyncs included), max
# and final segments/live (max over the samples after the first pass).
# lat NAME FIELD: fio's percentiles 50/99/99.9 of FIELD (write.clat_ns,
# sync.lat_ns), in ms.
lat() {
	jq -r --arg f "$2" '.jobs[0] | getpath($f | split(".")) | .percentile // {} |
		[.["50.000000"], .["99.000000"], .["99.900000"]] | map(if . == null then "-" else (. / 1e6 * 100 | round / 100 | tostring) end) | join("/")' "$work/res/$1.json" 2>/dev/null || echo -
}
# cycle NAME: fio's mean fsync latency (ms) and the share of the run spent
# in fsyncs (fsyncs x mean / runtime): where fio's cycle of 256 writes and
# one fsync goes.
cycle() {
	jq -r '.jobs[0] | (.sync.lat_ns.mean // 0) as $m | (.sync.total_ios // 0) as $n | (.job_runtime // 0) as $r |
		"\($m / 1e6 * 100 | round / 100) ms mean, \(if $r > 0 then ($n * $m / 1e6 / $r * 100 | round) else "-" end) % of the run in fsync"' \
		"$work/res/$1.json" 2>/dev/null || echo -
}
summary() { # summary NAME -> "mbs max final"
	local name=$1 mbs first
	mbs=$(jq '.jobs[0].write.bw_bytes / 1e6' "$work/res/$name.json")
	# The first pass writes the disk's size: its samples are before the
	# overwrites have had time to be cleaned; skip them by time.
	first=$(awk -v m="$mbs" -v s="$size" 'BEGIN { printf "%.1f", s / (m * 1e6) }')
	awk -v live="$size" -v first="$first" -v final="$(cat "$work/res/$name.final")" -v mbs="$mbs" '
		$1 >= first && $2 > 0 { r = $2 / live; if (r > max) max = r }
		END { if (final / live > max) max = final / live; printf "%.1f %.3f %.3f\n", mbs, max, final / live }' "$work/res/$name.samples"
}
printf '\n%-12s %10s %16s %18s\n' run MB/s "max segs/live" "final segs/live"
json_runs=()
for ((p = 0; p < PAIRS; p++)); do
	read -r wo_mbs wo_max wo_fin <<<"$(summary "without-$p")"
	read -r wi_mbs wi_max wi_fin <<<"$(summary "with-$p")"
	ratio=$(awk -v a="$wo_mbs" -v b="$wi_mbs" 'BEGIN { printf "%.2f", b / a }')
	printf '%-12s %10s %16s %18s\n' "without-$p" "$wo_mbs" "$wo_max" "$wo_fin" "with-$p" "$wi_mbs" "$wi_max" "$wi_fin"
	printf '  pair %d: throughput ratio with/without %s (target >= 0.8: %s); max segs/live with the cleaner %s (target <= 1.5: %s)\n' \
		"$p" "$ratio" "$(awk -v r="$ratio" 'BEGIN { print (r >= 0.8) ? "met" : "missed" }')" \
		"$wi_max" "$(awk -v r="$wi_max" 'BEGIN { print (r <= 1.5) ? "met" : "missed" }')"
	for name in "without-$p" "with-$p"; do
		read -r idle dcpu <"$work/res/$name.cpu"
		read -r moved thr <"$work/res/$name.cleaner"
		printf '  %s: machine idle %s of the CPU during the rewrite; daemon CPU %s s; moved/written %s; writers throttled %s s\n' \
			"$name" "$idle" "$dcpu" "$(awk -v m="${moved:-0}" -v w=$((size * PASSES)) 'BEGIN { printf "%.3f", m / w }')" "${thr:-0}"
		printf '  %s: fio latency ms p50/p99/p99.9: write completion %s, fsync %s\n' "$name" "$(lat "$name" write.clat_ns)" "$(lat "$name" sync.lat_ns)"
		printf '  %s: fsync %s\n' "$name" "$(cycle "$name")"
	done
	for name in "without-$p" "with-$p"; do
		printf '  samples %s (seconds:segs/live:writers throttled s so far:MB/s through the mount since the last sample):' "$name"
		awk -v live="$size" '{ r = 0; if (NR > 1 && $1 > t) r = ($4 - w) / ($1 - t) / 1e6
			printf " %s:%.2f:%s:%.0f", $1, $2 / live, $3, r; t = $1; w = $4 }' "$work/res/$name.samples"
		echo
	done
	json_runs+=("$(jq -n --arg pair "$p" --argjson wo_mbs "$wo_mbs" --argjson wo_max "$wo_max" --argjson wo_fin "$wo_fin" \
		--argjson wi_mbs "$wi_mbs" --argjson wi_max "$wi_max" --argjson wi_fin "$wi_fin" --argjson ratio "$ratio" \
		--argjson live "$size" --arg wo_cpu "$(cat "$work/res/without-$p.cpu")" --arg wi_cpu "$(cat "$work/res/with-$p.cpu")" \
		--arg wi_cl "$(cat "$work/res/with-$p.cleaner")" \
		--slurpfile so <(awk '{ printf "[%s,%s,%s,%s]\n", $1, $2, $3, $4 }' "$work/res/without-$p.samples") \
		--slurpfile sw <(awk '{ printf "[%s,%s,%s,%s]\n", $1, $2, $3, $4 }' "$work/res/with-$p.samples") \
		--slurpfile uo "$work/res/without-$p.usage.json" --slurpfile uw "$work/res/with-$p.usage.json" \
		--arg wo_lat "write $(lat "without-$p" write.clat_ns) fsync $(lat "without-$p" sync.lat_ns)" \
		--arg wi_lat "write $(lat "with-$p" write.clat_ns) fsync $(lat "with-$p" sync.lat_ns)" \
		'{pair: ($pair | tonumber), ratio: $ratio,
		  without: {mbs: $wo_mbs, max_segs_live: $wo_max, final_segs_live: $wo_fin, usage: $uo, samples_s_segbytes_throttleds_writtenbytes: $so},
		  with: {mbs: $wi_mbs, max_segs_live: $wi_max, final_segs_live: $wi_fin, usage: $uw, samples_s_segbytes_throttleds_writtenbytes: $sw},
		  idle_daemon_cpu_s: {without: $wo_cpu, with: $wi_cpu}, with_relocated_throttled_s: $wi_cl,
		  fio_latency_ms_p50_p99_p999: {without: $wo_lat, with: $wi_lat},
		  live_bytes: $live}')")
done
mkdir -p "$repo/scripts/bench-results"
[ -n "$out" ] || out=$repo/scripts/bench-results/$(date -u +%Y%m%d-%H%M%S)-space$([ "$smoke" = 0 ] || echo -smoke).json
printf '%s\n' "${json_runs[@]}" | jq -s --arg commit "$commit" --arg size "$SIZE" --argjson passes "$PASSES" \
	--arg machine "$(nproc) cores, $(free -g | awk '/^Mem/ { print $2 }') GiB memory, kernel $(uname -r)" \
	--arg u0 "$uptime_start" --arg u1 "$uptime_end" --argjson smoke "$smoke" \
	'{benchmark: "bench-space", commit: $commit, machine: $machine, smoke: ($smoke == 1), size: $size, passes: $passes,
	  fio: "randwrite bs=4k libaio iodepth=16 direct=1 fsync=256", uptime_start: $u0, uptime_end: $u1, pairs: .}' >"$out"
echo "bench-space: results in $out; $uptime_end"
exit 0
}
