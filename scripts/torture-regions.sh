#!/usr/bin/env bash
# Crash torture of regions (sync, prune, repair, restore). Run as root.
#
#   scripts/torture-regions.sh [--s3] [ROUNDS]     default 3 rounds
#
# Two hosts (two local stores, a daemon each) share one 4+2 region of
# file:// stores (with --s3, or TORTURE_S3=1, stores 3-5 are buckets on a
# versitygw server started here: ~/.cache/snapfs/bin/versitygw, built by
# scripts/versitygw.sh). Host a holds ext4 in a 64 MiB disk, mounted
# through a loop device; host b a raw 32 MiB disk. Each round:
#   - writes: random 4 KiB blocks at random offsets (dd of /dev/urandom)
#     into a file inside a's ext4 and straight into b's disk, so that syncs
#     ship delta chunks; every third round a fresh 4 MiB file on a (full
#     chunks) and the oldest such file deleted (discard: holes);
#   - a snapshot per host (a's taken with ext4 mounted: crash-consistent),
#     its sha256 recorded from M/snapshots/<name>/<disk>;
#   - a victim operation, chosen at random: sync (incremental: deltas),
#     region prune --keep-last 2-4 (bases of later deltas get pruned), repair
#     (after a shard of a random pack was deleted or corrupted in a file
#     store; region check must report it first), or restore (eager or
#     --lazy) of a random snapshot; the daemon running it is SIGKILLed at a
#     random moment (20 ms plus up to the time the same operation took
#     when it last ran whole, plus 40 ms), its stale mount removed and
#     the daemon restarted; every third round the other host syncs or
#     prunes the same region meanwhile (exit 0, 14 or 15 accepted);
#   - both hosts then sync and prune again (exit 0 required; 14 and 15
#     retried); local snapshots beyond the newest 1-4 are deleted;
#   - checks: no restore-* temporary disk is left on either host; a
#     restore the kill interrupted left no target disk, or a whole one;
#     every snapshot a sync acknowledged (exit 0) and no prune was allowed
#     to remove (not among the newest N of its host when a prune started)
#     is listed by the region; every snapshot the region lists restores on
#     one of the hosts (alternating) byte for byte against its recorded
#     sha256 (eagerly; every second round the newest of each host also
#     --lazy, read whole through the mount); `region check --read-data` is
#     clean, or (after a kill or a damage) `region repair` makes it clean;
#     no lock, copying marker or hold is left in the file stores (a cut
#     put's temporary file is counted: the store removes it after an hour).
#
# It prints the rounds, the snapshots restored and the bytes verified, and
# exits non-zero on any failure. Every mount, loop device and process it
# made is removed on exit, failure or not. Needs jq and e2fsprogs
# (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=$PATH:/usr/local/go/bin
tag=torture-regions
loopdisk=t
# shellcheck source=scripts/torture-lib.sh
. scripts/torture-lib.sh

s3=${TORTURE_S3:-0}
rounds=3
for arg in "$@"; do
	case $arg in
	--s3) s3=1 ;;
	*[!0-9]* | '')
		echo "usage: scripts/torture-regions.sh [--s3] [ROUNDS]" >&2
		exit 2
		;;
	*) rounds=$arg ;;
	esac
done

need_tools jq:jq e2fsck:e2fsprogs
modprobe loop 2>/dev/null || true
modprobe fuse 2>/dev/null || true

work=$(mktemp -d "${TMPDIR:-/tmp}/snapfs-torture-regions.XXXXXX")
vol=$work/vol
mkdir -p "$vol" "$work/sha" "$work/a/m" "$work/b/m"
bin=$work/snapfs
go build -o "$bin" ./cmd/snapfs
unset SNAPFS_STORE

declare -A pid=([a]="" [b]="") # daemon per host
declare -A took=()              # ms the last successful run of each operation took
bgpids=()                       # background commands of the current round
s3pid=""
failures=0

