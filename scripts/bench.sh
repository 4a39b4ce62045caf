#!/usr/bin/env bash
# The benchmark suite of issue 8: snapfs measured side by side with its peers
# in ONE run on this machine, printed as one table (absolute figures, ratios
# to the peers of the same run, the issue's target and met/missed) and
# written as JSON. Run as root (FUSE, loop devices, btrfs).
#
#   scripts/bench.sh [--smoke] [--data-path] [--profile DIR] [--out FILE.json]
#   scripts/bench.sh --engine [BENCHTIME]   the engine micro-benchmarks (go test
#                                           -bench ./rowstore/), ratios to a plain file
#
# Peers, each measured in the same run with the same fio jobs:
#   loopback     cmd/snapfs-loopback: go-fuse v2.12 loopback, MaxWrite 1 MiB,
#                writeback cache, async direct I/O, CAP_PASSTHROUGH disabled
#   passthrough  the same with kernel passthrough: the upper bound, reported apart
#   qcow2        a qcow2 file exported by qemu-storage-daemon --export type=fuse
#   plain        a plain file on the filesystem that holds the work directory
#   btrfs        btrfs send -p on a btrfs in a loop file; rsync --inplace --no-whole-file
#
# Phases: (1) fio through each disk file and through ext4 in a loop device
# (direct-io) on it; (2) snapshot/clone/rollback/image create latency from the
# CLI through the daemon at 0 and BENCH_SIZE written, listing latency, and
# snapshots once a second under a fio random-write load; (3) a 4+2 file://
# region: full sync, 1 % rewritten by 4 KiB random writes, snapshot exclusive
# bytes, incremental sync vs btrfs send -p and rsync, restore; (4) daemon peak
# RSS (VmHWM) and index allocated bytes per GiB written.
#
# Environment (defaults in brackets; --smoke: tiny sizes, ~30 s of measuring):
#   BENCH_SIZE     fio file and disk size [2G; smoke 64M]
#   BENCH_RUNTIME  seconds per random fio job [15; smoke 1]
#   BENCH_RUNS     runs per latency figure [50; smoke 3]
#   BENCH_LOAD     seconds of each fio run of the under-load phase [20; smoke 2]
#   BENCH_TIMEOUT  seconds a sync, restore or send may take before it is
#                  recorded as timed out and the region figures after it skipped [600; smoke 120]
#   BENCH_DIR      where the work directory is made [/var/tmp]
#
# --data-path runs phase 1 (every peer) and phase 4 only: the data path's
# before/after table without the latency and region phases.
#
# --profile DIR saves the daemon's CPU, block and mutex profiles of every
# fio job through snapfs (DIR/<job>.{cpu,block,mutex}.pb.gz; go tool pprof).
#
# For before/after runs of the data path: BENCH_PEERS limits phase 1 to some
# peers (e.g. "snapfs loopback qcow2"), BENCH_SNAPFS uses that snapfs binary
# instead of building one (an old build, to interleave old and new runs).
# Tools come from Debian packages, installed when missing.
set -euo pipefail
{ # the whole script is parsed before it runs: editing it during a run is safe
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

engine_bench() {
	local out
	out=$(go test -run - -bench 'SeqWrite1M|RandWrite4K|SeqRead1M|RandRead4K' -benchtime "${1:-2s}" ./rowstore/)
	echo "$out" | grep '^Benchmark'
	echo
	echo "$out" | awk '
	/^Benchmark/ {
		split($1, p, "/"); name = p[1]; sub(/^Benchmark/, "", name)
		target = p[2]; sub(/-[0-9]+$/, "", target)
		for (i = 2; i <= NF; i++) if ($(i+1) == "MB/s") mbs[name, target] = $i
		names[name] = 1; targets[target] = 1
	}
	END {
		for (n in names) {
			base = mbs[n, "plainfile"]
			for (t in targets) if (t != "plainfile" && (n, t) in mbs)
				printf "%-14s %-16s %6.2fx of a plain file\n", n, t, mbs[n, t] / base
		}
	}' | sort
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

smoke=0 profile_dir="" out="" data_only=0
while [ $# -gt 0 ]; do
	case $1 in
	--engine) engine_bench "${2:-2s}"; exit ;;
	--smoke) smoke=1 ;;
	--data-path) data_only=1 ;;
	--profile) profile_dir=$(realpath -m "${2:?--profile needs a directory}"); shift ;;
	--out) out=$(realpath -m "${2:?--out needs a file}"); shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || { echo "bench.sh: run as root (FUSE, loop devices, btrfs)" >&2; exit 2; }

if [ "$smoke" = 1 ]; then
	SIZE=${BENCH_SIZE:-64M} RUNTIME=${BENCH_RUNTIME:-1} RUNS=${BENCH_RUNS:-3} LOAD=${BENCH_LOAD:-2} TIMEOUT=${BENCH_TIMEOUT:-120}
else
	SIZE=${BENCH_SIZE:-2G} RUNTIME=${BENCH_RUNTIME:-15} RUNS=${BENCH_RUNS:-50} LOAD=${BENCH_LOAD:-20} TIMEOUT=${BENCH_TIMEOUT:-600}
