#!/usr/bin/env bash
# Engine benchmarks, printed as ratios to the plain-file baseline measured in
# the same run (throughput engine / throughput plain file; > 1 is faster).
#
#   scripts/bench.sh [BENCHTIME]     default 2s per benchmark
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PATH:/usr/local/go/bin
out=$(go test -run - -bench 'SeqWrite1M|RandWrite4K|SeqRead1M' -benchtime "${1:-2s}" ./rowstore/)
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

# Space under sustained overwrite: a 64 MiB disk rewritten
# ${SNAPFS_OVERWRITE_PASSES:-50} times with random 4 KiB writes, with and
# without the background cleaner (segment bytes / live, write throughput).
echo
go test -run - -bench BenchmarkOverwriteSpace -benchtime 1x -timeout 60m ./rowstore/ \
	-args -overwrite.passes "${SNAPFS_OVERWRITE_PASSES:-50}" | grep '^BenchmarkOverwriteSpace'