cleanup() {
	trap - ERR
	set +e
	local p h
	for p in "${bgpids[@]}"; do kill -9 -- "-$p" 2>/dev/null; done
	release_work
	for h in a b; do
		if [[ -n ${pid[$h]} ]] && kill -0 "${pid[$h]}" 2>/dev/null; then
			"$bin" --store "$work/$h/store" umount "$work/$h/m" >/dev/null 2>&1 || kill -9 "${pid[$h]}" 2>/dev/null
		fi
	done
	release_work
	[[ -n $s3pid ]] && kill -9 "$s3pid" 2>/dev/null && wait "$s3pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # the EXIT trap cleans up
# A command that fails outside a check stops the run (set -e): say which.
set -E
trap 'echo "$tag: FAIL: line $LINENO: $BASH_COMMAND exited $?" >&2' ERR

# sf HOST ARGS...: snapfs on HOST's store (through its daemon when it runs),
# bounded so that a hung command fails the run instead of hanging it.
sf() {
	local h=$1
	shift
	timeout -k 5 300 "$bin" --store "$work/$h/store" "$@"
}

start_daemon() {
	local h=$1 out
	for _ in $(seq 50); do # a command that opened the store may still hold it
		if out=$(sf "$h" --json mount --background "$work/$h/m" 2>&1); then
			pid[$h]=$(jq -r 'select(.type == "mount") | .pid' <<<"$out" | head -1)
			[[ -n ${pid[$h]} ]] && return 0
		fi
		sleep 0.2
	done
	echo "$tag: the daemon of host $h does not start: $out" >&2
	exit 1
}

kill_daemon() {
	local h=$1
	kill -9 "${pid[$h]}" 2>/dev/null || true
	while kill -0 "${pid[$h]}" 2>/dev/null; do sleep 0.02; done
	sf "$h" umount "$work/$h/m" >/dev/null # the dead daemon's mount
	pid[$h]=""
}

# listing HOST: the region's snapshots as JSON lines (name, host, state,
# id: the snapshot's id on its host, which grows with time), as HOST sees
# them.
listing() {
	local l
	l=$(sf "$1" --json region snapshots R) || return 1
	jq -c 'select(.type == "remote_snapshot") | {name, host, state, id}' <<<"$l"
}
# present: names of the snapshots the region lists as available or degraded
# (restorable), from a listing on stdin.
present() { jq -r 'select(.state == "available" or .state == "degraded") | .name'; }

# Bookkeeping per host: $work/H.pruned (every snapshot a prune of H was
# allowed to remove) and $work/H.must (every snapshot a sync of H
# acknowledged and no prune was allowed to remove since). $keep: the
# region's --keep-last this round.
before_prune() {
	local h=$1 l
	l=$(listing "$h") || return 1
	jq -r --arg h "host-$h" 'select(.host == $h and (.state == "available" or .state == "degraded")) | [.id, .name] | @tsv' <<<"$l" |
		sort -n | head -n "-$keep" | cut -f2 >>"$work/$h.pruned"
	sort -u -o "$work/$h.pruned" "$work/$h.pruned"
	touch "$work/$h.must"
	comm -23 <(sort -u "$work/$h.must") "$work/$h.pruned" >"$work/$h.must.new"
	mv "$work/$h.must.new" "$work/$h.must"
}
# local_snaps HOST: the host's local snapshots, oldest first.
local_snaps() {
	local l
	l=$(sf "$1" --json snapshot list) || return 1
	jq -r 'select(.type == "snapshot") | [.id, .name] | @tsv' <<<"$l" | sort -n | cut -f2
}
# after_sync HOST FILE: a sync of HOST exited 0; FILE lists the local
# snapshots it had when it started.
after_sync() {
	local h=$1
	touch "$work/$h.pruned"
	comm -23 <(sort -u "$2") "$work/$h.pruned" >>"$work/$h.must"
	sort -u -o "$work/$h.must" "$work/$h.must"
}

# An operation OP of HOST: sync, prune, repair, or restore (then the
# snapshot, its disk, the target and --lazy or nothing). prep does the
# bookkeeping before it (in this shell: a kill never cuts it), and when the
# listing it needs fails, the operation is not run; run runs its command;
# done does the bookkeeping of its exit code.
prep() {
	case $2 in
	sync) local_snaps "$1" >"$work/$1.sync-start" ;;
	prune) before_prune "$1" ;;
	esac
}
run() {
	local h=$1 o=$2
	shift 2
	case $o in
	sync) sf "$h" sync --region R ;;
	prune) sf "$h" region prune R --keep-last "$keep" ;;
	repair) sf "$h" region repair R ;;
	restore) sf "$h" restore --region R --snapshot "$1" --disk "$2" --to "$3" ${4:+"$4"} ;;
	esac
}
done_() {
	if [[ $2 == sync && $3 == 0 ]]; then
		after_sync "$1" "$work/$1.sync-start"
	fi
	return 0
}
# op HOST OP ARGS...: prep, run and done_ in the foreground: the exit code
# in $rc, the output in $out.
op() {
	rc=0 out=""
	if ! prep "$1" "$2"; then
		rc=1 out="the listing before $2 failed: not run"
		return 0
	fi
	local t=$(date +%s%N)
	out=$(run "$@" 2>&1) || rc=$?
	((rc != 0)) || took[$2]=$((($(date +%s%N) - t) / 1000000))
	done_ "$1" "$2" "$rc"
}
# must_op HOST OP: op, retried while the region is locked (15) or a
# concurrent change asks for a rerun (14); any other failure is one.
must_op() {
	local t
	for t in $(seq 30); do
		op "$@"
		((rc == 14 || rc == 15)) || break
		msleep $((100 + RANDOM % 400))
	done
	((rc == 0)) || fail "round $r: $1: $2 exited $rc: $out"
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# verify_restore HOST NAME DISK [--lazy]: restore snapshot NAME's DISK on
# HOST, compare it with the sha256 recorded when NAME was taken, delete it.
verify_restore() {
	local h=$1 s=$2 d=$3 lazy=${4:-} want got
	want=$(cat "$work/sha/$s" 2>/dev/null) || {
		fail "round $r: the region lists $s, which no host of this run took"
		return
	}
	must_op "$h" restore "$s" "$d" chk "$lazy"
	((rc == 0)) || return 0
	got=$(sha_of "$work/$h/m/disks/chk")
	if [[ $got != "$want" ]]; then
		fail "round $r: $s/$d restored${lazy:+ $lazy} on host $h: sha256 $got, taken as $want"
	fi
	restored=$((restored + 1))
	verified=$((verified + $(stat -c %s "$work/$h/m/disks/chk")))
	sf "$h" disk delete chk >/dev/null || fail "round $r: disk delete chk on $h"
}

# damage: delete or corrupt the shard of a random pack in a random file
# store (the next region check must report it; repair rebuilds it).
damage() {
	local stores=(0 1 2 3 4 5) i f
	((s3)) && stores=(0 1 2)
	i=${stores[RANDOM % ${#stores[@]}]}
	# Only packs with an index on some store: a pack without one is
	# garbage of an interrupted sync (no snapshot needs it; check lists it
	# as unindexed and prune deletes it), so its damage is no problem.
	mapfile -t packs < <(comm -12 <(ls "$work/r/s$i/packs" | sort) \
		<(ls "$work"/r/s*/index "$work"/s3/torture*/p/index 2>/dev/null | grep -E '^[0-9a-f]{32}$' | sort -u))
	((${#packs[@]})) || return 1
	f=$work/r/s$i/packs/${packs[RANDOM % ${#packs[@]}]}
	if ((RANDOM % 2)); then
		rm -f "$f"
		damaged="deleted shard $i of pack $(basename "$f")"
	else
		printf 'torture' | dd of="$f" bs=1 seek=$((64 + RANDOM % ($(stat -c %s "$f") - 71))) conv=notrunc status=none
		damaged="corrupted shard $i of pack $(basename "$f")"
	fi
}

# ---- setup ----------------------------------------------------------------
stores=()
for i in 0 1 2 3 4 5; do stores+=(--store "file://$work/r/s$i"); done
s3args=()
if ((s3)); then
	gw=${SNAPFS_VERSITYGW:-$HOME/.cache/snapfs/bin/versitygw}
	[[ -x $gw ]] || {
		echo "$tag: no versitygw at $gw: run scripts/versitygw.sh" >&2
		exit 1
	}
	port=$((20000 + RANDOM % 20000))
	mkdir -p "$work/s3"
	access=torture$RANDOM secret=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	ROOT_ACCESS_KEY_ID=$access ROOT_SECRET_ACCESS_KEY=$secret "$gw" --port "127.0.0.1:$port" --quiet posix --disableotmp "$work/s3" >"$work/s3.log" 2>&1 &
	s3pid=$!
	for _ in $(seq 150); do
		curl -s -o /dev/null "http://127.0.0.1:$port/" && break
		sleep 0.2
	done
	for i in 3 4 5; do stores[2 * i + 1]="s3://$access:$secret@torture$i/p"; done
	s3args=(--s3-endpoint "127.0.0.1:$port" --s3-path-style --s3-insecure)
fi
head -c 32 /dev/urandom >"$work/key"
chmod 600 "$work/key"
for h in a b; do
	sf "$h" init --host-name "host-$h" >/dev/null
	start_daemon "$h"
done
sf a region add R --data 4 --parity 2 "${stores[@]}" "${s3args[@]}" --key-file "$work/key" --create >/dev/null
sf b region add R --data 4 --parity 2 "${stores[@]}" "${s3args[@]}" --key-file "$work/key" >/dev/null
sf a disk create t --size 64M >/dev/null
sf b disk create u --size 32M >/dev/null
mkfs.ext4 -q -F -E nodiscard "$work/a/m/disks/t"
attach "$work/a/m/disks/t"
mount -o discard "$LOOP" "$vol"
dd if=/dev/urandom of="$vol/data" bs=1M count=24 conv=fsync status=none
umount "$vol"
detach "$LOOP"
dd if=/dev/urandom of="$work/b/m/disks/u" bs=1M count=16 conv=notrunc,fsync status=none

seed=${TORTURE_SEED:-$RANDOM}
RANDOM=$seed
say "$rounds rounds, seed $seed (TORTURE_SEED=$seed to replay the choices), $( ((s3)) && echo 'stores 3-5 on S3 (versitygw), ')work dir $work"
restored=0 verified=0 kills=0 interrupted=0 atwork=0 repaired=0 deltas=0 started=$SECONDS
declare -A hits=()
for ((r = 1; r <= rounds; r++)); do
	t0=$SECONDS
	# Writes and a snapshot on each host.
	attach "$work/a/m/disks/t"
	loop=$LOOP
	mount -o discard "$loop" "$vol"
	n=$((64 + RANDOM % 256))
	for ((i = 0; i < n; i++)); do
		dd if=/dev/urandom of="$vol/data" bs=4k count=1 seek=$((RANDOM % 6144)) conv=notrunc status=none
	done
	if ((r % 3 == 0)); then
		dd if=/dev/urandom of="$vol/fresh-$r" bs=1M count=4 conv=fsync status=none
		mapfile -t fresh < <(ls "$vol" | grep '^fresh-' | sort -t- -k2 -n)
		((${#fresh[@]} < 3)) || rm -f "$vol/${fresh[0]}"
	fi
	sync -f "$vol/data"
	sf a snapshot create "a-r$r" --disk t >/dev/null
	sha_of "$work/a/m/snapshots/a-r$r/t" >"$work/sha/a-r$r"
	umount "$vol"
	detach "$loop"
	n=$((16 + RANDOM % 128))
	for ((i = 0; i < n; i++)); do
		dd if=/dev/urandom of="$work/b/m/disks/u" bs=4k count=1 seek=$((RANDOM % 8192)) conv=notrunc status=none
	done
	sync
	sf b snapshot create "b-r$r" --disk u >/dev/null
	sha_of "$work/b/m/snapshots/b-r$r/u" >"$work/sha/b-r$r"

	# This round's retentions: the region keeps the newest $keep of each
	# host, each host the newest $lkeep locally (a sync's delta base is
	# the newest snapshot both local and in the region: fewer local ones
	# change it).
	keep=$((2 + RANDOM % 3)) lkeep=$((1 + RANDOM % 4))

	# The victim: an operation of host v, killed at a random moment.
	ops=(sync sync prune repair restore)
	vop=${ops[RANDOM % ${#ops[@]}]}
	v=a
	((RANDOM % 3)) || v=b
	o=$([[ $v == a ]] && echo b || echo a)
	damaged="" vargs=()
	if [[ $vop != sync ]]; then
		must_op a sync
		must_op b sync
	fi
	case $vop in
	repair)
		if damage; then
			if out=$(sf a region check R --read-data 2>&1); then
				fail "round $r: region check after the damage ($damaged) found nothing"
			fi
		fi
		;;
	restore)
		mapfile -t cands < <(listing "$v" | present)
		((${#cands[@]})) || {
			fail "round $r: the region lists no snapshot to restore"
			break
		}
		s=${cands[RANDOM % ${#cands[@]}]}
		vargs=("$s" "$([[ $s == a-* ]] && echo t || echo u)" vic)
		((RANDOM % 2)) && vargs+=(--lazy)
		;;
	esac
	# The victim and the other host's operation run in the background,
	# each in a process group of its own (set -m): the victim's is stopped
	# before its daemon is killed and killed after (a snapfs command that
	# started once the daemon was gone would open the store itself and
	# run the operation unkilled); the other host's runs on.
	prep "$v" "$vop" || fail "round $r: the listing before $vop on $v failed"
	oop="" beside=""
	if ((r % 3 == 0)); then
		oop=$([[ $((RANDOM % 2)) == 0 ]] && echo sync || echo prune)
		prep "$o" "$oop" || fail "round $r: the listing before $oop on $o failed"
	fi
	rm -f "$work/vrc" "$work/orc"
	set -m
	(
		set +e
		trap - ERR
		run "$v" "$vop" "${vargs[@]}" >"$work/vout" 2>&1
		echo $? >"$work/vrc"
	) &
	vpid=$!
	bgpids=("$vpid")
	if [[ -n $oop ]]; then
		(
			set +e
			trap - ERR
			run "$o" "$oop" >"$work/oout" 2>&1
			echo $? >"$work/orc"
		) &
		opid=$!
		bgpids+=("$opid")
	fi
	set +m
	# A random moment within the time this operation took last (plus the
	# command's start), so that most kills land mid-operation.
	after=$((20 + RANDOM % (${took[$vop]:-300} + 40)))
	msleep "$after"
	t1=$SECONDS
	kill -STOP -- "-$vpid" 2>/dev/null || true
	# A lock on the stores at the kill (alone: no other host's operation
	# runs) says the victim was at work in the daemon.
	locked=0
	if [[ -z $oop && -n $(ls -A "$work/r/s0/locks" 2>/dev/null | grep -v '^\.snapfs-tmp-') ]]; then
		locked=1
	fi
	kill_daemon "$v"
	kill -9 -- "-$vpid" 2>/dev/null || true
	kill -CONT -- "-$vpid" 2>/dev/null || true
	kills=$((kills + 1))
	wait "${bgpids[@]}" 2>/dev/null || true
	bgpids=()
	start_daemon "$v"
	if [[ -s $work/vrc ]]; then
		vrc=$(cat "$work/vrc")
		how="it had exited $vrc"
		((vrc != 0)) || how="it had finished"
		done_ "$v" "$vop" "$vrc"
	else
		how="interrupted"
		interrupted=$((interrupted + 1))
		if ((locked)); then
			how="interrupted at work (its lock on the stores)"
			atwork=$((atwork + 1))
		fi
	fi
	if [[ -n $oop ]]; then
		orc=$(cat "$work/orc")
		done_ "$o" "$oop" "$orc"
		beside=", host $o's $oop beside it exited $orc"
		case $orc in
		0 | 14 | 15) ;;
		*) fail "round $r: host $o's $oop beside the victim exited $orc: $(cat "$work/oout")" ;;
		esac
	fi
	hits[$vop]=$((${hits[$vop]:-0} + 1))
	if [[ -n $oop ]]; then
		orc=$(cat "$work/orc")
		beside=", host $o's $oop beside it exited $orc"
		case $orc in
		0 | 14 | 15) ;;
		*) fail "round $r: host $o's $oop beside the victim exited $orc: $(cat "$work/oout")" ;;
		esac
	fi

	# Leftovers of the kill: no restore's temporary disk on either host.
	for h in a b; do
		if sf "$h" --json disk list | jq -r 'select(.type == "disk") | .name' | grep -q '^restore-'; then
			fail "round $r: a restore-* temporary disk is left on host $h after the restart of $v"
		fi
	done
	if [[ $vop == restore ]] && sf "$v" --json disk list | jq -r 'select(.type == "disk") | .name' | grep -qx vic; then
		# The restore had renamed its disk: it must be whole (a lazy one
		# hydrates after the restart, read through the mount).
		got=$(sha_of "$work/$v/m/disks/vic")
		[[ $got == "$(cat "$work/sha/${vargs[0]}")" ]] || fail "round $r: the killed restore of ${vargs[0]} left disk vic with sha256 $got"
		sf "$v" disk delete vic >/dev/null || fail "round $r: disk delete vic on $v"
	fi

	# Both hosts finish their syncs and prunes.
	for h in a b; do
		must_op "$h" sync
		must_op "$h" prune
		mapfile -t ls_ < <(local_snaps "$h")
		for ((i = 0; i + lkeep < ${#ls_[@]}; i++)); do
			sf "$h" snapshot delete "${ls_[i]}" >/dev/null || fail "round $r: snapshot delete ${ls_[i]} on $h"
		done
	done

	# Nothing acknowledged is lost.
	t2=$SECONDS
	listing a >"$work/listing"
	for h in a b; do
		touch "$work/$h.must"
		while read -r s; do
			grep -qx "$s" < <(present <"$work/listing") || fail "round $r: snapshot $s, acknowledged by host $h's sync and never allowed to be pruned, is not listed by the region: $(jq -c "select(.name == \"$s\")" "$work/listing")"
		done <"$work/$h.must"
	done
	# Every snapshot the region lists restores byte for byte.
	rh=$([[ $((r % 2)) == 1 ]] && echo a || echo b)
	k0=$restored
	mapfile -t avail < <(present <"$work/listing")
	for s in "${avail[@]}"; do
		verify_restore "$rh" "$s" "$([[ $s == a-* ]] && echo t || echo u)"
	done
	if ((r % 2 == 0)); then
		for p in a b; do
			s=$(jq -r --arg h "host-$p" 'select(.host == $h and (.state == "available" or .state == "degraded")) | [.id, .name] | @tsv' "$work/listing" | sort -n | tail -1 | cut -f2)
			[[ -z $s ]] || verify_restore "$rh" "$s" "$([[ $s == a-* ]] && echo t || echo u)" --lazy
		done
	fi
	# The region checks clean, or repair makes it so.
	# (Its JSON counts the delta chunks it read: deltas_checked.)
	note=""
	crc=0
	out=$(sf a --json region check R --read-data 2>&1) || crc=$?
	if ((crc != 0)); then
		((crc == 12)) || fail "round $r: region check exited $crc (12: degraded expected): $out"
		note=", check before repair: $(jq -R -c 'fromjson? | select(.type == "check") | .problems' <<<"$out" | head -c 300 || true)"
		[[ -n $damaged || $vop != restore ]] || fail "round $r: region check not clean after a killed restore (nothing written): $out"
		repaired=$((repaired + 1))
		must_op a repair
		out=$(sf a --json region check R --read-data 2>&1) || fail "round $r: region check after repair: $out"
	fi
	nd=$(jq -R -r 'fromjson? | select(.type == "check") | .deltas_checked // 0' <<<"$out" | tail -1)
	deltas=$((deltas + ${nd:-0}))
	# No lock, copying marker or hold is left in the file stores. A put
	# the kill cut leaves its temporary file (.snapfs-tmp-*: listings skip
	# it, and remove it once older than an hour, replicate/store/doc.go):
	# counted, not a failure.
	for i in 0 1 2 3 4 5; do
		dir=$work/r/s$i
		[[ -d $dir ]] || dir=$work/s3/torture$i/p # versitygw's posix tree
		for d in locks copying holds; do
			for ((t = 0; t < 50; t++)); do
				[[ -z $(ls -A "$dir/$d" 2>/dev/null | grep -v '^\.snapfs-tmp-') ]] && break
				sleep 0.1
			done
			((t < 50)) || fail "round $r: left in store $i: $d/$(ls -A "$dir/$d" | grep -v '^\.snapfs-tmp-' | tr '\n' ' ')"
		done
	done
	temps=$(find "$work/r" -name '.snapfs-tmp-*' | wc -l)
	say "round $r: killed host $v's $vop${vargs:+ ${vargs[*]}}${damaged:+ ($damaged)} after ${after} ms: $how$beside; $((restored - k0)) restores verified, ${nd:-0} delta chunks in the region${note}$( ((temps == 0)) || echo ", $temps temporary files of cut puts in the stores") (s: writes+victim $((t1 - t0)), restart+finish $((t2 - t1)), checks $((SECONDS - t2)))"
	if ((failures)); then
		break
	fi
done

for h in a b; do
	out=$(sf "$h" check --read-data 2>&1) || fail "host $h: snapfs check --read-data: $out"
done
for l in $(printf '%s\n' "${loops[@]}" | sort -u); do
	for _ in $(seq 100); do
		backed_by_work "$l" || break
		sleep 0.1
	done
	backed_by_work "$l" && fail "loop device $l ($(losetup -n -O BACK-FILE "$l")) is still attached"
done
((restored > 0 || rounds == 0)) || fail "no snapshot was restored in any round: the torture tested nothing"
hitlist=$(for k in "${!hits[@]}"; do printf '%s %s, ' "${hits[$k]}" "$k"; done)
say "rounds $((r > rounds ? rounds : r)), kills $kills (${hitlist%, }; $interrupted interrupted, $atwork of them seen at work by their lock), snapshots restored $restored, bytes verified $verified ($((verified >> 20)) MiB), delta chunks checked $deltas, repairs needed $repaired, failures $failures, $((SECONDS - started)) s"
((failures == 0))
