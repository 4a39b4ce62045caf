package replicate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/snapfs/snapfs/replicate"
)

// TestListingLostChain: a snapshot whose manifest is unreadable on every
// store makes every delta over it lost, at any depth (a delta over a
// delta over it cannot be restored either).
func TestListingLostChain(t *testing.T) {
	ctx := context.Background()
	hs, dirs := fleet(t, 2, 1, "a")
	a := hs[0]
	mkDisk(t, a.host, "v", 16)
	var nids []string // each snapshot's manifest name id, in order
	for i, name := range []string{"s1", "s2", "s3"} {
		writeBlocks(t, a.host, "v", uint64(i+1), span(uint64(i), uint64(i+2)))
		snapshot(t, a.host, name, "v")
		if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
			t.Fatal(err)
		}
		for _, nid := range listObjs(t, dirs[0], "snapshots") {
			if !slices.Contains(nids, nid) {
				nids = append(nids, nid)
			}
		}
	}
	if len(nids) != 3 {
		t.Fatalf("manifests %v, want 3", nids)
	}
	damageObj(t, dirs, "snapshots", nids[0])
	rs, err := a.mgr.ListRemote(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, fmt.Sprintf("%s:%s", r.Name, r.State))
	}
	lost := ":" + string(replicate.StateLost)
	want := []string{nids[0] + lost, "s2" + lost, "s3" + lost}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("listing %v, want %v (s2 and s3 are deltas over the unreadable s1)", got, want)
	}
	if _, err := a.mgr.Restore(ctx, "r1", "s3", "v", "back", nil); err == nil {
		t.Fatal("s3 restored although its chain reaches an unreadable manifest")
	}
}

// removeObj removes object sub/name from every store directory of dirs.
func removeObj(t *testing.T, dirs []string, sub, name string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.Remove(filepath.Join(d, sub, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// damageObj flips a byte in the middle of object sub/name on every store
// directory of dirs (flipping it again undoes it).
func damageObj(t *testing.T, dirs []string, sub, name string) {
	t.Helper()
	for _, d := range dirs {
		p := filepath.Join(d, sub, name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
