//go:build race

package rowstore

// raceEnabled: the race detector slows the engine about 5x; long randomized
// tests run fewer operations under it (scripts/test.sh also runs them
// without it, at full length).
const raceEnabled = true
