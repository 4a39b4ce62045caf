#!/usr/bin/env bash
# The daemon's memory as data is written (issue 8, deliverable 5: peak RSS
# ≤ 256 MiB after 16 GiB written, and flat beyond). Run as root (FUSE).
#
#   scripts/bench-memory.sh [--out FILE.tsv]
#
# A store in a fresh directory under MEMBENCH_DIR, mounted; one disk of
# MEMBENCH_DISK, through disks/<d>, written sequentially (1 MiB writes, fio,
# direct) in steps of MEMBENCH_STEP until MEMBENCH_TOTAL is written (past the
# disk's size the writes start again at its beginning: the index and the
# cleaner's live map grow with the live data, while the store on disk stays
# about the disk's size), a snapshot after every step (the one before is
# then deleted, as a rotation does), and MEMBENCH_RANDOM of random 4 KiB
# rewrites (iodepth 16, direct) after every full pass. Sampled:
#   - every second: /proc/PID/status (VmRSS, VmHWM, RssAnon, RssFile,
#     RssShmem) -> samples.tsv (printed at the end as peaks per step);
#   - after every step, 20 s after the last, and 10 s after a restart of
#     the daemon on the store: smaps_rollup, the resident size of every mapping
#     grouped by what it maps (Badger's .sst tables, .mem memtable logs,
#     .vlog value log, other files, anonymous memory: the Go heap and
#     Badger's arenas), and the Go runtime's figures from the daemon's
#     Prometheus metrics (heap in use, heap released, GC cycles).
# One line per step on stdout (MiB), the full detail in the work directory
# when MEMBENCH_KEEP=1 (else it is removed, store included).
#
# Environment (defaults in brackets):
#   MEMBENCH_DISK    size of the disk [16G]
#   MEMBENCH_TOTAL   bytes written sequentially [32G]
#   MEMBENCH_STEP    sequential step [2G]
#   MEMBENCH_RANDOM  random 4 KiB rewrites after every full pass [256M]
#   MEMBENCH_BS      block size of the disk [16K]
#   MEMBENCH_DIR     where the work directory is made [/var/tmp]
#   MEMBENCH_MAXSTORE  the store may take at most this much disk space: when a
#                    step could pass it, snapfs gc runs first; still above, the run stops [24G]
#   MEMBENCH_SNAPFS  a snapfs binary to measure instead of building one
#   MEMBENCH_KEEP    1: keep the work directory (the store is removed anyway)
#   MEMBENCH_HEAP    1: also save a Go heap profile after every step
#                    (heap.<step>.pb.gz; mounts with --pprof; implies KEEP)
set -euo pipefail
{
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
out=""
while [ $# -gt 0 ]; do
	case $1 in
	--out) out=$(realpath -m "${2:?--out needs a file}"); shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-memory.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || { echo "bench-memory.sh: run as root (FUSE)" >&2; exit 2; }
for t in fio:fio jq:jq curl:curl; do
	command -v "${t%%:*}" >/dev/null && continue
	apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || true
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${t#*:}" >&2
done

total=$(numfmt --from=iec "${MEMBENCH_TOTAL:-32G}")
dsize=$(numfmt --from=iec "${MEMBENCH_DISK:-16G}")
maxstore=$(($(numfmt --from=iec "${MEMBENCH_MAXSTORE:-24G}") >> 20))
step=$(numfmt --from=iec "${MEMBENCH_STEP:-2G}")
random=$(numfmt --from=iec "${MEMBENCH_RANDOM:-256M}")
bs=${MEMBENCH_BS:-16K}
work=$(mktemp -d "${MEMBENCH_DIR:-/var/tmp}/snapfs-mem.XXXXXX")
free=$(df -B1 --output=avail "$work" | tail -1)
if [ "$free" -lt $(((maxstore + 1024) << 20)) ]; then
	rmdir "$work"
	echo "bench-memory.sh: $(numfmt --to=iec "$free") free in ${MEMBENCH_DIR:-/var/tmp}, too little for MEMBENCH_MAXSTORE $((maxstore >> 10)) GiB and 1 GiB to spare" >&2
	exit 1
fi
mnt=$work/mnt store=$work/store
mkdir -p "$mnt"
sampler=""
cleanup() {
	[ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true
	"$work/snapfs" --store "$store" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt" 2>/dev/null || true
	rm -rf "$store"
	[ "${MEMBENCH_KEEP:-0}" = 1 ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -n "${MEMBENCH_SNAPFS:-}" ]; then cp "$MEMBENCH_SNAPFS" "$work/snapfs"; else CGO_ENABLED=0 go build -o "$work/snapfs" ./cmd/snapfs; fi
sfs() { "$work/snapfs" --store "$store" "$@"; }
sfs init >/dev/null
maddr=127.0.0.1:$((30000 + $$ % 20000))
paddr=127.0.0.1:$((30001 + $$ % 20000))
popt=()
[ "${MEMBENCH_HEAP:-0}" != 1 ] || { popt=(--pprof "$paddr"); MEMBENCH_KEEP=1; }
pid=$(sfs --json mount --background --metrics "$maddr" "${popt[@]}" "$mnt" | jq -r .pid)
echo "$pid" >"$work/pid" # the sampler follows the daemon across the restart below
sfs disk create mem --size "$dsize" --block-size "$bs" >/dev/null
disk=$mnt/disks/mem
echo "work $work; daemon $pid; $(nproc) cores; $(uptime)" >&2

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$pid/status" 2>/dev/null; }
# every second: elapsed, written GiB, VmRSS VmHWM RssAnon RssFile RssShmem (KiB)
echo "t written_gib vmrss vmhwm rssanon rssfile rssshmem" >"$work/samples.tsv"
written=0
echo 0 >"$work/written"
(
	t0=$SECONDS
	while [ -e "$work/pid" ]; do
		pid=$(cat "$work/pid")
		if kill -0 "$pid" 2>/dev/null; then
			echo "$((SECONDS - t0)) $(cat "$work/written") $(kib VmRSS) $(kib VmHWM) $(kib RssAnon) $(kib RssFile) $(kib RssShmem)" >>"$work/samples.tsv"
		fi
		sleep 1
	done
) &
sampler=$!

# breakdown LABEL: smaps grouped by mapping, Go metrics; one line (MiB)
printf '%-22s %7s %7s %7s %7s %7s %7s %7s %7s %7s %7s %7s %7s %6s %6s\n' step vmrss vmhwm anon file sst mem vlog ofile anonmap goheap gosys released gcs cpu_s
breakdown() {
	local label=$1 m
	cp "/proc/$pid/smaps_rollup" "$work/smaps_rollup.$label"
	cp "/proc/$pid/smaps" "$work/smaps-full.$label"
	awk '
	/^[0-9a-f]+-[0-9a-f]+ / { path = $6; kind = "anonmap"
		if (path ~ /\.sst$/) kind = "sst"; else if (path ~ /\.mem$/) kind = "mem"
		else if (path ~ /\.vlog$/) kind = "vlog"; else if (path ~ /^\//) kind = "ofile"
		next }
	/^Rss:/ { rss[kind] += $2 }
	END { printf "%d %d %d %d %d\n", rss["sst"], rss["mem"], rss["vlog"], rss["ofile"], rss["anonmap"] }' "/proc/$pid/smaps" >"$work/smaps.$label"
	curl -sf "http://$maddr/metrics" >"$work/metrics.$label" || : >"$work/metrics.$label"
	[ "${MEMBENCH_HEAP:-0}" != 1 ] || curl -sf -o "$work/heap.$label.pb.gz" "http://$paddr/debug/pprof/heap" || true
	m() { awk -v k="$1" '$1 == k { printf "%.0f", $2 }' "$work/metrics.$label"; }
	read -r sst mem vlog ofile anonmap <"$work/smaps.$label"
	# KiB figures and byte figures to MiB
	echo "$label $(kib VmRSS) $(kib VmHWM) $(kib RssAnon) $(kib RssFile) $sst $mem $vlog $ofile $anonmap" \
		"$(m go_memstats_heap_inuse_bytes) $(m go_memstats_sys_bytes) $(m go_memstats_heap_released_bytes) $(m go_gc_duration_seconds_count)" \
		"$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$pid/stat")" |
		awk '{ printf "%-22s", $1; for (i = 2; i <= 10; i++) printf " %7.1f", $i / 1024
			for (i = 11; i <= 13; i++) printf " %7.1f", $i / 2^20; printf " %6d %6.1f\n", $14, $15 }'
}

rand_rewrite() { # random 4 KiB rewrites over the disk
	fio --name=rand --filename="$disk" --rw=randwrite --bs=4k --size="$dsize" --io_size="$random" \
		--ioengine=libaio --iodepth=16 --direct=1 --randrepeat=0 --output-format=json >"$work/fio-rand.json"
	jq -r '"random 4k write: \(.jobs[0].write.iops | floor) IOPS"' "$work/fio-rand.json" >&2
}
snapshot() { # snapshot NAME: take it, delete the one before
	sfs snapshot create "$1" --disk mem >/dev/null
	[ -z "$last_snap" ] || sfs snapshot delete "$last_snap" >/dev/null
	last_snap=$1
}

t0=$SECONDS
n=0 last_snap=""
while [ "$written" -lt "$total" ]; do
	fio --name=seq --filename="$disk" --rw=write --bs=1M --offset=$((written % dsize)) --size="$step" \
		--ioengine=libaio --iodepth=4 --direct=1 --output-format=json >"$work/fio-seq.json"
	written=$((written + step))
	echo $((written >> 30)) >"$work/written"
	n=$((n + 1))
	snapshot "s$n"
	# Keep the store within MEMBENCH_MAXSTORE: the deleted snapshot's
	# overwritten blocks are freed by gc (as an administrator would run it).
	if [ "$(du -sm "$store" | cut -f1)" -gt $((maxstore - (step >> 20))) ]; then
		sfs gc >/dev/null
		[ "$(du -sm "$store" | cut -f1)" -le $((maxstore - (step >> 20))) ] ||
			{ echo "bench-memory.sh: the store stays above MEMBENCH_MAXSTORE after gc; stopped" >&2; exit 1; }
		echo "gc: store $(du -sm "$store" | cut -f1) MiB" >&2
	fi
	echo "[$((SECONDS - t0)) s] $(jq -r '"seq 1M write: \(.jobs[0].write.bw_bytes / 1e6 | floor) MB/s"' "$work/fio-seq.json"); store $(du -sm "$store" | cut -f1) MiB; $(uptime | sed 's/.*load/load/')" >&2
	if [ $((written % dsize)) -eq 0 ]; then
		breakdown "$((written >> 20))M-seq"
		rand_rewrite
		snapshot "r$n"
		breakdown "$((written >> 20))M+rand"
	else
		breakdown "$((written >> 20))M"
	fi
done
sleep 20
breakdown "idle-20s"
# A restart: Badger opens (maps and verifies) every table of the index.
sfs umount "$mnt" >/dev/null
pid=$(sfs --json mount --background --metrics "$maddr" "${popt[@]}" "$mnt" | jq -r .pid)
echo "$pid" >"$work/pid"
sleep 10
breakdown "restart+10s"
rm -f "$work/pid" # the sampler ends
wait "$sampler" 2>/dev/null || true
sampler=""
echo "columns: MiB (gcs: Go collections so far; cpu_s: the daemon's CPU seconds so far); anon/file: RssAnon/RssFile; sst/mem/vlog/ofile/anonmap: resident size of the mappings of Badger's tables, memtable logs, value log, other files, anonymous memory; goheap: heap in use; gosys: memory the Go runtime holds; released: heap returned to the OS" >&2
echo "peak VmHWM (both daemons) $(awk 'NR > 1 && $4 > m { m = $4 } END { printf "%.1f", m / 1024 }' "$work/samples.tsv") MiB; up to $((dsize >> 30)) GiB written: $(awk -v h=$((dsize >> 30)) 'NR > 1 && $2 <= h && $4 > m { m = $4 } END { printf "%.1f", m / 1024 }' "$work/samples.tsv") MiB; index $(du -sm "$store/index" 2>/dev/null | cut -f1) MiB allocated; $(uptime | sed 's/.*load/load/')" >&2
[ -z "$out" ] || cp "$work/samples.tsv" "$out"
exit 0 # bash reads no further: editing this file during a run is safe
}
