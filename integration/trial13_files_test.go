package integration

import (
	"path/filepath"
	"testing"
)

// Trial 13: `snapshot diff S --disk D --files` on a disk without a
// filesystem said "0 created, 0 deleted, 0 modified, 0 renamed ... (0 and 0
// entries walked)", exit 0, as long as no block had changed since S (and
// so did a --part the disk does not have), while the same question after
// one write was refused ("has no filesystem snapfs can read", exit 2). The
// answer no longer depends on whether blocks changed: a disk without a
// filesystem is exit 2 and a partition it lacks is exit 3 either way.
func TestTrial13DiffFilesWithoutFilesystem(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	ok(t, store, "disk", "create", "raw", "--size", "8M")
	writeAt(t, filepath.Join(mp, "disks", "raw"), 1<<20, randBytes(t, 4096))
	ok(t, store, "snapshot", "create", "s", "--disk", "raw")
	fails(t, store, 2, "snapshot", "diff", "s", "--disk", "raw", "--files")
	fails(t, store, 2, "snapshot", "diff", "s", "--disk", "raw", "--files", "--part", "p9")

	ok(t, store, "disk", "create", "fs", "--size", "64M")
	sh(t, "mkfs.ext4", "-q", filepath.Join(mp, "disks", "fs"))
	ok(t, store, "snapshot", "create", "t", "--disk", "fs")
	fails(t, store, 3, "snapshot", "diff", "t", "--disk", "fs", "--files", "--part", "p9")
	ok(t, store, "snapshot", "diff", "t", "--disk", "fs", "--files")

	writeAt(t, filepath.Join(mp, "disks", "raw"), 2<<20, randBytes(t, 4096))
	fails(t, store, 2, "snapshot", "diff", "s", "--disk", "raw", "--files")
}
