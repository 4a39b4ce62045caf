package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/replicate"
)

func syncCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "sync",
		Usage: "copy every local snapshot not yet in a region (every configured region without --region) to it",
		Description: "Copies, oldest first, every snapshot holding one of the --disk disks (every snapshot without --disk)\n" +
			"that the region does not hold yet, and that the region's retention (region retention) would not remove\n" +
			"at once. Without --region, every configured region in turn (a failed region does not stop the others;\n" +
			"the exit code is the first failure's). Only blocks the region lacks travel.\n" +
			"Exit 0 only when all of them are durable on every store of the region.\n" +
			"Safe to interrupt and run again: the next run reuses what was shipped. A snapshot this host's region prune\n" +
			"removed is not sent again (snapshot copy sends it if asked). Sync shares the region with other syncs and\n" +
			"restores of any host; while a prune or repair holds it, sync fails with exit 15 (run it again later).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "region", Usage: "the region (default: every configured region)"},
			&cli.StringSliceFlag{Name: "disk", Usage: "only snapshots holding this disk (repeat for several)"},
		},
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			if c.String("region") != "" {
				return runSync(c, st, service.SyncRequest{Region: c.String("region"), Disks: c.StringSlice("disk")})
			}
			return syncAll(c, st, c.StringSlice("disk"))
		},
	}
}

func snapshotCopyCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:      "copy",
		Usage:     "copy one snapshot to a region (nothing when it is there already; also one the region pruned)",
		ArgsUsage: "SNAPSHOT",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "region", Usage: "the region", Required: true}},
		Action: func(c *cli.Context) error {
			a, err := args(c, "SNAPSHOT")
			if err != nil {
				return err
			}
			return runSync(c, st, service.SyncRequest{Region: c.String("region"), Snapshot: a[0]})
		},
	}
}

func runSync(c *cli.Context, st *state, req service.SyncRequest) error {
	return withService(c, st, func(ctx context.Context, svc service.Service) error {
		return syncOne(c, st, ctx, svc, req)
	})
}

func syncOne(c *cli.Context, st *state, ctx context.Context, svc service.Service, req service.SyncRequest) error {
	pr := newProgress(c, st)
	s, err := svc.Sync(ctx, req, pr.fn())
	pr.done()
	if err != nil && interruptedBySignal(ctx) {
		return pr.interrupted(err, "snapshots", s.Copied, fmt.Sprintf("the next snapfs sync --region %s resumes, reusing what was shipped "+
			"(until then the region lists the unfinished snapshot as copying; snapfs region unlock %s clears that)", req.Region, req.Region))
	}
	if err != nil {
		// What was shipped is said as on success (stdout, the --json
		// result line with "copied"), the error on its one stderr line:
		// a snapshot left out (its name taken, its disk hydrating) or a
		// failure after some were copied. (It was a second stderr line,
		// "copied before the failure", also when the rest shipped after.)
		if len(s.Copied) > 0 {
			if perr := printSyncResult(c, st, req, s); perr != nil {
				return perr
			}
		}
		return credHint(ctx, svc, err, req.Region, nil)
	}
	return printSyncResult(c, st, req, s)
}

// printSyncResult prints what a sync of req did.
func printSyncResult(c *cli.Context, st *state, req service.SyncRequest, s service.SyncStats) error {
	pruned := ""
	if s.Pruned > 0 {
		pruned = fmt.Sprintf(", %d pruned from the region before (not sent again)", s.Pruned)
	}
	if s.Expired > 0 {
		pruned += fmt.Sprintf(", %d older than the region's retention (not sent)", s.Expired)
	}
	return newPrinter(c, st).result("sync", syncResult{req.Region, s}, "region %s: %d snapshot(s) copied, %d already there%s; %d of %d blocks read, %d pack(s), %s written",
		req.Region, s.Snapshots, s.Skipped, pruned, s.BlocksRead, s.BlocksExamined, s.PacksWritten, size(s.TotalWritten()))
}

// syncResult is the `sync --json` result line: the region and its stats.
type syncResult struct {
	Region string `json:"region"`
	service.SyncStats
}

