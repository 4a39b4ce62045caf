package replicate

import (
	"context"
	"fmt"

	"github.com/snapfs/snapfs/replicate/format"
)

// PackOfBlock names the pack holding the chunk of block of disk in
// snapshot snap (this host's, or the only one of that name), as readers
// locate it, and the pack of its base when that chunk is a delta (for
// tests).
func (m *Manager) PackOfBlock(ctx context.Context, region, snap, disk string, block uint64) (pack, base string, err error) {
	r, err := m.openRegion(ctx, region, false)
	if err != nil {
		return "", "", err
	}
	defer r.close()
	_, mf, err := m.findSnapshot(ctx, r, "", snap)
	if err != nil {
		return "", "", err
	}
	bm, _, err := r.resolveDisk(ctx, mf, disk, map[string]*format.Manifest{})
	if err != nil {
		return "", "", err
	}
	cs, err := m.loadChunks(ctx, r, chunksRead)
	if err != nil {
		return "", "", err
	}
	loc, ok := cs.chunks[bm[block]]
	if !ok {
		return "", "", fmt.Errorf("block %d: chunk in no pack", block)
	}
	if loc.entry().IsDelta() {
		bl, err := cs.baseOf(loc)
		if err != nil {
			return loc.pack().String(), "", err
		}
		base = bl.pack().String()
	}
	return loc.pack().String(), base, nil
}
