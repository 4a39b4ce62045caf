package main

import (
	"github.com/urfave/cli/v2"
)

func statusCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "the daemon's state: mounts, open disks, cache, last snapshot per disk, region lag",
		Action: func(c *cli.Context) error {
			return usagef("status: not yet")
		},
	}
}
