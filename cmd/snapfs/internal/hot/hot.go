package hot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
)

// DefaultStore is the store directory when neither --store nor SNAPFS_STORE is set.
const DefaultStore = "/var/lib/snapfs"

// defaultBlockSize is rowstore.DefaultBlockSize (for help texts).
const defaultBlockSize = 16 << 10

// DefaultBlockSize is the engine's default block size as help texts print it.
var DefaultBlockSize = strings.ReplaceAll(Size(defaultBlockSize), " ", "")

// GlobalFlags are the app's global flags, with help (when not nil) in its
// place among them.
func GlobalFlags(help cli.Flag) []cli.Flag {
	fl := []cli.Flag{
		&cli.StringFlag{Name: "store", Value: DefaultStore, EnvVars: []string{"SNAPFS_STORE"}, Usage: "store directory"},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON object per line, each with a \"type\" field"},
		&cli.StringFlag{Name: "progress", Value: "auto", EnvVars: []string{"SNAPFS_PROGRESS"}, Usage: "progress of long jobs (sync, restore, checks, repairs) on stderr: auto (a bar on a terminal, " +
			"else plain), bar, plain (a line every 5 s) or none; --json prints progress events on stdout instead"},
	}
	if help != nil {
		fl = append(fl, help)
	}
	return append(fl, &cli.StringFlag{Name: "log-level", Value: "info", Usage: "log level: debug, info, warn, error (commands other than mount log warn and above unless set)"})
}

// CheckGlobal checks the global flags (the app's Before).
func CheckGlobal(c *cli.Context) error {
	switch p := c.String("progress"); p {
	case "auto", "bar", "plain", "none":
		return nil
	default:
		return wire.Usagef("--progress %q: want auto, bar, plain or none", p)
	}
}

