package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/hot"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
	"github.com/snapfs/snapfs/rowstore"
)

// DefaultStore is the store directory when neither --store nor SNAPFS_STORE is set.
const DefaultStore = hot.DefaultStore

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit code. Every error is
// one line on stderr, in the user's terms (exitcode.Message), with a hint of
// what to do where there is one.
func run(args []string, stdout, stderr io.Writer) (code int) {
	st := &state{stdout: stdout, stderr: stderr}
	app := newApp(st)
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "snapfs: internal error: %v\n", r)
			code = exitcode.Failure
		}
	}()
	var err error
	if n := len(args); n > 0 && args[n-1] == "--generate-bash-completion" {
		err = app.Run(args) // shell completion: urfave/cli answers as is
	} else if args, err = reorderArgs(app, args); err == nil {
		err = app.Run(args)
	}
	if err == nil && st.usageErr != nil {
		err = st.usageErr
	}
	if err != nil {
		if !st.started && !errors.Is(err, exitcode.ErrUsage) {
			// urfave/cli refused the command line (a missing flag, ...).
			err = fmt.Errorf("%w: %v", exitcode.ErrUsage, err)
		}
		fmt.Fprintf(stderr, "snapfs: %s\n", oneLine(err))
		return exitcode.Of(err)
	}
	return exitcode.OK
}

// oneLine is err as the user reads it: one line without package prefixes or
// repeated words, and what to do where the code says it.
func oneLine(err error) string { return hot.OneLine(err, exitcode.Of(err)) }

// state is what one run shares between commands.
type state struct {
	stdout, stderr io.Writer
	started        bool  // a command's action was entered
	usageErr       error // a usage error found by a group action
}

func usagef(format string, a ...any) error { return wire.Usagef(format, a...) }

func newApp(st *state) *cli.App {
	app := &cli.App{
		Name:    "snapfs",
		Usage:   "a FUSE-mountable snapshot filesystem for virtual disks",
		Version: versionString(),
		Description: sizeHelp + "\n\n" +
			"Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 exists, 5 busy, 6 corrupt, 7 no space, ...:\n" +
			"see `snapfs help exit-codes`. Every command prints its help with --help or `snapfs help COMMAND`.",
		// cli.HelpFlag: urfave/cli adds it only without a command named help (ours, help.go).
		Flags:                hot.GlobalFlags(cli.HelpFlag),
		Before:               hot.CheckGlobal,
		Writer:               st.stdout,
		ErrWriter:            st.stderr,
		HideHelpCommand:      true, // our own help command (help.go) also knows exit-codes
		EnableBashCompletion: true,
		ExitErrHandler:       func(*cli.Context, error) {},
		OnUsageError:         func(_ *cli.Context, err error, _ bool) error { return usagef("%v", err) },
		CommandNotFound: func(c *cli.Context, name string) {
			st.usageErr = usagef("unknown command %q (see snapfs help)", name)
		},
		UseShortOptionHandling: false,
	}
	app.Commands = []*cli.Command{
		initCommand(st),
		mountCommand(st),
		umountCommand(st),
		diskCommand(st),
		snapshotCommand(st),
		imageCommand(st),
		usageCommand(st),
		gcCommand(st),
		regionCommand(st),
		syncCommand(st),
		restoreCommand(st),
		restoreFileCommand(st), // cmd_restorefile.go
		checkCommand(st),
		indexCommand(st),
		repairCommand(st),
		versionCommand(st),
		helpCommand(st),
		completionCommand(st),
		statusCommand(st),
		genDocsCommand(st),
		policyCommand(st),
	}
	for _, c := range app.Commands {
		prepare(st, c)
	}
	return app
}

// prepare wires usage errors, the "started" mark, the check of required
// flags (here, not urfave/cli's, which prints the whole help to stdout before
// its error) and the examples into c and its subcommands.
func prepare(st *state, c *cli.Command) {
	prepareNamed(st, c, c.Name)
}

