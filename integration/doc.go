// Package integration holds snapfs's end-to-end tests: they build the snapfs
// binary once (TestMain) and drive it as a user would, with real FUSE mounts,
// ext4 on loop devices, snapshot mounts and daemon crashes.
//
// They need root, /dev/fuse, loop devices, mkfs.ext4, losetup, mount and
// fstrim; without root they skip (set SNAPFS_TEST_DISALLOW_SKIP=1 to make a
// skip fail). Every test removes the mounts and loop devices it made in
// t.Cleanup, even when it fails, falling back to lazy unmounts.
package integration