fi
size=$(numfmt --from=iec "$SIZE")
[ "$size" -ge $((32 << 20)) ] || { echo "bench.sh: BENCH_SIZE must be at least 32M" >&2; exit 2; }
size=$((size >> 20 << 20))
disk_size=$((size + size / 4 + (128 << 20))) # room for ext4's metadata and journal
stamp=$(date -u +%Y%m%d-%H%M%S)
if [ -z "$out" ]; then
	if [ "$smoke" = 1 ]; then out=/tmp/snapfs-bench-smoke-$stamp.json; else out=$repo/scripts/bench-results/$stamp.json; fi
fi
mkdir -p "$(dirname "$out")"
[ -z "$profile_dir" ] || mkdir -p "$profile_dir"

# --- tools ------------------------------------------------------------------
need=(fio:fio qemu-img:qemu-utils qemu-storage-daemon:qemu-system-common mkfs.btrfs:btrfs-progs
	rsync:rsync mkfs.ext4:e2fsprogs jq:jq curl:curl losetup:mount)
missing=()
for t in "${need[@]}"; do command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}"); done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing ${missing[*]}" >&2
	apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || true
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
		"${missing[@]}" >&2 || echo "bench.sh: apt-get install failed; peers that need a missing tool are skipped" >&2
fi
for t in fio jq losetup mkfs.ext4; do
	command -v "$t" >/dev/null || { echo "bench.sh: $t is required and missing" >&2; exit 1; }
done
skip() { # skip PEER REASON: only --smoke tolerates a missing peer
	echo "bench.sh: SKIP $1: $2" >&2
	skipped+=("$1: $2")
	[ "$smoke" = 1 ] || { echo "bench.sh: a full run needs every peer" >&2; exit 1; }
}
skipped=()
note() { echo "$*" >>"$work/notes.txt"; } # also from subshells; the file is made with $work
phase() { echo "[$SECONDS s] $*" >&2; }

