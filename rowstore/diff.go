package rowstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/snapfs/snapfs/index"
	"github.com/snapfs/snapfs/rowstore/ids"
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
		chain, size, bs := d.chain, d.size.Load(), d.bs
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
// not to the disk's size, and looks blocks up in batches (one index view
// per diffWindow blocks, not one per block). It returns the block size of
// `to`.
func (s *Store) Diff(from *Point, to Point, fn func(Change) error) (int, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	chainB, sizeB, bs, err := s.resolve(to)
	if err == nil {
		err = s.refuseLazy(chainB, to.String()) // lazy.go
	}
	if err != nil {
		return 0, err
	}
	// Digests of an encrypted disk are sealed in the index: hand out SHA-256s.
	if fn, err = s.plainChanges(chainB[0].layer, to.String(), fn); err != nil { // crypt.go
		return 0, err
	}
	var chainA []link
	if from != nil {
		var bsA int
		if chainA, _, bsA, err = s.resolve(*from); err == nil {
			err = s.refuseLazy(chainA, from.String())
		}
		if err != nil {
			return 0, err
		}
		if bsA != bs {
			return 0, fmt.Errorf("%w: %s has block size %d, %s has %d", ErrInvalid, from, bsA, to, bs)
		}
	}
	nblocks := blockCount(sizeB, bs)
	return bs, s.diffVersions(context.Background(), chainA, from != nil, chainB, nblocks, func(b ids.Block, v index.Version, _ diffProgress) error {
		return fn(changeOf(b, v))
	})
}

// changeOf is the change to version v of block b (a zero version: a hole).
func changeOf(b ids.Block, v index.Version) Change {
	if v.Zero() {
		return Change{Block: uint64(b), Zero: true}
	}
	return Change{Block: uint64(b), Digest: v.Digest}
}

// diffWindow is how many blocks a diff looks up with one index view.
const diffWindow = 4096

// diffProgress is how far a diff is: done of total units (blocks of the
// disk for a full diff, candidate blocks for an incremental one).
type diffProgress struct{ done, total uint64 }

// diffVersions calls fn, in block order, for every block whose content
// differs between chainA (hasA false: an empty disk) and chainB, with the
// version chainB sees (a zero version when it reads as zeros). Blocks at or
// past nblocks are left out. Memory is bounded by a window of blocks plus,
// for an incremental diff, the set of blocks written between the points.
func (s *Store) diffVersions(ctx context.Context, chainA []link, hasA bool, chainB []link, nblocks ids.Block, fn func(b ids.Block, v index.Version, p diffProgress) error) error {
	if !hasA {
		// Every stored block of chainB, a window at a time.
		for lo := ids.Block(0); lo < nblocks; lo += diffWindow {
			if err := ctx.Err(); err != nil {
				return err
			}
			hi := min(lo+diffWindow, nblocks)
			p := diffProgress{uint64(hi), uint64(nblocks)}
			err := s.visible(chainB, lo, hi, func(b ids.Block, v index.Version) error {
				if v.Zero() {
					return nil
				}
				return fn(b, v, p)
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	cand := map[ids.Block]bool{}
	err := s.idx.View(func(t *index.Txn) error {
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
		collect := func(layer ids.Layer, lo, hi ids.Epoch) error {
			return t.ScanEpochs(layer, lo, hi, func(_ ids.Epoch, b ids.Block) error {
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
			return collect(chainB[ib].layer, lo.Next(), hi)
		}
		return nil
	})
	if err != nil {
		return err
	}
	blocks := make([]ids.Block, 0, len(cand))
	for b := range cand {
		blocks = append(blocks, b)
	}
	cand = nil
	slices.Sort(blocks)
	for i := 0; i < len(blocks); i += diffWindow {
		if err := ctx.Err(); err != nil {
			return err
		}
		w := blocks[i:min(i+diffWindow, len(blocks))]
		var vas, vbs []index.Version
		var oka, okb []bool
		var errA, errB error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			vas, oka, errA = s.lookupPar(chainA, w)
		}()
		vbs, okb, errB = s.lookupPar(chainB, w)
		wg.Wait()
		if err := cmp.Or(errA, errB); err != nil {
			return err
		}
		p := diffProgress{uint64(i + len(w)), uint64(len(blocks))}
		for j, b := range w {
			za, zb := !oka[j] || vas[j].Zero(), !okb[j] || vbs[j].Zero()
			// Equal digests mean equal content only when the digest is
			// known: a version a rebuild indexed from a corrupt record has
			// none (zero), and two such versions are the same only if they
			// are the same record.
			if za && zb || (!za && !zb && (vas[j] == vbs[j] || vas[j].Digest != [32]byte{} && vas[j].Digest == vbs[j].Digest)) {
				continue
			}
			v := vbs[j]
			if zb {
				v = index.Version{Flags: index.FlagZero}
			}
			if err := fn(b, v, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// diffLookups is how many parts of a window of scattered blocks an
// incremental diff looks up at once, per chain: each part's lookups
// fault in the index blocks they touch one after another, so a cold
// index (after a restart, or under memory pressure) is read with a queue
// of requests instead of one at a time.
const diffLookups = 4

// lookupPar is lookupMany over blocks split into up to diffLookups parts
// looked up concurrently (each in an index view of its own).
func (s *Store) lookupPar(chain []link, blocks []ids.Block) ([]index.Version, []bool, error) {
	const minPart = 256 // smaller parts are not worth a goroutine
	parts := min(diffLookups, (len(blocks)+minPart-1)/minPart)
	if parts <= 1 {
		return s.lookupMany(chain, blocks)
	}
	vs := make([]index.Version, len(blocks))
	found := make([]bool, len(blocks))
	errs := make([]error, parts)
	per := (len(blocks) + parts - 1) / parts
	var wg sync.WaitGroup
	for k := range parts {
		lo, hi := k*per, min((k+1)*per, len(blocks))
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, f, err := s.lookupMany(chain, blocks[lo:hi])
			copy(vs[lo:hi], v)
			copy(found[lo:hi], f)
			errs[k] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	return vs, found, nil
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
	return s.readBlock(chain, bs, ids.Block(b), dst, p.String())
}
