package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// remoteSnap is a snapshot line of `region snapshots --json`.
type remoteSnap struct {
	Type, Name, Host string
	Mine             bool
	HostID           string   `json:"host_id"`
	HeldBy           []string `json:"held_by"`
}

// regionSnapshots is `region snapshots --json` of region, line by line.
func regionSnapshots(t *testing.T, dir, region string) []remoteSnap {
	t.Helper()
	var snaps []remoteSnap
	for _, l := range jsonObjects(t, ok(t, dir, "--json", "region", "snapshots", region)) {
		var r remoteSnap
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, r)
	}
	return snaps
}

// regionSnaps is regionSnapshots by name: whether each is this host's,
// and its host id.
func regionSnaps(t *testing.T, dir, region string) map[string]remoteSnap {
	t.Helper()
	out := map[string]remoteSnap{}
	for _, r := range regionSnapshots(t, dir, region) {
		out[r.Name] = r
	}
	return out
}

// TestShare7MovedStoreSameHost: a store moved with mv (same file system,
// same directory) is the same host: its synced snapshots are still its
// own, and its prune removes its old one as before.
func TestShare7MovedStoreSameHost(t *testing.T) {
	a, _, _ := twoHostsFileRegion(t)
	syncedSnapshot(t, a, 4, "a1")
	before := regionSnaps(t, a.dir, "shared")["a1"]
	if !before.Mine {
		t.Fatalf("a1 is not this host's before the move: %+v", before)
	}

	stopDaemon(t, a.dir, a.mp, a.pid)
	moved := a.dir + "-moved"
	if err := os.Rename(a.dir, moved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(moved) })
	a.dir = moved
	a.pid = daemon(t, a.dir, a.mp)
	if after := regionSnaps(t, a.dir, "shared")["a1"]; !after.Mine || after.HostID != before.HostID {
		t.Fatalf("a1 after mv of the store: %+v, was %+v (the same host)", after, before)
	}
	writeAt(t, filepath.Join(a.mp, "disks", "vol"), 0, randBytes(t, 4<<20))
	ok(t, a.dir, "snapshot", "create", "a2", "--disk", "vol")
	ok(t, a.dir, "sync", "--region", "shared")
	ok(t, a.dir, "region", "prune", "shared", "--keep-last", "1")
	snaps := regionSnaps(t, a.dir, "shared")
	if _, ok := snaps["a1"]; ok || !snaps["a2"].Mine {
		t.Fatalf("after the moved store's prune --keep-last 1: %+v, want a2 only (its own)", snaps)
	}
}

// TestShare7CopiedStoreOwnIdentity: a copy of a store (cp -a) is another
// host: the original's synced snapshot is not the copy's (region
// snapshots), the copy's prune leaves it, and the copy can restore it by
// the original's host id.
func TestShare7CopiedStoreOwnIdentity(t *testing.T) {
	a, _, _ := twoHostsFileRegion(t)
	want := syncedSnapshot(t, a, 4, "a1")
	orig := regionSnaps(t, a.dir, "shared")["a1"]

	clone := cloneStore(t, a)
	if s := regionSnaps(t, clone.dir, "shared")["a1"]; s.Mine || s.HostID != orig.HostID {
		t.Fatalf("the copy lists the original's a1 as %+v: want the original's (host %s), not its own", s, orig.HostID)
	}
	ok(t, clone.dir, "region", "prune", "shared", "--keep-last", "1")
	ok(t, clone.dir, "restore", "--region", "shared", "--snapshot", "a1", "--host", orig.HostID, "--disk", "vol", "--to", "back")
	if got := fileSum(t, filepath.Join(clone.mp, "disks", "back")); got != want {
		t.Fatal("a1 restored by the copy differs from the snapshot")
	}
	a.pid = daemon(t, a.dir, a.mp)
	if s := regionSnaps(t, a.dir, "shared")["a1"]; !s.Mine || s.HostID != orig.HostID {
		t.Fatalf("the original's a1 after the copy's prune: %+v", s)
	}
}

// TestShare7UnreadableManifestListedLost: a manifest damaged on every
// store: `region snapshots` still lists every other snapshot (exit 0) and
// names the damaged one lost by its id; `region check` says lost (exit 12)
// and does not promise that repair brings it back.
func TestShare7UnreadableManifestListedLost(t *testing.T) {
	a, _, regionDir := twoHostsFileRegion(t)
	for _, d := range []string{"v", "w"} {
		ok(t, a.dir, "disk", "create", d, "--size", "1M")
		writeAt(t, filepath.Join(a.mp, "disks", d), 0, randBytes(t, 1<<20))
	}
	ok(t, a.dir, "snapshot", "create", "s1", "--disk", "v")
	ok(t, a.dir, "sync", "--region", "shared")
	ents, err := os.ReadDir(filepath.Join(regionDir, "s0", "snapshots"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("manifests after s1: %v %v", ents, err)
	}
	s1 := ents[0].Name()
	ok(t, a.dir, "snapshot", "create", "t1", "--disk", "w")
	ok(t, a.dir, "sync", "--region", "shared")
	ents, _ = os.ReadDir(filepath.Join(regionDir, "s0", "snapshots"))
	var victim string
	for _, e := range ents {
		if e.Name() != s1 {
			victim = e.Name()
		}
	}
	for i := range 3 {
		p := filepath.Join(regionDir, fmt.Sprintf("s%d", i), "snapshots", victim)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := ok(t, a.dir, "region", "snapshots", "shared")
	if !strings.Contains(out, "s1") || !regexp.MustCompile(victim+`.*lost`).MatchString(out) {
		t.Fatalf("region snapshots with t1's manifest damaged everywhere:\n%s\nwant s1, and %s lost", out, victim)
	}
	r := snapfs(t, a.dir, "region", "check", "shared")
	if r.code != 12 || !strings.Contains(r.stderr, "1 snapshot(s) lost (repair cannot bring them back: unreadable manifest "+victim) {
		t.Fatalf("region check: exit %d: %s", r.code, r.stderr)
	}
}
