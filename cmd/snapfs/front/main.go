package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/hot"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
)

func main() {
	// Output is written once, at the end (a table is otherwise a write(2)
	// per cell); stderr flushes it first, so the two interleave as written.
	out := bufio.NewWriterSize(os.Stdout, 32<<10)
	code, handled := run(os.Args, out, stderrAfter{out})
	if err := out.Flush(); err != nil && code == 0 {
		fmt.Fprintf(os.Stderr, "snapfs: write output: %v\n", err)
		code = 1
	}
	if handled {
		os.Exit(code)
	}
	full, err := fullBinary()
	if err == nil {
		err = syscall.Exec(full, os.Args, os.Environ())
		err = fmt.Errorf("run the full snapfs binary %s: %w", full, err)
	}
	fmt.Fprintf(os.Stderr, "snapfs: %v\n", err)
	os.Exit(1)
}

// stderrAfter is stderr, written after the output buffered so far.
type stderrAfter struct{ out *bufio.Writer }

func (w stderrAfter) Write(p []byte) (int, error) {
	_ = w.out.Flush()
	return os.Stderr.Write(p)
}

// errFallback says: the full binary runs this command line.
var errFallback = errors.New("fallback")

// run runs a hot command through the daemon when it can. handled is false
// when the full binary must run the command line (nothing was sent).
func run(args []string, stdout, stderr io.Writer) (code int, handled bool) {
	if n := len(args); n > 1 && args[n-1] == "--generate-bash-completion" {
		return 0, false
	}
	sent := false // a request left this process: never hand over after that
	defer func() {
		if r := recover(); r != nil {
			if !sent {
				code, handled = 0, false // nothing was sent: the full binary runs it
				return
			}
			fmt.Fprintf(stderr, "snapfs: internal error: %v\n", r)
			code, handled = 1, true
		}
	}()
	fallback := func(*cli.Context) error { return errFallback }
	app := &cli.App{
		Name:            "snapfs",
		Flags:           hot.GlobalFlags(nil),
		Before:          hot.CheckGlobal,
		Action:          fallback,
		Writer:          io.Discard, // urfave/cli's own output (help, errors): the full binary prints it
		ErrWriter:       io.Discard,
		HideHelp:        true,
		HideHelpCommand: true,
		HideVersion:     true,
		ExitErrHandler:  func(*cli.Context, error) {},
		OnUsageError:    func(*cli.Context, error, bool) error { return errFallback },
		CommandNotFound: func(*cli.Context, string) {},
	}
	groups := map[string]*cli.Command{}
	for _, h := range hot.Commands {
		group, name := splitPath(h.Path)
		add := func(c *cli.Command) { app.Commands = append(app.Commands, c) }
		if group != "" {
			g := groups[group]
			if g == nil {
				g = &cli.Command{Name: group, Action: fallback, HideHelp: true, HideHelpCommand: true,
					OnUsageError: func(*cli.Context, error, bool) error { return errFallback }}
				groups[group] = g
				app.Commands = append(app.Commands, g)
			}
			add = func(c *cli.Command) { g.Subcommands = append(g.Subcommands, c) }
		}
		cmd := h.Def()
		if cmd.Name != name {
			panic("hot command " + h.Path + " is named " + cmd.Name)
		}
		cmd.HideHelp, cmd.HideHelpCommand = true, true
		cmd.OnUsageError = func(*cli.Context, error, bool) error { return errFallback }
		op := h.Op
		cmd.Action = func(c *cli.Context) error {
			o, err := op(c)
			if err != nil {
				return errFallback // the full binary prints the usage error
			}
			p := &hot.Printer{JSON: c.Bool("json"), W: stdout, Err: stderr}
			s, err := hot.ViaDaemon(c, o, p)
			if !s {
				return errFallback // no daemon, or a usage error of the global flags
			}
			sent = true
			return err
		}
		add(cmd)
	}
	args, err := hot.ReorderArgs(app, args)
	if err != nil {
		return 0, false
	}
	err = app.Run(args)
	if !sent {
		return 0, false
	}
	if err != nil {
		code := wire.ExitOf(err)
		fmt.Fprintf(stderr, "snapfs: %s\n", hot.OneLine(err, code))
		return code, true
	}
	return 0, true
}

func splitPath(path string) (group, name string) {
	if group, name, ok := strings.Cut(path, " "); ok {
		return group, name
	}
	return "", path
}

// fullBinary is the path of the full snapfs binary (see the package doc).
func fullBinary() (string, error) {
	p, err := findFull()
	if err != nil {
		return "", err
	}
	// Never exec this front itself (SNAPFS_FULL=/usr/local/bin/snapfs, a
	// symlink): it would exec itself again, forever.
	if self, err := os.Executable(); err == nil {
		a, errA := os.Stat(self)
		b, errB := os.Stat(p)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return "", fmt.Errorf("%s is this light front, not the full snapfs binary (%s): check SNAPFS_FULL and the install (scripts/install.sh)",
				p, filepath.Join("PREFIX", "lib", "snapfs", "snapfs-full"))
		}
	}
	return p, nil
}

// findFull is where the full binary should be (see the package doc).
func findFull() (string, error) {
	if p := os.Getenv("SNAPFS_FULL"); p != "" {
		return p, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the full snapfs binary: %w (set SNAPFS_FULL)", err)
	}
	if r, err := filepath.EvalSymlinks(self); err == nil {
		self = r
	}
	dir := filepath.Dir(self)
	tried := []string{filepath.Join(dir, "..", "lib", "snapfs", "snapfs-full"), filepath.Join(dir, "snapfs-full")}
	for _, p := range tried {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return filepath.Clean(p), nil
		}
	}
	return "", fmt.Errorf("the full snapfs binary is not installed: tried %s and %s (scripts/install.sh installs it; or set SNAPFS_FULL)",
		filepath.Clean(tried[0]), tried[1])
}
