// Package daemon is `snapfs mount`: it opens the store, mounts the FUSE
// namespace (package fs) through an adapter from the engine to fs.Backend,
// serves service.Local on the control socket, and on SIGINT, SIGTERM, a
// Shutdown request or an external unmount syncs, unmounts and closes the
// store.
//
// The daemon holds an exclusive flock on <store>/daemon.lock from before it
// opens the store until after it closed it; WaitExited uses it, so
// `snapfs umount` returns only when the store is closed. A new daemon
// that finds no daemon answering but the lock held waits up to 5 s for it
// (a SIGKILLed daemon holds it until the kernel has torn it down) before
// it says busy. A mount that is
// busy (a loop device or open file on a disk) is not torn down: Shutdown
// answers ErrBusy and a signal is logged, and the daemon keeps serving.
// SIGHUP is logged and ignored (Go's default would end the daemon at once,
// leaving a dead mount). A mount detached from outside (umount -l) while
// files are open through it keeps serving them and ends at their last
// close; Shutdown and a new mount of the store say so (ErrBusy). Stopping
// cancels the control socket's running jobs with
// service.ErrDaemonStopping: their clients exit 130, told to run again.
// An open file limit below 1024 is warned about at start.
//
// The adapter (backend.go) calls the engine directly for every FUSE request
// and never the Service's mutating methods, whose hooks notify the kernel
// (which must not happen inside a FUSE request). snapshot.json is
// service.TypedJSON("snapshot", ...) plus a newline: byte for byte what
// `snapfs snapshot info --json` prints.
//
// The control socket serves the Local through observed (observe.go), which
// only records the long jobs running (Status.Jobs, for snapfs status) and
// counts them in the metrics; instrument.go counts the mount's reads,
// writes and flushes. With Config.NewMetrics the daemon serves Prometheus
// metrics (package metrics) on Config.MetricsListener. A policy engine
// running in the daemon reports its runs with Metrics.PolicyRun (nil-safe).
//
// systemd: once serving, the daemon sends READY=1 (Type=notify units), pings
// the watchdog (WatchdogSec=) at half its interval while a listing of the
// mount's disks/ answers, and sends STOPPING=1 when it begins to stop. The
// protocol comes from github.com/coreos/go-systemd/v22/daemon, the
// reference Go implementation (no cgo, a no-op without NOTIFY_SOCKET).
//
// A store directory without a superblock is refused before anything is
// created in it (no daemon.lock left behind); a mountpoint the command
// created (Config.RemoveMountpoint) is removed once unmounted.
//
// Keys (keys.go): the mount's --key-file keys (Config.Keys) are tried on
// every encrypted disk once the store is open, before the mount is made.
// When the store has encrypted disks and no key file opens any of them,
// Run fails with rowstore.ErrWrongKey (exit 13) and mounts nothing; a key
// file that opens nothing otherwise is a warning passed to Config.Warn
// (the command prints it on stderr; mount --background's child sends it
// up the readiness pipe as a "warn" line) and logged.
//
// The policy scheduler (scheduler.go) runs service.Local.RunPolicies once
// at start (one catch-up after downtime) and every SchedulerTick, under the
// jobs' context: it stops before the store closes. SNAPFS_TEST_CLOCK_SCALE
// (tests only) runs its clock faster.
package daemon
