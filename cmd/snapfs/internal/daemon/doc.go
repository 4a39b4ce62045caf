// Package daemon is `snapfs mount`: it opens the store, mounts the FUSE
// namespace (package fs) through an adapter from the engine to fs.Backend,
// serves service.Local on the control socket, and on SIGINT, SIGTERM, a
// Shutdown request or an external unmount syncs, unmounts and closes the
// store.
//
// The daemon holds an exclusive flock on <store>/daemon.lock from before it
// opens the store until after it closed it; WaitExited uses it, so
// `snapfs umount` returns only when the store is closed. A mount that is
// busy (a loop device or open file on a disk) is not torn down: Shutdown
// answers ErrBusy and a signal is logged, and the daemon keeps serving.
//
// The adapter (backend.go) calls the engine directly for every FUSE request
// and never the Service's mutating methods, whose hooks notify the kernel
// (which must not happen inside a FUSE request). snapshot.json is
// service.TypedJSON("snapshot", ...) plus a newline: byte for byte what
// `snapfs snapshot info --json` prints.
//
// The policy scheduler (scheduler.go) runs service.Local.RunPolicies once
// at start (one catch-up after downtime) and every SchedulerTick, under the
// jobs' context: it stops before the store closes. SNAPFS_TEST_CLOCK_SCALE
// (tests only) runs its clock faster.
package daemon
