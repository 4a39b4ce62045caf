package main

import (
	"fmt"
	"log/slog"
	"strings"

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
				Description: "The old index directory is moved aside to index.bad-<time> in the store and kept as a safety copy\n" +
					"(the output names it; remove it once snapfs check is clean). A corrupt record in the log never makes the\n" +
					"rebuild drop the records after it: a damaged block whose record header is intact is indexed so that reads of\n" +
					"it fail and check --read-data names it; a record that cannot be attributed is listed. Exits 6 when the log\n" +
					"held corrupt records (the index is rebuilt, the data not whole). Only a bad tail with nothing valid after it is\n" +
					"cut, as after a crash, and listed. Needs the store unmounted: with a daemon running it exits 5.",
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
						// The report says every corrupt record, cut tail and
						// unattributed range the engine logs: stderr keeps
						// one line (the error), --log-level shows the records.
						log = slog.New(slog.DiscardHandler)
					}
					rep, err := rowstore.Rebuild(dir, rowstore.Options{Logger: log})
					if err != nil {
						return err
					}
					return printRebuild(newPrinter(c, st), rep)
				},
			},
		},
	}
}

// printRebuild prints what index rebuild found, and returns an error
// wrapping ErrCorrupt (exit 6) when the log held corrupt records.
func printRebuild(p *printer, rep rowstore.RebuildReport) error {
	var b strings.Builder
	fmt.Fprintf(&b, "index rebuilt from %d segments: %d block records, %d catalog records (%d records of deleted layers skipped, %d segments with corrupt records); %d disks, %d snapshots, %d images, %d layers",
		rep.Segments, rep.Records, rep.CatalogRecords, rep.Skipped, rep.Corrupt, rep.Disks, rep.Snapshots, rep.Images, rep.Layers)
	if rep.CorruptBlocks > 0 {
		fmt.Fprintf(&b, "\n%d corrupt block record(s) indexed: reads of those blocks fail with an I/O error; snapfs check --read-data names their disks and snapshots", rep.CorruptBlocks)
	}
	if rep.CorruptSuperseded > 0 {
		fmt.Fprintf(&b, "\n%d corrupt block record(s) of versions nothing reads any more (a newer version exists)", rep.CorruptSuperseded)
	}
	for _, u := range rep.Unattributed {
		fmt.Fprintf(&b, "\nnot recovered: segment %d offset %d, %d bytes: %s", u.Segment, u.Offset, u.Bytes, u.Why)
	}
	for _, t := range rep.TornTails {
		fmt.Fprintf(&b, "\ncut: segment %d offset %d, %d bytes (%s): a torn write if the store crashed, else lost data", t.Segment, t.Offset, t.Bytes, t.Why)
	}
	if rep.MovedAside != "" {
		fmt.Fprintf(&b, "\nold index kept as a safety copy at %s: remove it (rm -r %s) once snapfs check is clean", rep.MovedAside, rep.MovedAside)
	} else {
		b.WriteString("\nno old index")
	}
	if err := p.result("index-rebuild", rep, "%s", b.String()); err != nil {
		return err
	}
	if !rep.Whole() {
		return fmt.Errorf("%w: the log holds corrupt records (%d segment(s)); the index was rebuilt, but the data is not whole: run snapfs check --read-data", rowstore.ErrCorrupt, rep.Corrupt)
	}
	return nil
}
