package replicate

import "time"

// SetRemoteTimeouts shortens how long a RemoteDisk waits for one range
// read and for one whole pack (for tests); the returned func restores them.
func SetRemoteTimeouts(rng, pack time.Duration) (restore func()) {
	r, p := remoteRangeTimeout, remotePackTimeout
	remoteRangeTimeout, remotePackTimeout = rng, pack
	return func() { remoteRangeTimeout, remotePackTimeout = r, p }
}

// SetStoreRetry sets how often a RemoteDisk tries again to open a store
// that could not be opened (for tests); the returned func restores it.
func SetStoreRetry(every time.Duration) (restore func()) {
	old := storeRetryEvery
	storeRetryEvery = every
	return func() { storeRetryEvery = old }
}
