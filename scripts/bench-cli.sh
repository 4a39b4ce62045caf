#!/usr/bin/env bash
# bench-cli.sh: latency of the O(1) operations from the command line through
# the daemon (issue 8, deliverable 1): `snapshot create`, `disk create
# --from-snapshot` (clone), `disk rollback` and `image create`, BENCH_RUNS
# runs of each after 0 B and after each size of BENCH_CLI_SIZES written to
# one disk, with p50/p90/p99 per operation, printed as a table and written as
# JSON with the machine's load (uptime) before and after each level.
# The "new" side is this tree as scripts/install.sh installs it (into a
# staging root under the work directory): the light front as bin/snapfs,
# which serves these four commands (and status) over the control socket, and the full
# binary as lib/snapfs/snapfs-full, which the front execs for the rest.
# Run as root (FUSE).
#
#   scripts/bench-cli.sh [--smoke] [--out FILE.json]
#
# The floors, measured in the same run at each level, interleaved with the
# operations (one run of each in turn, so load changes hit them alike):
#   hello     a Go program that prints a line: the cost of any Go process here
#   version   `snapfs --version`: the front execs the full binary, so this
#             is both processes' start and the full binary's package init
#   status    `snapfs status`: a read-only call through the daemon (the front
#             serves it too; the baseline's full binary pays its package init)
#   thin      a Go program of net/http and encoding/json only that makes the
#             calls `snapshot create` makes on the control socket (Status,
#             then CreateSnapshotWith): what a client that links nothing
#             else (no engine, regions, metrics, FUSE) would cost
# The target is p50 <= 5 ms and p99 <= 20 ms, flat from 0 to 32 GiB written.
# `usage` (kept figures: O(objects), flat with the data) is timed too, after
# each round's objects exist, and, on this tree's side only and after the
# level's runs (at most 5 runs), `usage --fresh` (a count of the index: grows
# with the data).
# The daemon of this tree runs with --log-level debug, which logs how long
# each control operation took in the daemon: the "server" figures (from the
# request read to the answer ready), so a figure splits into process start,
# round trips and the operation itself.
#
# With BENCH_CLI_BASELINE=BINARY (a snapfs built from another commit, or
# this tree's full binary alone: before/after the front), a second store is
# served by a daemon of that binary and every timed run is made on both in
# turn: the "base" rows and the ratios are from the same run. All the
# binaries, floors included, are built static (CGO_ENABLED=0). When the
# baseline is a front (cmd/snapfs/front of another commit), give the full
# binary it execs as BENCH_CLI_BASELINE_FULL.
#
# Each level also records the daemons' CPU time during it (utime+stime from
# /proc: background work, such as the cleaner's scans or the Go collector,
# competes with the operations for the machine's cores). With
# BENCH_CLI_SETTLE=SECONDS the script waits that long after writing before
# the level's timed runs, so a level can be timed with the daemons idle.
#
# Environment (defaults in brackets; --smoke: 10 runs, 64M):
#   BENCH_RUNS       runs per operation and level [100]
#   BENCH_CLI_SIZES  cumulative amounts written before each level after the
#                    first (0) [2G 8G]; the issue asks for 32G when time allows
#   BENCH_DIR        where the work directory is made [/var/tmp]
#   BENCH_CLI_BASELINE  a snapfs binary to compare with [none]
#   BENCH_CLI_BASELINE_FULL  the full binary the baseline front execs [none]
#   BENCH_CLI_SETTLE seconds to wait after writing, before a level [0]
set -euo pipefail
{ # the whole script is parsed before it runs: editing it during a run is safe
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
smoke=0 out=""
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) smoke=1 ;;
	--out) out=$(realpath -m "${2:?--out needs a file}"); shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench-cli.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || { echo "bench-cli.sh: run as root (FUSE)" >&2; exit 2; }
if [ "$smoke" = 1 ]; then
	RUNS=${BENCH_RUNS:-10} SIZES=${BENCH_CLI_SIZES:-64M}
else
	RUNS=${BENCH_RUNS:-100} SIZES=${BENCH_CLI_SIZES:-2G 8G}
fi
need=(fio:fio jq:jq)
missing=()
for t in "${need[@]}"; do command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}"); done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing ${missing[*]}" >&2
	apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || true
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
		"${missing[@]}" >&2
fi

stamp=$(date -u +%Y%m%d-%H%M%S)
if [ -z "$out" ]; then
	if [ "$smoke" = 1 ]; then out=/tmp/snapfs-bench-cli-smoke-$stamp.json; else out=$repo/scripts/bench-results/$stamp-cli.json; fi
