// Package service is the one implementation of what the snapfs commands do
// to a store, and the two ways to reach it.
//
// Service (service.go) lists every operation. Local runs them in-process
// over a *rowstore.Store; Client forwards them over the daemon's control
// socket; Handler serves any Service (the daemon's Local) on that socket.
// Open picks: the daemon's Client when <store>/control.sock answers, else a
// Local over the store opened here; a store locked by another process whose
// socket does not answer is ErrBusy (after a 3 s wait for a starting daemon).
//
// Wire format: "POST /v1/<Method>" with a JSON body, 200 and the JSON result,
// or an error status with {"code", "message"}; the codes (errors.go) map
// back to the same sentinels, so exit codes do not depend on the path.
//
// Invariants: nothing is implemented in Client or Handler beyond
// (un)marshalling; Local's hooks (set by the daemon) keep the FUSE mount's
// caches in step and are never called from inside a FUSE request; snapshots
// and images are immutable, so their allocation is counted once per process.
//
// Scratch clones (of snapshot mount and of the .files directories) and the
// temporary snapshots of diff --files against now are recorded in a ledger
// (<store>/snapmounts/clones/, scratch.go) before they are made, are never
// listed (the temporary snapshots are, while the diff runs), and are
// removed at daemon start (CleanScratch) with the .files mounts
// (browse.Clean), loop devices and mounts a killed daemon left. snapshot
// mount runs in the daemon (snapmount.go); the .files manager belongs to
// the daemon's Local (local_files.go: EnableFiles, ReleaseFiles, DiffFiles).
//
// Access: the socket is 0600 in a 0700 store, and PeerCredListener (which
// the daemon wraps it in) closes every connection whose peer (SO_PEERCRED)
// is neither the daemon's uid nor root, whatever the modes. Keys of
// encrypted disks cross the socket only as key file paths (KeyRequest,
// CreateDiskRequest.KeyFile): the serving process reads the files.
package service
