#!/usr/bin/env bash
# Encrypted against plain disks through the mount, in the same run (issue 12:
# encrypted sequential write and read, and 4 KiB random write, >= 0.8x plain).
# Run as root.
#
#   scripts/bench-encryption.sh [ROUNDS]     default 3
#
# One store (BENCH_DIR, default /var/tmp), one daemon unlocking one key file,
# two disks of BENCH_SIZE (default 1G): "plain" and "enc" (--encrypt). Each
# round runs every fio job on plain, then on enc (interleaved rounds, so load
# changes hit both alike): sequential 1 MiB writes (buffered, end_fsync),
# sequential 1 MiB reads after dropping the page cache, random 4 KiB writes
# (libaio, iodepth 16, O_DIRECT, BENCH_RUNTIME seconds). It prints each
# round's figures, the medians and enc/plain ratios, and the load average.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PATH:/usr/local/go/bin
rounds=${1:-3}
size=${BENCH_SIZE:-1G}
runtime=${BENCH_RUNTIME:-10}
if ! command -v fio >/dev/null || ! command -v jq >/dev/null; then
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq fio jq >/dev/null
fi
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-bench-enc.XXXXXX")
bin=$work/snapfs
mnt=$work/mnt
store=$work/store
cleanup() {
	"$bin" --store "$store" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$bin" ./cmd/snapfs
head -c 32 /dev/urandom | base64 >"$work/key"
chmod 600 "$work/key"
"$bin" --store "$store" init >/dev/null
mkdir "$mnt"
"$bin" --store "$store" mount --background --key-file "$work/key" "$mnt" >/dev/null
"$bin" --store "$store" disk create plain --size "$size" >/dev/null
"$bin" --store "$store" disk create enc --size "$size" --encrypt --key-file "$work/key" >/dev/null

job() { # disk name rw bs extra...
	local disk=$1 name=$2 rw=$3 bs=$4
	shift 4
	fio --name="$name" --filename="$mnt/disks/$disk" --rw="$rw" --bs="$bs" --size="$size" "$@" \
		--output-format=json 2>/dev/null
}
declare -A res
for ((r = 1; r <= rounds; r++)); do
	for d in plain enc; do
		w=$(job "$d" seqwrite write 1M --end_fsync=1 | jq '.jobs[0].write.bw_bytes/1e6')
		sync
		echo 3 >/proc/sys/vm/drop_caches
		rd=$(job "$d" seqread read 1M | jq '.jobs[0].read.bw_bytes/1e6')
		rw=$(job "$d" randwrite randwrite 4k --ioengine=libaio --iodepth=16 --direct=1 \
			--time_based --runtime="$runtime" | jq '.jobs[0].write.iops')
		res[$d,w]+="$w " res[$d,r]+="$rd " res[$d,rw]+="$rw "
		printf 'round %d %-5s seq write %7.1f MB/s  seq read %7.1f MB/s  rand 4k write %7.0f IOPS  (load %s)\n' \
			"$r" "$d" "$w" "$rd" "$rw" "$(cut -d' ' -f1 /proc/loadavg)"
	done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "medians of $rounds rounds (BENCH_SIZE=$size, random jobs ${runtime}s; load $(cut -d' ' -f1-3 /proc/loadavg)):"
for k in w r rw; do
	p=$(echo "${res[plain,$k]}" | median)
	e=$(echo "${res[enc,$k]}" | median)
	case $k in w) n="seq write 1 MiB, MB/s" ;; r) n="seq read 1 MiB, MB/s" ;; rw) n="rand 4 KiB write, IOPS" ;; esac
	awk -v n="$n" -v p="$p" -v e="$e" 'BEGIN {printf "  %-24s plain %9.1f  encrypted %9.1f  ratio %.2fx (target >= 0.8x)\n", n, p, e, e/p}'
done
