package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// lockObjects counts the lock objects in a file:// store's locks
// directory: not the temporary file a put killed midway leaves (the store
// lists no such file).
func lockObjects(dir string) int {
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), vfs.TempPrefix) {
			n++
		}
	}
	return n
}

// waitLocks waits up to limit for lockObjects(dir) to be non-zero (held)
// or zero (!held), and says whether it came to be.
func waitLocks(dir string, held bool, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		if (lockObjects(dir) > 0) == held {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestUnlock7OtherHostsLiveLock: while host beta holds a live lock on the
// shared region (a lazily restored disk hydrating from it), host alpha's
// prune is refused (exit 15) with an error naming beta as the host to run
// `region unlock` on, and alpha's `region unlock` keeps the lock and says
// so (holder host, pid, age, where to unlock) instead of reporting only
// "removed 0 lock(s) (none)".
func TestUnlock7OtherHostsLiveLock(t *testing.T) {
	a, b, regionDir := twoHostsFileRegion(t)
	syncedSnapshot(t, b, 4, "s1")
	ok(t, b.dir, "restore", "--region", "shared", "--snapshot", "s1", "--disk", "vol", "--to", "lz", "--lazy", "--rate", "64K")
	locks := filepath.Join(regionDir, "s0", "locks")
	if !waitLocks(locks, true, 30*time.Second) {
		t.Fatal("beta's lazy disk holds no lock on the region")
	}
	p := fails(t, a.dir, 15, "region", "prune", "shared", "--keep-last", "5", "--all-hosts")
	for _, want := range []string{"on host beta (pid " + b.pid, "run `snapfs region unlock shared` on host beta"} {
		if !strings.Contains(p.stderr, want) {
			t.Errorf("alpha's prune under beta's live lock: %q lacks %q", p.stderr, want)
		}
	}
	u := ok(t, a.dir, "region", "unlock", "shared")
	for _, want := range []string{"removed 0 lock(s)", "kept 1 live lock(s): shared lock of ", "on host beta (pid " + b.pid + ", refreshed ", "run `snapfs region unlock shared` on host beta"} {
		if !strings.Contains(u, want) {
			t.Errorf("alpha's region unlock: %q lacks %q", u, want)
		}
	}
	ok(t, b.dir, "disk", "delete", "lz")
}

// TestUnlock7DaemonStartFreesRegion: host beta's daemon is killed (SIGKILL)
// mid-sync and started again, and runs nothing else: its start alone
// removes the dead sync's lock, so host alpha's prune runs at once.
func TestUnlock7DaemonStartFreesRegion(t *testing.T) {
	a, b, regionDir := twoHostsFileRegion(t)
	ok(t, b.dir, "disk", "create", "vol", "--size", "96M")
	writeAt(t, filepath.Join(b.mp, "disks", "vol"), 0, randBytes(t, 96<<20))
	ok(t, b.dir, "snapshot", "create", "s1", "--disk", "vol")
	locks := filepath.Join(regionDir, "s0", "locks")
	killMidSync(t, b, locks)
	if lockObjects(locks) == 0 {
		t.Fatal("the killed sync left no lock: nothing to test")
	}
	ok(t, b.dir, "umount", b.mp) // the dead daemon's mount
	b.pid = daemon(t, b.dir, b.mp)
	// The daemon removes it in the background, right after it starts.
	if !waitLocks(locks, false, 20*time.Second) {
		log, _ := os.ReadFile(filepath.Join(b.dir, "snapfs.log"))
		t.Fatalf("the restarted daemon left its dead predecessor's lock for 20 s; beta's log:\n%s", log)
	}
	ok(t, a.dir, "region", "prune", "shared", "--keep-last", "5", "--all-hosts")
}