fi
mkdir -p "$(dirname "$out")"

work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-bench-cli.XXXXXX")
undo=()
cleanup() {
	local i
	for ((i = ${#undo[@]} - 1; i >= 0; i--)); do eval "${undo[i]}" >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "work directory $work; $(nproc) cores; $RUNS runs; sizes 0 $SIZES; $(uptime)" >&2

bin=$work/bin
mkdir -p "$bin" "$work/hello" "$work/mnt"
# The installed layout: PREFIX/bin/snapfs (the front) and
# PREFIX/lib/snapfs/snapfs-full, as scripts/install.sh lays them out.
DESTDIR=$work/root SNAPFS_VERSION=bench-$(git rev-parse --short HEAD 2>/dev/null || echo devel) \
	bash scripts/install.sh /usr/local >/dev/null
ln -s "$work/root/usr/local/bin/snapfs" "$bin/snapfs"
printf 'package main\n\nimport "os"\n\nfunc main() { os.Stdout.WriteString("hello\\n") }\n' >"$work/hello/main.go"
printf 'module hello\n\ngo 1.22\n' >"$work/hello/go.mod"
(cd "$work/hello" && CGO_ENABLED=0 go build -o "$bin/hello" .)
mkdir -p "$work/thin"
cat >"$work/thin/main.go" <<'EOF'
// thin SOCKET NAME DISK: snapshot create's calls on the control socket.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
)

func main() {
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", os.Args[1])
	}}}
	for _, c := range [][2]string{{"Status", "{}"},
		{"CreateSnapshotWith", `{"name":` + strconv.Quote(os.Args[2]) + `,"disks":[` + strconv.Quote(os.Args[3]) + `]}`}} {
		res, err := hc.Post("http://snapfs/v1/"+c[0], "application/json", strings.NewReader(c[1]))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			fmt.Fprintf(os.Stderr, "%s: %s\n", res.Status, b)
			os.Exit(1)
		}
	}
	fmt.Println("created snapshot", os.Args[2])
}
EOF
printf 'module thin\n\ngo 1.22\n' >"$work/thin/go.mod"
(cd "$work/thin" && CGO_ENABLED=0 go build -o "$bin/thin" .)
base=${BENCH_CLI_BASELINE:-}
sides=(new)
if [ -n "$base" ]; then
	base=$(realpath "$base")
	[ -x "$base" ] || { echo "bench-cli.sh: BENCH_CLI_BASELINE $base is not executable" >&2; exit 2; }
	cp "$base" "$bin/snapfs-base"
	sides+=(base)
	if [ -n "${BENCH_CLI_BASELINE_FULL:-}" ]; then
		# A front finds the full binary next to itself (cmd/snapfs/front).
		cp "$(realpath "$BENCH_CLI_BASELINE_FULL")" "$bin/snapfs-full"
	fi
fi
# snapfs SIDE ARGS...: the binary and store of SIDE (new: this tree; base).
snapfs() {
	local side=$1
	shift
	if [ "$side" = new ]; then "$bin/snapfs" --store "$work/store-new" "$@"; else "$bin/snapfs-base" --store "$work/store-base" "$@"; fi
}
for side in "${sides[@]}"; do
	b=$bin/snapfs
	[ "$side" = new ] || b=$bin/snapfs-base
	mkdir -p "$work/mnt-$side"
	snapfs "$side" init >/dev/null
	if [ "$side" = new ]; then
		snapfs "$side" --log-level debug mount --background "$work/mnt-$side" >/dev/null
	else
		snapfs "$side" mount --background "$work/mnt-$side" >/dev/null
	fi
	undo+=("'$b' --store '$work/store-$side' umount '$work/mnt-$side' || umount -l '$work/mnt-$side'")
done
# daemon_ticks SIDE: the CPU time (clock ticks) of SIDE's daemon so far.
daemon_ticks() {
	local pid
	pid=$(pgrep -o -f -- "--store $work/store-$1 .*mount" || true)
	if [ -n "$pid" ]; then awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0; else echo 0; fi
}
total=0
for s in $SIZES; do
	b=$(numfmt --from=iec "$s")
	[ "$b" -gt "$total" ] || { echo "bench-cli.sh: BENCH_CLI_SIZES must grow: $SIZES" >&2; exit 2; }
	total=$b
done
for side in "${sides[@]}"; do
	snapfs "$side" disk create d --size $((total + (1 << 30))) >/dev/null
	# Every level adds BENCH_RUNS + 1 snapshots of d and keeps them (so the
	# figures also show whether a create grows with the number of
	# snapshots): lift the default manual quota (256 per disk).
	snapfs "$side" policy quota --manual 100000 >/dev/null
