//go:build linux

// snapfs patch (not in upstream ristretto): see ReleaseTables.

package z

import (
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// tables are the live mappings of Badger's SST tables (files ending in
// ".sst"), registered when mapped and removed before they are unmapped.
var tables struct {
	sync.Mutex
	m map[*MmapFile]struct{}
}

func trackTable(m *MmapFile, filename string) {
	if !strings.HasSuffix(filename, ".sst") {
		return
	}
	m.table = true
	tables.Lock()
	defer tables.Unlock()
	if tables.m == nil {
		tables.m = make(map[*MmapFile]struct{})
	}
	tables.m[m] = struct{}{}
}

// untrackTable must be called before m is unmapped: ReleaseTables holds the
// lock while it advises a mapping, so once this returns no advice can land
// on an address range the kernel may since have handed to someone else.
func untrackTable(m *MmapFile) {
	tables.Lock()
	delete(tables.m, m)
	tables.Unlock()
}

// ReleaseTables drops the resident pages of every mapped SST table from the
// process (madvise MADV_DONTNEED) and returns how many bytes of mappings it
// advised. Badger reads tables through shared, read-mostly file mappings:
// every page it touches (verifying a new table's checksum, compactions,
// lookups) stays mapped, so the process's resident size grows with the
// index (about 1 % of the data written). For a shared file mapping the
// advice only unmaps the pages: they stay in the page cache (reclaimable,
// not the process's), a dirty page's state passes to the page cache, and
// the next access maps the same page back with a minor fault. Nothing
// Badger sees changes.
func ReleaseTables() (advised int64) {
	tables.Lock()
	defer tables.Unlock()
	for m := range tables.m {
		if len(m.Data) == 0 {
			continue
		}
		if unix.Madvise(m.Data, unix.MADV_DONTNEED) == nil {
			advised += int64(len(m.Data))
		}
	}
	return advised
}