// syncAll syncs every configured region in turn; a failure is reported and
// the next region still runs; the first failure is returned.
func syncAll(c *cli.Context, st *state, disks []string) error {
	return withService(c, st, func(ctx context.Context, svc service.Service) error {
		rs, err := svc.ListRegions(ctx)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return fmt.Errorf("%w: no region is configured (region add)", replicate.ErrNotFound)
		}
		var first error
		for _, r := range rs {
			if err := syncOne(c, st, ctx, svc, service.SyncRequest{Region: r.Name, Disks: disks}); err != nil {
				if ctx.Err() != nil {
					return err
				}
				fmt.Fprintf(c.App.ErrWriter, "snapfs: region %s: sync failed: %v\n", r.Name, err)
				if first == nil {
					first = err
				}
			}
		}
		return first
	})
}

func restoreCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "build a new local disk from a disk of a snapshot in a region",
		Description: "Reads any k healthy stores of the region and verifies every block. The disk is built under a\n" +
			"temporary name and appears as --to only when complete; a failed restore leaves nothing behind\n" +
			"(a killed one's temporary disk is removed when the daemon or the next command starts).\n" +
			"Without --host, this host's snapshot of that name is restored, or the only one of that name;\n" +
			"when several hosts have one, --host (a host name or id, or \"unknown\") must choose.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "region", Usage: "the region", Required: true},
			&cli.StringFlag{Name: "snapshot", Usage: "the remote snapshot", Required: true},
			&cli.StringFlag{Name: "disk", Usage: "the disk in the snapshot", Required: true},
			&cli.StringFlag{Name: "to", Usage: "the new local disk", Required: true},
			&cli.StringFlag{Name: "host", Usage: "whose snapshot: a host name or id (see region snapshots), or \"unknown\""},
			&cli.BoolFlag{Name: "encrypt", Usage: "make the restored disk encrypted with a new data key wrapped by --key-file " +
				"(required for a disk that was encrypted on its host: the region records that)"},
			keyFileFlag("with --encrypt: the restored disk's key file"),
			insecureKeyFlag,
			&cli.BoolFlag{Name: "lazy", Usage: "make --to usable at once: blocks not local yet are fetched from the region when read, " +
				"the rest hydrates in the background (disk info shows the progress; a daemon resumes it after a restart)"},
			&cli.StringFlag{Name: "rate", Usage: "with --lazy: bound background hydration to this many bytes a second (e.g. 50M; default unbounded)"},
			&cli.BoolFlag{Name: "wait", Usage: "with --lazy: return once every block is local, showing progress as sync does"},
		},
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			req := service.RestoreRequest{Region: c.String("region"), Snapshot: c.String("snapshot"), Disk: c.String("disk"), To: c.String("to"), Host: c.String("host"),
				AllowInsecureKeyFile: c.Bool("allow-insecure-key-file")}
			if c.Bool("encrypt") {
				kf, err := keyFilePath(c, "restore --encrypt")
				if err != nil {
					return err
				}
				req.KeyFile = kf
			} else if keyFileGiven(c) {
				return usagef("restore: --key-file goes with --encrypt")
			}
			if err := lazyRestoreFlags(c, &req); err != nil { // cmd_lazy.go
				return err
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				if req.Lazy {
					return runLazyRestore(c, st, ctx, svc, req) // cmd_lazy.go
				}
				pr := newProgress(c, st)
				s, err := svc.Restore(ctx, req, pr.fn())
				pr.done()
				if err != nil && interruptedBySignal(ctx) {
					return pr.interrupted(err, "disks", nil, fmt.Sprintf("nothing was created (disk %s does not exist); run restore again", req.To))
				}
				if err != nil {
					return credHint(ctx, svc, err, req.Region, nil)
				}
				extra := ""
				if s.Degraded > 0 {
					extra = fmt.Sprintf("; %d pack(s) rebuilt from parity (run region check)", s.Degraded)
				}
				return newPrinter(c, st).result("restore", restored{req, s}, "restored disk %s of snapshot %s from region %s as disk %s: %d blocks, %s read%s",
					req.Disk, req.Snapshot, req.Region, req.To, s.Blocks, size(s.BytesRead), extra)
			})
		},
	}
}

// restored is the `restore --json` result line.
type restored struct {
	service.RestoreRequest
	service.RestoreStats
}

func joinOr(s []string, none string) string {
	if len(s) == 0 {
		return none
	}
	return strings.Join(s, ", ")
}
