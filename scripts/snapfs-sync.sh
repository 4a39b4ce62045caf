#!/usr/bin/env bash
# snapfs-sync.sh [--syslog] REGION — cross-region sync job for snapfs.
#
# Copies every new local snapshot to REGION (`snapfs sync --region R`),
# applies the region's retention (`snapfs region prune R`), and verifies the
# region (`snapfs region check R`). Two runs for the same region never
# overlap: the job holds an exclusive flock. Logs go to stderr (the journal
# under systemd), one line per step; with --syslog, everything goes to
# syslog through logger(1) instead (for cron: no pipe, so the exit status
# is the job's own).
#
# It runs from a bare cron environment (PATH=/usr/bin:/bin, nothing else):
# snapfs is looked up in $SNAPFS, then PATH, then /usr/local/bin,
# /usr/local/sbin, /usr/sbin, /sbin and /opt/snapfs/bin.
#
# Retention: set it once on the region (`snapfs region retention R
# --keep-last 30`); sync then never ships a snapshot the retention would
# remove at once, and prune applies it. A snapshot prune removed is never
# shipped again. SNAPFS_KEEP_LAST overrides the retention for prune only.
#
# Environment:
#   SNAPFS              the snapfs binary (default: looked up, see above)
#   SNAPFS_STORE        the snapfs store directory (default: snapfs's own)
#   SNAPFS_KEEP_LAST    remote snapshots to keep (default: the region's
#                       retention; 0 skips prune)
#   SNAPFS_CHECK_DATA   1: check reads every shard (--read-data); default 0
#   SNAPFS_LOCK_DIR     where lock files live (default: /run/lock, else /tmp)
#   SNAPFS_LOCK_WAIT    seconds to wait for the lock (default: 0: fail at once)
#
# Exit codes (0 only when everything asked for is done):
#   0  success: everything asked for is durable in the region and it checked clean
#   1  sync failed (nothing after it ran); stores unreachable (snapfs exit 11) too
#   2  usage error
#   3  another run of this job holds the lock for this region
#   4  prune failed (the sync succeeded); also: the region has no retention
#      and SNAPFS_KEEP_LAST is not set
#   5  check found problems or failed (sync and prune succeeded); run
#      `snapfs region repair REGION` (exit 11 of check: stores unreachable)
#   6  the region is locked (snapfs exit 15): sync waits for another host's
#      prune or repair; prune also for any sync, check, restore, lazily
#      restored disk still hydrating or open regions/ disk, of any host.
#      The steps before the locked one are done; the next run retries
#   7  conflict (snapfs exit 14): the operation lost its region lock (it was
#      paused too long or forced out), or a local snapshot the sync relied on
#      was deleted meanwhile (the base of an incremental copy); the next run
#      retries
#   8  the snapfs binary was not found
#   9  sync shipped every snapshot but some whose name the region holds from
#      an older snapshot of this host (deleted and re-created under the
#      same name: snapfs exit 4); prune and check ran and succeeded. The
#      region keeps the old copy (never replaced: it may be the only one
#      left) until retention prunes it; the next sync after that ships the
#      new snapshot if retention keeps it. Rename the local snapshot to
#      ship it now
#  10  sync shipped every snapshot but some of a disk still hydrating from a
#      region (restore --lazy: snapfs exit 5) or of an encrypted disk whose
#      key is locked (snapfs disk lock: snapfs exit 15, the message saying
#      "not shipped"); prune and check ran and succeeded. The next run
#      after the disk is whole or unlocked ships them
set -euo pipefail

readonly EXIT_OK=0 EXIT_SYNC=1 EXIT_USAGE=2 EXIT_LOCKED=3 EXIT_PRUNE=4 EXIT_CHECK=5 EXIT_BUSY=6 EXIT_CONFLICT=7 EXIT_NOBIN=8 EXIT_NAME=9 EXIT_LEFTOUT=10

syslog=0
if [[ "${1:-}" == --syslog ]]; then
	syslog=1
	shift
