package replicate

import "time"

// SetRestoreShardTimeout shortens how long a whole-shard read of a pack
// waits for its store (for tests); the returned func restores it.
func SetRestoreShardTimeout(d time.Duration) (restore func()) {
	old := restoreShardTimeout
	restoreShardTimeout = d
	return func() { restoreShardTimeout = old }
}
