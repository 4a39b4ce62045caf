#!/usr/bin/env bash
# The one test command of snapfs. Run as root on Debian (FUSE mounts, loop
# devices and mkfs need it). It installs what the tests need and is missing
# (Debian packages with apt-get, waiting for a held dpkg lock; versitygw, the
# S3 server of the S3 tests, with go install), then runs gofmt, go vet and
# `go test -race` over every package, the child-process kill tests and three
# rounds of scripts/torture.sh, and fails if a test left a mount or a loop
# device behind in its own temporary directory.
#
#   scripts/test.sh                 everything
#   scripts/test.sh ./rowstore/...  only some packages (extra args go to go test)
#
# No test may skip: SNAPFS_TEST_DISALLOW_SKIP=1 turns every skip
# (integration/testutil.Skipf) into a failure. versitygw (about 9 minutes to
# build cold on 2 cores) is built in the background while the tests that do
# not need S3 run; the S3 tests run once it is there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

export PATH=$PATH:/usr/local/go/bin:$HOME/go/bin
if ! command -v go >/dev/null; then
	echo "test.sh: Go is not installed (see README: Go 1.26 or newer at /usr/local/go)" >&2
	exit 1
fi
say() { echo "test.sh: $(date +%T) $*" >&2; }
start=$SECONDS

# Debian packages: mkfs.ext4, e2fsck and fstrim (e2fsprogs, util-linux),
# losetup and mount (mount), mkfs.xfs (xfsprogs), mkfs.btrfs (btrfs-progs),
# sgdisk (gdisk), rsync (benchmark
# baseline), fio and stress-ng (scripts/torture.sh). A held dpkg lock (an
# unattended upgrade) is waited for, up to 10 minutes, not a failure.
need=()
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v losetup >/dev/null || need+=(mount)
command -v fstrim >/dev/null || need+=(util-linux)
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs) # .files tests (issue 10)
command -v sgdisk >/dev/null || need+=(gdisk)              # GPT disks in .files tests
command -v rsync >/dev/null || need+=(rsync)
command -v fio >/dev/null || need+=(fio)
command -v stress-ng >/dev/null || need+=(stress-ng)
# apt runs apt-get, waiting up to 10 minutes for a lock another apt or dpkg
# holds (DPkg::Lock::Timeout covers dpkg's locks; the lists lock of
# `apt-get update` is retried here).
apt() {
	local err
	for _ in $(seq 60); do
		if err=$(DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq "$@" 2>&1 >/dev/null); then
			return 0
		fi
		if ! grep -qi 'lock' <<<"$err"; then
			echo "$err" >&2
			return 1
		fi
		say "apt-get $1: waiting for a lock held by another process"
		sleep 10
	done
	echo "$err" >&2
	return 1
}
if ((${#need[@]})); then
	say "installing ${need[*]}"
	apt update
	apt install -y "${need[@]}"
fi
modprobe loop 2>/dev/null || true
modprobe fuse 2>/dev/null || true

export SNAPFS_TEST_DISALLOW_SKIP=1 # a test that cannot run fails
export SNAPFS_REQUIRE_S3=1         # the S3 tests must run, not skip

# Every temporary file of this run lives under $run, so the leftover check
# looks at this run's mounts and loop devices only, not at others on the host.
run=$(mktemp -d /tmp/snapfs-test.XXXXXX)
# Some tests run commands as uid 65534 (nobody) to check what another user
# is refused (the control socket, the mount, a store it does not own): it
# must reach their directories, so this run's directory is not 0700.
chmod 755 "$run"
export TMPDIR=$run
leftovers() {
	awk -v r="$run/" 'index($2, r) == 1 {print "mount: " $2}' /proc/self/mounts
	losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v r="$run/" 'index($2, r) == 1 {print "loop: " $0}'
}

# versitygw: built in the background (go install, ~9 min cold, instant when
# cached) while everything that does not need S3 runs.
gwlog=$run/versitygw-build.log
SNAPFS_VERSITYGW=${SNAPFS_TOOLS_BIN:-$HOME/.cache/snapfs/bin}/versitygw # where versitygw.sh puts it
export SNAPFS_VERSITYGW
say "building versitygw (the S3 test server) in the background, log in $gwlog"
scripts/versitygw.sh >"$gwlog" 2>&1 &
gwpid=$!

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n $unformatted ]]; then
	echo "test.sh: gofmt would change: $unformatted" >&2
	exit 1
fi
say "go vet"
go vet ./...

# The tests that need the S3 server (s3test.Start): by convention their
# names contain S3, or they are one of these.
s3tests='S3|^TestRegions$|^TestStartAnswers$'
s3pkgs=(./integration ./replicate ./replicate/store ./replicate/store/s3test)

status=0
if [[ $# -eq 0 ]]; then
	say "go test -race, all packages, without the S3 tests (versitygw still building)"
	go test -race -count=1 -timeout 25m -skip "$s3tests" ./... || status=$?
	say "full-length model and crash tests, child-process kill rounds"
	# The randomized model and crash tests at full length, without the race
	# detector (which slows them 5x and is covered above), and the tests that
	# SIGKILL the engine in a child process, for more rounds.
	go test -count=1 -timeout 10m -run 'TestModel|TestCrash' ./rowstore/ -ops 3000 -seeds 3,4,5 || status=$?
	go test -count=1 -timeout 10m -run 'TestKill' ./rowstore/ -kill-rounds 40 || status=$?
	kill -0 $gwpid 2>/dev/null && say "waiting for the versitygw build to finish"
	if ! wait $gwpid; then
		echo "test.sh: building versitygw failed:" >&2
		tail -20 "$gwlog" >&2
		status=1
	fi
	say "go test -race, the S3 tests"
	go test -race -count=1 -timeout 15m -run "$s3tests" "${s3pkgs[@]}" || status=$?
	say "scripts/torture.sh 3"
	bash scripts/torture.sh 3 || status=$?
else
	wait $gwpid || { tail -20 "$gwlog" >&2; status=1; }
	go test -race -count=1 -timeout 25m "$@" || status=$?
fi

after=$(leftovers || true)
if [[ -n "$after" ]]; then
	echo "test.sh: tests left mounts or loop devices behind:" >&2
	echo "$after" >&2
	status=1
	# Undo them so the next run starts clean.
	awk -v r="$run/" 'index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v r="$run/" 'index($2, r) == 1 {print $1}' | xargs -r -n1 losetup -d 2>/dev/null || true
else
	rm -rf "$run"
fi
say "done in $((SECONDS - start)) s, status $status"
exit $status
