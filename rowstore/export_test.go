package rowstore

// crashForTest abandons the store as a crash would: nothing is flushed or
// synced to the log; the index (Badger, on the real filesystem) is closed,
// which keeps everything it was given — one possible state after a crash.
func (s *Store) crashForTest() {
	if s.closed.Swap(true) {
		return
	}
	close(s.stop)
	s.wg.Wait()
	s.syncMu.Lock() // an index apply after a Disk.Sync (commitLog) ends first
	s.syncMu.Unlock()
	s.idx.Close()
	s.lock.Close()
}

// waitApplied waits for an index apply a Disk.Sync left running (commitLog):
// tests that look at the index or the live map after a Sync call it first.
func (s *Store) waitApplied() {
	s.syncMu.Lock()
	s.syncMu.Unlock()
}
