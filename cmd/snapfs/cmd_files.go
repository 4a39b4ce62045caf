package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
)

// diffFilesFlags are the flags snapshot diff takes for --files.
var diffFilesFlags = []cli.Flag{
	&cli.BoolFlag{Name: "files", Usage: "list the files created (+), deleted (-), modified (M) and renamed (R) in the " +
		"filesystem inside the disk, like zfs diff (needs a running daemon); against the disk now, it reads what the " +
		"filesystem has written to the disk: sync a mounted filesystem first"},
	&cli.StringFlag{Name: "part", Usage: "with --files: the partition (p1, p2, ...) of a partitioned disk"},
}

// filesDiffSummary is the last line of `snapshot diff --files --json`.
type filesDiffSummary struct {
	Disk     string `json:"disk"`
	Old      string `json:"old"`
	New      string `json:"new,omitempty"`
	Part     string `json:"part,omitempty"`
	Created  int    `json:"created"`
	Deleted  int    `json:"deleted"`
	Modified int    `json:"modified"`
	Renamed  int    `json:"renamed"`
	OldFiles int    `json:"old_files"`
	NewFiles int    `json:"new_files"`
	// ChangedBytes is the engine's block diff; 0: nothing walked.
	ChangedBytes int64 `json:"changed_bytes"`
	TookMS       int64 `json:"took_ms"`
}

// diffFiles is snapshot diff --files: the service walks both trees (in the
// daemon) and this prints the changes.
func diffFiles(c *cli.Context, st *state, req service.DiffRequest) error {
	freq := service.FilesDiffRequest{Old: req.Old, New: req.New, Disk: req.Disk, Part: c.String("part")}
	return withService(c, st, func(ctx context.Context, svc service.Service) error {
		d, err := svc.DiffFiles(ctx, freq)
		if err != nil {
			return err
		}
		p := newPrinter(c, st)
		sum := filesDiffSummary{Disk: d.Disk, Old: d.Old, New: d.New, Part: d.Part, OldFiles: d.OldFiles, NewFiles: d.NewFiles,
			ChangedBytes: d.ChangedBytes, TookMS: d.Took.Milliseconds()}
		for _, ch := range d.Changes {
			switch ch.Kind {
			case browse.Created:
				sum.Created++
			case browse.Deleted:
				sum.Deleted++
			case browse.Modified:
				sum.Modified++
			case browse.Renamed:
				sum.Renamed++
			}
			if p.json {
				if err := p.object("file_change", ch); err != nil {
					return err
				}
				continue
			}
			var line string
			switch ch.Kind {
			case browse.Created:
				line = "+\t" + ch.Type + "\t" + ch.Path
			case browse.Deleted:
				line = "-\t" + ch.Type + "\t" + ch.Path
			case browse.Modified:
				line = "M\t" + ch.Type + "\t" + ch.Path
			case browse.Renamed:
				line = "R\t" + ch.Type + "\t" + ch.From + " -> " + ch.Path
				if ch.Modified {
					line += " (modified)"
				}
			}
			if _, err := fmt.Fprintln(p.w, line); err != nil {
				return err
			}
		}
		if p.json {
			return p.object("files_diff", sum)
		}
		newer := d.New
		if newer == "" {
			newer = "now"
		}
		_, err = fmt.Fprintf(p.w, "%d created, %d deleted, %d modified, %d renamed in disk %s from %s to %s (%d and %d entries walked in %v)\n",
			sum.Created, sum.Deleted, sum.Modified, sum.Renamed, d.Disk, d.Old, newer, d.OldFiles, d.NewFiles, d.Took.Round(time.Millisecond))
		return err
	})
}

// filesColumn describes what <disk>.files shows, for snapshot info.
func filesColumn(l *browse.Layout) string {
	switch {
	case l == nil:
		return "?"
	case !l.Browsable():
		return "none: " + l.Reason
	case l.Scheme == "whole":
		return l.Parts[0].FSType
	}
	parts := make([]string, 0, len(l.Parts))
	for _, p := range l.Parts {
		parts = append(parts, p.Name+" "+p.FSType)
	}
	return l.Scheme + ": " + strings.Join(parts, ", ")
}