func prepareNamed(st *state, c *cli.Command, full string) {
	c.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return usagef("%s: %v (see snapfs help %s)", full, err, full)
	}
	if len(c.Subcommands) > 0 {
		group := c.Name
		c.Action = func(ctx *cli.Context) error {
			st.started = true
			if ctx.Args().Present() {
				return usagef("unknown command %s %q (see snapfs help %s)", group, ctx.Args().First(), group)
			}
			var subs []string
			for _, sc := range c.Subcommands {
				if !sc.Hidden && sc.Name != "help" {
					subs = append(subs, sc.Name)
				}
			}
			return usagef("%s needs a subcommand: %s (see snapfs help %s)", group, strings.Join(subs, ", "), group)
		}
		for _, sc := range c.Subcommands {
			prepareNamed(st, sc, full+" "+sc.Name)
		}
		return
	}
	// A leaf has no help subcommand: urfave/cli would add one (help, alias
	// h) and run it for a first argument "h" or "help", so that `snapshot
	// create h --disk d` printed the help and exited 0 without creating
	// anything (trial14). --help and `snapfs help COMMAND` remain.
	c.HideHelpCommand = true
	if ex := examples[full]; len(ex) > 0 && !strings.Contains(c.Description, "Examples:") {
		if c.Description != "" {
			c.Description += "\n\n"
		}
		c.Description += "Examples:\n   " + strings.Join(ex, "\n   ")
	}
	required := takeRequired(c.Flags)
	action := c.Action
	c.Action = func(ctx *cli.Context) error {
		st.started = true
		for _, name := range required {
			if !ctx.IsSet(name) {
				return usagef("%s: --%s is required (see snapfs help %s)", full, name, full)
			}
		}
		return action(ctx)
	}
}

// takeRequired clears the Required mark of flags, adds "(required)" to
// their usage and returns their names.
func takeRequired(flags []cli.Flag) []string {
	var names []string
	for _, f := range flags {
		rf, ok := f.(cli.RequiredFlag)
		if !ok || !rf.IsRequired() {
			continue
		}
		v := reflect.ValueOf(f).Elem()
		if r := v.FieldByName("Required"); r.IsValid() && r.CanSet() {
			r.SetBool(false)
			if u := v.FieldByName("Usage"); u.IsValid() && u.CanSet() {
				u.SetString(u.String() + " (required)")
			}
			names = append(names, f.Names()[0])
		}
	}
	return names
}

// reorderArgs moves the flags of the (leaf) command after its positional
// arguments in front of them and refuses an unknown command
// (hot.ReorderArgs, shared with the front binary).
func reorderArgs(app *cli.App, args []string) ([]string, error) {
	return hot.ReorderArgs(app, args)
}

// storeDir is the absolute store directory of the command line: the global
// --store (region add has its own --store, a region store URL).
func storeDir(c *cli.Context) (string, error) { return hot.StoreDir(c) }

// checkKeyFile refuses a --key-file that does not exist or is not a file,
// before anything is changed.
func checkKeyFile(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return usagef("--key-file %s does not exist (make one: head -c 32 /dev/urandom > %s; chmod 600 %s)", path, path, path)
	case err != nil:
		return fmt.Errorf("--key-file: %w", err)
	case fi.IsDir():
		return usagef("--key-file %s is a directory", path)
	}
	return nil
}

// logger is the slog logger of --log-level, writing text to stderr.
func logger(c *cli.Context, w io.Writer) (*slog.Logger, error) {
	lvl, err := hot.LogLevel(c)
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

// openService returns the store's Service: the daemon's when one answers,
// the store opened here otherwise. Close it when done.
func openService(c *cli.Context, st *state) (service.Service, error) {
	dir, err := storeDir(c)
	if err != nil {
		return nil, err
	}
	log, err := logger(c, st.stderr)
	if err != nil {
		return nil, err
	}
	if !c.IsSet("log-level") {
		// One-shot commands print their results; the engine's info
		// records (gc, recovery) would only clutter stderr, and the index
		// library's own records repeat, in its words and over several
		// lines, the error the command prints as its one line.
		log = slog.New(withoutComponent{slog.NewTextHandler(st.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}), "badger"})
	}
	// Encrypted disks opened here (no daemon) are unlocked by SNAPFS_KEY_FILE.
	var keys []*rowstore.Key
	if p := os.Getenv("SNAPFS_KEY_FILE"); p != "" {
		k, err := rowstore.LoadKeyFile(p, false)
		if err != nil {
			return nil, fmt.Errorf("SNAPFS_KEY_FILE: %w", err)
		}
		keys = append(keys, k)
	}
	// A one-shot command must not leave background work behind.
	return service.Open(context.Background(), dir, rowstore.Options{Logger: log, GCInterval: -1, Keys: keys})
}

