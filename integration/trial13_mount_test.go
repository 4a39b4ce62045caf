package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Trial 13: `snapfs mount --files-max 0` (or -1), `--files-idle 0s` (or a
// negative duration) and `--region-cache 0` mounted the store with the
// defaults (8 trees, 5 minutes, 1 GiB) without a word: a user asking for no
// .files trees, for release at once or for no region cache got something
// else. Each is now refused (exit 2, one line naming the flag) before
// anything is mounted or made, as policy flags given a value that means
// "not given" are.
func TestTrial13MountRefusesMeaninglessValues(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store := filepath.Join(tmp, "store")
	ok(t, store, "init")
	for _, tc := range [][]string{
		{"--files-max", "0"},
		{"--files-max", "-1"},
		{"--files-idle", "0s"},
		{"--files-idle", "-5m"},
		{"--region-cache", "0"},
	} {
		mp := filepath.Join(tmp, "m"+strings.Trim(strings.Join(tc, ""), "-"))
		t.Cleanup(func() { stopDaemon(t, store, mp, "") })
		r := snapfs(t, store, append([]string{"mount", "--background", mp}, tc...)...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "snapfs: ") || strings.Count(r.stderr, "\n") != 1 ||
			!strings.Contains(r.stderr, tc[0]) {
			t.Errorf("mount %s %s: exit %d, stderr %q; want exit 2 and one line naming %s", tc[0], tc[1], r.code, r.stderr, tc[0])
		}
		if isMounted(mp) {
			t.Errorf("mount %s %s mounted the store", tc[0], tc[1])
			stopDaemon(t, store, mp, "")
		}
		if _, err := os.Stat(mp); err == nil {
			t.Errorf("mount %s %s left the mount point %s it made", tc[0], tc[1], mp)
		}
	}
}
