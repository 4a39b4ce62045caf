package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
)

func initCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create a store in the --store directory (an existing store is left untouched)",
		Flags: []cli.Flag{&cli.StringFlag{Name: "host-name", Usage: "the name this host's snapshots carry in regions (default: the machine's host name)"}},
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			dir, err := storeDir(c)
			if err != nil {
				return err
			}
			if err := initDirEmpty(dir); err != nil {
				return err
			}
			if err := rowstore.Create(dir, rowstore.Options{}); err != nil {
				if errors.Is(err, rowstore.ErrExists) {
					return fmt.Errorf("%w: %s already holds a snapfs store; nothing was changed", rowstore.ErrExists, dir)
				}
				return err
			}
			// The host identity remote snapshots of this store carry.
			h, err := replicate.EnsureHost(dir, c.String("host-name"))
			if err != nil {
				return err
			}
			return newPrinter(c, st).result("store", struct {
				Store    string `json:"store"`
				HostID   string `json:"host_id"`
				HostName string `json:"host"`
			}{dir, h.ID.String(), h.Name}, "created store %s (host %s, id %s)", dir, h.Name, h.ID)
		},
	}
}

// initDirEmpty refuses to make a store of a directory that holds other
// things (trial14: `init --store /srv/data` made its files a store's
// neighbours and its mode 0700, cutting off whoever else read it). An empty
// directory, a new one and a filesystem's own lost+found are fine; a
// directory that is already a store is left to rowstore.Create (exists).
func initDirEmpty(dir string) error {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil // missing: Create makes it; other errors: Create reports them
	}
	if _, err := os.Stat(filepath.Join(dir, "superblock")); err == nil {
		return nil
	}
	var other []string
	for _, e := range es {
		if e.Name() != "lost+found" {
			other = append(other, e.Name())
		}
	}
	if len(other) == 0 {
		return nil
	}
	if len(other) > 3 {
		other = append(other[:3], "...")
	}
	return usagef("init: %s is not empty (%s) and holds no snapfs store: give an empty or new directory; nothing was changed", dir, strings.Join(other, ", "))
}
