package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
)

func diskCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "disk",
		Usage: "create, list, inspect, resize, delete and roll back disks",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a disk: empty, a clone of a snapshot's disk, or from an image",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "size", Usage: "size of a new empty disk (e.g. 10G)"},
					&cli.StringFlag{Name: "block-size", Usage: "block size of a new empty disk, a power of two from 4K to 1M (default " + defaultBlockSize + ")"},
					&cli.StringFlag{Name: "from-snapshot", Usage: "clone disk --disk of this snapshot"},
					&cli.StringFlag{Name: "disk", Usage: "with --from-snapshot: the disk of the snapshot to clone"},
					&cli.StringFlag{Name: "from-image", Usage: "create the disk from this image"},
					&cli.BoolFlag{Name: "encrypt", Usage: "encrypt the disk (AES-256-GCM) with a new data key wrapped by --key-file; " +
						"with --from-snapshot: a full, encrypted copy of an unencrypted snapshot's disk"},
					keyFileFlag("the key file of an encrypted disk (a passphrase or random bytes; mode 0600)"),
					insecureKeyFlag,
				},
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					req := service.CreateDiskRequest{Name: a[0], FromSnapshot: c.String("from-snapshot"), FromDisk: c.String("disk"), FromImage: c.String("from-image"),
						Encrypt: c.Bool("encrypt"), AllowInsecureKeyFile: c.Bool("allow-insecure-key-file")}
					if req.Encrypt {
						if req.KeyFile, err = keyFilePath(c, "disk create --encrypt"); err != nil {
							return err
						}
					} else if keyFileGiven(c) {
						return usagef("disk create: --key-file goes with --encrypt (a clone of an encrypted disk keeps its source's key)")
					}
					clone := req.FromSnapshot != "" || req.FromDisk != "" || req.FromImage != ""
					switch {
					case req.FromImage != "" && (req.FromSnapshot != "" || req.FromDisk != ""):
						return usagef("disk create: --from-image cannot be combined with --from-snapshot/--disk")
					case (req.FromSnapshot != "") != (req.FromDisk != "") && req.FromImage == "":
						return usagef("disk create: --from-snapshot and --disk go together")
					case clone && (c.IsSet("size") || c.IsSet("block-size")):
						return usagef("disk create: a clone takes its size and block size from its source; grow it afterwards with disk resize")
					case !clone && !c.IsSet("size"):
						return usagef("disk create: --size is required for a new empty disk")
					}
					if c.IsSet("size") {
						if req.Size, err = parseSize("--size", c.String("size")); err != nil {
							return err
						}
					}
					if c.IsSet("block-size") {
						bs, err := parseSize("--block-size", c.String("block-size"))
						if err != nil {
							return err
						}
						if bs <= 0 || bs > 1<<30 {
							return usagef("--block-size %q is out of range", c.String("block-size"))
						}
						req.BlockSize = int(bs)
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						d, err := svc.CreateDisk(ctx, req)
						if err != nil {
							return err
						}
						if !clone {
							warnLargerThanFree(c, st, d.Name, d.Size)
						}
						from := ""
						if d.Origin != "" {
							from = ", origin " + d.Origin
						}
						return newPrinter(c, st).result("disk", d, "created disk %s (%s, block size %s%s)", d.Name, size(d.Size), size(int64(d.BlockSize)), from)
					})
				},
			},
			{
				Name:  "list",
				Usage: "list disks",
				Action: func(c *cli.Context) error {
					if _, err := args(c); err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						ds, err := svc.ListDisks(ctx)
						if err != nil {
							return err
						}
						return list(newPrinter(c, st), "disk", ds, []string{"NAME", "SIZE", "ALLOCATED", "BLOCK", "OPEN", "ORIGIN", "ENCRYPTION"}, func(d service.Disk) []string {
							return []string{d.Name, size(d.Size), size(d.Allocated), size(int64(d.BlockSize)), strconv.Itoa(d.Open), orDash(d.Origin), encryption(d)}
						})
					})
				},
			},
			{
				Name:      "info",
				Usage:     "describe a disk",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						d, err := svc.GetDisk(ctx, a[0])
						if err != nil {
							return err
						}
						return printDisk(newPrinter(c, st), d)
					})
				},
			},
			{
				Name:      "resize",
				Usage:     "grow a disk (disks never shrink)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "size", Usage: "the new size (e.g. 20G)"}},
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					if !c.IsSet("size") {
						return usagef("disk resize: --size is required")
					}
					sz, err := parseSize("--size", c.String("size"))
					if err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						d, err := svc.ResizeDisk(ctx, a[0], sz)
						if err != nil {
							return err
						}
						return newPrinter(c, st).result("disk", d, "disk %s is %s", d.Name, size(d.Size))
					})
				},
			},
			{
				Name:      "delete",
				Usage:     "delete a disk (its snapshots and images stay)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Usage: "delete even while the disk is open, discarding unsynced writes"}},
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						if err := svc.DeleteDisk(ctx, a[0], c.Bool("force")); err != nil {
							return err
						}
						return newPrinter(c, st).deleted("disk", a[0])
					})
				},
			},
			{
				Name:      "rollback",
				Usage:     "make a disk read as it was in a snapshot (later snapshots stay intact)",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "snapshot", Usage: "the snapshot to roll back to"},
					&cli.BoolFlag{Name: "force", Usage: "roll back even while the disk is open (its cached pages are dropped)"},
				},
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					if !c.IsSet("snapshot") {
						return usagef("disk rollback: --snapshot is required")
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						d, err := svc.RollbackDisk(ctx, a[0], c.String("snapshot"), c.Bool("force"))
						if err != nil {
							return err
						}
						return newPrinter(c, st).result("disk", d, "rolled disk %s back to snapshot %s", d.Name, c.String("snapshot"))
					})
				},
			},
			diskUnlockCommand(st),
			diskLockCommand(st),
			diskRekeyCommand(st),
		},
	}
}