# --- work directory and cleanup ---------------------------------------------
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-bench.XXXXXX")
: >"$work/notes.txt"
undo=() # commands run in reverse order at exit
cleanup() {
	local i
	for ((i = ${#undo[@]} - 1; i >= 0; i--)); do eval "${undo[i]}" >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
load_start=$(uptime)
echo "work directory $work; $(nproc) cores; size $SIZE; $load_start" >&2

bin=$work/bin
mkdir -p "$bin"
if [ -n "${BENCH_SNAPFS:-}" ]; then
	cp "$BENCH_SNAPFS" "$bin/snapfs"
else
	CGO_ENABLED=0 go build -o "$bin/snapfs" ./cmd/snapfs
fi
go build -o "$bin/snapfs-loopback" ./cmd/snapfs-loopback
sfs=("$bin/snapfs" --store "$work/store") # for timeout, which runs no shell function
snapfs() { "${sfs[@]}" "$@"; }

# --- results ----------------------------------------------------------------
metrics=$work/metrics.jsonl rows=$work/rows.tsv
: >"$metrics"
: >"$rows"
metric() { # metric KEY VALUE UNIT
	jq -cn --arg k "$1" --arg v "$2" --arg u "$3" '{key: $k, value: ($v | tonumber? // $v), unit: $u}' >>"$metrics"
}
get() { jq -r --arg k "$1" 'select(.key == $k) | .value' "$metrics" | tail -1; }
# judge VALUE OP LIMIT -> met | missed | n/a
judge() {
	awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
		if (v == "" || l == "" || v == "null" || l == "null") { print "n/a"; exit }
		ok = (op == "<=") ? (v + 0 <= l + 0) : (v + 0 >= l + 0); print ok ? "met" : "missed" }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print ""; else printf "%.2f", a / b }'; }
# row SECTION MEASUREMENT SNAPFS PEERS TARGET STATUS
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$rows"; }
fmt() { awk -v v="$1" 'BEGIN { if (v == "") print "—"; else if (v + 0 >= 10000) printf "%.1fk", v / 1000; else if (v + 0 >= 100) printf "%.0f", v; else printf "%.3g", v }'; }
mib() { awk -v b="$1" 'BEGIN { if (b == "") print "—"; else printf "%.1f MB", b / 1e6 }'; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
# pct FILE P -> the P-th percentile (nearest rank) of microsecond samples, in ms
pct() { sort -n "$1" | awk -v p="$2" '{ a[NR] = $1 } END { i = int((NR * p + 99) / 100); if (i < 1) i = 1; printf "%.1f", a[i] / 1000 }'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# --- the snapfs daemon --------------------------------------------------------
mkdir -p "$work/mnt" "$work/region"
snapfs init >/dev/null
pprof_addr=127.0.0.1:$((20000 + $$ % 20000))
mount_args=(--background)
[ -z "$profile_dir" ] || mount_args+=(--pprof "$pprof_addr")
daemon_pid=$(snapfs --json mount "${mount_args[@]}" "$work/mnt" | jq -r .pid)
undo+=("'$bin/snapfs' --store '$work/store' umount '$work/mnt' || umount -l '$work/mnt'")
snapfs_written=0 # bytes fio wrote through snapfs, for the index and RSS figures

# fio_job NAME FILE RW [fio options...] -> JSON file $work/fio/NAME.json
# Every job through snapfs is profiled when --profile is given.
mkdir -p "$work/fio"
fio_job() {
	local name=$1 file=$2 rw=$3 json=$work/fio/$1.json pids=() p
	shift 3
	if [ -n "$profile_dir" ] && [[ $name == snapfs* ]]; then
		local secs=$((RUNTIME + 1))
		curl -sf -o "$profile_dir/$name.cpu.pb.gz" "http://$pprof_addr/debug/pprof/profile?seconds=$secs" & pids+=($!)
		curl -sf -o "$profile_dir/$name.block.pb.gz" "http://$pprof_addr/debug/pprof/block?seconds=$secs" & pids+=($!)
		curl -sf -o "$profile_dir/$name.mutex.pb.gz" "http://$pprof_addr/debug/pprof/mutex?seconds=$secs" & pids+=($!)
	fi
	local cpu0
	cpu0=$(proc_cpu "$cpu_pid")
	fio --name="$name" --filename="$file" --rw="$rw" --fallocate=none --randrepeat=0 \
		--output-format=json --output="$json" "$@" >/dev/null
	# CPU seconds the serving process (daemon or peer) spent on the job, and
	# per request (ramp time included: a few % high, alike for every peer).
	# A loaded machine blurs this less than the throughput.
	if [ -n "$cpu_pid" ]; then
		local cpu
		cpu=$(awk -v a="$cpu0" -v b="$(proc_cpu "$cpu_pid")" 'BEGIN { printf "%.2f", b - a }')
		metric "$name.server_cpu_s" "$cpu" s
		metric "$name.server_cpu_us_per_op" "$(jq --argjson c "$cpu" '.jobs[0] | (.read.total_ios + .write.total_ios) as $n |
			if $n > 0 then ($c * 1e6 / $n * 10 | round / 10) else null end' "$json")" us
	fi
	for p in "${pids[@]}"; do wait "$p" || echo "bench.sh: a profile of $name failed" >&2; done
	if [[ $name == snapfs* ]]; then
		snapfs_written=$((snapfs_written + $(jq '.jobs[0].write.io_bytes' "$json")))
	fi
}
# proc_cpu PID -> user+system CPU seconds of PID (empty PID: 0)
proc_cpu() {
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 0; return; }
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}
cpu_pid="" # the process serving the current peer's jobs, for server_cpu_s
# fio_val NAME read|write bw|iops -> MB/s or IOPS
fio_val() { jq -r --arg d "$2" --arg w "$3" '.jobs[0][$d] | if $w == "bw" then .bw_bytes / 1e6 else .iops end' "$work/fio/$1.json"; }

# The four jobs of the data path on FILE (a disk file, or a file in ext4 on it).
data_jobs() { # data_jobs KEY FILE
	local k=$1 f=$2
	fio_job "$k-seqwrite" "$f" write --bs=1M --size="$size" --ioengine=psync --end_fsync=1 --refill_buffers
	metric "$k.seq_write_mbs" "$(fio_val "$k-seqwrite" write bw)" MB/s
	drop_caches
	fio_job "$k-seqread" "$f" read --bs=1M --size="$size" --ioengine=psync
	metric "$k.seq_read_mbs" "$(fio_val "$k-seqread" read bw)" MB/s
	local rnd=(--bs=4k --size="$size" --ioengine=libaio --iodepth=16 --direct=1 --norandommap
		--time_based --runtime="$RUNTIME" --ramp_time=$((RUNTIME >= 5 ? 1 : 0)))
	fio_job "$k-randwrite" "$f" randwrite "${rnd[@]}" --refill_buffers
	metric "$k.rand_write_iops" "$(fio_val "$k-randwrite" write iops)" IOPS
	fio_job "$k-randread" "$f" randread "${rnd[@]}"
	metric "$k.rand_read_iops" "$(fio_val "$k-randread" read iops)" IOPS
}

# ext4 in a loop device with direct I/O on FILE, then the same four jobs.
ext4_jobs() { # ext4_jobs KEY FILE
	local k=$1 f=$2 dev dir=$work/ext4-$1 dio
	mkdir -p "$dir"
	for dio in on off; do
		dev=$(losetup --direct-io=$dio -f --show "$f")
		undo+=("losetup -d $dev")
		mkfs.ext4 -q -F "$dev"
		if mount "$dev" "$dir" 2>/dev/null; then break; fi
		losetup -d "$dev"
		# qemu-storage-daemon 7.2's FUSE export returns wrong data to a
		# loop device's direct reads: ext4 made on it does not mount.
		[ "$dio" = on ] || { echo "bench.sh: ext4 in a loop device on $f does not mount" >&2; exit 1; }
		echo "bench.sh: $k: ext4 on a direct-io loop device does not mount; loop device without direct-io" >&2
		note "$k: ext4 made on a loop device with direct-io did not mount (wrong data read back); measured without direct-io"
	done
	metric "$k.loop_direct_io" "$(cat "/sys/block/${dev#/dev/}/loop/dio")" bool
	undo+=("umount '$dir'")
	data_jobs "$k" "$dir/fio.dat"
	umount "$dir"
	losetup -d "$dev"
}

# --- phase 1: the data path -------------------------------------------------
peers=()
start_loopback() { # start_loopback NAME [-passthrough] -> disk file in $disk
	local name=$1 src=$work/$1-src mnt=$work/$1-mnt line
	shift
	mkdir -p "$src" "$mnt"
	truncate -s "$disk_size" "$src/disk"
	# Its log goes to a file: go-fuse logs every 1 MiB splice that falls back
	# to a copy, and a full pipe would stall the mount.
	coproc LB { exec "$bin/snapfs-loopback" "$@" "$src" "$mnt" 2>"$work/$name.log"; }
	lb_pid=$LB_PID
	undo+=("kill $lb_pid; wait $lb_pid")
	if ! read -r -t 30 line <&"${LB[0]}" || [[ $line != ready* ]]; then
		skip "$name" "snapfs-loopback did not mount: ${line:-$(tail -1 "$work/$name.log")}"
		return 1
	fi
	disk=$mnt/disk
	cpu_pid=$lb_pid
}
stop_loopback() { kill "$1"; wait "$1" 2>/dev/null || true; }

for peer in ${BENCH_PEERS:-snapfs loopback passthrough qcow2 plain}; do
	phase "phase 1: data path, $peer"
	disk=""
	cpu_pid=""
	case $peer in
	snapfs)
		cpu_pid=$daemon_pid
		snapfs disk create bench --size "$disk_size" >/dev/null
		disk=$work/mnt/disks/bench ;;
	loopback) start_loopback loopback || continue ;;
	passthrough) start_loopback passthrough -passthrough || continue ;;
	qcow2)
		if ! command -v qemu-storage-daemon >/dev/null || ! command -v qemu-img >/dev/null; then
			skip qcow2 "qemu-storage-daemon or qemu-img missing"; continue
		fi
		qemu-img create -q -f qcow2 "$work/disk.qcow2" "$disk_size"
		: >"$work/qcow2-export"
		if ! qemu-storage-daemon --blockdev "driver=file,node-name=file,filename=$work/disk.qcow2" \
			--blockdev driver=qcow2,node-name=qcow2,file=file \
			--export "type=fuse,id=export,node-name=qcow2,mountpoint=$work/qcow2-export,writable=on" \
			--pidfile "$work/qsd.pid" --daemonize; then
			skip qcow2 "qemu-storage-daemon failed"; continue
		fi
		undo+=("kill \$(cat '$work/qsd.pid')")
		disk=$work/qcow2-export ;;
	plain)
		truncate -s "$disk_size" "$work/plain.img"
		disk=$work/plain.img ;;
	esac
	peers+=("$peer")
	data_jobs "$peer" "$disk"
	# --smoke runs ext4 on snapfs only: enough to keep that code alive.
	[ "$smoke" = 1 ] && [ "$peer" != snapfs ] || ext4_jobs "$peer-ext4" "$disk"
	case $peer in
	loopback | passthrough) stop_loopback "$lb_pid" ;;
	qcow2)
		qsd=$(cat "$work/qsd.pid")
		kill "$qsd"
		while kill -0 "$qsd" 2>/dev/null; do sleep 0.1; done ;;
	esac
