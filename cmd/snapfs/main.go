package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
)

// DefaultStore is the store directory when neither --store nor SNAPFS_STORE is set.
const DefaultStore = "/var/lib/snapfs"

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
func oneLine(err error) string {
	msg := exitcode.Message(err)
	switch exitcode.Of(err) {
	case exitcode.Permission:
		if os.Geteuid() != 0 {
			msg += " (run snapfs as root, or as the owner of the store)"
		}
	}
	return msg
}

// state is what one run shares between commands.
type state struct {
	stdout, stderr io.Writer
	started        bool  // a command's action was entered
	usageErr       error // a usage error found by a group action
}

func usagef(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{exitcode.ErrUsage}, a...)...)
}

func newApp(st *state) *cli.App {
	app := &cli.App{
		Name:    "snapfs",
		Usage:   "a FUSE-mountable snapshot filesystem for virtual disks",
		Version: versionString(),
		Description: sizeHelp + "\n\n" +
			"Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 exists, 5 busy, 6 corrupt, 7 no space, ...:\n" +
			"see `snapfs help exit-codes`. Every command prints its help with --help or `snapfs help COMMAND`.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "store", Value: DefaultStore, EnvVars: []string{"SNAPFS_STORE"}, Usage: "store directory"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per line, each with a \"type\" field"},
			&cli.StringFlag{Name: "progress", Value: "auto", EnvVars: []string{"SNAPFS_PROGRESS"}, Usage: "progress of long jobs (sync, restore, checks, repairs) on stderr: auto (a bar on a terminal, " +
				"else plain), bar, plain (a line every 5 s) or none; --json prints progress events on stdout instead"},
			cli.HelpFlag, // urfave/cli adds it only without a command named help (ours, help.go)
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log level: debug, info, warn, error (commands other than mount log warn and above unless set)"},
		},
		Before: func(c *cli.Context) error {
			switch p := c.String("progress"); p {
			case "auto", "bar", "plain", "none":
				return nil
			default:
				return usagef("--progress %q: want auto, bar, plain or none", p)
			}
		},
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
// arguments in front of them, so that `disk create vol1 --size 1G` works:
// urfave/cli v2 stops parsing flags at the first positional argument.
// Global flags (--json, --store, ...) may also come after the command.
func reorderArgs(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	out := []string{args[0]}
	flags, cmds := app.Flags, app.Commands
	i := 1
	for i < len(args) {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...), nil
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			out = append(out, a)
			if takesValue(flags, a) && i+1 < len(args) {
				out = append(out, args[i+1])
				i++
			}
			i++
			continue
		}
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
			}
		}
		if next == nil {
			break // positional argument of the current command
		}
		out = append(out, a)
		flags, cmds = next.Flags, next.Subcommands
		i++
		if len(cmds) == 0 {
			break // the leaf command: the rest are its flags and arguments
		}
	}
	var global, fl, pos []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			dst, set := &fl, flags
			if !hasFlag(flags, a) && hasFlag(app.Flags, a) && !hasFlag([]cli.Flag{cli.HelpFlag}, a) {
				dst, set = &global, app.Flags
			}
			*dst = append(*dst, a)
			if takesValue(set, a) {
				if i+1 >= len(args) {
					return nil, usagef("flag %s needs a value", a)
				}
				*dst = append(*dst, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	for _, f := range fl {
		if hasFlag([]cli.Flag{cli.HelpFlag}, f) {
			pos = nil // `disk create vol1 --help` shows the help of disk create
		}
	}
	// Global flags go right after the program name.
	out = append(append([]string{out[0]}, global...), out[1:]...)
	out = append(out, fl...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out, nil
}

func flagName(arg string) string {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return name
}

// hasFlag reports whether flag arg is one of flags.
func hasFlag(flags []cli.Flag, arg string) bool {
	name := flagName(arg)
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// takesValue reports whether flag arg (e.g. "--size", "-size=1G") is a flag
// in flags that takes a separate value argument.
func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

// storeDir is the absolute store directory of the command line: the global
// --store (region add has its own --store, a region store URL).
func storeDir(c *cli.Context) (string, error) {
	lin := c.Lineage() // the command's context first, the app's last (before an empty root)
	d := ""
	for i := len(lin) - 1; i >= 0 && d == ""; i-- {
		d = lin[i].String("store")
	}
	if d == "" {
		return "", usagef("--store is empty")
	}
	abs, err := filepath.Abs(d)
	if err != nil {
		return "", fmt.Errorf("store %s: %w", d, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return "", usagef("--store %s is a file, not a store directory", abs)
	}
	return abs, nil
}

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
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", c.String("log-level"))
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
		// records (gc, recovery) would only clutter stderr.
		log = slog.New(slog.NewTextHandler(st.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
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
func args(c *cli.Context, names ...string) ([]string, error) {
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
		return nil, usagef("%s: want %s, got %d argument(s) (see snapfs help %s)", full, want, len(a), full)
	}
	return a, nil
}
