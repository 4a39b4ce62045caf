package main

import (
	"context"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
)

// usageLine is one line of `usage --json`.
type usageLine struct {
	Kind string `json:"kind"` // disk, snapshot, image
	rowstore.ItemUsage
}

func usageCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "usage",
		Usage: "space per disk, snapshot and image: logical, allocated, exclusive (what deleting it frees); bytes per region store",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "no-regions", Usage: "do not list the regions' stores (which contacts them)"},
			&cli.BoolFlag{Name: "fresh", Usage: "count the exclusive figures now if they are stale (reads the whole index) instead of showing the last count"}},
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				usage := svc.Usage
				if c.Bool("fresh") {
					usage = svc.FreshUsage
				}
				u, err := usage(ctx)
				if err != nil {
					return err
				}
				p := newPrinter(c, st)
				groups := []struct {
					kind  string
					items []rowstore.ItemUsage
				}{{"disk", u.Disks}, {"snapshot", u.Snapshots}, {"image", u.Images}}
				if p.json {
					for _, g := range groups {
						for _, it := range g.items {
							if err := p.object("usage", usageLine{g.kind, it}); err != nil {
								return err
							}
						}
					}
					if err := p.object("store_usage", u.Store); err != nil {
						return err
					}
					return printRegionUsage(ctx, c, p, svc)
				}
				var rows [][]string
				for _, g := range groups {
					for _, it := range g.items {
						rows = append(rows, []string{g.kind, it.Name, size(it.Logical), size(it.Allocated), size(it.Exclusive)})
					}
				}
				if err := p.table([]string{"KIND", "NAME", "LOGICAL", "ALLOCATED", "EXCLUSIVE"}, rows); err != nil {
					return err
				}
				_, err = p.w.Write([]byte("\n"))
				if err != nil {
					return err
				}
				if err := p.fields(
					"segments", strconv.Itoa(u.Store.Segments)+" ("+size(u.Store.SegmentBytes)+")",
					"live data", size(u.Store.LiveBytes),
					"index", size(u.Store.IndexBytes),
					"free on device", size(u.Store.FreeBytes),
					"exclusive counted", exclusiveAsOf(u.Store),
				); err != nil {
					return err
				}
				return printRegionUsage(ctx, c, p, svc)
			})
		},
	}
}

// exclusiveAsOf says when the exclusive figures and the live bytes were
// counted, and whether a change came since.
func exclusiveAsOf(s rowstore.StoreUsage) string {
	at := s.ExclusiveAsOf.Local().Format(time.DateTime)
	if s.ExclusiveStale {
		return at + " (stale: changed since; recounting in the background, or pass --fresh)"
	}
	return at + " (current)"
}

func gcCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "gc",
		Usage: "free what no disk, snapshot, clone or image can see, and compact segments",
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				s, err := svc.GC(ctx)
				if err != nil {
					return err
				}
				return newPrinter(c, st).result("gc", s, "gc: %d versions and %d layers deleted, %d segments cleaned, %s freed, %s live, in %s",
					s.VersionsDeleted, s.LayersDeleted, s.SegmentsCleaned, size(s.BytesFreed), size(s.LiveBytes), s.Duration.Round(1e6))
			})
		},
	}
}
