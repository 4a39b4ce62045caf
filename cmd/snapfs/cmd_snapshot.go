package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
)

func snapshotCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "create, list, inspect, delete, compare and mount snapshots",
		Subcommands: []*cli.Command{
			hotCommand(st, "snapshot create"),
			hotCommand(st, "snapshot list"),
			{
				Name:      "info",
				Usage:     "describe a snapshot (--json prints what snapshots/NAME/snapshot.json holds)",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						s, err := svc.GetSnapshot(ctx, a[0])
						if err != nil {
							return err
						}
						p := newPrinter(c, st)
						if p.json {
							return p.object("snapshot", s)
						}
						kv := []string{"name", s.Name, "id", strconv.FormatUint(s.ID, 10), "created", when(s.Created), "kind", s.Kind, "state", s.State, "consistency", s.Consistency}
						if s.Policy != "" {
							kv = append(kv, "policy", s.Policy)
						}
						if err := p.fields(kv...); err != nil {
							return err
						}
						rows := make([][]string, 0, len(s.Disks))
						for _, d := range s.Disks {
							rows = append(rows, []string{d.Name, size(d.Size), size(d.Allocated), size(int64(d.BlockSize)), filesColumn(d.Files)})
						}
						fmt.Fprintln(p.w)
						if err := p.table([]string{"DISK", "SIZE", "ALLOCATED", "BLOCK", "FILES (<disk>.files)"}, rows); err != nil {
							return err
						}
						if len(s.Copies) == 0 {
							return nil
						}
						rows = rows[:0]
						for _, cp := range s.Copies {
							rows = append(rows, []string{cp.Region, string(cp.State), when(cp.AsOf)})
						}
						fmt.Fprintln(p.w)
						return p.table([]string{"REGION", "COPY", "AS OF"}, rows)
					})
				},
			},
			{
				Name:      "delete",
				Usage:     "delete a snapshot (what clones, images and later snapshots need is kept)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "dry-run", Usage: "print what deleting it would free; delete nothing"}},
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						if c.Bool("dry-run") {
							pl, err := svc.DeleteSnapshotPlan(ctx, a[0])
							if err != nil {
								return err
							}
							frees := size(pl.Frees)
							if pl.FreesStale {
								frees += " (stale: the last count, changes came since; snapfs usage --fresh recounts)"
							}
							return newPrinter(c, st).result("delete_plan", pl, "would delete snapshot %s: frees %s once gc has run (%s allocated, the rest is shared with disks, clones, images or other snapshots); nothing deleted",
								a[0], frees, size(pl.Allocated))
						}
						if err := svc.DeleteSnapshot(ctx, a[0]); err != nil {
							return err
						}
						return newPrinter(c, st).deleted("snapshot", a[0])
					})
				},
			},
			{
				Name:      "diff",
				Usage:     "changed byte ranges of a disk between snapshot OLD and snapshot NEW (default: the disk now)",
				ArgsUsage: "OLD [NEW]",
				Flags:     append([]cli.Flag{&cli.StringFlag{Name: "disk", Usage: "the disk to compare"}}, diffFilesFlags...), // cmd_files.go
				Action: func(c *cli.Context) error {
					a := c.Args().Slice()
					if len(a) < 1 || len(a) > 2 {
						return usagef("snapshot diff: want OLD [NEW], got %d argument(s)", len(a))
					}
					if !c.IsSet("disk") {
						return usagef("snapshot diff: --disk is required")
					}
					req := service.DiffRequest{Old: a[0], Disk: c.String("disk")}
					if len(a) == 2 {
						req.New = a[1]
					}
					if c.Bool("files") {
						return diffFiles(c, st, req) // cmd_files.go
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						d, err := svc.Diff(ctx, req)
						if err != nil {
							return err
						}
						return printDiff(newPrinter(c, st), d)
					})
				},
			},
			snapshotCopyCommand(st),
			snapshotMountCommand(st),
			snapshotUmountCommand(st),
		},
	}
}

// diffSummary is the last line of `snapshot diff --json`.
type diffSummary struct {
	Disk         string `json:"disk"`
	Old          string `json:"old"`
	New          string `json:"new,omitempty"`
	BlockSize    int    `json:"block_size"`
	Size         int64  `json:"size"`
	Ranges       int    `json:"ranges"`
	ChangedBytes int64  `json:"changed_bytes"`
}

func printDiff(p *printer, d service.Diff) error {
	sum := diffSummary{d.Disk, d.Old, d.New, d.BlockSize, d.Size, len(d.Ranges), d.ChangedBytes}
	if p.json {
		for _, r := range d.Ranges {
			if err := p.object("range", r); err != nil {
				return err
			}
		}
		return p.object("diff", sum)
	}
	rows := make([][]string, 0, len(d.Ranges))
	for _, r := range d.Ranges {
		kind := "data"
		if r.Zero {
			kind = "zero"
		}
		rows = append(rows, []string{strconv.FormatInt(r.Offset, 10), strconv.FormatInt(r.Length, 10), kind})
	}
	// The third column is what each range holds in NEW: the disk now, or
	// snapshot NEW.
	newer, col := d.New, "IN "+d.New
	if newer == "" {
		newer, col = "now", "NOW"
	}
	if err := p.table([]string{"OFFSET", "LENGTH", col}, rows); err != nil {
		return err
	}
	_, err := fmt.Fprintf(p.w, "%d ranges, %s changed in disk %s from %s to %s\n", len(d.Ranges), size(d.ChangedBytes), d.Disk, d.Old, newer)
	return err
}
