package main

import (
	"context"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
)

// usageLine is one line of `usage --json`. ExclusiveStale: Exclusive is
// the last count's, and a change came since (local trial 10: a stale
// figure is marked where it is printed).
type usageLine struct {
	Kind string `json:"kind"` // disk, snapshot, image
	rowstore.ItemUsage
	ExclusiveStale bool `json:"exclusive_stale"`
}

// storeUsageLine is the store_usage line of `usage --json`. LiveStale:
// live_bytes is the last count's, and a change came since (the same as
// exclusive_stale, said next to the figure).
type storeUsageLine struct {
	rowstore.StoreUsage
	LiveStale bool `json:"live_stale"`
}

// staleMark follows every figure of the last count while it is stale.
const staleMark = "*"

func usageCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "usage",
		Usage: "space per disk, snapshot and image: logical, allocated, exclusive (what deleting it frees); bytes per region store",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "no-regions", Usage: "do not list the regions' stores (which contacts them)"},
			&cli.BoolFlag{Name: "fresh", Usage: "count the exclusive figures and the live data now if they are stale (reads the whole index) instead of " +
				"showing the last count (marked * while stale; --json: exclusive_stale, live_stale)"}},
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
				stale := u.Store.ExclusiveStale
				if p.json {
					for _, g := range groups {
						for _, it := range g.items {
							if err := p.object("usage", usageLine{g.kind, it, stale}); err != nil {
								return err
							}
						}
					}
					if err := p.object("store_usage", storeUsageLine{u.Store, stale}); err != nil {
						return err
					}
					return printRegionUsage(ctx, c, p, svc)
				}
				mark, live := "", size(u.Store.LiveBytes)
				if stale {
					mark, live = staleMark, live+staleMark+" (stale)"
				}
				var rows [][]string
				for _, g := range groups {
					for _, it := range g.items {
						rows = append(rows, []string{g.kind, it.Name, size(it.Logical), size(it.Allocated), size(it.Exclusive) + mark})
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
					"live data", live,
					"index", size(u.Store.IndexBytes),
					"free on device", size(u.Store.FreeBytes),
					"live, exclusive counted", exclusiveAsOf(u.Store),
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
		return at + " (" + staleMark + " stale: changes came since, not in the figures marked " + staleMark +
			"; recounting in the background, or pass --fresh)"
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
