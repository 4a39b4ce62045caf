package replicate

import "time"

// SetRemoteTimeouts shortens how long a RemoteDisk waits for one range
// read and for one whole pack (for tests); the returned func restores them.
func SetRemoteTimeouts(rng, pack time.Duration) (restore func()) {
	r, p := remoteRangeTimeout, remotePackTimeout
	remoteRangeTimeout, remotePackTimeout = rng, pack
	return func() { remoteRangeTimeout, remotePackTimeout = r, p }
}
