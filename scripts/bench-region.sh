#!/usr/bin/env bash
# The region section of scripts/bench.sh on its own, repeated and
# interleaved, for iterating on sync and restore (issue 8, deliverable 4).
# Run as root (FUSE, loop devices, btrfs).
#
#   scripts/bench-region.sh [--profile DIR]
#
# Each round, in one run and on one machine load: a sequential read of the
# disk through the mount (fio, 1 MiB, cold cache); a full sync of a fresh
# snapshot to a fresh 4+2 file:// region; 1 % of the disk rewritten by
# 4 KiB random writes, a snapshot, and the incremental sync; the same
# rewrite on btrfs and `btrfs send -p`; the same change copied by `rsync
# --inplace --no-whole-file` from the btrfs snapshot to a copy of the old
# image; a restore of the newest snapshot (every timed step starts from a
# cold page cache, as in bench.sh). It prints each round's figures and
# ratios, the daemon's CPU time per GiB (user + system, /proc/PID/stat:
# unlike the rates, it hardly depends on the machine's load) and its peak
# RSS (VmHWM) during each sync and restore: the peak is reset before the
# step (/proc/PID/clear_refs) and read after.
#
# Environment: BENCH_SIZE [1G], BENCH_ROUNDS [2], BENCH_DIR [/var/tmp],
# BENCH_LOG_LEVEL [info; debug prints sync's step timings at the end].
# --profile DIR saves a CPU profile of the daemon over the first
# PROFILE_SECS [20] seconds of each sync and restore (DIR/<step><round>.cpu.pb.gz).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
profile_dir=""
if [ "${1:-}" = --profile ]; then
	profile_dir=$(realpath -m "${2:?--profile needs a directory}")
	mkdir -p "$profile_dir"
