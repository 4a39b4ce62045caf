package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRegionPruneKeepZeroRefused: `region prune --keep-last 0` (or
// --keep-within 0) is refused with exit 2 and one line saying why; it said
// "prune needs keep-last or keep-within" although one was given (zero was
// taken as not given).
func TestRegionPruneKeepZeroRefused(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	for _, flag := range [][]string{{"--keep-last", "0"}, {"--keep-within", "0s"}} {
		r := fails(t, store, 2, append([]string{"region", "prune", "dr"}, flag...)...)
		if !strings.Contains(r.stderr, "would keep no snapshot") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("region prune %v: %q", flag, r.stderr)
		}
	}
}
