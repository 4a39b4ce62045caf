package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
)

func checkCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "verify the store: superblock, catalog, index and log against each other (exit 6 when anything is corrupt)",
		Description: "With --read-data every stored block is read and its CRC and SHA-256 verified, and every record of the log decoded.\n" +
			"--max-duration stops the data pass early and saves where it stopped in the store directory; the next\n" +
			"check --read-data continues from there. Works with and without a running daemon.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "read-data", Usage: "also read every stored block and verify its checksum and digest"},
			&cli.DurationFlag{Name: "max-duration", Usage: "stop the data pass after this long (e.g. 1h) and resume there next time"},
		},
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			if c.Duration("max-duration") < 0 {
				return usagef("check: --max-duration must not be negative")
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				pr := newProgress(c, st)
				rep, err := svc.CheckStore(ctx, service.CheckStoreRequest{ReadData: c.Bool("read-data"), MaxDuration: c.Duration("max-duration")}, pr.fn())
				pr.done()
				if err != nil {
					return err
				}
				// The count includes the scratch clones of .files and
				// snapshot mounts, which disk list never shows: say so,
				// or "9 disks" reads as 3 more than the store has.
				scratch := 0
				if ds, lerr := svc.ListDisks(ctx); lerr == nil && rep.Disks > len(ds) {
					scratch = rep.Disks - len(ds)
				}
				if err := printStoreCheck(newPrinter(c, st), rep, scratch); err != nil {
					return err
				}
				if !rep.OK() {
					return fmt.Errorf("%w: %d problem(s) found by check", rowstore.ErrCorrupt, len(rep.Problems))
				}
				return nil
			})
		},
	}
}

// problemRows renders check problems as table rows.
func problemRows(ps []rowstore.CheckProblem) [][]string {
	rows := make([][]string, 0, len(ps))
	for _, p := range ps {
		block, where := "-", "-"
		if p.Block >= 0 {
			block = fmt.Sprintf("%d (layer %d epoch %d)", p.Block, p.Layer, p.Epoch)
		}
		if p.Segment != 0 {
			where = fmt.Sprintf("segment %d offset %d", p.Segment, p.Offset)
		}
		var seen []string
		for _, d := range p.Disks {
			seen = append(seen, "disk "+d)
		}
		for _, s := range p.Snapshots {
			seen = append(seen, "snapshot "+s)
		}
		for _, i := range p.Images {
			seen = append(seen, "image "+i)
		}
		rows = append(rows, []string{p.Kind, block, where, joinOr(seen, "-"), p.Message})
	}
	return rows
}

func printStoreCheck(p *printer, rep rowstore.CheckReport, scratch int) error {
	if p.json {
		return p.object("check", rep)
	}
	if len(rep.Problems) > 0 {
		if err := p.table([]string{"PROBLEM", "BLOCK", "WHERE", "SEEN BY", "DETAIL"}, problemRows(rep.Problems)); err != nil {
			return err
		}
	}
	state := "OK"
	if !rep.OK() {
		state = "CORRUPT"
	}
	how := "metadata"
	if rep.ReadData {
		how = fmt.Sprintf("metadata and data: %d blocks, %s read", rep.DataChecked, size(rep.BytesRead))
	}
	var notes []string
	if scratch > 0 {
		notes = append(notes, fmt.Sprintf("%d of the disks are scratch clones the daemon made for .files and snapshot mounts (never listed)", scratch))
	}
	if rep.ResumedFrom != "" {
		notes = append(notes, "resumed from "+rep.ResumedFrom)
	}
	if !rep.Complete {
		notes = append(notes, "stopped by --max-duration: the next `snapfs check --read-data` continues where this one stopped")
	}
	note := ""
	if len(notes) > 0 {
		note = "; " + strings.Join(notes, "; ")
	}
	_, err := fmt.Fprintf(p.w, "check: %s: %d disks, %d snapshots, %d images, %d layers, %d block versions, %d segments checked (%s) in %s; %d problem(s)%s\n",
		state, rep.Disks, rep.Snapshots, rep.Images, rep.Layers, rep.Versions, rep.Segments, how, rep.Duration.Round(1e6), len(rep.Problems), note)
	return err
}
