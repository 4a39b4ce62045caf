#!/usr/bin/env bash
# The one test command of snapfs. Run as root on Debian (FUSE mounts, loop
# devices and mkfs need it). It installs what the tests need and is missing
# (Debian packages with apt-get; versitygw, the S3 server of the S3 tests,
# with go install), then runs gofmt, go vet and `go test -race` over every
# package, and fails if a test left a FUSE mount or a loop device behind.
#
#   scripts/test.sh                 everything
#   scripts/test.sh ./rowstore/...  only some packages (extra args go to go test)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PATH=$PATH:/usr/local/go/bin:$HOME/go/bin
if ! command -v go >/dev/null; then
	echo "test.sh: Go is not installed (see README: Go 1.26 or newer at /usr/local/go)" >&2
	exit 1
fi

# Debian packages: mkfs.ext4 and fstrim (e2fsprogs, util-linux), losetup and
# mount (mount), mkfs.xfs (xfsprogs), rsync (benchmark baseline).
need=()
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v losetup >/dev/null || need+=(mount)
command -v fstrim >/dev/null || need+=(util-linux)
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v rsync >/dev/null || need+=(rsync)
if ((${#need[@]})); then
	echo "test.sh: installing ${need[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
modprobe loop 2>/dev/null || true
modprobe fuse 2>/dev/null || true

SNAPFS_VERSITYGW=$(scripts/versitygw.sh --path)
export SNAPFS_VERSITYGW
export SNAPFS_REQUIRE_S3=1 # the S3 tests must run, not skip

leftovers() {
	awk '$3 ~ /^fuse/ && $2 ~ /snapfs|Test|tmp/ {print "mount: " $2}' /proc/mounts
	losetup -n -O NAME,BACK-FILE 2>/dev/null | awk '$2 ~ /snapfs|Test|tmp|shm/ {print "loop: " $0}'
}
before=$(leftovers || true)

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n $unformatted ]]; then
	echo "test.sh: gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...

status=0
go test -race -count=1 -timeout 25m "${@:-./...}" || status=$?
if [[ $# -eq 0 ]]; then
	# The randomized model and crash tests at full length, without the race
	# detector (which slows them 5x and is covered above).
	go test -count=1 -timeout 10m -run 'TestModel|TestCrash' ./rowstore/ -ops 3000 -seeds 3,4,5 || status=$?
fi

after=$(leftovers || true)
if [[ "$after" != "$before" ]]; then
	echo "test.sh: tests left mounts or loop devices behind:" >&2
	diff <(echo "$before") <(echo "$after") | grep '^>' >&2 || true
	status=1
fi
exit $status