fi
if [[ $# -ne 1 || -z "${1:-}" || "$1" == -* ]]; then
	echo "usage: $0 [--syslog] REGION" >&2
	exit "$EXIT_USAGE"
fi
region=$1
if ((syslog)); then
	# Without a syslog to take it (no /dev/log: a container, a minimal
	# host), the log goes to the job's stderr (cron mails it), not away.
	exec 8>&2
	exec > >(logger -t snapfs-sync 2>/dev/null || cat >&8) 2>&1
fi

log() { printf '%s snapfs-sync[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" "$*" >&2; }

if [[ ! "$region" =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$ ]]; then
	log "invalid region name: $region"
	exit "$EXIT_USAGE"
fi

find_snapfs() {
	if [[ -n "${SNAPFS:-}" ]]; then
		command -v -- "$SNAPFS" || return 1
		return 0
	fi
	command -v snapfs && return 0
	local d
	for d in /usr/local/bin /usr/local/sbin /usr/sbin /sbin /opt/snapfs/bin; do
		if [[ -x "$d/snapfs" ]]; then
			echo "$d/snapfs"
			return 0
		fi
	done
	return 1
}
if ! snapfs=$(find_snapfs); then
	log "region $region: snapfs not found (SNAPFS=${SNAPFS:-unset}, PATH=$PATH, nor in /usr/local/bin, /usr/local/sbin, /usr/sbin, /sbin, /opt/snapfs/bin); set SNAPFS=/path/to/snapfs"
	exit "$EXIT_NOBIN"
fi

keep_last=${SNAPFS_KEEP_LAST:-}
lock_dir=${SNAPFS_LOCK_DIR:-/run/lock}
[[ -d "$lock_dir" && -w "$lock_dir" ]] || lock_dir=${TMPDIR:-/tmp}
lock_wait=${SNAPFS_LOCK_WAIT:-0}
if ! [[ ( -z "$keep_last" || "$keep_last" =~ ^[0-9]+$ ) && "$lock_wait" =~ ^[0-9]+$ ]]; then
	log "SNAPFS_KEEP_LAST and SNAPFS_LOCK_WAIT must be non-negative integers"
	exit "$EXIT_USAGE"
fi

lock="$lock_dir/snapfs-sync-$region.lock"
exec 9>>"$lock"
if ! flock -w "$lock_wait" 9; then
	log "region $region: another sync holds $lock; not running"
	exit "$EXIT_LOCKED"
fi

# step_exit STEP_EXIT RC: the job's exit for a failed snapfs command.
step_exit() {
	case "$2" in
	15) echo "$EXIT_BUSY" ;;
	14) echo "$EXIT_CONFLICT" ;;
	*) echo "$1" ;;
	esac
}

start=$(date +%s)
log "region $region: sync starting ($snapfs)"
rc=0
# sync's stderr is kept to tell a snapshot left out (its disk's key locked)
# from a region locked by another operation: both are snapfs exit 15.
errf=$(mktemp "${TMPDIR:-/tmp}/snapfs-sync.XXXXXX")
trap 'rm -f "$errf"' EXIT
"$snapfs" sync --region "$region" 2>"$errf" || rc=$?
cat "$errf" >&2
# done: what the job exits with when prune and check succeed.
done=$EXIT_OK
if ((rc == 4)); then
	# Only the snapshots named in the message above were left out; every
	# other one is durable in the region. Prune and check still run:
	# stopping here would stop retention for good (the name stays taken
	# until retention prunes the old copy).
	log "region $region: sync done in $(($(date +%s) - start))s, except snapshot(s) whose name the region holds from an older snapshot of this host (see above; snapfs exit 4): not shipped"
	done=$EXIT_NAME
elif ((rc == 5)); then
	# A snapshot of a disk still hydrating is left out and every other one
	# shipped (named above); the next run ships it once the disk is whole.
	log "region $region: sync done in $(($(date +%s) - start))s, except snapshot(s) of a disk still hydrating (see above; snapfs exit 5): shipped by a later run"
	done=$EXIT_LEFTOUT
elif ((rc == 15)) && grep -q 'not shipped to region' "$errf"; then
	# A snapshot of an encrypted disk whose key is locked is left out and
	# every other one shipped; prune and check still run (a disk locked
	# every night must not stop retention).
	log "region $region: sync done in $(($(date +%s) - start))s, except snapshot(s) of a disk whose key is locked (see above; snapfs exit 15): shipped by a run after it is unlocked"
	done=$EXIT_LEFTOUT
elif ((rc != 0)); then
	log "region $region: sync FAILED (snapfs exit $rc) after $(($(date +%s) - start))s"
	exit "$(step_exit "$EXIT_SYNC" "$rc")"
else
	log "region $region: sync done in $(($(date +%s) - start))s"
fi

if [[ "$keep_last" != 0 ]]; then
	prune_args=()
	[[ -n "$keep_last" ]] && prune_args+=(--keep-last "$keep_last")
	rc=0
	"$snapfs" region prune "$region" "${prune_args[@]}" || rc=$?
	if ((rc != 0)); then
		if ((rc == 2)) && [[ -z "$keep_last" ]]; then
			log "region $region: prune FAILED: set the region's retention (snapfs region retention $region --keep-last N) or SNAPFS_KEEP_LAST (0: no prune)"
		else
			log "region $region: prune FAILED (snapfs exit $rc)"
		fi
		exit "$(step_exit "$EXIT_PRUNE" "$rc")"
	fi
	log "region $region: pruned"
fi

check_args=()
[[ "${SNAPFS_CHECK_DATA:-0}" == 1 ]] && check_args+=(--read-data)
rc=0
"$snapfs" region check "$region" "${check_args[@]}" || rc=$?
if ((rc != 0)); then
	if ((rc == 11)); then
		log "region $region: check: stores unreachable or refusing writes (snapfs exit 11; see above); nothing is known lost"
	else
		log "region $region: check found problems (snapfs exit $rc); run: $snapfs region repair $region"
	fi
	exit "$(step_exit "$EXIT_CHECK" "$rc")"
fi
if ((done == EXIT_NAME)); then
	log "region $region: pruned and checked in $(($(date +%s) - start))s; some snapshot(s) not shipped (name taken in the region, see above)"
	exit "$EXIT_NAME"
fi
if ((done == EXIT_LEFTOUT)); then
	log "region $region: pruned and checked in $(($(date +%s) - start))s; some snapshot(s) of a disk still hydrating or locked not shipped yet (see above)"
	exit "$EXIT_LEFTOUT"
fi
log "region $region: all done in $(($(date +%s) - start))s"
exit "$EXIT_OK"
