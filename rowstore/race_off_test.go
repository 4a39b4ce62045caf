//go:build !race

package rowstore

const raceEnabled = false