// LogLevel is the level of --log-level.
func LogLevel(c *cli.Context) (slog.Level, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return 0, wire.Usagef("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	return lvl, nil
}

// StoreDir is the absolute store directory of the command line: the global
// --store (region add has its own --store, a region store URL).
func StoreDir(c *cli.Context) (string, error) {
	lin := c.Lineage() // the command's context first, the app's last (before an empty root)
	d := ""
	for i := len(lin) - 1; i >= 0 && d == ""; i-- {
		d = lin[i].String("store")
	}
	if d == "" {
		return "", wire.Usagef("--store is empty")
	}
	abs, err := filepath.Abs(d)
	if err != nil {
		return "", fmt.Errorf("store %s: %w", d, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return "", wire.Usagef("--store %s is a file, not a store directory", abs)
	}
	return abs, nil
}

// Args checks that c has exactly the positional arguments named and returns them.
func Args(c *cli.Context, names ...string) ([]string, error) {
	a := c.Args().Slice()
	if len(a) != len(names) {
		full := strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")
		if full == "" {
			full = c.Command.Name
		}
		want := strings.Join(names, " ")
		if len(names) == 0 {
			want = "no arguments"
		}
		return nil, wire.Usagef("%s: want %s, got %d argument(s) (see snapfs help %s)", full, want, len(a), full)
	}
	return a, nil
}

// OneLine is err as the user reads it, given its exit code: one line
// without package prefixes or repeated words, and what to do where the code
// says it.
func OneLine(err error, exit int) string {
	msg := wire.Message(err)
	if exit == 16 && os.Geteuid() != 0 { // exitcode.Permission
		msg += " (run snapfs as root, or as the owner of the store)"
	}
	return msg
}

// Op is a validated hot command: the control-socket call it makes and how
// it prints the answer.
type Op struct {
	Method string // the control API's method (a Service method's name)
	Req    any    // its request (a wire type; the Service method's argument)
	// Cancel: SIGINT and SIGTERM cancel the call (the daemon then thaws a
	// frozen filesystem and runs the post-hook before answering).
	Cancel bool
	// ReadOnly: the calls change nothing (a call that got no answer is
	// then simply "busy"; a mutating one may or may not have happened).
	ReadOnly bool
	// Print prints the answer, the method's JSON result; with More, the
	// JSON array of every call's result in order (null for an optional
	// call that failed).
	Print func(p *Printer, raw json.RawMessage) error
	// More are calls made after the first, for the same output.
	More []Call
}

// Call is one more control-socket call of an Op.
type Call struct {
	Method string
	Req    any
	// Optional: its failure leaves its result null instead of failing the
	// command.
	Optional bool
}

// Command is a hot command.
type Command struct {
	Path string              // "snapshot create"
	Def  func() *cli.Command // its definition, without Action
	Op   func(c *cli.Context) (Op, error)
}

// Commands are the hot commands.
var Commands = []Command{
	{"snapshot create", snapshotCreate, snapshotCreateOp},
	{"disk create", diskCreate, diskCreateOp},
	{"disk rollback", diskRollback, diskRollbackOp},
	{"image create", imageCreate, imageCreateOp},
	{"status", status, statusOp},
	{"disk list", diskList, diskListOp},
	{"image list", imageList, imageListOp},
	{"snapshot list", snapshotList, snapshotListOp},
}

// Lookup is the hot command of path; it panics for another path (a
// programming error).
func Lookup(path string) Command {
	for _, h := range Commands {
		if h.Path == path {
			return h
		}
	}
	panic("hot: no command " + path)
}

// ViaDaemon makes op's call on the daemon serving c's store and prints the
// answer. sent is false when nothing was sent: err is then a usage error of
// the global flags, or nil when no daemon answers (the caller opens the
// store itself, or execs the full binary). Errors of the daemon are
// *wire.Error.
func ViaDaemon(c *cli.Context, op Op, p *Printer) (sent bool, err error) {
	dir, err := StoreDir(c)
	if err != nil {
		return false, err
	}
	if _, err := LogLevel(c); err != nil {
		return false, err
	}
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if op.Cancel {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	cl := wire.NewClient(wire.SocketPath(dir))
	defer cl.Close()
	cl.SetAnswerTimeout(wire.AnswerTimeout) // a hung daemon: busy, or "may or may not" (unanswered)
	raw, err := cl.Call(ctx, op.Method, op.Req)
	if errors.Is(err, wire.ErrNoAnswer) {
		return false, nil
	}
	if err != nil {
		return true, unanswered(c, op, dir, err)
	}
	if raw, err = Gather(op, raw, func(method string, req any) (json.RawMessage, error) {
		return cl.Call(ctx, method, req)
	}); err != nil {
		return true, unanswered(c, op, dir, err)
	}
	// The request was served: a panic while printing is an error of this
	// command, never a reason to run it again elsewhere.
	defer func() {
		if r := recover(); r != nil {
			sent, err = true, fmt.Errorf("internal error printing the answer to %s: %v", op.Method, r)
		}
	}()
	return true, op.Print(p, raw)
}

// unanswered is err, or, when the daemon took the connection but gave no
// answer (*wire.Unanswered), what it means for the user: "busy" (exit 5)
// when nothing can have happened (the request was not all sent, or the
// command changes nothing), "interrupted" (130) after SIGINT or SIGTERM, and
// otherwise a failure (exit 1) saying the operation may or may not have
// happened: never "busy", which tells a script it can run it again safely.
// sent stays true: the command is settled here, never run again elsewhere.
func unanswered(c *cli.Context, op Op, dir string, err error) error {
	var ua *wire.Unanswered
	if !errors.As(err, &ua) {
		return err
	}
	what := "snapfs " + commandPath(c)
	switch {
	case !ua.Timeout && (!ua.Sent || op.ReadOnly):
		return &wire.Error{Code: "interrupted", Message: fmt.Sprintf("interrupted: %s was stopped before the daemon answered; nothing was changed", what)}
	case !ua.Timeout:
		return &wire.Error{Code: "interrupted", Message: fmt.Sprintf("interrupted: %s was stopped after its request reached the daemon on %s: "+
			"it may or may not have taken effect (look before running it again)", what, ua.Sock)}
	case !ua.Sent || op.ReadOnly:
		return &wire.Error{Code: "busy", Message: fmt.Sprintf("store %s is in use, but its daemon on %s gave no answer within %v (a daemon starting or hung?)",
			dir, ua.Sock, wire.AnswerTimeout)}
	default:
		return &wire.Error{Message: fmt.Sprintf("the daemon on %s took the request of %s but gave no answer within %v (a daemon hung?): "+
			"it may or may not have taken effect; look (snapfs status, snapshot list, disk list) before running it again", ua.Sock, what, wire.AnswerTimeout)}
	}
}

// commandPath is c's command as typed: "disk create".
func commandPath(c *cli.Context) string {
	var names []string
	lin := c.Lineage()
	for i := len(lin) - 1; i >= 0; i-- {
		if cmd := lin[i].Command; cmd != nil && cmd.Name != "" && !(len(names) == 0 && c.App != nil && cmd.Name == c.App.Name) &&
			(len(names) == 0 || names[len(names)-1] != cmd.Name) {
			names = append(names, cmd.Name)
		}
	}
	return strings.Join(names, " ")
}

// Gather makes op's More calls through call, after its first call
// answered first, and returns what op.Print takes: first itself without
// More, else the JSON array of the answers.
func Gather(op Op, first json.RawMessage, call func(method string, req any) (json.RawMessage, error)) (json.RawMessage, error) {
	if len(op.More) == 0 {
		return first, nil
	}
	all := []json.RawMessage{first}
	for _, m := range op.More {
		r, err := call(m.Method, m.Req)
		switch {
		case err != nil && m.Optional:
			r = json.RawMessage("null")
		case err != nil:
			return nil, err
		}
		all = append(all, r)
	}
	raw, err := json.Marshal(all)
	if err != nil {
		return nil, fmt.Errorf("encode the answers to %s: %w", op.Method, err)
	}
	return raw, nil
}

// Printer prints a command's results: text for people, or with --json one
// JSON object per line, each with a "type" field naming what it describes.
// Both forms come from the same values.
type Printer struct {
	JSON bool
	W    io.Writer // results
	Err  io.Writer // warnings
}

// Object prints v as one JSON line of type typ (JSON mode only).
func (p *Printer) Object(typ string, v any) error {
	b, err := wire.TypedJSON(typ, v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", typ, err)
	}
	_, err = p.W.Write(append(b, '\n'))
	return err
}

// Result prints a text line (text mode) or the JSON object (JSON mode).
func (p *Printer) Result(typ string, v any, format string, a ...any) error {
	if p.JSON {
		return p.Object(typ, v)
	}
	_, err := fmt.Fprintf(p.W, format+"\n", a...)
	return err
}

// decode decodes an answer into v (the fields a text line needs).
func decode(method string, raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		// As service.Client says it: an incompatible daemon (exit 8).
		return &wire.Error{Code: "incompatible", Message: fmt.Sprintf("bad answer to %s: %v", method, err)}
	}
	return nil
}
