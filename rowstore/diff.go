package rowstore

import (
	"fmt"
	"sort"

	"github.com/snapfs/snapfs/index"
)

// Point names a disk image: Disk as of Snapshot, or Disk now when Snapshot
// is empty.
type Point struct {
	Snapshot string `json:"snapshot,omitempty"`
	Disk     string `json:"disk"`
}

func (p Point) String() string {
	if p.Snapshot == "" {
		return fmt.Sprintf("disk %q now", p.Disk)
	}
	return fmt.Sprintf("disk %q of snapshot %q", p.Disk, p.Snapshot)
}

// Change is a block that differs between two points.
type Change struct {
	Block  uint64   `json:"block"`
	Zero   bool     `json:"zero"`             // the block reads as zeros in the newer point
	Digest [32]byte `json:"digest,omitempty"` // SHA-256 of the block in the newer point
}

// resolve returns the chain, size and block size of a point. A point "now"
// first commits the disk's writes so the index holds them.
func (s *Store) resolve(p Point) ([]link, int64, int, error) {
	if err := ValidateName("disk", p.Disk); err != nil {
		return nil, 0, 0, err
	}
	if p.Snapshot == "" {
		d, err := s.diskByName(p.Disk)
		if err != nil {
			return nil, 0, 0, err
		}
		d.mu.Lock()
		err = d.flushLocked()
		chain, size, bs := d.chain, d.size, d.bs
		d.mu.Unlock()
		if err == nil {
			err = s.commit()
		}
		return chain, size, bs, err
	}
	if err := ValidateName("snapshot", p.Snapshot); err != nil {
		return nil, 0, 0, err
	}
	var chain []link
	var m index.Member
	err := s.idx.View(func(t *index.Txn) error {
		var err error
		if m, err = memberOf(t, p.Snapshot, p.Disk); err != nil {
			return err
		}
		chain, err = chainOf(t, m.Layer, m.Epoch)
		return err
	})
	return chain, m.Size, m.BlockSize, err
}

// Diff calls fn, in block order, for every block of `to` whose content
// differs from `from` (nil: from an empty disk, so every stored block). It
// works in time proportional to the blocks written between the two points,
// not to the disk's size. It returns the block size of `to`.
func (s *Store) Diff(from *Point, to Point, fn func(Change) error) (int, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	chainB, sizeB, bs, err := s.resolve(to)
	if err != nil {
		return 0, err
	}
	// Digests of an encrypted disk are sealed in the index: hand out SHA-256s.
	if fn, err = s.plainChanges(chainB[0].layer, to.String(), fn); err != nil { // crypt.go
		return 0, err
	}
	nblocks := uint64((sizeB + int64(bs) - 1) / int64(bs))
	if from == nil {
		return bs, s.visible(chainB, 0, nblocks, func(b uint64, v index.Version) error {
			if v.Zero() {
				return nil
			}
			return fn(Change{Block: b, Digest: v.Digest})
		})
	}
	chainA, _, bsA, err := s.resolve(*from)
	if err != nil {
		return 0, err
	}
	if bsA != bs {
		return 0, fmt.Errorf("%w: %s has block size %d, %s has %d", ErrInvalid, from, bsA, to, bs)
	}
	cand := map[uint64]bool{}
	err = s.idx.View(func(t *index.Txn) error {
		ia, ib := -1, -1
		for i, lb := range chainB {
			for j, la := range chainA {
				if la.layer == lb.layer {
					ia, ib = j, i
					break
				}
			}
			if ib >= 0 {
				break
			}
		}
		collect := func(layer, lo, hi uint64) error {
			return t.ScanEpochs(layer, lo, hi, func(_, b uint64) error {
				if b < nblocks {
					cand[b] = true
				}
				return nil
			})
		}
		if ib < 0 { // unrelated histories: everything either side holds
			for _, ch := range [][]link{chainA, chainB} {
				for _, l := range ch {
					if err := collect(l.layer, 0, l.epoch); err != nil {
						return err
					}
				}
			}
			return nil
		}
		for _, l := range chainB[:ib] {
			if err := collect(l.layer, 0, l.epoch); err != nil {
				return err
			}
		}
		for _, l := range chainA[:ia] {
			if err := collect(l.layer, 0, l.epoch); err != nil {
				return err
			}
		}
		lo, hi := chainA[ia].epoch, chainB[ib].epoch
		if lo > hi {
			lo, hi = hi, lo
		}
		if lo < hi {
			return collect(chainB[ib].layer, lo+1, hi)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	blocks := make([]uint64, 0, len(cand))
	for b := range cand {
		blocks = append(blocks, b)
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i] < blocks[j] })
	for _, b := range blocks {
		va, oka, err := s.lookup(chainA, b)
		if err != nil {
			return 0, err
		}
		vb, okb, err := s.lookup(chainB, b)
		if err != nil {
			return 0, err
		}
		za, zb := !oka || va.Zero(), !okb || vb.Zero()
		if za && zb || (!za && !zb && va.Digest == vb.Digest) {
			continue
		}
		c := Change{Block: b, Zero: zb}
		if !zb {
			c.Digest = vb.Digest
		}
		if err := fn(c); err != nil {
			return 0, err
		}
	}
	return bs, nil
}

// ReadPointBlock reads one block of a point (replication reads the blocks a
// Diff names this way). It returns false if the block reads as zeros.
func (s *Store) ReadPointBlock(p Point, b uint64, dst []byte) (bool, error) {
	chain, _, bs, err := s.resolve(p)
	if err != nil {
		return false, err
	}
	if len(dst) != bs {
		return false, fmt.Errorf("%w: buffer of %d bytes for block size %d", ErrInvalid, len(dst), bs)
	}
	return s.readBlock(chain, bs, b, dst, p.String())
}
