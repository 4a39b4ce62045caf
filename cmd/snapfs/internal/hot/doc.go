// Package hot defines the CLI's hot commands once, for both binaries:
// `snapshot create`, `disk create` (empty, clone of a snapshot's disk, from
// an image), `disk rollback`, `image create`, and the read-only `status`,
// `snapshot list`, `disk list` and `image list`. It owns their flags, help texts, validation, the control-socket call each makes, their output (text
// and --json) and exit codes; and the pieces of the command line both
// binaries parse alike: the global flags, the reordering of flags that
// follow positional arguments (ReorderArgs), the store directory, the
// printer of results and sizes.
//
// The full binary (cmd/snapfs) builds these commands from Commands and, when
// a daemon answers on the store's control socket, runs them through
// ViaDaemon, exactly as the front binary (cmd/snapfs/front) does; when none
// answers it runs the same request on the store opened in its own process
// (service.Local) and prints the answer with the same Print. Both paths
// print from the answer's JSON: --json output is the daemon's object with
// its "type", byte for byte.
//
// Invariants:
//   - Light: it imports the standard library, urfave/cli, go-humanize and
//     package wire only (never rowstore, replicate, index, Badger,
//     go-fuse, minio, prometheus; cmd/snapfs/front's test checks it).
//   - An Op's validation runs before anything is sent. ViaDaemon reports
//     sent=false only when no request left this process: a caller may then
//     open the store itself or exec the full binary without doing anything
//     twice.
//   - Values copied from the engine (defaultBlockSize) are checked against
//     it by cmd/snapfs's tests.
package hot
