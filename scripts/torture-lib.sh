# Helpers shared by the crash torture scripts (sourced, not run). Run as
# root. The sourcing script sets $tag (the prefix of its messages), $work
# (its work directory: every mount and loop device it makes is under it or
# backed by a file under it), $loopdisk (the names, space-separated, of the
# disks it loop-mounts: once a dead daemon's mount is detached, the kernel
# shows the loop device's file as /disks/NAME) and keeps failures=0.
#
#   say MSG...          a timestamped progress line on stderr
#   fail MSG...         report a failure and count it in $failures
#   need_tools CMD:PKG  install the Debian packages of the missing commands
#   msleep MS           sleep MS milliseconds
#   attach FILE         attach FILE to a free loop device: $LOOP, and loops[]
#   detach LOOP         detach LOOP (quietly: it may be gone)
#   release_work        unmount everything under $work (deepest first) and
#                       detach the loop devices in loops[] still backed by a
#                       file of this run; for the EXIT trap

say() { echo "$tag: $(date +%T) $*" >&2; }
fail() {
	echo "$tag: FAIL: $*" >&2
	failures=$((failures + 1))
}

need_tools() {
	local need=() t
	for t in "$@"; do
		command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
	done
	if ((${#need[@]})); then
		say "installing ${need[*]}"
		apt-get -o DPkg::Lock::Timeout=600 -qq update
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq install -y "${need[@]}" >/dev/null
	fi
}

msleep() {
	sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"
}

loops=() # every loop device made here
attach() {
	LOOP=$(losetup -f --show "$1")
	loops+=("$LOOP")
}
detach() {
	losetup -d "$1" 2>/dev/null || true
}

# backed_by_work LOOP: is LOOP still attached to a file of this run? (A
# number we released may have been taken by someone else since.)
backed_by_work() {
	local b n
	b=$(losetup -n -O BACK-FILE "$1" 2>/dev/null) || return 1
	[[ $b == "$work"/* ]] && return 0
	for n in $loopdisk; do
		[[ $b == "/disks/$n" ]] && return 0
	done
	return 1
}

release_work() {
	local l
	awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	for l in "${loops[@]}"; do backed_by_work "$l" && losetup -d "$l" 2>/dev/null; done
	awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
	return 0
}
