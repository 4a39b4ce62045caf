package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

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
// one line on stderr.
func run(args []string, stdout, stderr io.Writer) (code int) {
	st := &state{stdout: stdout, stderr: stderr}
	app := newApp(st)
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "snapfs: internal error: %v\n", r)
			code = exitcode.Failure
		}
	}()
	args, err := reorderArgs(app, args)
	if err == nil {
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

// oneLine makes err one line, without repeating what rowstore sentinels and
// usage markers add.
func oneLine(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, exitcode.ErrUsage.Error()+": ")
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
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
		Name:  "snapfs",
		Usage: "a FUSE-mountable snapshot filesystem for virtual disks",
		Description: "Sizes accept a number with an optional suffix K, M, G, T, P (powers of 1024: 1G = 2^30 bytes;\n" +
			"KiB, MiB, ... mean the same; KB, MB, GB, ... are powers of 1000). Exit codes: see `go doc github.com/snapfs/snapfs/cmd/snapfs`.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "store", Value: DefaultStore, EnvVars: []string{"SNAPFS_STORE"}, Usage: "store directory"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per line, each with a \"type\" field"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log level: debug, info, warn, error (commands other than mount log warn and above unless set)"},
		},
		Writer:               st.stdout,
		ErrWriter:            st.stderr,
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		ExitErrHandler:       func(*cli.Context, error) {},
		OnUsageError:         func(_ *cli.Context, err error, _ bool) error { return usagef("%v", err) },
		CommandNotFound: func(c *cli.Context, name string) {
			st.usageErr = usagef("unknown command %q (see snapfs --help)", name)
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
		checkCommand(st),
		indexCommand(st),
		repairCommand(st),
		policyCommand(st),
	}
	for _, c := range app.Commands {
		prepare(st, c)
	}
	return app
}

// prepare wires usage errors and the "started" mark into c and its subcommands.
func prepare(st *state, c *cli.Command) {
	c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usagef("%s: %v", c.Name, err) }
	if len(c.Subcommands) > 0 {
		group := c.Name
		c.Action = func(ctx *cli.Context) error {
			st.started = true
			if ctx.Args().Present() {
				return usagef("unknown command %s %q (see snapfs %s --help)", group, ctx.Args().First(), group)
			}
			_ = cli.ShowSubcommandHelp(ctx)
			return usagef("%s needs a subcommand", group)
		}
		for _, sc := range c.Subcommands {
			prepare(st, sc)
		}
		return
	}
	action := c.Action
	c.Action = func(ctx *cli.Context) error {
		st.started = true
		return action(ctx)
	}
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
			if !hasFlag(flags, a) && hasFlag(app.Flags, a) {
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
	return abs, nil
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
	// A one-shot command must not leave background work behind.
	return service.Open(context.Background(), dir, rowstore.Options{Logger: log, GCInterval: -1})
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
	return fn(c.Context, svc)
}

// args checks that c has exactly the positional arguments named and returns them.
func args(c *cli.Context, names ...string) ([]string, error) {
	a := c.Args().Slice()
	if len(a) != len(names) {
		return nil, usagef("%s: want %d argument(s) %s, got %d (see --help)", c.Command.FullName(), len(names), strings.Join(names, " "), len(a))
	}
	return a, nil
}