done
metric snapfs.vmhwm_after_data_path_bytes "$(awk '/VmHWM/ { print $2 * 1024 }' "/proc/$daemon_pid/status")" bytes

# Rows of phase 1: snapfs, then each peer with snapfs's ratio to it.
peer_text() { # peer_text METRIC_SUFFIX [ext4] -> "loopback 565 (0.47×) · ..."
	local m=$1 x=${2:-} s p v text=""
	s=$(get "snapfs$x.$m")
	for p in "${peers[@]}"; do
		[ "$p" != snapfs ] || continue
		v=$(get "$p$x.$m")
		[ -n "$v" ] || continue
		text+="${text:+ · }$p $(fmt "$v") ($(ratio "$s" "$v")×)"
	done
	echo "$text"
}
for x in "" -ext4; do
	where='`disks/<d>`'
	[ -z "$x" ] || where="ext4 in a loop device on it"
	for m in seq_write_mbs:"sequential write 1 MiB, MB/s":0.9 seq_read_mbs:"sequential read 1 MiB, MB/s":0.9 \
		rand_write_iops:"random 4 KiB write, iodepth 16, direct, IOPS":1.5 rand_read_iops:"random 4 KiB read, iodepth 16, direct, IOPS":1.0; do
		IFS=: read -r key label want <<<"$m"
		s=$(get "snapfs$x.$key") lb=$(get "loopback$x.$key") q=$(get "qcow2$x.$key")
		target="≥ ${want}× loopback" status=$(judge "$(ratio "$s" "$lb")" ">=" "$want")
		if [ "$key" = rand_write_iops ]; then
			target+=", ≥ 1.0× qcow2"
			st2=$(judge "$(ratio "$s" "$q")" ">=" 1.0)
			[ "$status" = met ] && [ "$st2" != met ] && status=$st2
		fi
		row "data path: $where" "$label" "$(fmt "$s")" "$(peer_text "$key" "$x")" "$target" "$status"
	done
	# The serving process's CPU per request of each job (informative).
	for j in seqwrite:"1 MiB" seqread:"1 MiB" randwrite:"4 KiB" randread:"4 KiB"; do
		IFS=: read -r job what <<<"$j"
		s=$(get "snapfs$x-$job.server_cpu_us_per_op") text=""
		for p in "${peers[@]}"; do
			[ "$p" != snapfs ] || continue
			v=$(get "$p$x-$job.server_cpu_us_per_op")
			[ -n "$v" ] && [ "$v" != null ] || continue
			r=$(ratio "$s" "$v") # (none when the peer spent nothing: passthrough reads)
			text+="${text:+ · }$p $(fmt "$v")${r:+ (${r}×)}"
		done
		row "data path: $where" "$job: CPU of the serving process per $what request, µs" "$(fmt "$s")" "$text" "" "info"
	done
