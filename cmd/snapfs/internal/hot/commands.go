package hot

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
)

func snapshotCreate() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "snapshot one disk, or several as one consistency group",
		ArgsUsage: "NAME",
		Description: "Consistency: by default crash-consistent (like a power cut). --freeze MOUNTPOINT freezes the\n" +
			"filesystem mounted there (from the disk, through a loop device) with FIFREEZE for the instant of the\n" +
			"snapshot, and always thaws it (on error, timeout and Ctrl-C too): filesystem-consistent.\n" +
			"--pre-hook CMD runs before (e.g. flush a database), --post-hook CMD after (always, once the pre-hook\n" +
			"ran; $SNAPFS_RESULT is ok or failed), each with sh -c, killed at --hook-timeout: application-consistent.\n" +
			"A failing pre-hook aborts, or with --on-pre-hook-failure crash takes a crash-consistent snapshot.\n" +
			"Hooks run in the process that serves the store (the daemon's, when one runs). Quotas: at most 256\n" +
			"manual snapshots per disk by default (<store>/policies/quota.json).",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "disk", Usage: "a disk to snapshot (repeat for a consistency group)"},
			&cli.StringSliceFlag{Name: "freeze", Usage: "freeze the filesystem mounted at MOUNTPOINT (or DISK=MOUNTPOINT, as in policy create: the filesystem of DISK) while the snapshot is taken (repeat for several)"},
			&cli.StringFlag{Name: "pre-hook", Usage: "shell command run before the snapshot"},
			&cli.StringFlag{Name: "post-hook", Usage: "shell command run after the snapshot (always, once the pre-hook ran)"},
			&cli.DurationFlag{Name: "hook-timeout", Value: wire.DefaultHookTimeout, Usage: "bound on each hook and on the freeze"},
			&cli.StringFlag{Name: "on-pre-hook-failure", Value: "abort", Usage: "abort (no snapshot) or crash (take a crash-consistent one)"},
		},
	}
}

func snapshotCreateOp(c *cli.Context) (Op, error) {
	a, err := Args(c, "NAME")
	if err != nil {
		return Op{}, err
	}
	disks := c.StringSlice("disk")
	if len(disks) == 0 {
		return Op{}, wire.Usagef("snapshot create: at least one --disk is required")
	}
	req := wire.CreateSnapshotRequest{Name: a[0], Disks: disks, Freeze: c.StringSlice("freeze"), PreHook: c.String("pre-hook"),
		PostHook: c.String("post-hook"), HookTimeout: c.Duration("hook-timeout"), OnPreHookFailure: c.String("on-pre-hook-failure")}
	if f := req.OnPreHookFailure; f != "abort" && f != "crash" {
		return Op{}, wire.Usagef("snapshot create: --on-pre-hook-failure is abort or crash, not %q", f)
	}
	if req.HookTimeout <= 0 {
		return Op{}, wire.Usagef("snapshot create: --hook-timeout must be positive")
	}
	for _, h := range []string{"pre-hook", "post-hook"} {
		if c.IsSet(h) && strings.TrimSpace(c.String(h)) == "" {
			return Op{}, wire.Usagef("snapshot create: --%s is empty: give the command to run, or leave the flag out", h)
		}
	}
	if c.IsSet("on-pre-hook-failure") && req.PreHook == "" {
		return Op{}, wire.Usagef("snapshot create: --on-pre-hook-failure needs a --pre-hook")
	}
	for i, f := range req.Freeze {
		// MOUNTPOINT, or DISK=MOUNTPOINT as policy create takes it (the
		// daemon checks that the filesystem there is in that disk).
		prefix, mp := "", f
		if d, p, ok := strings.Cut(f, "="); ok && d != "" && !strings.Contains(d, "/") {
			prefix, mp = d+"=", p
		}
		abs, err := filepath.Abs(mp)
		if err != nil || mp == "" {
			return Op{}, wire.Usagef("--freeze %s: want MOUNTPOINT or DISK=MOUNTPOINT", f)
		}
		req.Freeze[i] = prefix + abs
	}
	// Ctrl-C or SIGTERM cancels: a frozen filesystem is thawed and the
	// post-hook runs before the command exits.
	return Op{Method: "CreateSnapshotWith", Req: req, Cancel: true, Print: func(p *Printer, raw json.RawMessage) error {
		var s struct {
			Name        string `json:"name"`
			Consistency string `json:"consistency"`
		}
		if err := decode("CreateSnapshotWith", raw, &s); err != nil {
			return err
		}
		return p.Result("snapshot", raw, "created snapshot %s of %s (%s-consistent)", s.Name, strings.Join(disks, ", "), s.Consistency)
	}}, nil
}

