/*
 * SPDX-FileCopyrightText: © Hypermode Inc. <hello@hypermode.com>
 * SPDX-License-Identifier: Apache-2.0
 */

package z

import (
	"fmt"
)

// Truncate would truncate the mmapped file to the given size. On Linux, we truncate
// the underlying file and then call mremap, but on other systems, we unmap first,
// then truncate, then re-map.
func (m *MmapFile) Truncate(maxSz int64) error {
	if err := m.Sync(); err != nil {
		return fmt.Errorf("while sync file: %s, error: %v\n", m.Fd.Name(), err)
	}
	if maxSz > int64(len(m.Data)) {
		// snapfs: grow with allocated blocks (see allocate), so the new
		// mapped pages can never fault with SIGBUS on a full filesystem.
		if err := allocate(m.Fd, maxSz); err != nil {
			return fmt.Errorf("while growing file: %s, error: %w", m.Fd.Name(), err)
		}
	} else if err := m.Fd.Truncate(maxSz); err != nil {
		return fmt.Errorf("while truncate file: %s, error: %v\n", m.Fd.Name(), err)
	}

	var err error
	// snapfs: ReleaseTables reads m.Data of a table (Badger truncates only
	// memtable logs, the value log and the discard file, which do not wait
	// for it; a table is locked in case that changes).
	if m.table {
		tables.Lock()
		defer tables.Unlock()
	}
	m.Data, err = mremap(m.Data, int(maxSz)) // Mmap up to max size.
	return err
}
