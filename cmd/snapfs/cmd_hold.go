package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
)

// Holds: restore --lazy holds the region snapshot its disk reads from, so
// no host's prune removes it before the disk is hydrated (replicate's
// package doc, "Holds"). region release drops a hold by hand.

// heldNote is prune's report of the snapshots it kept for their holds.
func heldNote(held []string) string {
	if len(held) == 0 {
		return ""
	}
	return fmt.Sprintf("; kept %d held snapshot(s): %s", len(held), strings.Join(held, "; "))
}

// heldState is a remote snapshot's state in region snapshots, with its
// holds.
func heldState(s service.RemoteSnapshot) string {
	if len(s.HeldBy) == 0 {
		return string(s.State)
	}
	return string(s.State) + ", held by " + strings.Join(s.HeldBy, ", ")
}

func regionReleaseCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:      "release",
		Usage:     "remove the holds of lazily restored disks on a region snapshot (of a host gone for good)",
		ArgsUsage: "NAME SNAPSHOT",
		Description: "restore --lazy holds the snapshot its disk reads from: no prune of any host removes it until the\n" +
			"disk is hydrated or deleted, when the holding host releases the hold itself. A host that is gone for\n" +
			"good never does: release removes its holds by hand (`region snapshots` shows them: STATE \"held by\n" +
			"HOST/DISK\"). A disk still reading from the snapshot fails its reads of missing blocks once the\n" +
			"snapshot is pruned. A hold whose holder holds a live lock on the region (its lazy disk hydrating) is\n" +
			"not released (exit 15) unless --force.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "holder", Usage: "release only the holds of this host (`HOST` name or id); default: every host's"},
			&cli.StringFlag{Name: "host", Usage: "the snapshot's `HOST` (name or id), when several hosts have a snapshot of that name"},
			&cli.BoolFlag{Name: "force", Usage: "also release the holds of a host that holds a live lock on the region (its lazy disk still reads)"},
		},
		Action: func(c *cli.Context) error {
			a, err := args(c, "NAME", "SNAPSHOT")
			if err != nil {
				return err
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				hs, err := svc.ReleaseHolds(ctx, service.ReleaseHoldsRequest{Region: a[0], Snapshot: a[1], Host: c.String("host"), Holder: c.String("holder"), Force: c.Bool("force")})
				if err != nil {
					return err
				}
				var ls []string
				for _, h := range hs {
					ls = append(ls, h.Label())
				}
				return newPrinter(c, st).result("release", hs, "region %s: released %d hold(s) of snapshot %s (%s)", a[0], len(hs), a[1], joinOr(ls, "none"))
			})
		},
	}
}
