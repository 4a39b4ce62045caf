//go:build !linux

package z

// Table mappings are not tracked here: see release_linux.go.
func trackTable(*MmapFile, string) {}
func untrackTable(*MmapFile)       {}

// ReleaseTables does nothing where madvise is not used (see release_linux.go).
func ReleaseTables() int64 { return 0 }