func printDisk(p *printer, d service.Disk) error {
	if p.json {
		return p.object("disk", d)
	}
	return p.fields(
		"name", d.Name,
		"id", strconv.FormatUint(d.ID, 10),
		"size", fmt.Sprintf("%s (%d bytes)", size(d.Size), d.Size),
		"allocated", fmt.Sprintf("%s (%d bytes)", size(d.Allocated), d.Allocated),
		"block size", size(int64(d.BlockSize)),
		"created", when(d.Created),
		"modified", when(d.Modified),
		"origin", orDash(d.Origin),
		"open handles", strconv.Itoa(d.Open),
		"encryption", encryption(d),
		"hydration", hydration(d.Hydration), // cmd_lazy.go
	)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// encryption is a disk's encryption state in listings.
func encryption(d service.Disk) string {
	switch {
	case !d.Encrypted:
		return "-"
	case d.Locked:
		return "locked"
	}
	return "unlocked"
}

// keyFileFlag is --key-file, also taken from SNAPFS_KEY_FILE. Keys are only
// ever read from files (never arguments: the process list shows those).
func keyFileFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "key-file", Usage: usage, EnvVars: []string{"SNAPFS_KEY_FILE"}}
}

var insecureKeyFlag = &cli.BoolFlag{Name: "allow-insecure-key-file",
	Usage: "accept a key file that group or others may read (refused by default)"}

// keyFilePath is the absolute path of --key-file (or SNAPFS_KEY_FILE): the
// daemon, whose working directory differs, reads it.
func keyFilePath(c *cli.Context, what string) (string, error) {
	p := c.String("key-file")
	if p == "" {
		return "", usagef("%s needs --key-file FILE (or SNAPFS_KEY_FILE)", what)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", usagef("--key-file %q: %v", p, err)
	}
	return abs, nil
}

func diskUnlockCommand(st *state) *cli.Command {
	return &cli.Command{
		Name: "unlock",
		Usage: "unlock an encrypted disk in the running daemon (with its snapshots, images and clones): " +
			"its files open again",
		ArgsUsage: "NAME",
		Flags:     []cli.Flag{keyFileFlag("the disk's key file"), insecureKeyFlag},
		Action: func(c *cli.Context) error {
			a, err := args(c, "NAME")
			if err != nil {
				return err
			}
			kf, err := keyFilePath(c, "disk unlock")
			if err != nil {
				return err
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				if err := svc.UnlockDisk(ctx, service.KeyRequest{Name: a[0], KeyFile: kf, AllowInsecure: c.Bool("allow-insecure-key-file")}); err != nil {
					return err
				}
				d, err := svc.GetDisk(ctx, a[0])
				if err != nil {
					return err
				}
				return newPrinter(c, st).result("disk", d, "unlocked disk %s", d.Name)
			})
		},
	}
}

func diskLockCommand(st *state) *cli.Command {
	return &cli.Command{
		Name: "lock",
		Usage: "lock an encrypted disk in the running daemon (with its snapshots, images and clones): " +
			"the daemon forgets its key; its files refuse to open until unlocked",
		ArgsUsage: "NAME",
		Action: func(c *cli.Context) error {
			a, err := args(c, "NAME")
			if err != nil {
				return err
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				if err := svc.LockDisk(ctx, a[0]); err != nil {
					return err
				}
				d, err := svc.GetDisk(ctx, a[0])
				if err != nil {
					return err
				}
				return newPrinter(c, st).result("disk", d, "locked disk %s", d.Name)
			})
		},
	}
}

func diskRekeyCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:      "rekey",
		Usage:     "wrap an encrypted disk's data key with a new key file (no data is rewritten)",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{keyFileFlag("the disk's current key file"),
			&cli.StringFlag{Name: "new-key-file", Usage: "the new key file"}, insecureKeyFlag},
		Action: func(c *cli.Context) error {
			a, err := args(c, "NAME")
			if err != nil {
				return err
			}
			kf, err := keyFilePath(c, "disk rekey")
			if err != nil {
				return err
			}
			nk := c.String("new-key-file")
			if nk == "" {
				return usagef("disk rekey needs --new-key-file FILE")
			}
			if nk, err = filepath.Abs(nk); err != nil {
				return usagef("--new-key-file: %v", err)
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				if err := svc.RekeyDisk(ctx, service.KeyRequest{Name: a[0], KeyFile: kf, NewKeyFile: nk, AllowInsecure: c.Bool("allow-insecure-key-file")}); err != nil {
					return err
				}
				d, err := svc.GetDisk(ctx, a[0])
				if err != nil {
					return err
				}
				return newPrinter(c, st).result("disk", d, "rekeyed disk %s: the new key file unlocks it, the old one no longer does", d.Name)
			})
		},
	}
}

// keyFileGiven reports whether --key-file was given on the command line (not
// only through SNAPFS_KEY_FILE, which commands without a daemon also use).
func keyFileGiven(c *cli.Context) bool {
	return c.IsSet("key-file") && c.String("key-file") != os.Getenv("SNAPFS_KEY_FILE")
}