// KeyFileFlag is --key-file, also taken from SNAPFS_KEY_FILE. Keys are only
// ever read from files (never arguments: the process list shows those).
func KeyFileFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "key-file", Usage: usage, EnvVars: []string{"SNAPFS_KEY_FILE"}}
}

// InsecureKeyFlag is --allow-insecure-key-file.
var InsecureKeyFlag = &cli.BoolFlag{Name: "allow-insecure-key-file",
	Usage: "accept a key file that group or others may read (refused by default)"}

// KeyFilePath is the absolute path of --key-file (or SNAPFS_KEY_FILE): the
// daemon, whose working directory differs, reads it.
func KeyFilePath(c *cli.Context, what string) (string, error) {
	p := c.String("key-file")
	if p == "" {
		return "", wire.Usagef("%s needs --key-file FILE (or SNAPFS_KEY_FILE)", what)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", wire.Usagef("--key-file %q: %v", p, err)
	}
	return abs, nil
}

// KeyFileGiven reports whether --key-file was given on the command line (not
// only through SNAPFS_KEY_FILE, which commands without a daemon also use).
func KeyFileGiven(c *cli.Context) bool {
	return c.IsSet("key-file") && c.String("key-file") != os.Getenv("SNAPFS_KEY_FILE")
}

func diskCreate() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a disk: empty, a clone of a snapshot's disk, or from an image",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "size", Usage: "size of a new empty disk (e.g. 10G)"},
			&cli.StringFlag{Name: "block-size", Usage: "block size of a new empty disk, a power of two from 4K to 1M (default " + DefaultBlockSize + ")"},
			&cli.StringFlag{Name: "from-snapshot", Usage: "clone disk --disk of this snapshot"},
			&cli.StringFlag{Name: "disk", Usage: "with --from-snapshot: the disk of the snapshot to clone"},
			&cli.StringFlag{Name: "from-image", Usage: "create the disk from this image"},
			&cli.BoolFlag{Name: "encrypt", Usage: "encrypt the disk (AES-256-GCM) with a new data key wrapped by --key-file; " +
				"with --from-snapshot: a full, encrypted copy of an unencrypted snapshot's disk"},
			KeyFileFlag("the key file of an encrypted disk (a passphrase or random bytes; mode 0600)"),
			InsecureKeyFlag,
		},
	}
}

