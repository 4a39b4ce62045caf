package main

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
)

func indexCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "index",
		Usage: "maintain the store's index (a cache of the segment log)",
		Subcommands: []*cli.Command{
			{
				Name:  "rebuild",
				Usage: "rebuild the whole index, block versions and catalog, from the segment log (store unmounted)",
				Description: "The old index directory is moved aside to index.bad-<time> in the store, never deleted.\n" +
					"Needs the store unmounted: with a daemon running it exits 5.",
				Action: func(c *cli.Context) error {
					if _, err := args(c); err != nil {
						return err
					}
					dir, err := storeDir(c)
					if err != nil {
						return err
					}
					if cl, sst, err := service.Dial(c.Context, dir); err == nil {
						cl.Close()
						return fmt.Errorf("%w: a daemon serves store %s (pid %d, mounted at %s): unmount it first (snapfs umount %s), then run snapfs index rebuild",
							rowstore.ErrBusy, dir, sst.PID, sst.Mountpoint, sst.Mountpoint)
					}
					log, err := logger(c, st.stderr)
					if err != nil {
						return err
					}
					if !c.IsSet("log-level") {
						log = slog.New(slog.NewTextHandler(st.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
					}
					rep, err := rowstore.Rebuild(dir, rowstore.Options{Logger: log})
					if err != nil {
						return err
					}
					moved := "no old index"
					if rep.MovedAside != "" {
						moved = "old index moved to " + rep.MovedAside
					}
					return newPrinter(c, st).result("index-rebuild", rep,
						"index rebuilt from %d segments: %d block records, %d catalog records (%d records of deleted layers skipped, %d segments with corrupt records); %d disks, %d snapshots, %d images, %d layers; %s",
						rep.Segments, rep.Records, rep.CatalogRecords, rep.Skipped, rep.Corrupt, rep.Disks, rep.Snapshots, rep.Images, rep.Layers, moved)
				},
			},
		},
	}
}
