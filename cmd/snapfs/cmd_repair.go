package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
)

func repairCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "repair",
		Usage: "rewrite corrupt or missing blocks of the store from a region's copies (exit 6 when some are left)",
		Description: "Runs check --read-data, fetches every bad block from the region by its SHA-256 and rewrites it where\n" +
			"the digest matches, so every disk, snapshot and image sharing it is repaired. A block whose digest the index\n" +
			"lost (a damaged record an index rebuild indexed) is taken from the region's copy of a snapshot that sees it\n" +
			"(that very snapshot, never another of its name) and written back with its digest. Reports what it could not\n" +
			"repair, and why.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from-region", Usage: "the region to copy good blocks from", Required: true},
		},
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			region := c.String("from-region")
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				pr := newProgress(c, st)
				rep, err := svc.RepairFromRegion(ctx, region, pr.fn())
				pr.done()
				if err != nil {
					return err
				}
				p := newPrinter(c, st)
				if p.json {
					if err := p.object("repair", rep); err != nil {
						return err
					}
				} else {
					if len(rep.Unrepaired) > 0 {
						if err := p.table([]string{"PROBLEM", "BLOCK", "WHERE", "SEEN BY", "DETAIL"}, problemRows(rep.Unrepaired)); err != nil {
							return err
						}
					}
					fmt.Fprintf(p.w, "repair from region %s: %d problem(s) found, %d block(s) repaired, %d left\n",
						region, len(rep.Checked.Problems), rep.Repaired, len(rep.Unrepaired))
				}
				if len(rep.Unrepaired) > 0 {
					return fmt.Errorf("%w: %d problem(s) not repaired", rowstore.ErrCorrupt, len(rep.Unrepaired))
				}
				return nil
			})
		},
	}
}
