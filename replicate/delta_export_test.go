package replicate

import (
	"context"
	"os"
	"path/filepath"

	"github.com/snapfs/snapfs/replicate/format"
)

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

// SetIndexVersion rewrites the index of pack on every store (its homes and
// the others alike) with version
// byte v (sealed again with the region's key): an index written by a newer
// snapfs, for tests of what this one does with it.
func (m *Manager) SetIndexVersion(ctx context.Context, region, pack string, v byte) error {
	r, err := m.openRegion(ctx, region, true)
	if err != nil {
		return err
	}
	defer r.close()
	pt, _, err := r.getMeta(ctx, format.TypeIndex, indexDir, pack)
	if err != nil {
		return err
	}
	pt[4] = v
	sealed, err := r.keys.Seal(format.TypeIndex, pack, pt)
	if err != nil {
		return err
	}
	for _, s := range r.stores {
		if err := s.Put(ctx, indexDir+pack, sealed); err != nil {
			return err
		}
	}
	_ = os.RemoveAll(filepath.Join(m.cacheDir(region), "index", pack))
	m.chunkCache.drop(region)
	return nil
}
