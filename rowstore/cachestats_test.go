package rowstore

import "testing"

// TestCacheStats: a partial block written and not yet flushed is in the
// write-back cache; a Sync empties it.
func TestCacheStats(t *testing.T) {
	s, _ := newTestStore(t, testOptions())
	if _, err := s.CreateDisk("d", 1<<20, 16<<10); err != nil {
		t.Fatal(err)
	}
	d, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.WriteAt(make([]byte, 100), 0); err != nil {
		t.Fatal(err)
	}
	cs := s.CacheStats()
	if cs.DirtyBytes <= 0 || cs.Disks["d"] != cs.DirtyBytes || cs.LimitPerDisk <= 0 {
		t.Fatalf("after a partial write: %+v", cs)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	if cs := s.CacheStats(); cs.DirtyBytes != 0 || len(cs.Disks) != 0 {
		t.Fatalf("after Sync: %+v", cs)
	}
}
