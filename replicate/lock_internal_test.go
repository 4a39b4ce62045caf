package replicate

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/rowstore"
)

// Stale locks: a lock of a process of this host that no longer runs, or
// one not refreshed for LockStale, blocks nobody and is removed by the
// next exclusive locker; a live one of another host blocks prune
// (ErrLocked) until unlock --force.
func TestLockStaleness(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := filepath.Join(root, "store")
	if err := rowstore.Create(dir, rowstore.Options{}); err != nil {
		t.Fatal(err)
	}
	rs, err := rowstore.Open(dir, rowstore.Options{SyncInterval: -1, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	m, err := New(dir, rs, Options{LockStale: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var urls []string
	for i := range 2 {
		d := filepath.Join(root, "s"+string(rune('0'+i)))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		urls = append(urls, "file://"+d)
	}
	key := filepath.Join(root, "key")
	if err := os.WriteFile(key, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddRegion(ctx, RegionConfig{Name: "r", K: 1, M: 1, Stores: urls, KeyFile: key}); err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	put := func(lk *format.Lock) string {
		t.Helper()
		r, err := m.openRegion(ctx, "r", true)
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		id := randHex(16)
		b, err := r.keys.Seal(format.TypeLock, id, lk.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.putAll(ctx, lockDir+id, b, nil); err != nil {
			t.Fatal(err)
		}
		return id
	}
	other := format.HostID{7}
	put(&format.Lock{Host: m.host.ID, HostName: "me", PID: uint32(dead.Process.Pid), Exclusive: true, Created: now, Refreshed: now, Op: "prune"})
	put(&format.Lock{Host: other, HostName: "gone", PID: 1, Exclusive: true, Created: now.Add(-time.Hour), Refreshed: now.Add(-2 * time.Minute), Op: "repair"})
	locks, err := m.Locks(ctx, "r")
	if err != nil || len(locks) != 2 || !locks[0].Stale || !locks[1].Stale {
		t.Fatalf("locks: %+v %v, want two stale", locks, err)
	}
	if _, err := m.Prune(ctx, "r", PruneOptions{KeepLast: 1}); err != nil {
		t.Fatalf("prune past stale locks: %v", err)
	}
	if locks, _ := m.Locks(ctx, "r"); len(locks) != 0 {
		t.Fatalf("stale locks left after an exclusive lock: %+v", locks)
	}
	put(&format.Lock{Host: other, HostName: "busy", PID: 1, Exclusive: false, Created: now, Refreshed: now, Op: "sync"})
	if _, err := m.Prune(ctx, "r", PruneOptions{KeepLast: 1}); !errors.Is(err, ErrLocked) {
		t.Fatalf("prune under another host's live sync: %v, want ErrLocked", err)
	}
	if _, err := m.Repair(ctx, "r", nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("repair under another host's live sync: %v, want ErrLocked", err)
	}
	if st, err := m.Unlock(ctx, "r", false); err != nil || len(st.Locks) != 0 {
		t.Fatalf("unlock without force removed %+v %v", st, err)
	}
	if st, err := m.Unlock(ctx, "r", true); err != nil || len(st.Locks) != 1 {
		t.Fatalf("unlock --force: %+v %v", st, err)
	}
	if _, err := m.Prune(ctx, "r", PruneOptions{KeepLast: 1}); err != nil {
		t.Fatal(err)
	}
}
