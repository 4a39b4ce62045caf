package daemon

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapfs/snapfs/rowstore"
)

// Trial 10 (lead's note): `snapfs mount` right after a SIGKILL of the
// daemon exited 5 (busy) while the killed process was still exiting and
// held the daemon lock; a restart loop had to retry. The lock is now
// waited for (lockWait) before busy is said.
func TestTrial10LockWaitsForExitingHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), LockName)
	held, err := lockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond) // the killed daemon exits
		held.Close()
	}()
	f, err := lockFile(path)
	if err != nil {
		t.Fatalf("lock released 300 ms later: %v", err)
	}
	defer f.Close()
	// A holder that stays: busy once the wait is over.
	old := lockWait
	lockWait = 200 * time.Millisecond
	defer func() { lockWait = old }()
	start := time.Now()
	if _, err := lockFile(path); !errors.Is(err, rowstore.ErrBusy) || time.Since(start) < lockWait {
		t.Fatalf("lock held: %v after %s", err, time.Since(start))
	}
}
