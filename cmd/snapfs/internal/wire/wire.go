package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SocketName is the control socket's file name inside the store directory.
const SocketName = "control.sock"

// SocketPath is the control socket of the store in dir.
func SocketPath(dir string) string { return filepath.Join(dir, SocketName) }

// ErrUsage marks command-line usage errors (missing argument, unknown flag,
// conflicting flags). Package exitcode maps it to exit code 2.
var ErrUsage = errors.New("usage")

// Usagef is a usage error.
func Usagef(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUsage}, a...)...)
}

// ErrNoAnswer marks a call whose connection to the socket could not be
// made: nothing was sent.
var ErrNoAnswer = errors.New("no daemon answers")

// noAnswer is a failed dial: its message is the dial's, and it is
// ErrNoAnswer.
type noAnswer struct{ err error }

func (e noAnswer) Error() string        { return e.err.Error() }
func (e noAnswer) Unwrap() error        { return e.err }
func (e noAnswer) Is(target error) bool { return target == ErrNoAnswer }

// Error is an error answer of the daemon: its wire code and message.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// AnswerTimeout bounds the wait for a daemon's first sign of life after a
// request: any byte of its answer. The daemon sends "102 Processing" as soon
// as it has read a request (service.Handler), so a long operation is not
// bounded by it; a daemon that accepts connections but is stopped or hung
// is. It is the old 5 s status probe's bound, without the probe's round trip.
const AnswerTimeout = 5 * time.Second

// Unanswered is a call that got no answer: the daemon took the connection
// but sent nothing within the bound (Timeout), or the caller's context
// ended first (SIGINT). Sent says whether the whole request was written:
// when it is false the daemon cannot have acted on it (it reads a request's
// whole body before acting); when true the operation may or may not have
// happened.
type Unanswered struct {
	Sock, Method string
	Sent         bool
	Timeout      bool
	After        time.Duration
	Err          error // the transport's error
}

func (e *Unanswered) Error() string {
	if e.Timeout {
		return fmt.Sprintf("daemon at %s: no answer to %s within %v", e.Sock, e.Method, e.After.Round(time.Millisecond))
	}
	return fmt.Sprintf("daemon at %s: %s: no answer: %v", e.Sock, e.Method, e.Err)
}

func (e *Unanswered) Unwrap() error { return e.Err }

// Requests of the hot operations. Package service aliases them: the daemon
// decodes what the clients encode.
type (
	// CreateSnapshotRequest is a snapshot of one disk or a consistency
	// group, with optional freeze and hooks (see service.CreateSnapshotWith).
	CreateSnapshotRequest struct {
		Name             string        `json:"name"`
		Disks            []string      `json:"disks"`
		Freeze           []string      `json:"freeze,omitempty"`
		PreHook          string        `json:"pre_hook,omitempty"`
		PostHook         string        `json:"post_hook,omitempty"`
		HookTimeout      time.Duration `json:"hook_timeout,omitempty"`
		OnPreHookFailure string        `json:"on_pre_hook_failure,omitempty"`
	}
	// CreateDiskRequest creates a disk: empty (Size, BlockSize), or a clone
	// of a snapshot's disk (FromSnapshot and FromDisk) or of an image
	// (FromImage). See service.CreateDisk.
	CreateDiskRequest struct {
		Name         string `json:"name"`
		Size         int64  `json:"size,omitempty"`
		BlockSize    int    `json:"block_size,omitempty"`
		FromSnapshot string `json:"from_snapshot,omitempty"`
		FromDisk     string `json:"from_disk,omitempty"`
		FromImage    string `json:"from_image,omitempty"`
		// Encrypt makes a new encrypted disk whose data key is wrapped by
		// the key in KeyFile (read by the serving process); with
		// FromSnapshot, a full encrypted copy of an unencrypted snapshot's disk.
		Encrypt              bool   `json:"encrypt,omitempty"`
		KeyFile              string `json:"key_file,omitempty"`
		AllowInsecureKeyFile bool   `json:"allow_insecure_key_file,omitempty"`
	}
	// RollbackRequest rolls disk Name back to Snapshot.
	RollbackRequest struct {
		Name, Snapshot string
		Force          bool
	}
	// ImageRequest makes image Name from disk Disk of Snapshot.
	ImageRequest struct{ Name, Snapshot, Disk string }
	// ListSnapshotsRequest lists the snapshots (of Disk, when not empty).
	ListSnapshotsRequest struct{ Disk string }
)

// DefaultHookTimeout bounds a hook, and a freeze, when no timeout is given.
const DefaultHookTimeout = time.Minute

// TypedJSON is v's JSON object with a leading "type" field: the form of every
// line the CLI prints with --json, and of snapshot.json.
func TypedJSON(typ string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	head := []byte(`{"type":` + strconv.Quote(typ))
	if len(b) < 2 || b[0] != '{' {
		// Not an object: wrap it.
		return append(append(head, `,"value":`...), append(b, '}')...), nil
	}
	if string(b) == "{}" {
		return append(head, '}'), nil
	}
	return append(append(head, ','), b[1:]...), nil
}

// Exit codes of the wire codes: the one mapping of them, which package
// exitcode's Table takes its exit codes from (its constants and Codes name
// and document the numbers). Codes not listed, and errors without one,
// exit 1.
var exitOf = map[string]int{
	"interrupted":    130,
	"usage":          2,
	"invalid":        2,
	"no_daemon":      9,
	"degraded":       12,
	"conflict":       14,
	"locked":         15,
	"disk_locked":    15,
	"wrong_key":      13,
	"disk_wrong_key": 13,
	"mismatch":       13,
	"unavailable":    11,
	"too_few_shards": 11,
	"corrupt":        6,
	"not_found":      3,
	"exists":         4,
	"busy":           5,
	"no_space":       7,
	"incompatible":   8,
	"read_only":      10,
	"permission":     16,
	"closed":         1,
}

// ExitOf is the exit code of an error of a light client: 0 for nil, 2 for
// a usage error, the code's for an *Error, 1 otherwise.
func ExitOf(err error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, ErrUsage) {
		return 2
	}
	var we *Error
	if errors.As(err, &we) {
		if n, ok := exitOf[we.Code]; ok {
			return n
		}
	}
	return 1
}

// ExitOfCode is the exit code of wire code code (1 when unknown).
func ExitOfCode(code string) int {
	if n, ok := exitOf[code]; ok {
		return n
	}
	return 1
}

// prefixes are package names some layers put in front of their messages.
// Compiled on first use (only errors need it), not in every process's init.
var prefixes = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(^|: |\()(replicate|store|region format|erasure|segment|index|rowstore|restore|sync|prune): `)
})

// Message is err as the one line the user reads: its first line, without
// the usage marker, package prefixes and repeated parts ("invalid argument:
// invalid argument: x" reads "x").
func Message(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	for {
		m := prefixes().ReplaceAllString(msg, "$1")
		if m == msg {
			break
		}
		msg = m
	}
	parts := strings.Split(msg, ": ")
	out := parts[:0]
	for i, p := range parts {
		if len(out) > 0 && out[len(out)-1] == p {
			continue // "x: x: y"
		}
		// Sentinel tags in front of a message that says more.
		if i < len(parts)-1 && (p == ErrUsage.Error() || p == "invalid argument") {
			continue
		}
		out = append(out, p)
	}
	return strings.TrimSpace(strings.Join(out, ": "))
}
