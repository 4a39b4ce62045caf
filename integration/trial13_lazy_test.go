package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// trial13Region adds a 2+1 file:// region "dr" under tmp to store.
func trial13Region(t *testing.T, store, tmp string) {
	t.Helper()
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, randBytes(t, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"region", "add", "dr", "--data", "2", "--parity", "1", "--key-file", key, "--create"}
	for i := 0; i < 3; i++ {
		add = append(add, "--store", "file://"+filepath.Join(tmp, fmt.Sprintf("region%d", i)))
	}
	ok(t, store, add...)
}

// Trial 13: `restore --lazy` with no daemon serving the store said "disk X
// is usable now ...; the rest hydrates in the background (disk info X
// shows the progress)", and disk info then said "waiting for the region
// (reads of missing blocks fail)": nothing hydrates and nothing can read
// the disk until a daemon runs, and the region was reachable all along.
// Both now say that no daemon serves the store and that snapfs mount
// starts the hydration; once a daemon runs, the disk hydrates and reads
// as the snapshot.
func TestTrial13LazyRestoreWithoutDaemon(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	pid := daemon(t, store, mp)
	trial13Region(t, store, tmp)
	ok(t, store, "disk", "create", "d", "--size", "8M")
	writeAt(t, filepath.Join(mp, "disks", "d"), 0, randBytes(t, 4<<20))
	ok(t, store, "snapshot", "create", "s", "--disk", "d")
	want := fileSum(t, filepath.Join(mp, "snapshots", "s", "d"))
	ok(t, store, "sync", "--region", "dr")
	stopDaemon(t, store, mp, pid)

	out := ok(t, store, "restore", "--region", "dr", "--snapshot", "s", "--disk", "d", "--to", "lz", "--lazy")
	if strings.Contains(out, "usable now") || strings.Contains(out, "in the background") || !strings.Contains(out, "no daemon") ||
		!strings.Contains(out, "snapfs mount") {
		t.Errorf("restore --lazy without a daemon says %q: want that no daemon serves the store and snapfs mount starts hydration", out)
	}
	info := ok(t, store, "disk", "info", "lz")
	if strings.Contains(info, "waiting for the region") || !strings.Contains(info, "no daemon") {
		t.Errorf("disk info of a lazy disk without a daemon says %q: want that no daemon serves the store", info)
	}
	if h := hydrationOf(t, store, "lz"); h == nil || h.Attached || h.Running {
		t.Errorf("hydration without a daemon: %+v, want a detached, idle lazy disk", h)
	}

	daemon(t, store, mp)
	waitHydrated(t, store, "lz", 30*time.Second)
	if got := fileSum(t, filepath.Join(mp, "disks", "lz")); got != want {
		t.Fatal("disk lz, restored lazily without a daemon, differs from snapshot s")
	}
}

// Trial 13: `snapfs status`, "the daemon's state: ... running jobs", did
// not show a lazily restored disk hydrating in the background (its JSON
// kept an empty "hydration" list): the one long job of a lazy restore was
// visible only per disk in disk info. status now lists each disk still
// hydrating, with its source, progress and state, in text and JSON.
func TestTrial13StatusShowsHydration(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	ok(t, store, "init")
	daemon(t, store, mp)
	trial13Region(t, store, tmp)
	ok(t, store, "disk", "create", "d", "--size", "8M")
	writeAt(t, filepath.Join(mp, "disks", "d"), 0, randBytes(t, 4<<20))
	ok(t, store, "snapshot", "create", "s", "--disk", "d")
	ok(t, store, "sync", "--region", "dr")
	ok(t, store, "restore", "--region", "dr", "--snapshot", "s", "--disk", "d", "--to", "lz", "--lazy", "--rate", "16K")

	var st struct {
		Hydration []struct {
			Disk  string `json:"disk"`
			Total int64  `json:"blocks_total"`
		} `json:"hydration"`
	}
	jsonLine(t, ok(t, store, "--json", "status"), "status", &st)
	if len(st.Hydration) != 1 || st.Hydration[0].Disk != "lz" || st.Hydration[0].Total != 256 {
		t.Errorf("status --json hydration: %+v, want disk lz with 256 blocks", st.Hydration)
	}
	out := ok(t, store, "status")
	if !strings.Contains(out, "HYDRATING") || !regexpMatch(`(?m)^lz +dr +s/d +\d+/256 blocks`, out) {
		t.Errorf("status does not show disk lz hydrating from dr s/d:\n%s", out)
	}
	ok(t, store, "disk", "delete", "lz")
	if out := ok(t, store, "status"); strings.Contains(out, "HYDRATING") {
		t.Errorf("status shows hydration after the lazy disk was deleted:\n%s", out)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