fi
[ "$(id -u)" = 0 ] || { echo "bench-region.sh: run as root" >&2; exit 2; }
for t in fio:fio jq:jq mkfs.btrfs:btrfs-progs curl:curl rsync:rsync; do
	command -v "${t%%:*}" >/dev/null && continue
	apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || true
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${t#*:}" >&2
done
size=$(numfmt --from=iec "${BENCH_SIZE:-1G}")
rounds=${BENCH_ROUNDS:-2}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-bench-region.XXXXXX")
undo=()
cleanup() {
	local i
	for ((i = ${#undo[@]} - 1; i >= 0; i--)); do eval "${undo[i]}" >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "work $work; $(nproc) cores; size $size; rounds $rounds; $(uptime)"
go build -o "$work/snapfs" ./cmd/snapfs
sfs=("$work/snapfs" --store "$work/store")
"${sfs[@]}" init >/dev/null
mkdir -p "$work/mnt"
pprof_addr=127.0.0.1:$((20000 + $$ % 20000))
margs=(--background)
[ -z "$profile_dir" ] || margs+=(--pprof "$pprof_addr")
daemon_pid=$("${sfs[@]}" --json --log-level "${BENCH_LOG_LEVEL:-info}" mount "${margs[@]}" "$work/mnt" | jq -r .pid)
undo+=("'$work/snapfs' --store '$work/store' umount '$work/mnt' || umount -l '$work/mnt'")
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { local t=$EPOCHREALTIME; echo "${t/./}"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
hwm() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$daemon_pid/status"; }
# The daemon's CPU time so far (user + system, clock ticks; the fields
# after the parenthesised command name, which may hold spaces).
cpu_ticks() { sed 's/.*) //' "/proc/$daemon_pid/stat" | awk '{ print $12 + $13 }'; }
tck=$(getconf CLK_TCK)
declare -A peak # the daemon's VmHWM (MiB) during each timed step
declare -A cpus # the daemon's CPU seconds during each timed step
# timed NAME CMD... -> seconds; with --profile, a CPU profile of the daemon
# over the first PROFILE_SECS [20] seconds of CMD. The daemon's peak RSS is
# reset first and recorded in peak[NAME] (seconds are printed: run it in
# the same shell, timed NAME ... >file, to keep peak).
timed() {
	local name=$1 t0 t1 p=""
	shift
	echo 5 >"/proc/$daemon_pid/clear_refs"
	if [ -n "$profile_dir" ]; then
		curl -sf -o "$profile_dir/$name.cpu.pb.gz" "http://$pprof_addr/debug/pprof/profile?seconds=${PROFILE_SECS:-20}" &
		p=$!
	fi
	c0=$(cpu_ticks)
	t0=$(now)
	"$@" >/dev/null
	t1=$(now)
	cpus[$name]=$(awk -v a="$c0" -v b="$(cpu_ticks)" -v t="$tck" 'BEGIN { printf "%.2f", (b - a) / t }')
	[ -z "$p" ] || wait "$p" || echo "bench-region.sh: profile of $name failed" >&2
	peak[$name]=$(hwm)
	secs "$t0" "$t1"
}
fio_q() { fio --name="$1" --filename="$2" --rw="$3" --fallocate=none --randrepeat=0 --output-format=json "${@:4}"; }
change=$((size / 100 >> 12 << 12))
rewrite=(--bs=4k --size="$size" --io_size="$change" --ioengine=libaio --iodepth=16 --direct=1 --refill_buffers)

"${sfs[@]}" disk create src --size "$size" >/dev/null
fio_q fill "$work/mnt/disks/src" write --bs=1M --size="$size" --ioengine=psync --end_fsync=1 --refill_buffers >/dev/null

truncate -s $((size * 2 + (256 << 20))) "$work/btrfs.img"
# mkfs.btrfs refuses to run while any mount on the machine is dead (ENOTCONN
# from a crashed FUSE daemon of another run): retry a while.
for i in $(seq 1 30); do
	mkfs.btrfs -q "$work/btrfs.img" >/dev/null 2>"$work/mkfs.err" && break
	[ "$i" -lt 30 ] || { cat "$work/mkfs.err" >&2; exit 1; }
	sleep 5
done
mkdir -p "$work/btrfs"
mount -o loop "$work/btrfs.img" "$work/btrfs"
undo+=("umount '$work/btrfs'")
btrfs -q subvolume create "$work/btrfs/vol"
fio_q fill "$work/btrfs/vol/disk" write --bs=1M --size="$size" --ioengine=psync --end_fsync=1 --refill_buffers >/dev/null
(umask 077; head -c 32 /dev/urandom >"$work/region.key")

for r in $(seq 1 "$rounds"); do
	drop_caches
	seq_mbs=$(fio_q seqread "$work/mnt/disks/src" read --bs=1M --size="$size" --ioengine=psync | jq -r '.jobs[0].read.bw_bytes / 1e6')
	[ "$r" != 1 ] || hwm0=$(awk '/VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$daemon_pid/status")
	"${sfs[@]}" snapshot create "r$r-a" --disk src >/dev/null
	stores=()
	for i in 0 1 2 3 4 5; do mkdir -p "$work/region$r/$i"; stores+=(--store "file://$work/region$r/$i"); done
	"${sfs[@]}" region add "reg$r" --data 4 --parity 2 "${stores[@]}" --key-file "$work/region.key" >/dev/null
	drop_caches
	timed "full$r" "${sfs[@]}" sync --region "reg$r" --disk src >"$work/t"
	full_s=$(<"$work/t")
	full_b=$(du -sb "$work/region$r" | cut -f1)
	fio_q rewrite "$work/mnt/disks/src" randwrite "${rewrite[@]}" >/dev/null
	"${sfs[@]}" snapshot create "r$r-b" --disk src >/dev/null
	drop_caches
	timed "incr$r" "${sfs[@]}" sync --region "reg$r" --disk src >"$work/t"
	incr_s=$(<"$work/t")
	incr_b=$(du -sb "$work/region$r" | cut -f1)

	btrfs -q subvolume snapshot -r "$work/btrfs/vol" "$work/btrfs/r$r-a"
	cp --reflink=always "$work/btrfs/vol/disk" "$work/btrfs/rsync-dst"
	fio_q rewrite "$work/btrfs/vol/disk" randwrite "${rewrite[@]}" >/dev/null
	sync
	btrfs -q subvolume snapshot -r "$work/btrfs/vol" "$work/btrfs/r$r-b"
	drop_caches
	t0=$(now)
	btrfs -q send -p "$work/btrfs/r$r-a" "$work/btrfs/r$r-b" -f "$work/send.bin"
	send_s=$(secs "$t0" "$(now)")
	send_b=$(stat -c %s "$work/send.bin")
	rm -f "$work/send.bin"
	drop_caches
	t0=$(now)
	# --ignore-times: without it rsync's quick check may skip the file
	# (same size and mtime) and transfer nothing.
	rsync --inplace --no-whole-file --ignore-times --stats "$work/btrfs/r$r-b/disk" "$work/btrfs/rsync-dst" >"$work/rsync.out"
	rsync_s=$(secs "$t0" "$(now)")
	rsync_lit=$(awk -F': ' '/^Literal data/ { gsub(/[ ,a-z]/, "", $2); print $2 }' "$work/rsync.out")
	cmp -s "$work/btrfs/r$r-b/disk" "$work/btrfs/rsync-dst" || { echo "bench-region.sh: rsync's copy differs from its source" >&2; exit 1; }
	rm -f "$work/btrfs/rsync-dst"

	drop_caches
	timed "restore$r" "${sfs[@]}" restore --region "reg$r" --snapshot "r$r-b" --disk src --to "restored$r" >"$work/t"
	rest_s=$(<"$work/t")
	"${sfs[@]}" disk delete --force "restored$r" >/dev/null
	# The next round's full sync copies its own snapshot only.
	"${sfs[@]}" snapshot delete "r$r-a" >/dev/null
	"${sfs[@]}" snapshot delete "r$r-b" >/dev/null
	rm -rf "$work/region$r"
	full_mbs=$(awk -v b="$size" -v s="$full_s" 'BEGIN { printf "%.1f", b / s / 1e6 }')
	rest_mbs=$(awk -v b="$size" -v s="$rest_s" 'BEGIN { printf "%.1f", b / s / 1e6 }')
	echo "round $r ($(uptime | sed 's/.*load/load/')):"
	echo "  sequential read through the mount   $(printf '%.1f' "$seq_mbs") MB/s"
	gib=$(awk -v b="$size" 'BEGIN { print b / 1073741824 }')
	echo "  full sync                           $full_mbs MB/s  ($(ratio "$full_mbs" "$seq_mbs")x the read; daemon $(ratio "${cpus[full$r]}" "$gib") CPU-s/GiB, peak RSS ${peak[full$r]} MiB)"
	echo "  restore                             $rest_mbs MB/s  ($(ratio "$rest_mbs" "$seq_mbs")x the read; daemon $(ratio "${cpus[restore$r]}" "$gib") CPU-s/GiB, peak RSS ${peak[restore$r]} MiB)"
	echo "  incremental sync                    $incr_s s  (btrfs send -p $send_s s, $((send_b >> 10)) KiB: $(ratio "$incr_s" "$send_s")x its time; rsync --inplace --no-whole-file --ignore-times $rsync_s s, $((rsync_lit >> 10)) KiB literal: $(ratio "$incr_s" "$rsync_s")x; daemon ${cpus[incr$r]} CPU-s, peak RSS ${peak[incr$r]} MiB)"
	echo "  region after both syncs             $((incr_b >> 20)) MiB (the incremental sync added $(((incr_b - full_b) >> 10)) KiB: $(ratio "$((incr_b - full_b))" "$change")x the $((change >> 10)) KiB rewritten; (k+m)/k = 1.5)"
done
echo "daemon peak RSS (VmHWM): $(awk '/VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$daemon_pid/status") ($hwm0 before the first sync: fill and read)"
[ "${BENCH_LOG_LEVEL:-info}" != debug ] || grep -a "timings" "$work/store/snapfs.log" | sed 's/^/  /' || true