done

if [ "$data_only" = 0 ]; then # phases 2 and 3 (not with --data-path)
# --- phase 2: snapshot, clone, rollback, image latency ------------------------
# lat NAME CMD... : BENCH_RUNS timed runs; "{i}" in CMD is the run number.
lat() {
	local name=$1 i t0 t1 f=$work/lat-$1.us
	shift
	: >"$f"
	for ((i = 0; i < RUNS; i++)); do
		local cmd=("${@//\{i\}/$i}")
		t0=$(now_us)
		"${cmd[@]}" >/dev/null
		t1=$(now_us)
		echo $((t1 - t0)) >>"$f"
	done
	metric "snapfs.$name.p50_ms" "$(pct "$f" 50)" ms
	metric "snapfs.$name.p99_ms" "$(pct "$f" 99)" ms
}
ops() { # ops TAG DISK: the four O(1) operations on DISK
	local t=$1 d=$2
	snapfs snapshot create "$d-base" --disk "$d" >/dev/null
	lat "$t.snapshot_create" snapfs snapshot create "$d-s{i}" --disk "$d"
	lat "$t.clone" snapfs disk create "$d-c{i}" --from-snapshot "$d-base" --disk "$d"
	lat "$t.rollback" snapfs disk rollback "$d" --snapshot "$d-base"
	lat "$t.image_create" snapfs image create "$d-i{i}" --snapshot "$d-base" --disk "$d"
}
phase "phase 2: latency from the CLI (empty disk)"
lat cli_floor snapfs --help # a process start, no daemon: the floor of every CLI figure
snapfs disk create empty --size "$disk_size" >/dev/null
ops empty empty
phase "phase 2: latency from the CLI ($SIZE written)"
ops written bench
lat snapshot_list snapfs snapshot list
lat usage snapfs usage
lat disk_list snapfs disk list
gib=$(numfmt --to=iec-i --suffix=B "$size")
for op in snapshot_create:"snapshot create" clone:"clone from snapshot" rollback:"rollback" image_create:"image create"; do
	IFS=: read -r key label <<<"$op"
	for t in empty:"0 B" written:"$gib"; do
		IFS=: read -r tag at <<<"$t"
		p50=$(get "snapfs.$tag.$key.p50_ms") p99=$(get "snapfs.$tag.$key.p99_ms")
		st=$(judge "$p50" "<=" 5)
		[ "$st" = met ] && st=$(judge "$p99" "<=" 20)
		row "CLI through the daemon" "$label at $at written, p50 / p99 ms" "$p50 / $p99" "" "≤ 5 / ≤ 20 ms, flat" "$st"
	done
done
row "CLI through the daemon" "floor: snapfs --help (process start, no daemon), p50 / p99 ms" \
	"$(get snapfs.cli_floor.p50_ms) / $(get snapfs.cli_floor.p99_ms)" "" "" "n/a"
nsnap=$(snapfs --json snapshot list | wc -l)
for op in snapshot_list:"snapshot list" usage:"usage" disk_list:"disk list"; do
	IFS=: read -r key label <<<"$op"
	row "CLI through the daemon" "$label ($nsnap snapshots, $gib written), p50 / p99 ms" \
		"$(get "snapfs.$key.p50_ms") / $(get "snapfs.$key.p99_ms")" "" "O(objects), not O(data)" "n/a"
done

phase "phase 2: one snapshot per second under fio random writes"
load=(--bs=4k --size="$size" --ioengine=libaio --iodepth=16 --direct=1 --norandommap
	--time_based --runtime="$LOAD" --refill_buffers)
