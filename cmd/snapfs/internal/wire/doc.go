// Package wire is the light half of the control socket: what a client needs
// to call a daemon and to report its answer, and nothing of the engine. It
// is imported by the front binary (cmd/snapfs/front) and by package
// service, so both speak the same protocol from the same code.
//
// It owns:
//   - the socket's place (SocketPath) and the HTTP+JSON transport of a call
//     (Client: "POST /v1/<Method>", a JSON body, a 200 answer with the JSON
//     result or an error status with {"code", "message"}; the protocol is
//     described in service/server.go). The client writes and reads the
//     HTTP/1.1 it needs itself (client.go: one connection per call, 1xx
//     answers skipped, Content-Length, chunked and until-close bodies):
//     net/http's package init and transport cost a short-lived front about
//     half a millisecond per command; the daemon's side stays net/http's
//     server, so clients of either kind talk to daemons of either version
//     (TestClientSpeaksToNetHTTP; FuzzReadResponse for the parser);
//   - the request types of the hot operations (CreateSnapshotRequest,
//     CreateDiskRequest, RollbackRequest, ImageRequest), which package
//     service aliases, so the daemon decodes exactly what clients encode;
//   - the mapping of a wire code to its exit code (ExitOf) and the one-line
//     message the user reads (Message), and the ErrUsage sentinel, which
//     package exitcode re-exports;
//   - TypedJSON, the form of every --json line.
//
// Invariants:
//   - It imports only the standard library, and of it not net/http (nor
//     crypto/tls, x509): no rowstore, replicate, index, Badger, go-fuse,
//     minio or prometheus (cmd/snapfs/front's TestLight checks it with go
//     list -deps). Its package init does nothing.
//   - ExitOf(code) equals exitcode.Of of a service.RemoteError with that
//     code, for every code of exitcode.Table: the table takes its exit codes
//     from ExitOfCode (cmd/snapfs's TestWireExitCodes checks the round
//     trip). Codes are only added, never change meaning.
//   - A call whose connection could not be made returns an error wrapping
//     ErrNoAnswer and nothing was sent: only then may a caller try another
//     way (open the store itself, or exec the full binary). Any later error
//     means the request may have reached the daemon.
//   - No hot command waits forever for a daemon that takes connections but
//     never answers: on a client with SetAnswerTimeout (package hot's), a
//     call with no byte of answer (the daemon sends "102 Processing" once
//     it has read a request) within AnswerTimeout, or whose context ends
//     first, is *Unanswered, saying whether the whole
//     request was written (Sent). Not Sent: the daemon cannot have acted
//     on it. Sent: it may or may not have; package hot says so to the user
//     (exit 1, or 130 after SIGINT), and "busy" (exit 5, safe to run
//     again) only for what changes nothing or was not sent.
package wire
