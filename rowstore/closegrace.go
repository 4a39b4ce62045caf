package rowstore

import "time"

// An operation that needs a disk closed (delete, rollback and rename
// without force) waits up to Options.CloseGrace for its handles to go
// before it is refused with ErrBusy. The kernel sends FUSE's RELEASE after
// close(2) has returned, in the background: a command run right after a
// program closed M/disks/<d> (a cp, a dd, a qemu that exited) could
// otherwise find the handle still open and fail although nothing uses the
// disk any more.

// waitClosed waits up to grace for the disk's open handles to close.
// It takes and drops d.mu; the caller checks again under its own locks
// (a handle opened meanwhile is refused there as before).
func (d *diskState) waitClosed(grace time.Duration) {
	if grace <= 0 {
		return
	}
	deadline := time.Now().Add(grace)
	for {
		d.mu.Lock()
		open := d.opens > 0 && !d.deleted
		d.mu.Unlock()
		if !open || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitClosedByName is waitClosed for the disk called name, if it exists
// (a missing disk is reported by the operation itself).
func (s *Store) waitClosedByName(name string) {
	if d, err := s.diskByName(name); err == nil {
		d.waitClosed(s.opts.CloseGrace)
	}
}
