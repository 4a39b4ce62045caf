package hot

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
)

// ReorderArgs moves the flags of the (leaf) command after its positional
// arguments in front of them, so that `disk create vol1 --size 1G` works:
// urfave/cli v2 stops parsing flags at the first positional argument.
// Global flags (--json, --store, ...) may also come after the command.
//
// A word where a command or subcommand is due that names none is refused
// (a usage error): urfave/cli would parse the flags after it as the group's
// and say `flag provided but not defined: -disk` for `snapfs diff a b
// --disk d` (trial14), or `snapshot: flag provided but not defined` for a
// misspelt `snapshot dif`.
func ReorderArgs(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	out := []string{args[0]}
	flags, cmds, group := app.Flags, app.Commands, ""
	i := 1
	for i < len(args) {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...), nil
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			out = append(out, a)
			if TakesValue(flags, a) && i+1 < len(args) {
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
			switch {
			case group == "":
				return nil, wire.Usagef("unknown command %q (see snapfs help)", a)
			case a == "help" || a == "h": // urfave/cli's, added to groups at run time
			default:
				return nil, wire.Usagef("unknown command %s %q (see snapfs help %s)", group, a, group)
			}
			break
		}
		out = append(out, a)
		group = strings.TrimSpace(group + " " + next.Name)
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
			if !HasFlag(flags, a) && HasFlag(app.Flags, a) && !HasFlag([]cli.Flag{cli.HelpFlag}, a) {
				dst, set = &global, app.Flags
			}
			*dst = append(*dst, a)
			if TakesValue(set, a) {
				if i+1 >= len(args) {
					return nil, wire.Usagef("flag %s needs a value", a)
				}
				*dst = append(*dst, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	for _, f := range fl {
		// Only the flags themselves: a value ("--snapshot h") is not --help.
		if strings.HasPrefix(f, "-") && HasFlag([]cli.Flag{cli.HelpFlag}, f) {
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

// HasFlag reports whether flag arg is one of flags.
func HasFlag(flags []cli.Flag, arg string) bool {
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

// TakesValue reports whether flag arg (e.g. "--size", "-size=1G") is a flag
// in flags that takes a separate value argument.
func TakesValue(flags []cli.Flag, arg string) bool {
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
