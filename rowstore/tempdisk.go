package rowstore

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
)

// Temporary disks. A disk that takes long to fill (a restore from a
// region, an encrypted copy of a snapshot) is built under a temporary name
// and renamed when complete, so a process killed midway never leaves a
// half-built disk under the name asked for. A temporary name is "restore-"
// and 16 lowercase hex digits (restores named them first; stores may hold
// such leftovers). The process that builds one registers its name until it
// is renamed or deleted; CleanTempDisks deletes the others (a killed
// build's), and the daemon calls it at start, before the mount lists disks.
const tempDiskPrefix = "restore-"

// activeTemps holds the temporary disks being built in this process (a
// store is opened by one process only).
var activeTemps sync.Map

// NewTempDiskName returns a new temporary disk name, counted as being
// built by this process (CleanTempDisks leaves it) until release is called.
func NewTempDiskName() (name string, release func()) {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	name = tempDiskPrefix + hex.EncodeToString(b[:])
	activeTemps.Store(name, true)
	return name, func() { activeTemps.Delete(name) }
}

// IsTempDiskName reports whether name is a temporary disk's: "restore-"
// and 16 lowercase hex digits. No disk gets such a name but through
// NewTempDiskName (checkNewDiskName): CleanTempDisks would delete it.
func IsTempDiskName(name string) bool {
	h, ok := strings.CutPrefix(name, tempDiskPrefix)
	if !ok || len(h) != 16 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkNewDiskName refuses name for a new disk, or a disk renamed, when it
// is a temporary disk's name this process did not make (NewTempDiskName):
// a user's disk of that name would be deleted as a killed build's at the
// next daemon start.
func checkNewDiskName(name string) error {
	if IsTempDiskName(name) {
		if _, ok := activeTemps.Load(name); !ok {
			return fmt.Errorf("%w: disk name %q is reserved for temporary disks (%s and 16 hex digits): choose another", ErrInvalid, name, tempDiskPrefix)
		}
	}
	return nil
}

// CleanTempDisks deletes the temporary disks that no build of this process
// owns and that are not open (what a killed restore or copy left), and
// returns how many it deleted. Problems are logged.
func (s *Store) CleanTempDisks() int {
	disks, err := s.ListDisks()
	if err != nil {
		s.log.Warn("temporary disks: cannot list disks for a killed build's leftovers", "err", err)
		return 0
	}
	n := 0
	for _, d := range disks {
		if !IsTempDiskName(d.Name) {
			continue
		}
		if _, ok := activeTemps.Load(d.Name); ok {
			continue
		}
		if err := s.DeleteDisk(d.Name, false); err != nil {
			s.log.Warn("temporary disk of a killed build not deleted", "disk", d.Name, "err", err)
			continue
		}
		s.log.Info("deleted the temporary disk of a killed build", "disk", d.Name)
		n++
	}
	return n
}