// withService runs fn with the store's Service and closes it after.
func withService(c *cli.Context, st *state, fn func(ctx context.Context, svc service.Service) error) (err error) {
	svc, err := openService(c, st)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := svc.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close store: %w", cerr)
		}
	}()
	ctx := c.Context
	if longJobs[strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")] {
		var stop func()
		ctx, stop = interruptible(ctx)
		defer stop()
	}
	err = fn(ctx, svc)
	if err != nil && interruptedBySignal(ctx) && !errors.Is(err, exitcode.ErrInterrupted) {
		err = &interruptedError{msg: "stopped before the end; run it again to finish (it is safe to repeat)", err: err}
	}
	return err
}

// longJobs are the commands whose first SIGINT or SIGTERM cancels the job
// cleanly (it then says what finished and what resumes; a second one kills
// at once). Other commands keep the default: they are short, or handle
// signals themselves (snapshot mount).
var longJobs = map[string]bool{"sync": true, "snapshot copy": true, "restore": true, "region check": true,
	"region repair": true, "check": true, "repair": true}

// errSignal is the cause of a context cancelled by SIGINT or SIGTERM.
var errSignal = errors.New("stopped by a signal")

// interruptible is ctx, cancelled with cause errSignal by the first SIGINT or
// SIGTERM; stop (idempotent) releases the signals.
func interruptible(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigc:
			signal.Stop(sigc) // a second one kills at once
			cancel(errSignal)
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(sigc)
			close(done)
			cancel(nil)
		})
	}
}

// interruptedBySignal reports whether ctx was cancelled by SIGINT or SIGTERM.
func interruptedBySignal(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errSignal)
}

// args checks that c has exactly the positional arguments named and returns them.
func args(c *cli.Context, names ...string) ([]string, error) { return hot.Args(c, names...) }

// hotCommand is hot command path (package hot: its flags, validation, calls
// and output) in this binary: through the daemon exactly as the front binary
// does when one answers; else the same calls on the store opened here
// (service.Invoke: the daemon's own table of calls), their answers
// printed by the same Print.
func hotCommand(st *state, path string) *cli.Command {
	h := hot.Lookup(path)
	cmd := h.Def()
	cmd.Action = func(c *cli.Context) error {
		op, err := h.Op(c)
		if err != nil {
			return err
		}
		p := &hot.Printer{JSON: c.Bool("json"), W: st.stdout, Err: st.stderr}
		sent, err := hot.ViaDaemon(c, op, p)
		if sent || err != nil {
			return service.FromWire(err)
		}
		if op.Cancel {
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			c.Context = ctx
		}
		return withService(c, st, func(ctx context.Context, svc service.Service) error {
			call := func(method string, req any) (json.RawMessage, error) { return service.Invoke(ctx, svc, method, req) }
			raw, err := call(op.Method, op.Req)
			if err != nil {
				return err
			}
			if raw, err = hot.Gather(op, raw, call); err != nil {
				return err
			}
			return op.Print(p, raw)
		})
	}
	return cmd
}

// withoutComponent drops the records whose "component" attribute is
// component (see openService).
type withoutComponent struct {
	slog.Handler
	component string
}

func (h withoutComponent) Handle(ctx context.Context, r slog.Record) error {
	drop := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "component" && a.Value.String() == h.component {
			drop = true
			return false
		}
		return true
	})
	if drop {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h withoutComponent) WithAttrs(as []slog.Attr) slog.Handler {
	for _, a := range as {
		if a.Key == "component" && a.Value.String() == h.component {
			return slog.DiscardHandler
		}
	}
	return withoutComponent{h.Handler.WithAttrs(as), h.component}
}

func (h withoutComponent) WithGroup(name string) slog.Handler {
	return withoutComponent{h.Handler.WithGroup(name), h.component}
}
