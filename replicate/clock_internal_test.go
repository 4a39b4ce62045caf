package replicate

import (
	"context"
	"testing"
)

// TestRemoveRegionForgetsClock: a removed region's measured store skews
// go with it (as its chunk cache does), so a region added again under the
// name, perhaps on other stores, is measured afresh.
func TestRemoveRegionForgetsClock(t *testing.T) {
	ctx := context.Background()
	_, m, _, _ := newInternalRegion(t, t.TempDir(), Options{}, 2, 1, 5)
	if _, err := m.Sync(ctx, "r", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.clocks.Load("r"); !ok {
		t.Fatal("a sync measured no clock view of region r")
	}
	if err := m.RemoveRegion("r"); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.clocks.Load("r"); ok {
		t.Fatal("the removed region's clock view is still cached")
	}
}
