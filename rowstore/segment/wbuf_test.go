package segment

import (
	"testing"

	"github.com/snapfs/snapfs/rowstore/vfs"
)

// TestRotationKeepsBuffer: the gathering buffer moves to the new segment at
// every rotation, with or without segments created ahead: a rotation never
// leaves the new segment to regrow it append by append (measured: 9 % of
// the cleaner benchmark's CPU went to that regrowth when it did).
func TestRotationKeepsBuffer(t *testing.T) {
	for _, pre := range []bool{false, true} {
		l := mustOpen(t, vfs.Default, t.TempDir(), 4096)
		l.SetPrecreate(pre)
		first := l.Active()
		for i := 0; l.Active() < first+20; i++ {
			appendN(t, l, i, i+1)
			l.mu.RLock()
			s := l.active
			l.mu.RUnlock()
			s.bufMu.Lock()
			c := cap(s.wbuf)
			s.bufMu.Unlock()
			if c < writeBehind {
				t.Fatalf("precreate %v: segment %d gathers in a buffer of %d bytes, not the %d one carried over", pre, s.num, c, writeBehind)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
