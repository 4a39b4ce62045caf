// Command front (cmd/snapfs/front) is the `snapfs` users run once snapfs is installed
// (scripts/install.sh puts it at PREFIX/bin/snapfs): a thin front of the
// full binary that starts in about the time of any Go program, because it
// links none of the engine, regions, metrics or FUSE.
//
// When a daemon serves the store, it runs the hot commands itself over the
// control socket: `snapshot create`, `disk create` (empty, clone from a
// snapshot or an image), `disk rollback`, `image create`, `status`,
// `snapshot list`, `disk list` and `image list`. Their
// definitions (flags, validation, call, output, exit codes) are package
// hot's, the same code the full binary runs for them: the output, stderr
// and exit code are the full binary's.
//
// Everything else it hands to the full binary with execve(2), with the same
// argv and environment: any other command, no command, --help or help, a
// flag it does not know, --version, shell completion, a command line its
// validation refuses (the full binary prints the error), and a store no
// daemon answers for (the full binary opens it). It execs only before a
// request has left the process (wire.ErrNoAnswer: the socket could not be
// connected), so nothing runs twice. A daemon that takes the connection
// but gives no sign of life within wire.AnswerTimeout (5 s: the old status
// probe's bound) is not handed over either: the front reports it itself,
// as the full binary does (busy, exit 5, for what changes nothing or was
// not sent; otherwise exit 1 saying the operation may or may not have
// happened), so a hung daemon costs 5 s, not 5 s twice.
//
// The full binary is found, in order: $SNAPFS_FULL; ../lib/snapfs/snapfs-full
// relative to the front's own path (/proc/self/exe, symlinks resolved), the
// layout install.sh makes (PREFIX/bin/snapfs and PREFIX/lib/snapfs/snapfs-full);
// snapfs-full next to the front. When none exists it says so (exit 1); so
// when the one found is the front itself (it would exec itself forever).
//
// What it links and does is kept to what these commands need, because a
// command's time is mostly the process's start: package wire's client
// speaks HTTP/1.1 itself (no net/http, crypto/tls or x509 in the binary:
// TestLight), and the output is buffered and written once at the end
// (stderr flushes it first, so the two interleave as written).
// BenchmarkRun measures the in-process part of a command (about 0.1 ms).
//
// Build it with CGO_ENABLED=0 and -tags urfave_cli_no_docs (urfave/cli's
// man-page generation pulls in a Markdown parser the front never uses);
// without the tag it works the same, only starts a little slower.
package main