fio_job snapfs-load-baseline "$work/mnt/disks/bench" randwrite "${load[@]}"
fio_job snapfs-load-snapshots "$work/mnt/disks/bench" randwrite "${load[@]}" &
fio_pid=$!
: >"$work/lat-load.us"
i=0
sleep 1
while kill -0 "$fio_pid" 2>/dev/null; do
	t0=$(now_us)
	snapfs snapshot create "load-$i" --disk bench >/dev/null
	t1=$(now_us)
	echo $((t1 - t0)) >>"$work/lat-load.us"
	i=$((i + 1))
	left=$((1000000 - (t1 - t0)))
	[ "$left" -le 0 ] || sleep "$(awk -v u="$left" 'BEGIN { printf "%.3f", u / 1e6 }')"
done
wait "$fio_pid"
snapfs_written=$((snapfs_written + $(jq '.jobs[0].write.io_bytes' "$work/fio/snapfs-load-snapshots.json")))
metric snapfs.load.snapshot_create.p50_ms "$(pct "$work/lat-load.us" 50)" ms
metric snapfs.load.snapshot_create.p99_ms "$(pct "$work/lat-load.us" 99)" ms
metric snapfs.load.snapshots "$i" count
b=$(fio_val snapfs-load-baseline write iops) l=$(fio_val snapfs-load-snapshots write iops)
metric snapfs.load.iops_without "$b" IOPS
metric snapfs.load.iops_with "$l" IOPS
dip=$(awk -v b="$b" -v l="$l" 'BEGIN { printf "%.1f", (1 - l / b) * 100 }')
metric snapfs.load.dip_pct "$dip" %
row "CLI through the daemon" "snapshot create under fio random 4 KiB writes, p50 / p99 ms ($i snapshots)" \
	"$(get snapfs.load.snapshot_create.p50_ms) / $(get snapfs.load.snapshot_create.p99_ms)" "" "p99 ≤ 50 ms" \
	"$(judge "$(get snapfs.load.snapshot_create.p99_ms)" "<=" 50)"
row "CLI through the daemon" "fio IOPS without / with one snapshot per second (dip %)" \
	"$(fmt "$b") / $(fmt "$l") ($dip %)" "" "dip ≤ 5 %" "$(judge "$dip" "<=" 5)"

# --- phase 3: regions, change tracking, btrfs send -p, rsync ----------------
phase "phase 3: region 4+2 file://, full sync"
snapfs disk create src --size "$size" >/dev/null
fio_job snapfs-region-fill "$work/mnt/disks/src" write --bs=1M --size="$size" --ioengine=psync --end_fsync=1 --refill_buffers
drop_caches
fio_job snapfs-region-seqread "$work/mnt/disks/src" read --bs=1M --size="$size" --ioengine=psync
seqread=$(fio_val snapfs-region-seqread read bw)
metric snapfs.region.disk_seq_read_mbs "$seqread" MB/s
snapfs snapshot create src-1 --disk src >/dev/null
(umask 077; head -c 32 /dev/urandom >"$work/region.key") # key files must be owner-only
stores=()
for i in 0 1 2 3 4 5; do mkdir -p "$work/region/$i"; stores+=(--store "file://$work/region/$i"); done
snapfs region add reg --data 4 --parity 2 "${stores[@]}" --key-file "$work/region.key" >/dev/null
timed() { # timed OUTFILE CMD... -> seconds on stdout, the command's JSON lines in OUTFILE
	local f=$1 t0 t1 rc=0
	shift
	t0=$(now_us)
	timeout "$TIMEOUT" "$@" >"$f" || rc=$?
	t1=$(now_us)
	if [ "$rc" != 0 ]; then
		[ "$rc" = 124 ] && rc="timed out after $TIMEOUT s" || rc="failed (exit $rc)"
		echo "bench.sh: $* $rc" >&2
		note "$(echo "$*" | sed "s|$work|WORK|g" | cut -c1-100): $rc"
		return 1
	fi
	awk -v u=$((t1 - t0)) 'BEGIN { printf "%.3f", u / 1e6 }'
}
per_s() { [ -n "$2" ] && awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / s / 1e6 }' || true; }
sync_bytes() { jq -s '[.[] | select(.type == "sync") | .bytes_written[]] | add // 0' "$1"; }
drop_caches
# A timed-out sync leaves the region busy: the incremental sync and the
# restore are then skipped (their rows say —), the rest goes on.
region_ok=1
secs=$(timed "$work/sync-full.json" "${sfs[@]}" --json sync --region reg --disk src) || region_ok=0
full_mbs=$(per_s "$size" "$secs")
metric snapfs.region.full_sync_s "$secs" s
metric snapfs.region.full_sync_mbs "$full_mbs" MB/s
metric snapfs.region.full_sync_bytes "$(sync_bytes "$work/sync-full.json")" bytes