done

# The timed runs: each sample is the wall time of one process, in µs.
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
timed() { # timed FILE CMD...
	local f=$1 t0 t1
	shift
	t0=$(now_us)
	"$@" >/dev/null
	t1=$(now_us)
	echo $((t1 - t0)) >>"$f"
}
# stats FILE -> {"n", "p50_ms", "p90_ms", "p99_ms", "max_ms"} (nearest rank)
stats() {
	sort -n "$1" | awk '{ a[NR] = $1 }
	function p(q,  i) { i = int((NR * q + 99) / 100); if (i < 1) i = 1; return a[i] / 1000 }
	END { printf "{\"n\":%d,\"p50_ms\":%.2f,\"p90_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f}\n", NR, p(50), p(90), p(99), a[NR] / 1000 }'
}

levels=$work/levels.jsonl
: >"$levels"
written=0
ops=(hello version status thin snapshot_create clone rollback image_create usage usage_fresh)
level() { # level TAG
	local tag=$1 i op side dir=$work/lat-$1 before after
	mkdir -p "$dir"
	for side in "${sides[@]}"; do snapfs "$side" snapshot create "$tag-base" --disk d >/dev/null; done
	local logged
	logged=$(wc -l <"$work/store-new/snapfs.log")
	before=$(uptime)
	local t0 t1 tick t_level
	tick=$(getconf CLK_TCK)
	declare -A cpu0
	for side in "${sides[@]}"; do cpu0[$side]=$(daemon_ticks "$side"); done
	t0=$(now_us)
	for ((i = 0; i < RUNS; i++)); do
		timed "$dir/hello" "$bin/hello"
		for side in "${sides[@]}"; do
			timed "$dir/$side.version" snapfs "$side" --version
			timed "$dir/$side.status" snapfs "$side" status
			timed "$dir/$side.thin" "$bin/thin" "$work/store-$side/control.sock" "$tag-t$i" d
			timed "$dir/$side.snapshot_create" snapfs "$side" snapshot create "$tag-s$i" --disk d
			timed "$dir/$side.clone" snapfs "$side" disk create "$tag-c$i" --from-snapshot "$tag-base" --disk d
			timed "$dir/$side.rollback" snapfs "$side" disk rollback d --snapshot "$tag-base"
			timed "$dir/$side.image_create" snapfs "$side" image create "$tag-i$i" --snapshot "$tag-base" --disk d
			timed "$dir/$side.usage" snapfs "$side" usage --no-regions
		done
	done
	after=$(uptime)
	t1=$(now_us)
	t_level=$(((t1 - t0) / 1000))
	# The daemons' CPU during the level, as a share of one core.
	local cpu_json="" sep=""
	for side in "${sides[@]}"; do
		cpu_json+="$sep\"$side\":$(awk -v a="${cpu0[$side]}" -v b="$(daemon_ticks "$side")" -v hz="$tick" -v ms="$t_level" \
			'BEGIN { printf "%.3f", (b - a) / hz / (ms / 1000) }')"
		sep=,
	done
	# `usage --fresh` counts the index: seconds at 8 GiB. Timed after the
	# level's loop (a few runs), not in it: interleaved, its scans and the
	# garbage they leave for the daemon's collector slowed every operation
	# timed after them.
	for ((i = 0; i < RUNS && i < 5; i++)); do timed "$dir/new.usage_fresh" snapfs new usage --no-regions --fresh; done
	# The daemon's own time per operation (debug log: took=1.234ms or 567µs).
	tail -n +$((logged + 1)) "$work/store-new/snapfs.log" | awk -v dir="$dir" '
		match($0, /msg="control: [A-Za-z]+"/) {
			op = substr($0, RSTART + 14, RLENGTH - 15)
			if (!match($0, /took=[0-9.]+(ms|µs|s)/)) next
			v = substr($0, RSTART + 5, RLENGTH - 5)
			us = v + 0
			if (v ~ /ms$/) us *= 1000; else if (v !~ /µs$/) us *= 1e6
			f = ""
			if (op == "CreateSnapshotWith") f = "snapshot_create"
			if (op == "CreateDisk") f = "clone"
			if (op == "RollbackDisk") f = "rollback"
			if (op == "CreateImage") f = "image_create"
			if (op == "StatusReport") f = "status"
			if (op == "Usage") f = "usage"
			if (op == "FreshUsage") f = "usage_fresh"
			if (f != "") printf "%d\n", us >>(dir "/server." f)
		}'
	{
		printf '{"level":"%s","written_bytes":%d,"uptime_before":"%s","uptime_after":"%s","daemon_cpu_share":{%s},"hello":%s' \
			"$tag" "$written" "$before" "$after" "$cpu_json" "$(stats "$dir/hello")"
		printf ',"server":{'
		local sep=""
		for op in status snapshot_create clone rollback image_create usage usage_fresh; do
			[ -s "$dir/server.$op" ] || continue
			printf '%s"%s":%s' "$sep" "$op" "$(stats "$dir/server.$op")"
			sep=,
		done
		printf '}'
		for side in "${sides[@]}"; do
			printf ',"%s":{' "$side"
			local sep=""
			for op in "${ops[@]:1}"; do
				[ -s "$dir/$side.$op" ] || continue
				printf '%s"%s":%s' "$sep" "$op" "$(stats "$dir/$side.$op")"
				sep=,
			done
			printf '}'
		done
		printf '}\n'
	} >>"$levels"
	echo "level $tag done: $after" >&2
}

