package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/hot"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
)

func diskCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "disk",
		Usage: "create, list, inspect, resize, delete and roll back disks",
		Subcommands: []*cli.Command{
			hotCommand(st, "disk create"),
			hotCommand(st, "disk list"),
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
						return printDisk(newPrinter(c, st), d, servedByDaemon(svc))
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
			hotCommand(st, "disk rollback"),
			diskUnlockCommand(st),
			diskLockCommand(st),
			diskRekeyCommand(st),
		},
	}
}

// printDisk prints disk info; daemon says whether a daemon serves the store
// (without one, a lazy disk does not hydrate: hydrationState).
func printDisk(p *printer, d service.Disk, daemon bool) error {
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
		"hydration", hydrationState(d.Hydration, daemon), // cmd_lazy.go
	)
}

func orDash(s string) string { return hot.OrDash(s) }

// encryption is a disk's encryption state in listings.
func encryption(d service.Disk) string { return hot.Encryption(d.Encrypted, d.Locked) }

// keyFileFlag is --key-file, also taken from SNAPFS_KEY_FILE (hot.KeyFileFlag).
func keyFileFlag(usage string) cli.Flag { return hot.KeyFileFlag(usage) }

var insecureKeyFlag = hot.InsecureKeyFlag

// keyFilePath is the absolute path of --key-file (or SNAPFS_KEY_FILE): the
// daemon, whose working directory differs, reads it.
func keyFilePath(c *cli.Context, what string) (string, error) { return hot.KeyFilePath(c, what) }

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
		Usage:     "wrap an encrypted disk's data key with a new key file (no data is rewritten; a new key file holding the same key is refused)",
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
func keyFileGiven(c *cli.Context) bool { return hot.KeyFileGiven(c) }