phase "phase 3: 1 % rewritten by 4 KiB random writes, incremental sync"
change=$((size / 100 >> 12 << 12))
rewrite=(--bs=4k --size="$size" --io_size="$change" --ioengine=libaio --iodepth=16 --direct=1 --refill_buffers)
fio_job snapfs-region-rewrite "$work/mnt/disks/src" randwrite "${rewrite[@]}"
snapfs snapshot create src-2 --disk src >/dev/null
excl=$(snapfs --json usage --fresh | jq -r 'select(.kind == "snapshot" and .name == "src-1") | .exclusive')
metric snapfs.region.changed_bytes "$change" bytes
metric snapfs.region.snapshot_exclusive_bytes "$excl" bytes
secs="" incr=""
drop_caches # as before btrfs send -p: both read the change from the disk
if [ "$region_ok" = 1 ]; then
	secs=$(timed "$work/sync-incr.json" "${sfs[@]}" --json sync --region reg --disk src) || region_ok=0
	incr=$(sync_bytes "$work/sync-incr.json")
fi
metric snapfs.region.incr_sync_s "$secs" s
metric snapfs.region.incr_sync_bytes "$incr" bytes

btrfs_s="" btrfs_b="" rsync_s="" rsync_b="" btrfs_ok=0
if ! command -v mkfs.btrfs >/dev/null; then
	skip btrfs "mkfs.btrfs missing"
else
	phase "phase 3: the same change on btrfs: send -p, and rsync --inplace --no-whole-file"
	truncate -s $((size * 2 + (256 << 20))) "$work/btrfs.img"
	# mkfs.btrfs refuses to run while any mount on the machine is dead
	# (ENOTCONN from a crashed FUSE daemon): retry, then go on without btrfs.
	for i in 1 2 3 4 5 6; do
		if mkfs.btrfs -q "$work/btrfs.img" >/dev/null 2>"$work/mkfs.err"; then btrfs_ok=1; break; fi
		sleep 5
	done
	if [ "$btrfs_ok" = 0 ]; then
		skipped+=("btrfs: mkfs.btrfs failed: $(head -1 "$work/mkfs.err")")
		echo "bench.sh: SKIP btrfs and rsync: $(head -1 "$work/mkfs.err")" >&2
	fi
fi
if [ "$btrfs_ok" = 1 ]; then
	mkdir -p "$work/btrfs"
	mount -o loop "$work/btrfs.img" "$work/btrfs"
	undo+=("umount '$work/btrfs'")
	btrfs -q subvolume create "$work/btrfs/vol"
	fio_job btrfs-fill "$work/btrfs/vol/disk" write --bs=1M --size="$size" --ioengine=psync --end_fsync=1 --refill_buffers
	btrfs -q subvolume snapshot -r "$work/btrfs/vol" "$work/btrfs/s1"
	cp --sparse=never "$work/btrfs/s1/disk" "$work/rsync-copy"
	fio_job btrfs-rewrite "$work/btrfs/vol/disk" randwrite "${rewrite[@]}"
	sync
	btrfs -q subvolume snapshot -r "$work/btrfs/vol" "$work/btrfs/s2"
	drop_caches
	btrfs_s=$(timed /dev/null btrfs -q send -p "$work/btrfs/s1" "$work/btrfs/s2" -f "$work/send.bin") || true
	btrfs_b=$(stat -c %s "$work/send.bin" 2>/dev/null || true)
	metric btrfs.send_p_s "$btrfs_s" s
	metric btrfs.send_p_bytes "$btrfs_b" bytes
	drop_caches
	# --ignore-times: rsync's quick check skips a file whose size and mtime
	# match (an earlier run measured no literal data); the delta algorithm
	# must run on the file whatever its times. The copy must then equal the
	# new snapshot's disk, or the figure is not a transfer of the change.
	rsync_s=$(timed "$work/rsync.out" rsync --inplace --no-whole-file --ignore-times --stats "$work/btrfs/s2/disk" "$work/rsync-copy") || true
	rsync_b=$(awk -F': ' '/^Literal data/ { gsub(/[ ,a-z]/, "", $2); print $2 }' "$work/rsync.out")
	if [ -n "$rsync_s" ] && ! cmp -s "$work/btrfs/s2/disk" "$work/rsync-copy"; then
		note "rsync: the copy differs from the source after the transfer; its figure is dropped"
		rsync_s="" rsync_b=""
	fi
	metric rsync.s "$rsync_s" s
	metric rsync.literal_bytes "$rsync_b" bytes
	umount "$work/btrfs"
	rm -f "$work/btrfs.img" "$work/rsync-copy" "$work/send.bin"
fi

phase "phase 3: restore"
drop_caches
secs="" restore_mbs=""
if [ "$region_ok" = 1 ] && secs=$(timed "$work/restore.json" "${sfs[@]}" --json restore --region reg --snapshot src-2 --disk src --to restored); then
	restore_mbs=$(per_s "$size" "$secs")
	snapfs_written=$((snapfs_written + size)) # the restore wrote the disk into the store
fi
metric snapfs.region.restore_s "$secs" s
metric snapfs.region.restore_mbs "$restore_mbs" MB/s

chg=$(mib "$change")
row "regions (4+2 file://)" "snapshot exclusive bytes after 1 % rewritten by 4 KiB writes ($chg)" \
	"$(mib "$excl") ($(ratio "$excl" "$change")× the change)" "" "≤ 1.1× the change" \
	"$(judge "$(ratio "$excl" "$change")" "<=" 1.1)"
