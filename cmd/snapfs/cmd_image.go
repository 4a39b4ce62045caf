package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
)

func imageCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "image",
		Usage: "create, list and delete read-only images made from snapshots",
		Subcommands: []*cli.Command{
			hotCommand(st, "image create"),
			hotCommand(st, "image list"),
			{
				Name:      "delete",
				Usage:     "delete an image (disks made from it keep their data)",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						if err := svc.DeleteImage(ctx, a[0]); err != nil {
							return err
						}
						return newPrinter(c, st).deleted("image", a[0])
					})
				},
			},
		},
	}
}
