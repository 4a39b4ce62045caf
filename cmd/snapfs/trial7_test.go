package main

import (
	"strings"
	"testing"

	"github.com/snapfs/snapfs/rowstore"
)

// TestTrial7HydrationNotAttached: a lazy disk whose region's disk could not
// be attached (the region unreachable, the snapshot gone) knows nothing of
// what is missing. disk info said "0 of 0 blocks local (100.0%)", which
// reads as complete, while every unfetched block read EIO; it must say the
// count is not known, and why the source is not attached.
func TestTrial7HydrationNotAttached(t *testing.T) {
	h := &rowstore.LazyStatus{
		Origin:    rowstore.LazyOrigin{Region: "dr", Snapshot: "s1", Disk: "vol"},
		LastError: `not found: snapshot "s1" in region "dr"`,
	}
	s := hydration(h)
	for _, bad := range []string{"100.0%", "0 of 0"} {
		if strings.Contains(s, bad) {
			t.Errorf("hydration of an unattached lazy disk says %q: %s", bad, s)
		}
	}
	for _, want := range []string{"not known", "waiting for the region", h.LastError} {
		if !strings.Contains(s, want) {
			t.Errorf("hydration of an unattached lazy disk lacks %q: %s", want, s)
		}
	}
	h.Attached, h.Running, h.Total, h.Local, h.LastError = true, true, 10, 5, ""
	if s := hydration(h); !strings.Contains(s, "5 of 10 blocks local (50.0%)") {
		t.Errorf("hydration of an attached lazy disk: %s", s)
	}
}
