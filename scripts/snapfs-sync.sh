#!/usr/bin/env bash
# snapfs-sync.sh REGION — cross-region sync job for snapfs.
#
# Copies every new local snapshot to REGION (`snapfs sync --region R`),
# applies the remote retention (`snapfs region prune R --keep-last N`), and
# verifies the region (`snapfs region check R`). Two runs for the same
# region never overlap: the job holds an exclusive flock. Logs go to stderr
# (the journal under systemd), one line per step.
#
# Environment:
#   SNAPFS              the snapfs binary (default: snapfs)
#   SNAPFS_KEEP_LAST    remote snapshots to keep (default: 30; 0 skips prune)
#   SNAPFS_CHECK_DATA   1: check reads every shard (--read-data); default 0
#   SNAPFS_LOCK_DIR     where lock files live (default: /run/lock, else /tmp)
#   SNAPFS_LOCK_WAIT    seconds to wait for the lock (default: 0: fail at once)
#
# Exit codes:
#   0  success: everything asked for is durable in the region and it checked clean
#   1  sync failed (nothing after it ran)
#   2  usage error
#   3  another run holds the lock for this region
#   4  prune failed (the sync succeeded)
#   5  check found problems or failed (sync and prune succeeded); run
#      `snapfs region repair REGION`
set -euo pipefail

readonly EXIT_OK=0 EXIT_SYNC=1 EXIT_USAGE=2 EXIT_LOCKED=3 EXIT_PRUNE=4 EXIT_CHECK=5

log() { printf '%s snapfs-sync[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" "$*" >&2; }

if [[ $# -ne 1 || -z "${1:-}" || "$1" == -* ]]; then
	echo "usage: $0 REGION" >&2
	exit "$EXIT_USAGE"
fi
region=$1
if [[ ! "$region" =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$ ]]; then
	log "invalid region name: $region"
	exit "$EXIT_USAGE"
fi

snapfs=${SNAPFS:-snapfs}
keep_last=${SNAPFS_KEEP_LAST:-30}
lock_dir=${SNAPFS_LOCK_DIR:-/run/lock}
[[ -d "$lock_dir" && -w "$lock_dir" ]] || lock_dir=${TMPDIR:-/tmp}
lock_wait=${SNAPFS_LOCK_WAIT:-0}
if ! [[ "$keep_last" =~ ^[0-9]+$ && "$lock_wait" =~ ^[0-9]+$ ]]; then
	log "SNAPFS_KEEP_LAST and SNAPFS_LOCK_WAIT must be non-negative integers"
	exit "$EXIT_USAGE"
fi

lock="$lock_dir/snapfs-sync-$region.lock"
exec 9>>"$lock"
if ! flock -w "$lock_wait" 9; then
	log "region $region: another sync holds $lock; not running"
	exit "$EXIT_LOCKED"
fi

start=$(date +%s)
log "region $region: sync starting"
if ! "$snapfs" sync --region "$region"; then
	log "region $region: sync FAILED after $(($(date +%s) - start))s"
	exit "$EXIT_SYNC"
fi
log "region $region: sync done in $(($(date +%s) - start))s"

if ((keep_last > 0)); then
	if ! "$snapfs" region prune "$region" --keep-last "$keep_last"; then
		log "region $region: prune FAILED"
		exit "$EXIT_PRUNE"
	fi
	log "region $region: pruned to the last $keep_last snapshots"
fi

check_args=()
[[ "${SNAPFS_CHECK_DATA:-0}" == 1 ]] && check_args+=(--read-data)
if ! "$snapfs" region check "$region" "${check_args[@]}"; then
	log "region $region: check found problems; run: $snapfs region repair $region"
	exit "$EXIT_CHECK"
fi
log "region $region: all done in $(($(date +%s) - start))s"
exit "$EXIT_OK"
