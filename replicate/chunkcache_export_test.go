package replicate

// SetMaxCachedChunks sets how many chunks a Manager keeps of a region's
// chunk set between operations (0: nothing kept, as before the cache) and
// returns the previous bound.
func SetMaxCachedChunks(n int) int {
	old := maxCachedChunks
	maxCachedChunks = n
	return old
}

// StashChunkSets takes away what m keeps of every region's chunks and
// returns a function that puts it back (dropping what was kept meanwhile).
func (m *Manager) StashChunkSets() func() {
	m.chunkCache.mu.Lock()
	saved := m.chunkCache.regions
	m.chunkCache.regions = nil
	m.chunkCache.mu.Unlock()
	return func() {
		m.chunkCache.mu.Lock()
		m.chunkCache.regions = saved
		m.chunkCache.mu.Unlock()
	}
}
