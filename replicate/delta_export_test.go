package replicate

import "context"

// DeltaChunks counts the delta entries of the region's pack indexes, and
// the packs that hold them (for tests).
func (m *Manager) DeltaChunks(ctx context.Context, region string) (entries int, packs []string, err error) {
	r, err := m.openRegion(ctx, region, false)
	if err != nil {
		return 0, nil, err
	}
	defer r.close()
	cs, err := m.loadChunks(ctx, r, chunksRead)
	if err != nil {
		return 0, nil, err
	}
	for id, x := range cs.packs {
		n := 0
		for _, e := range x.Entries {
			if e.IsDelta() {
				n++
			}
		}
		if n > 0 {
			entries += n
			packs = append(packs, id.String())
		}
	}
	return entries, packs, nil
}
