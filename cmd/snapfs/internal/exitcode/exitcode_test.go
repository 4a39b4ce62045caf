package exitcode

import (
	"errors"
	"fmt"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// Issue 14 finding 8: conflicts and races have their own codes (they were
// 4, "already exists").
func TestConflictAndLockedCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("sync: %w", replicate.ErrConflict), Conflict},
		{fmt.Errorf("prune: %w", replicate.ErrLocked), Locked},
		{fmt.Errorf("x: %w", replicate.ErrExists), Exists},
		{errors.Join(fmt.Errorf("%w", replicate.ErrLocked), replicate.ErrUnavailable), Locked},
	} {
		if got := Of(c.err); got != c.want {
			t.Errorf("Of(%v) = %d, want %d", c.err, got, c.want)
		}
		if got := Of(Sentinel(c.want)); got != c.want {
			t.Errorf("Of(Sentinel(%d)) = %d", c.want, got)
		}
	}
	if Conflict != 14 || Locked != 15 {
		t.Fatal("exit codes never change meaning")
	}
}
