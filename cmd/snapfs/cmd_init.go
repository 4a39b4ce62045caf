package main

import (
	"errors"
	"fmt"

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