func diskCreateOp(c *cli.Context) (Op, error) {
	a, err := Args(c, "NAME")
	if err != nil {
		return Op{}, err
	}
	req := wire.CreateDiskRequest{Name: a[0], FromSnapshot: c.String("from-snapshot"), FromDisk: c.String("disk"), FromImage: c.String("from-image"),
		Encrypt: c.Bool("encrypt"), AllowInsecureKeyFile: c.Bool("allow-insecure-key-file")}
	if req.Encrypt {
		if req.KeyFile, err = KeyFilePath(c, "disk create --encrypt"); err != nil {
			return Op{}, err
		}
	} else if KeyFileGiven(c) {
		return Op{}, wire.Usagef("disk create: --key-file goes with --encrypt (a clone of an encrypted disk keeps its source's key)")
	}
	clone := req.FromSnapshot != "" || req.FromDisk != "" || req.FromImage != ""
	switch {
	case req.FromImage != "" && (req.FromSnapshot != "" || req.FromDisk != ""):
		return Op{}, wire.Usagef("disk create: --from-image cannot be combined with --from-snapshot/--disk")
	case (req.FromSnapshot != "") != (req.FromDisk != "") && req.FromImage == "":
		return Op{}, wire.Usagef("disk create: --from-snapshot and --disk go together")
	case clone && (c.IsSet("size") || c.IsSet("block-size")):
		return Op{}, wire.Usagef("disk create: a clone takes its size and block size from its source; grow it afterwards with disk resize")
	case !clone && !c.IsSet("size"):
		return Op{}, wire.Usagef("disk create: --size is required for a new empty disk")
	}
	if c.IsSet("size") {
		if req.Size, err = ParseSize("--size", c.String("size")); err != nil {
			return Op{}, err
		}
	}
	if c.IsSet("block-size") {
		bs, err := ParseSize("--block-size", c.String("block-size"))
		if err != nil {
			return Op{}, err
		}
		if bs <= 0 || bs > 1<<30 {
			return Op{}, wire.Usagef("--block-size %q is out of range", c.String("block-size"))
		}
		req.BlockSize = int(bs)
	}
	return Op{Method: "CreateDisk", Req: req, Print: func(p *Printer, raw json.RawMessage) error {
		var d struct {
			Name      string `json:"name"`
			Size      int64  `json:"size"`
			BlockSize int    `json:"block_size"`
			Origin    string `json:"origin"`
			Encrypted bool   `json:"encrypted"`
		}
		if err := decode("CreateDisk", raw, &d); err != nil {
			return err
		}
		if !clone {
			if dir, err := StoreDir(c); err == nil {
				WarnLargerThanFree(dir, p.Err, d.Name, d.Size)
			}
		}
		from := ""
		if d.Origin != "" {
			from = ", origin " + d.Origin
		}
		if d.Encrypted && !strings.Contains(d.Origin, "encrypted") {
			from += ", encrypted"
		}
		return p.Result("disk", raw, "created disk %s (%s, block size %s%s)", d.Name, Size(d.Size), Size(int64(d.BlockSize)), from)
	}}, nil
}

func diskRollback() *cli.Command {
	return &cli.Command{
		Name:      "rollback",
		Usage:     "make a disk read as it was in a snapshot (later snapshots stay intact)",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "snapshot", Usage: "the snapshot to roll back to"},
			&cli.BoolFlag{Name: "force", Usage: "roll back even while the disk is open (its cached pages are dropped)"},
		},
	}
}

func diskRollbackOp(c *cli.Context) (Op, error) {
	a, err := Args(c, "NAME")
	if err != nil {
		return Op{}, err
	}
	if !c.IsSet("snapshot") {
		return Op{}, wire.Usagef("disk rollback: --snapshot is required")
	}
	snap := c.String("snapshot")
	req := wire.RollbackRequest{Name: a[0], Snapshot: snap, Force: c.Bool("force")}
	return Op{Method: "RollbackDisk", Req: req, Print: func(p *Printer, raw json.RawMessage) error {
		var d struct {
			Name string `json:"name"`
		}
		if err := decode("RollbackDisk", raw, &d); err != nil {
			return err
		}
		return p.Result("disk", raw, "rolled disk %s back to snapshot %s", d.Name, snap)
	}}, nil
}

func imageCreate() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "make an image from a disk of a snapshot",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "snapshot", Usage: "the snapshot"},
			&cli.StringFlag{Name: "disk", Usage: "the disk of the snapshot"},
		},
	}
}

func imageCreateOp(c *cli.Context) (Op, error) {
	a, err := Args(c, "NAME")
	if err != nil {
		return Op{}, err
	}
	if !c.IsSet("snapshot") || !c.IsSet("disk") {
		return Op{}, wire.Usagef("image create: --snapshot and --disk are required")
	}
	req := wire.ImageRequest{Name: a[0], Snapshot: c.String("snapshot"), Disk: c.String("disk")}
	return Op{Method: "CreateImage", Req: req, Print: func(p *Printer, raw json.RawMessage) error {
		var im struct {
			Name     string `json:"name"`
			Snapshot string `json:"snapshot"`
			Disk     string `json:"disk"`
			Size     int64  `json:"size"`
		}
		if err := decode("CreateImage", raw, &im); err != nil {
			return err
		}
		return p.Result("image", raw, "created image %s from %s/%s (%s)", im.Name, im.Snapshot, im.Disk, Size(im.Size))
	}}, nil
}
