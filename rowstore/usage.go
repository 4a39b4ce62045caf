package rowstore

import (
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Usage reports space per disk, snapshot and image, and for the store.
type Usage struct {
	Disks     []ItemUsage `json:"disks"`
	Snapshots []ItemUsage `json:"snapshots"`
	Images    []ItemUsage `json:"images"`
	Store     StoreUsage  `json:"store"`
}

// ItemUsage is the space of one disk, snapshot or image, in bytes.
type ItemUsage struct {
	Name string `json:"name"`
	// Logical is the size a reader sees (sum over a snapshot's disks).
	Logical int64 `json:"logical"`
	// Allocated is the size of the stored blocks it shows.
	Allocated int64 `json:"allocated"`
	// Exclusive is what only it holds: what deleting it frees (for a disk,
	// also after its snapshots are gone, clones and images aside).
	Exclusive int64 `json:"exclusive"`
}

// StoreUsage is the space of the whole store, in bytes.
type StoreUsage struct {
	SegmentBytes int64 `json:"segment_bytes"` // segment files on disk
	LiveBytes    int64 `json:"live_bytes"`    // block data something can see
	IndexBytes   int64 `json:"index_bytes"`   // the Badger index
	Segments     int   `json:"segments"`
	FreeBytes    int64 `json:"free_bytes"` // free space of the filesystem holding the store
	// ExclusiveAsOf is when the index view the exclusive figures and
	// LiveBytes were counted from was taken; ExclusiveStale is set when a
	// change came after it (the figures are being recounted in the
	// background: exclusive.go).
	ExclusiveAsOf  time.Time `json:"exclusive_as_of"`
	ExclusiveStale bool      `json:"exclusive_stale"`
}

// Usage reports usage in O(objects): the allocated figures are the space
// accounting's (accounting.go), the exclusive ones and LiveBytes the last
// ones counted (exclusive.go), with the time they were counted and whether
// a change came since (Store.ExclusiveStale). Only the first call after Open
// on a store without background work counts.
func (s *Store) Usage() (Usage, error) { return s.usage(false) }

// FreshUsage is Usage with exclusive figures counted now if any change came
// since the last count: one pass over the index (O(data)).
func (s *Store) FreshUsage() (Usage, error) { return s.usage(true) }

func (s *Store) usage(fresh bool) (Usage, error) {
	if err := s.checkOpen(); err != nil {
		return Usage{}, err
	}
	if err := s.syncAllDisks(); err != nil {
		if !isNoSpace(err) {
			return Usage{}, err
		}
		// A full filesystem (the reserve spent): usage is what the user
		// needs most now (trial 8). The figures are the index's; what the
		// write-back caches hold is in none of them.
		s.log.Warn("usage: the write-back caches could not be written (the store's filesystem is full); their blocks are in no figure", "err", err)
	}
	fig, current, err := s.exclusiveFigures(fresh)
	if err != nil {
		return Usage{}, err
	}
	res := struct {
		exclusive map[string]int64
		live      int64
	}{fig.by, fig.live}
	var u Usage
	u.Store.ExclusiveAsOf, u.Store.ExclusiveStale = fig.at.UTC(), !current
	disks, err := s.ListDisks()
	if err != nil {
		return u, err
	}
	for _, d := range disks {
		u.Disks = append(u.Disks, ItemUsage{Name: d.Name, Logical: d.Size, Allocated: d.Allocated, Exclusive: res.exclusive["disk:"+d.Name]})
	}
	snaps, err := s.ListSnapshots()
	if err != nil {
		return u, err
	}
	for _, sn := range snaps {
		iu := ItemUsage{Name: sn.Name, Exclusive: res.exclusive["snapshot:"+sn.Name]}
		for _, m := range sn.Disks {
			iu.Logical += m.Size
			iu.Allocated += m.Allocated // recorded when it was taken
		}
		u.Snapshots = append(u.Snapshots, iu)
	}
	images, err := s.ListImages()
	if err != nil {
		return u, err
	}
	for _, im := range images {
		u.Images = append(u.Images, ItemUsage{Name: im.Name, Logical: im.Size, Allocated: im.Allocated, Exclusive: res.exclusive["image:"+im.Name]})
	}
	for _, si := range s.seg.Segments() {
		u.Store.SegmentBytes += si.Size
		u.Store.Segments++
	}
	u.Store.LiveBytes = res.live
	u.Store.IndexBytes = dirSize(filepath.Join(s.dir, "index"))
	if sp, err := s.fs.Statfs(s.dir); err == nil {
		u.Store.FreeBytes = sp.Free
	}
	sort.Slice(u.Disks, func(i, j int) bool { return u.Disks[i].Name < u.Disks[j].Name })
	return u, nil
}

// dirSize is the space the files under dir occupy (allocated blocks, not
// apparent sizes: Badger preallocates sparse files).
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += fi.Size()
		}
		return nil
	})
	return n
}
