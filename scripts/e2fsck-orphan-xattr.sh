#!/usr/bin/env bash
# Reproduces, without snapfs and without a crash, the e2fsck error of
# finding 7 of issue 7 ("Truncating orphaned inode N", then "Inode N,
# i_blocks is 264, should be 256" from the next e2fsck -fn). Run as root.
#
# Cause (e2fsprogs 1.47.0, still in release_inode_blocks of e2fsck/super.c
# upstream): when e2fsck processes the orphan list, it releases the external
# extended-attribute block of every orphan inode, also of one that is only
# being truncated (links > 0): i_file_acl is set to 0, the block's refcount
# dropped, but i_blocks keeps counting it (8 sectors with 4 KiB blocks); the
# xattrs are lost too. The kernel's own orphan cleanup (ext4_orphan_cleanup
# at mount) does not touch xattrs. So a crash that leaves a truncate on the
# orphan list of an inode with an xattr block, replayed with e2fsck -p (or
# -y), gives exactly that error; fsstress sets xattrs and truncates.
# scripts/torture.sh therefore replays journals with the kernel (mount).
#
# Prints e2fsck's report and exits 0 when the e2fsck here has the bug, 1
# when it does not.
set -euo pipefail
dir=$(mktemp -d "${TMPDIR:-/tmp}/e2fsck-orphan.XXXXXX")
trap 'umount "$dir/mnt" 2>/dev/null || true; rm -rf "$dir"' EXIT
img=$dir/img
truncate -s 64M "$img"
mkfs.ext4 -q -F -b 4096 -I 256 "$img"
mkdir "$dir/mnt"
mount -o loop "$img" "$dir/mnt"
dd if=/dev/urandom of="$dir/mnt/f" bs=4096 count=32 status=none # 256 sectors
setfattr -n user.big -v "$(head -c 3000 /dev/zero | tr '\0' x)" "$dir/mnt/f" 2>/dev/null ||
	python3 -c "import os,sys; os.setxattr(sys.argv[1], 'user.big', b'x'*3000)" "$dir/mnt/f"
umount "$dir/mnt"
debugfs -R 'stat /f' "$img" 2>/dev/null | grep -E 'File ACL|Blockcount' | sed 's/^/before: /'
# What a crash in the middle of a truncate leaves: the inode on the orphan
# list, still linked (here truncated to its own size: no data block goes).
debugfs -w -R 'set_super_value last_orphan 12' "$img" 2>/dev/null
echo "--- e2fsck -p (journal replay and orphan processing, as at boot)"
e2fsck -p "$img" || true
echo "--- e2fsck -fn"
if e2fsck -fn "$img"; then
	echo "this e2fsck does not have the bug"
	exit 1
fi
debugfs -R 'stat /f' "$img" 2>/dev/null | grep -E 'File ACL|Blockcount' | sed 's/^/after: /'
