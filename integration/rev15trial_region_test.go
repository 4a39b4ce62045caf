package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRev15trialLockedDiskChain: a snapshot of an encrypted disk left out
// by a sync because its key is locked is still pending (status's lag
// counts it, nothing marks it pruned or expired), is shipped by the sync
// after the unlock, and the next snapshot of the same disk, taken after
// the left-out one, is restorable: its delta base is a snapshot the region
// holds, not the left-out one (a delta over a snapshot the region lacks
// would strand it). Every snapshot of the chain restores to its bytes.
func TestRev15trialLockedDiskChain(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	h, mp := filepath.Join(tmp, "host"), filepath.Join(tmp, "m")
	trial15Region(t, tmp, h)
	daemon(t, h, mp)
	dk := filepath.Join(tmp, "disk.key")
	if err := os.WriteFile(dk, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, h, "disk", "create", "vault", "--size", "4M", "--encrypt", "--key-file", dk)
	vault := filepath.Join(mp, "disks", "vault")
	writeAt(t, vault, 0, randBytes(t, 1<<20))
	ok(t, h, "snapshot", "create", "v0", "--disk", "vault")
	ok(t, h, "sync", "--region", "dr")

	writeAt(t, vault, 1<<20, randBytes(t, 1<<20))
	ok(t, h, "snapshot", "create", "v1", "--disk", "vault")
	ok(t, h, "disk", "lock", "vault")
	ok(t, h, "disk", "create", "vol2", "--size", "4M")
	writeAt(t, filepath.Join(mp, "disks", "vol2"), 0, randBytes(t, 1<<20))
	ok(t, h, "snapshot", "create", "later", "--disk", "vol2")
	r := fails(t, h, 15, "sync", "--region", "dr")
	if !strings.Contains(r.stderr, `"v1"`) {
		t.Fatalf("sync beside a locked disk: %q", r.stderr)
	}
	if n, o := trial15Lag(t, h); n != 1 || o != "v1" {
		t.Fatalf("after the sync that left v1 out: %d pending (oldest %s), want 1 (v1)", n, o)
	}
	if out := ok(t, h, "snapshot", "info", "v1"); strings.Contains(out, "pruned") || strings.Contains(out, "expired") {
		t.Fatalf("snapshot info of the left-out v1: %s", out)
	}
	// Still locked: the next sync leaves it out again, nothing else to do.
	fails(t, h, 15, "sync", "--region", "dr")

	ok(t, h, "disk", "unlock", "vault", "--key-file", dk)
	writeAt(t, vault, 2<<20, randBytes(t, 1<<20))
	writeAt(t, vault, 0, randBytes(t, 4096))
	ok(t, h, "snapshot", "create", "v2", "--disk", "vault")
	ok(t, h, "sync", "--region", "dr")
	if n, o := trial15Lag(t, h); n != 0 {
		t.Fatalf("after the sync once unlocked: %d pending (oldest %s)", n, o)
	}
	ok(t, h, "region", "check", "dr", "--read-data")
	for _, s := range []string{"v0", "v1", "v2"} {
		to := "back-" + s
		ok(t, h, "restore", "--region", "dr", "--snapshot", s, "--disk", "vault", "--to", to, "--encrypt", "--key-file", dk)
		if fileSum(t, filepath.Join(mp, "disks", to)) != fileSum(t, filepath.Join(mp, "snapshots", s, "vault")) {
			t.Fatalf("%s restored differs from the snapshot", s)
		}
	}
	// v1's local snapshot gone: v2 (and v0) still restore from the region.
	ok(t, h, "snapshot", "delete", "v1")
	ok(t, h, "region", "prune", "dr", "--keep-last", "2")
	ok(t, h, "region", "check", "dr", "--read-data")
	ok(t, h, "restore", "--region", "dr", "--snapshot", "v2", "--disk", "vault", "--to", "back2-v2", "--encrypt", "--key-file", dk)
	if fileSum(t, filepath.Join(mp, "disks", "back2-v2")) != fileSum(t, filepath.Join(mp, "snapshots", "v2", "vault")) {
		t.Fatal("v2 restored after prune differs from the snapshot")
	}
}
