package replicate

import (
	"context"

	"github.com/snapfs/snapfs/replicate/erasure"
)

// SetPackVersion rewrites every shard of pack so that the pack object's
// version byte is v (as a newer snapfs would write it): its table then
// opens as format.ErrUnsupportedVersion.
func (m *Manager) SetPackVersion(ctx context.Context, region, pack string, v byte) error {
	r, err := m.openRegion(ctx, region, true)
	if err != nil {
		return err
	}
	defer r.close()
	id, _ := parsePackID(pack)
	shards := make([][]byte, r.n())
	for i := range r.n() {
		if b, err := m.getShard(ctx, r, i, id, 0); err == nil {
			shards[i] = b
		}
	}
	data, err := erasure.Decode(shards)
	if err != nil {
		return err
	}
	data[4] = v
	out, err := erasure.Encode(data, r.k, r.m)
	if err != nil {
		return err
	}
	for i, s := range r.stores {
		if err := s.Put(ctx, packDir+pack, out[i]); err != nil {
			return err
		}
	}
	return nil
}
