package rowstore

// CacheStats is the write-back cache now: the partial blocks not yet in the
// log, per loaded disk, and the bound per disk (Options.CacheBytes).
type CacheStats struct {
	DirtyBytes   int64            `json:"dirty_bytes"`
	Disks        map[string]int64 `json:"disks,omitempty"` // dirty bytes by disk name (disks with some)
	LimitPerDisk int64            `json:"limit_per_disk"`
}

// CacheStats reports the write-back cache (metrics, snapfs status). It takes
// each disk's lock briefly, as Sync does.
func (s *Store) CacheStats() CacheStats {
	cs := CacheStats{LimitPerDisk: s.opts.CacheBytes}
	s.disksMu.Lock()
	ds := make([]*diskState, 0, len(s.disks))
	for _, d := range s.disks {
		ds = append(ds, d)
	}
	s.disksMu.Unlock()
	for _, d := range ds {
		d.mu.Lock()
		n, name := d.cacheBytes, d.name
		d.mu.Unlock()
		if n > 0 {
			if cs.Disks == nil {
				cs.Disks = map[string]int64{}
			}
			cs.Disks[name] += n
			cs.DirtyBytes += n
		}
	}
	return cs
}
