package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
)

// restore --lazy: flags, the result line, and hydration in disk info.

func lazyRestoreFlags(c *cli.Context, req *service.RestoreRequest) error {
	req.Lazy, req.Wait = c.Bool("lazy"), c.Bool("wait")
	if !req.Lazy && (c.IsSet("rate") || req.Wait) {
		return usagef("restore: --rate and --wait go with --lazy")
	}
	if req.Lazy && req.KeyFile != "" {
		return usagef("restore: --lazy into an encrypted disk (--encrypt) is not supported yet")
	}
	if c.IsSet("rate") {
		r, err := parseSize("--rate", strings.TrimSuffix(strings.TrimSpace(c.String("rate")), "/s"))
		if err != nil {
			return err
		}
		if r == 0 {
			return usagef("restore: --rate 0: leave it out for no bound")
		}
		req.Rate = r
	}
	return nil
}

func runLazyRestore(c *cli.Context, st *state, ctx context.Context, svc service.Service, req service.RestoreRequest) error {
	var pr *progress
	var fn service.Progress
	if req.Wait {
		pr = newProgress(c, st)
		fn = pr.fn()
	}
	s, err := svc.Restore(ctx, req, fn)
	if pr != nil {
		pr.done()
	}
	if err != nil && req.Wait && interruptedBySignal(ctx) {
		return pr.interrupted(err, "disks", nil, fmt.Sprintf("disk %s exists and keeps hydrating while a daemon runs (disk info %s)", req.To, req.To))
	}
	if err != nil {
		return credHint(ctx, svc, err, req.Region, nil)
	}
	if s.Hydrated {
		return newPrinter(c, st).result("restore", restored{req, s}, "restored disk %s of snapshot %s from region %s as disk %s (lazily): %d blocks, all local, %s fetched",
			req.Disk, req.Snapshot, req.Region, req.To, s.BlocksTotal, size(s.BytesRead))
	}
	if !servedByDaemon(svc) {
		// The command made the disk itself: nothing reads or hydrates it
		// until a daemon serves the store (it attaches the disk at start).
		return newPrinter(c, st).result("restore", restored{req, s}, "created disk %s (disk %s of snapshot %s in region %s, lazily, %d of %d blocks local); no daemon serves this store: "+
			"the disk can be read, and hydrates%s, once snapfs mount runs (disk info %s shows the progress)",
			req.To, req.Disk, req.Snapshot, req.Region, s.Blocks, s.BlocksTotal, rateNote(req.Rate), req.To)
	}
	local := fmt.Sprintf("%d of %d blocks local, the rest", s.Blocks, s.BlocksTotal)
	if s.BlocksTotal == 0 { // not counted yet (a daemon before the count was returned)
		local = "it"
	}
	return newPrinter(c, st).result("restore", restored{req, s}, "disk %s is usable now (disk %s of snapshot %s in region %s); %s hydrates in the background%s (disk info %s shows the progress)",
		req.To, req.Disk, req.Snapshot, req.Region, local, rateNote(req.Rate), req.To)
}

func rateNote(r int64) string {
	if r <= 0 {
		return ""
	}
	return " at most " + size(r) + "/s"
}

// servedByDaemon reports whether svc is a running daemon's (the command is
// its client) rather than the store opened by the command itself.
func servedByDaemon(svc service.Service) bool {
	_, ok := svc.(*service.Client)
	return ok
}

// hydration is a disk's hydration state in disk info ("-": all local), as
// a daemon serving the store reports it.
func hydration(h *rowstore.LazyStatus) string { return hydrationState(h, true) }

// hydrationState is hydration; daemon false says no daemon serves the
// store: then a lazy disk is neither attached nor hydrating because no
// process serves it, not because its region is away, and it says so.
func hydrationState(h *rowstore.LazyStatus, daemon bool) string {
	if h == nil {
		return "-"
	}
	var s string
	if h.Total == 0 && !h.Attached && !daemon {
		s = fmt.Sprintf("blocks local not known yet (counted when a daemon attaches the disk) from region %s snapshot %s/%s, %s fetched",
			h.Origin.Region, h.Origin.Snapshot, h.Origin.Disk, size(h.BytesFetched))
	} else if h.Total == 0 && !h.Attached {
		// Nothing is known of what is missing until the source attaches:
		// "0 of 0 (100%)" would read as "nothing left to fetch".
		s = fmt.Sprintf("blocks local not known yet (the region's disk is not attached) from region %s snapshot %s/%s, %s fetched",
			h.Origin.Region, h.Origin.Snapshot, h.Origin.Disk, size(h.BytesFetched))
	} else {
		pct := 100.0
		if h.Total > 0 {
			pct = 100 * float64(h.Local) / float64(h.Total)
		}
		s = fmt.Sprintf("%d of %d blocks local (%.1f%%) from region %s snapshot %s/%s, %s fetched",
			h.Local, h.Total, pct, h.Origin.Region, h.Origin.Snapshot, h.Origin.Disk, size(h.BytesFetched))
	}
	switch {
	case !daemon && !h.Running:
		s += "; not hydrating: no daemon serves this store (snapfs mount starts it; reads need the mount)"
	case !h.Attached:
		s += "; waiting for the region (reads of missing blocks fail)"
	case !h.Running:
		s += "; not hydrating (no daemon, or no disk uses it)"
	case h.Rate > 0:
		s += fmt.Sprintf(", %s/s, ETA %s", size(int64(h.Rate)), h.ETA.Round(time.Second))
	}
	if h.RateLimit > 0 {
		s += ", bound " + size(h.RateLimit) + "/s"
	}
	if h.LastError != "" {
		s += "; last error: " + h.LastError
	}
	return s
}