level 0
for s in $SIZES; do
	b=$(numfmt --from=iec "$s")
	echo "writing $(((b - written) >> 20)) MiB at offset $((written >> 20)) MiB" >&2
	for side in "${sides[@]}"; do
		fio --name=fill --filename="$work/mnt-$side/disks/d" --rw=write --bs=1M --offset="$written" --size=$((b - written)) \
			--ioengine=psync --end_fsync=1 --refill_buffers --fallocate=none --output-format=json --output="$work/fill.json" >/dev/null
	done
	written=$b
	if [ "${BENCH_CLI_SETTLE:-0}" -gt 0 ]; then
		echo "waiting ${BENCH_CLI_SETTLE} s (BENCH_CLI_SETTLE)" >&2
		sleep "$BENCH_CLI_SETTLE"
	fi
	level "$s"
done

jq -s --arg host "$(uname -n)" --arg cores "$(nproc)" --arg stamp "$stamp" --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	--arg base "$base" --arg runs "$RUNS" \
	'{bench: "cli", stamp: $stamp, commit: $commit, baseline: $base, runs: ($runs | tonumber), host: $host,
	  cores: ($cores | tonumber), levels: .}' "$levels" >"$out"

printf '%-16s %-5s %-8s %8s %8s %8s %8s  %-9s %s\n' operation side written p50_ms p90_ms p99_ms max_ms "p50 ×base" target
jq -r '.levels[] as $l
	| (["hello", "-"], (("version", "status", "thin", "snapshot_create", "clone", "rollback", "image_create", "usage", "usage_fresh") as $op
	   | (["new", "base"][] | select($l[.] != null)) as $side | [$op, $side])) as [$op, $side]
	| (if $side == "-" then $l.hello else $l[$side][$op] end) as $s
	| select($s != null)
	| [$op, $side, $l.level, $s.p50_ms, $s.p90_ms, $s.p99_ms, $s.max_ms,
	   (if $side == "new" and $l.base != null and $l.base[$op] != null then ($s.p50_ms / $l.base[$op].p50_ms * 100 | round / 100 | tostring) else "" end),
	   (if ($op | test("^(hello|version|status|thin)$")) then "floor"
	    elif $op == "usage_fresh" then "a count of the index: grows with the data"
	    elif ($op | test("^usage")) then "O(objects): flat with the data"
	    elif ($s.p50_ms <= 5 and $s.p99_ms <= 20) then "met (≤ 5 / ≤ 20 ms)" else "missed (≤ 5 / ≤ 20 ms)" end)]
	| @tsv' "$out" | awk -F'\t' '{ printf "%-16s %-5s %-8s %8s %8s %8s %8s  %-9s %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
echo
echo "in the daemon (new side, its debug log): from the request read to the answer ready"
printf '%-16s %-8s %8s %8s %8s %8s\n' operation written p50_ms p90_ms p99_ms max_ms
jq -r '.levels[] as $l | ($l.server | keys_unsorted[]) as $op | $l.server[$op] as $s
	| [$op, $l.level, $s.p50_ms, $s.p90_ms, $s.p99_ms, $s.max_ms] | @tsv' "$out" |
	awk -F'\t' '{ printf "%-16s %-8s %8s %8s %8s %8s\n", $1, $2, $3, $4, $5, $6 }'
jq -r '.levels[] | "load during level \(.level): before \(.uptime_before | sub(".*load average: "; "")), after \(.uptime_after | sub(".*load average: "; "")); daemon CPU (cores) \(.daemon_cpu_share)"' "$out"
echo "JSON: $out"
exit 0
}