row "regions (4+2 file://)" "incremental sync of that change: bytes written, time" \
	"$(mib "$incr") ($(ratio "$incr" "$change")×), $(get snapfs.region.incr_sync_s) s" \
	"btrfs send -p $(mib "$btrfs_b"), ${btrfs_s:-—} s ($(ratio "$(get snapfs.region.incr_sync_s)" "$btrfs_s")× its time) · rsync --inplace literal $(mib "$rsync_b"), ${rsync_s:-—} s" \
	"≤ 1.65× the change (1.1 × 6/4); time ≤ 1.0× btrfs send -p" \
	"$(st=$(judge "$(ratio "$incr" "$change")" "<=" 1.65); [ "$st" = met ] && st=$(judge "$(ratio "$(get snapfs.region.incr_sync_s)" "$btrfs_s")" "<=" 1.0); echo "$st")"
row "regions (4+2 file://)" "full sync of $gib, MB/s" "${full_mbs:-—}" "sequential read of the disk $(fmt "$seqread") ($(ratio "$full_mbs" "$seqread")×)" \
	"≥ 0.8× sequential read" "$(judge "$(ratio "$full_mbs" "$seqread")" ">=" 0.8)"
row "regions (4+2 file://)" "restore of $gib, MB/s" "${restore_mbs:-—}" "sequential read of the disk $(fmt "$seqread") ($(ratio "$restore_mbs" "$seqread")×)" \
	"≥ 0.8× sequential read" "$(judge "$(ratio "$restore_mbs" "$seqread")" ">=" 0.8)"

fi # phases 2 and 3

# --- phase 4: memory and index ----------------------------------------------
hwm=$(awk '/VmHWM/ { print $2 * 1024 }' "/proc/$daemon_pid/status")
idx=$(du -sB1 "$work/store/index" | cut -f1)
metric snapfs.written_bytes "$snapfs_written" bytes
metric snapfs.vmhwm_bytes "$hwm" bytes
metric snapfs.index_allocated_bytes "$idx" bytes
gib_written=$(awk -v b="$snapfs_written" 'BEGIN { printf "%.1f", b / 2^30 }')
idx_pct=$(awk -v i="$idx" -v w="$snapfs_written" 'BEGIN { printf "%.2f", i / w * 100 }')
metric snapfs.index_pct_of_written "$idx_pct" %
row "memory and index" "daemon peak RSS (VmHWM) after $gib_written GiB written (fio and restore), synced" "$(mib "$hwm")" "" \
	"≤ 256 MiB (at 16 GiB written)" "$(judge "$hwm" "<=" $((256 << 20)))"
row "memory and index" "index allocated (du) after $gib_written GiB written (fio and restore)" \
	"$(mib "$idx") ($idx_pct % of written, $(awk -v i="$idx" -v w="$snapfs_written" 'BEGIN { printf "%.1f", i / 2^20 / (w / 2^30) }') MiB per GiB)" \
	"" "≤ 1 % of written" "$(judge "$idx_pct" "<=" 1)"

# --- the table and the JSON -------------------------------------------------
load_end=$(uptime)
machine="$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 2^20 }' /proc/meminfo) memory, kernel $(uname -r), store on $(df -T "$work" | awk 'NR == 2 { print $2 }')"
{
	echo "snapfs benchmark $stamp (UTC): BENCH_SIZE=$SIZE, random fio jobs ${RUNTIME} s, $RUNS runs per latency; $machine"
	echo "load at start: ${load_start##*load average: }; at end: ${load_end##*load average: }"
	[ ${#skipped[@]} = 0 ] || printf 'skipped: %s\n' "${skipped[@]}"
	sed 's/^/note: /' "$work/notes.txt"
	echo
	echo "| section | measurement | snapfs | peers in the same run (snapfs ÷ peer) | target (issue 8) | status |"
	echo "|---|---|---|---|---|---|"
	awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, ($4 == "" ? "" : $4), $5, $6 }' "$rows"
} | tee "$work/table.md"
jq -n --arg stamp "$stamp" --arg machine "$machine" --arg size "$SIZE" --argjson runtime "$RUNTIME" \
	--argjson runs "$RUNS" --arg load_start "$load_start" --arg load_end "$load_end" \
	--arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	--argjson smoke "$smoke" --rawfile table "$work/table.md" \
	--slurpfile metrics "$metrics" \
	--argjson rows "$(jq -R -s 'split("\n") | map(select(length > 0) | split("\t") |
		{section: .[0], measurement: .[1], snapfs: .[2], peers: .[3], target: .[4], status: .[5]})' "$rows")" \
	'{time: $stamp, commit: $commit, machine: $machine, smoke: ($smoke == 1), size: $size,
	  random_runtime_s: $runtime, latency_runs: $runs, uptime_start: $load_start, uptime_end: $load_end,
	  metrics: ($metrics | map({(.key): {value, unit}}) | add), rows: $rows, table: $table}' >"$out"
echo
echo "JSON: $out"
[ -z "$profile_dir" ] || echo "profiles: $profile_dir (symbolized: go tool pprof -top FILE)"
exit
}
