package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/replicate"
)

func regionCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "region",
		Usage: "configure regions (erasure-coded, encrypted remote copies) and check, repair and prune them",
		Subcommands: []*cli.Command{
			regionAddCommand(st),
			{
				Name:  "list",
				Usage: "list the configured regions",
				Action: func(c *cli.Context) error {
					if _, err := args(c); err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						rs, err := svc.ListRegions(ctx)
						if err != nil {
							return err
						}
						for i := range rs {
							rs[i] = redactRegion(rs[i])
						}
						return list(newPrinter(c, st), "region", rs, []string{"NAME", "DATA", "PARITY", "STORES", "ADDED"}, func(r service.Region) []string {
							return []string{r.Name, strconv.Itoa(r.K), strconv.Itoa(r.M), strconv.Itoa(len(r.Stores)), when(r.Added)}
						})
					})
				},
			},
			{
				Name:      "info",
				Usage:     "describe a region's configuration",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						r, err := svc.GetRegion(ctx, a[0])
						if err != nil {
							return err
						}
						return printRegion(newPrinter(c, st), redactRegion(r), "")
					})
				},
			},
			{
				Name:      "remove",
				Usage:     "forget a region on this host (its configuration and cache; remote data is kept)",
				ArgsUsage: "NAME",
				Description: "Refused (exit 5) while a disk restored with restore --lazy still reads blocks from the region:\n" +
					"wait until it is whole (disk info), or delete it.",
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						if err := svc.RemoveRegion(ctx, a[0]); err != nil {
							return err
						}
						return newPrinter(c, st).result("deleted", deleted{"region", a[0]}, "removed region %s from this host (remote data kept)", a[0])
					})
				},
			},
			{
				Name:      "snapshots",
				Usage:     "list the region's snapshots with their state (copying, available, degraded; lost: its manifest unreadable on every store, named by its id)",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						rs, err := svc.RemoteSnapshots(ctx, a[0])
						if err != nil {
							return err
						}
						// Hosts that share a name (machines cloned with the same
						// host name) are told apart by their id, as restore
						// --host needs it.
						ids := map[string]map[string]bool{}
						for _, s := range rs {
							if ids[s.Host] == nil {
								ids[s.Host] = map[string]bool{}
							}
							ids[s.Host][s.HostID] = true
						}
						return list(newPrinter(c, st), "remote_snapshot", rs, []string{"NAME", "HOST", "CREATED", "KIND", "STATE", "DISKS"}, func(s service.RemoteSnapshot) []string {
							var ds []string
							for _, d := range s.Disks {
								ds = append(ds, d.Name)
							}
							host := s.Host
							if len(ids[s.Host]) > 1 {
								host += " (" + s.HostID + ")"
							}
							if s.Mine {
								host += " (this host)"
							}
							return []string{s.Name, host, when(s.Created), dash(s.Kind), heldState(s), joinOr(ds, "-")}
						})
					})
				},
			},
			{
				Name:      "check",
				Usage:     "verify that every store holds every object it should (exit 12 when anything is missing or corrupt)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "read-data", Usage: "also read every shard and verify its checksum"}},
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						pr := newProgress(c, st)
						rep, err := svc.CheckRegion(ctx, a[0], c.Bool("read-data"), pr.fn())
						pr.done()
						if err != nil {
							return credHint(ctx, svc, err, a[0], nil)
						}
						if err := printCheck(newPrinter(c, st), a[0], rep); err != nil {
							return err
						}
						return checkVerdict(a[0], rep)
					})
				},
			},
			{
				Name:      "repair",
				Usage:     "rebuild missing or corrupt shards and metadata from the other stores, lost pack indexes from their packs (exit 12 if some remain, 11 if only unreachable stores are left)",
				ArgsUsage: "NAME",
				Description: "A store without the region's marker (an unmounted file system, an emptied bucket) is never\n" +
					"written to; when it is a new, empty store replacing a lost one, name it with --new-store SHARD.",
				Flags: []cli.Flag{&cli.IntSliceFlag{Name: "new-store", Usage: "shard index of an empty store that replaces a lost one (repeat for several)"}},
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						pr := newProgress(c, st)
						rep, err := svc.RepairRegionWith(ctx, service.RepairRequest{Region: a[0], NewStores: c.IntSlice("new-store")}, pr.fn())
						pr.done()
						if err != nil {
							return credHint(ctx, svc, err, a[0], nil)
						}
						p := newPrinter(c, st)
						if p.json {
							if err := p.object("repair", rep); err != nil {
								return err
							}
						} else {
							for _, f := range rep.Failed {
								fmt.Fprintf(p.w, "not repaired: store %d %s (%s): %s\n", f.Store, f.Object, f.Kind, f.Err)
							}
							if len(rep.IndexesRebuilt) > 0 {
								fmt.Fprintf(p.w, "region %s: %d pack index(es) rebuilt from their packs' own tables: %s\n", a[0], len(rep.IndexesRebuilt), strings.Join(rep.IndexesRebuilt, ", "))
							}
							fmt.Fprintf(p.w, "region %s: %d problem(s) found, %d repaired, %d not repaired\n", a[0], len(rep.Before.Problems), len(rep.Repaired), len(rep.Failed))
						}
						if err := repairVerdict(a[0], rep); err != nil {
							return err
						}
						if rep.OrphansDeleted+rep.IndexesDeleted+rep.MarkersDeleted+rep.DeadPacksDeleted > 0 && !p.json {
							fmt.Fprintf(p.w, "region %s: garbage removed: %d unindexed pack(s), %d orphaned index(es), %d copying marker(s) of dead syncs, %d unreadable pack(s) no snapshot needs\n", a[0], rep.OrphansDeleted, rep.IndexesDeleted, rep.MarkersDeleted, rep.DeadPacksDeleted)
						}
						return nil
					})
				},
			},
			{
				Name:      "prune",
				Usage:     "remove remote snapshots beyond a retention, and the packs nothing needs any more",
				ArgsUsage: "NAME",
				Description: "Retention applies per host and per disk set: --keep-last N keeps the N newest snapshots of each.\n" +
					"Without --keep-last and --keep-within the region's own retention applies (region retention).\n" +
					"By default only this host's snapshots are pruned; --host chooses others (a dead host's), --all-hosts\n" +
					"every host's (still counted per host). A pruned snapshot is never sent again by its host's sync.\n" +
					"Prune takes the region's exclusive lock: it waits for no one and fails with exit 15 while another\n" +
					"operation holds the region. It needs every store of the region: with one away it changes nothing and\n" +
					"exits 11 naming it (bring it back, or replace it first with region repair --new-store).\n" +
					"--dry-run prints what prune would remove (snapshots, rewrites, packs, bytes per store) and changes\n" +
					"nothing; it decides by the same plan as the real prune and takes only a shared lock.",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "keep-last", Usage: "keep the N newest remote snapshots of each host and disk"},
					&cli.DurationFlag{Name: "keep-within", Usage: "keep remote snapshots younger than this (e.g. 168h)"},
					&cli.StringSliceFlag{Name: "host", Usage: "prune this host's snapshots (name or id, or \"unknown\"; repeat for several) instead of this host's"},
					&cli.BoolFlag{Name: "all-hosts", Usage: "prune every host's snapshots"},
					&cli.BoolFlag{Name: "dry-run", Usage: "print what prune would remove and change nothing"},
				},
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					req := service.PruneRequest{Region: a[0], KeepLast: c.Int("keep-last"), KeepWithin: c.Duration("keep-within"), Hosts: c.StringSlice("host"), AllHosts: c.Bool("all-hosts"), DryRun: c.Bool("dry-run")}
					if req.AllHosts && len(req.Hosts) > 0 {
						return usagef("region prune: --host and --all-hosts exclude each other")
					}
					if req.KeepLast < 0 || req.KeepWithin < 0 {
						return usagef("region prune: --keep-last and --keep-within must not be negative")
					}
					if c.IsSet("keep-last") && req.KeepLast == 0 || c.IsSet("keep-within") && req.KeepWithin == 0 {
						// Zero would be taken as "not given" (the region's
						// retention, or none): say so rather than prune by
						// another rule than the one asked for.
						return usagef("region prune: --keep-last 0 and --keep-within 0 would keep no snapshot, which prune never does: give --keep-last 1 or more, or a --keep-within duration")
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						s, err := svc.PruneRegion(ctx, req)
						if err != nil {
							return credHint(ctx, svc, err, req.Region, nil)
						}
						if s.DryRun {
							return newPrinter(c, st).result("prune", s, "region %s (dry run, nothing changed): would remove %d snapshot(s) (%s), rewrite %d as full (%s), remove %d pack(s), %d unindexed pack(s), %d orphaned index(es), %d copying marker(s); would free %s (%s)%s",
								a[0], len(s.Deleted), joinOr(s.Deleted, "none"), len(s.Rewritten), joinOr(s.Rewritten, "none"), s.PacksDeleted, s.OrphansDeleted, s.IndexesDeleted, s.MarkersDeleted, size(s.BytesFreed), perStore(s.BytesPerStore), heldNote(s.Held))
						}
						return newPrinter(c, st).result("prune", s, "region %s: removed %d snapshot(s) (%s), %d pack(s), %d unindexed pack(s), %d orphaned index(es), %d copying marker(s); %s freed%s",
							a[0], len(s.Deleted), joinOr(s.Deleted, "none"), s.PacksDeleted, s.OrphansDeleted, s.IndexesDeleted, s.MarkersDeleted, size(s.BytesFreed), heldNote(s.Held))
					})
				},
			},
			regionUnlockCommand(st),
			regionReleaseCommand(st),
			regionRetentionCommand(st),
		},
	}
}

func regionUnlockCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:      "unlock",
		Usage:     "remove the region's stale locks (of dead or cut-off operations) and the copying markers of dead syncs",
		ArgsUsage: "NAME",
		Description: "A lock not refreshed for 30 minutes, or held by a process of this host that no longer runs, is\n" +
			"stale: it blocks nobody, and unlock removes it. --force removes every lock, also live ones: use it only\n" +
			"when their holders are known to be gone (an operation whose lock is removed fails with exit 14).",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "force", Usage: "remove every lock, also those that look alive"}},
		Action: func(c *cli.Context) error {
			a, err := args(c, "NAME")
			if err != nil {
				return err
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				s, err := svc.UnlockRegion(ctx, service.UnlockRequest{Region: a[0], Force: c.Bool("force")})
				if err != nil {
					return err
				}
				var ls []string
				for _, l := range s.Locks {
					if l.Unreadable {
						ls = append(ls, "unreadable lock "+l.ID)
						continue
					}
					ls = append(ls, fmt.Sprintf("%s of host %s (pid %d)", l.Op, l.HostName, l.PID))
				}
				// The live locks kept: whose, and where a dead holder's lock
				// can be removed (on its own host) or how long it blocks.
				var kept []string
				for _, l := range s.Kept {
					if l.Unreadable {
						kept = append(kept, "unreadable lock "+l.ID)
						continue
					}
					kind := "shared"
					if l.Exclusive {
						kind = "exclusive"
					}
					kept = append(kept, fmt.Sprintf("%s lock of %s on host %s (pid %d, refreshed %s ago)", kind, l.Op, l.HostName, l.PID, l.Age.Round(time.Second)))
				}
				keptMsg := ""
				if len(kept) > 0 {
					keptMsg = fmt.Sprintf("; kept %d live lock(s): %s; %s", len(kept), strings.Join(kept, "; "), s.Hint)
				}
				return newPrinter(c, st).result("unlock", s, "region %s: removed %d lock(s) (%s) and %d copying marker(s) (%s)%s",
					a[0], len(s.Locks), joinOr(ls, "none"), len(s.Markers), joinOr(s.Markers, "none"), keptMsg)
			})
		},
	}
}

// checkVerdict is region check's exit: 11 when stores are unreachable and
// some snapshot cannot be read now (nothing is known lost), 12 when copies
// are missing or corrupt or snapshots are lost.
func checkVerdict(region string, rep service.CheckReport) error {
	if rep.OK() && len(rep.Unreachable) == 0 {
		return nil
	}
	if len(rep.Lost) == 0 && len(rep.Degraded) == 0 && onlyUnreachable(rep) {
		var parts []string
		if len(rep.Unreachable) > 0 {
			parts = append(parts, fmt.Sprintf("store(s) %v unreachable; %d snapshot(s) cannot be read until they are back (nothing is known lost)", rep.Unreachable, len(rep.Unavailable)))
		}
		if len(rep.Unwritable) > 0 {
			parts = append(parts, fmt.Sprintf("store(s) %v refuse writes (read-only? full?): restores read them, but sync, prune and repair fail until they take writes", rep.Unwritable))
		}
		return fmt.Errorf("%w: region %s: %s", replicate.ErrUnavailable, region, strings.Join(parts, "; "))
	}
	if len(rep.Lost) > 0 && len(rep.Degraded) == 0 {
		return fmt.Errorf("%w: region %s: %d problem(s); %d snapshot(s) lost (repair cannot bring them back: %s), %d unavailable; snapfs region repair %s still rebuilds other missing copies",
			exitcode.ErrDegraded, region, len(rep.Problems), len(rep.Lost), strings.Join(rep.Lost, ", "), len(rep.Unavailable), region)
	}
	return fmt.Errorf("%w: region %s: %d problem(s); %d snapshot(s) lost, %d degraded, %d unavailable; run snapfs region repair %s",
		exitcode.ErrDegraded, region, len(rep.Problems), len(rep.Lost), len(rep.Degraded), len(rep.Unavailable), region)
}

// repairVerdict is region repair's exit: 11 when all it could not repair
// is unreachable stores (as region check says of them: bring them back,
// then repair again), 12 when copies on reachable stores remain bad.
func repairVerdict(region string, rep service.RepairReport) error {
	if len(rep.Failed) == 0 {
		return nil
	}
	var stores []int
	for _, f := range rep.Failed {
		if f.Kind != replicate.ProblemUnreachable {
			return fmt.Errorf("%w: region %s: %d copies could not be repaired%s", exitcode.ErrDegraded, region, len(rep.Failed), newStoreHint(region, rep.Failed))
		}
		stores = append(stores, f.Store)
	}
	return fmt.Errorf("%w: region %s: store(s) %v unreachable: repaired what the others lacked; run snapfs region repair %s again once they are back%s",
		replicate.ErrUnavailable, region, stores, region, newStoreHint(region, rep.Failed))
}

// onlyUnreachable: every problem is an unreachable or unwritable store.
func onlyUnreachable(rep service.CheckReport) bool {
	for _, p := range rep.Problems {
		if p.Kind != replicate.ProblemUnreachable && p.Kind != replicate.ProblemUnwritable {
			return false
		}
	}
	return true
}

func regionAddCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "configure a region of K data and M parity stores; attach to it when the stores already hold it",
		ArgsUsage: "NAME",
		Description: "Every store must be reachable and writable. Stores are file:///abs/path or s3://bucket/prefix;\n" +
			"S3 credentials come from s3://KEY:SECRET@bucket/prefix or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY\n" +
			"(the environment of the process that runs the command: the daemon's when one serves the store).\n" +
			"The key file holds 32 raw bytes or 64 hex digits; every host of the region needs the same key.\n" +
			"Note: --store here is a region store; put the global --store DIR before the command (or use SNAPFS_STORE).",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "data", Usage: "K, the number of data shards", Required: true},
			&cli.IntFlag{Name: "parity", Usage: "M, the number of parity shards (at least 1)", Required: true},
			&cli.StringSliceFlag{Name: "store", Usage: "a store URL, in shard order (repeat K+M times)", Required: true},
			&cli.StringFlag{Name: "key-file", Usage: "the region key file", Required: true},
			&cli.StringFlag{Name: "s3-endpoint", Usage: "S3 endpoint (host:port or URL; default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, AWS)"},
			&cli.StringFlag{Name: "s3-region", Usage: "S3 region (default $AWS_REGION, $AWS_DEFAULT_REGION, us-east-1)"},
			&cli.BoolFlag{Name: "s3-path-style", Usage: "path-style bucket addressing (MinIO, Ceph RGW, SeaweedFS, versitygw)"},
			&cli.BoolFlag{Name: "s3-insecure", Usage: "plain HTTP to the S3 endpoint"},
			&cli.BoolFlag{Name: "allow-insecure-key-file", Usage: "accept a key file that group or others may read (refused by default; kept in the region's configuration)"},
			&cli.BoolFlag{Name: "create", Usage: "make file:// store directories that do not exist (else they must: an unmounted file system is never written to)"},
			&cli.IntFlag{Name: "keep-last", Usage: "the region's retention: keep the N newest snapshots of each disk set (see region retention)"},
			&cli.DurationFlag{Name: "keep-within", Usage: "the region's retention: keep snapshots younger than this (e.g. 720h)"},
		},
		Action: func(c *cli.Context) error {
			a, err := args(c, "NAME")
			if err != nil {
				return err
			}
			key, err := filepath.Abs(c.String("key-file"))
			if err != nil {
				return usagef("--key-file: %v", err)
			}
			if err := checkKeyFile(key); err != nil {
				return err
			}
			req := service.AddRegionRequest{
				Name: a[0], K: c.Int("data"), M: c.Int("parity"), Stores: c.StringSlice("store"), KeyFile: key, InsecureKeyFile: c.Bool("allow-insecure-key-file"),
				S3:        replicate.S3Options{Endpoint: c.String("s3-endpoint"), Region: c.String("s3-region"), PathStyle: c.Bool("s3-path-style"), Insecure: c.Bool("s3-insecure")},
				Retention: replicate.Retention{KeepLast: c.Int("keep-last"), KeepWithin: c.Duration("keep-within")},
				Create:    c.Bool("create"),
			}
			if req.Retention.KeepLast < 0 || req.Retention.KeepWithin < 0 {
				return usagef("region add: --keep-last and --keep-within must not be negative")
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				r, err := svc.AddRegion(ctx, req)
				if err != nil {
					return credHint(ctx, svc, err, "", req.Stores)
				}
				r.RegionConfig = redactRegion(r.RegionConfig)
				verb := "created"
				if r.Attached {
					verb = "attached"
				}
				p := newPrinter(c, st)
				if p.json {
					return p.object("region", r)
				}
				return printRegion(p, r.RegionConfig, fmt.Sprintf("%s region %s (%d+%d over %d stores)", verb, r.Name, r.K, r.M, len(r.Stores)))
			})
		},
	}
}

// redactRegion hides the secret of credentials in store URLs.
func redactRegion(r service.Region) service.Region {
	out := r
	out.Stores = make([]string, len(r.Stores))
	for i, s := range r.Stores {
		out.Stores[i] = s
		if u, err := url.Parse(s); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
				out.Stores[i] = u.String()
			}
		}
	}
	return out
}

func printRegion(p *printer, r service.Region, head string) error {
	if p.json {
		return p.object("region", r)
	}
	if head != "" {
		fmt.Fprintln(p.w, head)
	}
	kv := []string{"name", r.Name, "data", strconv.Itoa(r.K), "parity", strconv.Itoa(r.M), "key file", r.KeyFile, "region id", r.RegionID, "added", when(r.Added)}
	if r.S3 != (replicate.S3Options{}) {
		kv = append(kv, "s3 endpoint", dash(r.S3.Endpoint), "s3 region", dash(r.S3.Region),
			"s3 path style", strconv.FormatBool(r.S3.PathStyle), "s3 insecure", strconv.FormatBool(r.S3.Insecure))
	}
	ret := "none (prune needs --keep-last or --keep-within)"
	if !r.Retention.IsZero() {
		ret = retentionText(r.Retention)
	}
	kv = append(kv, "retention", ret)
	if err := p.fields(kv...); err != nil {
		return err
	}
	rows := make([][]string, 0, len(r.Stores))
	for i, s := range r.Stores {
		kind := "data"
		if i >= r.K {
			kind = "parity"
		}
		rows = append(rows, []string{strconv.Itoa(i), kind, s})
	}
	fmt.Fprintln(p.w)
	return p.table([]string{"SHARD", "KIND", "STORE"}, rows)
}

func printCheck(p *printer, region string, rep service.CheckReport) error {
	if p.json {
		return p.object("check", rep)
	}
	if len(rep.Problems) > 0 {
		rows := make([][]string, 0, len(rep.Problems))
		for _, pr := range rep.Problems {
			rows = append(rows, []string{strconv.Itoa(pr.Store), pr.Object, pr.Kind, dash(pr.Err)})
		}
		if err := p.table([]string{"STORE", "OBJECT", "PROBLEM", "DETAIL"}, rows); err != nil {
			return err
		}
	}
	how := "headers"
	if rep.DataRead {
		how = "data"
	}
	state := "OK"
	if !rep.OK() {
		state = "PROBLEMS"
	}
	if len(rep.Unwritable) > 0 {
		state = "UNWRITABLE STORES"
	}
	if len(rep.Unreachable) > 0 {
		state = "UNREACHABLE STORES"
	}
	if _, err := fmt.Fprintf(p.w, "region %s: %s: %d stores, %d packs, %d manifests, %d shards checked (%s); %d problem(s)\n",
		region, state, rep.Stores, rep.Packs, rep.Manifests, rep.ShardsChecked, how, len(rep.Problems)); err != nil {
		return err
	}
	fmt.Fprintf(p.w, "snapshots lost (cannot be restored): %s\n", joinOr(rep.Lost, "none"))
	fmt.Fprintf(p.w, "snapshots degraded (restorable, run repair): %s\n", joinOr(rep.Degraded, "none"))
	if len(rep.Unavailable) > 0 {
		fmt.Fprintf(p.w, "snapshots unavailable until unreachable stores are back: %s\n", joinOr(rep.Unavailable, "none"))
	}
	if len(rep.RebuildableIndexes) > 0 {
		fmt.Fprintf(p.w, "pack indexes lost (repair rebuilds them from their packs): %s\n", strings.Join(rep.RebuildableIndexes, ", "))
	}
	if n := len(rep.Unindexed) + len(rep.OrphanIndexes) + len(rep.DeadPacks); n > 0 {
		fmt.Fprintf(p.w, "garbage (removed by prune or repair): %d unindexed pack(s), %d orphaned index(es), %d unreadable pack(s) no snapshot needs\n", len(rep.Unindexed), len(rep.OrphanIndexes), len(rep.DeadPacks))
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func regionRetentionCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:      "retention",
		Usage:     "set the region's own retention of this host's snapshots (applied by region prune and the sync job)",
		ArgsUsage: "NAME",
		Description: "With a retention set, `region prune NAME` needs no options, and sync copies no snapshot that the\n" +
			"retention would remove at once (a host with more local snapshots than the region keeps ships only the\n" +
			"newest). A snapshot prune removed is never shipped again by this host's sync. --clear removes it.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "keep-last", Usage: "keep the N newest snapshots of each disk set"},
			&cli.DurationFlag{Name: "keep-within", Usage: "keep snapshots younger than this (e.g. 720h)"},
			&cli.BoolFlag{Name: "clear", Usage: "remove the retention"},
		},
		Action: func(c *cli.Context) error {
			a, err := args(c, "NAME")
			if err != nil {
				return err
			}
			req := service.RetentionRequest{Region: a[0], Retention: replicate.Retention{KeepLast: c.Int("keep-last"), KeepWithin: c.Duration("keep-within")}}
			if req.KeepLast < 0 || req.KeepWithin < 0 {
				return usagef("region retention: --keep-last and --keep-within must not be negative")
			}
			if req.Retention.IsZero() != c.Bool("clear") {
				return usagef("region retention: give --keep-last and/or --keep-within, or --clear")
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				r, err := svc.SetRegionRetention(ctx, req)
				if err != nil {
					return err
				}
				msg := "region %s: retention cleared"
				if !r.Retention.IsZero() {
					msg = "region %s: retention " + retentionText(r.Retention)
				}
				return newPrinter(c, st).result("region", redactRegion(r), msg, a[0])
			})
		},
	}
}

func retentionText(r replicate.Retention) string {
	var parts []string
	if r.KeepLast > 0 {
		parts = append(parts, fmt.Sprintf("keep the last %d", r.KeepLast))
	}
	if r.KeepWithin > 0 {
		parts = append(parts, fmt.Sprintf("keep those younger than %s", r.KeepWithin))
	}
	return strings.Join(parts, ", or ")
}

// credHint adds to a failure to reach a store where the credentials must
// be set when the command ran through a daemon: the daemon opens the
// stores with its own environment, not the command's.
//
// Stores whose URLs carry their credentials (s3://KEY:SECRET@bucket/p) do
// not use the environment: when every S3 store of the region (region, or
// the URLs urls of a region being added) does, a credentials failure says
// the URL's were refused instead (it said to set the daemon's environment
// "or put them in the store URL", where they were).
func credHint(ctx context.Context, svc service.Service, err error, region string, urls []string) error {
	if err == nil || !errors.Is(err, replicate.ErrUnavailable) {
		return err
	}
	msg := strings.ToLower(err.Error())
	cred := strings.Contains(msg, "access denied") || strings.Contains(msg, "credential") || strings.Contains(msg, "accesskey") ||
		strings.Contains(msg, "signature") || strings.Contains(msg, "forbidden")
	if urls == nil && region != "" {
		if r, gerr := svc.GetRegion(ctx, region); gerr == nil {
			urls = r.Stores
		}
	}
	if len(urls) > 0 && !slices.ContainsFunc(urls, func(u string) bool {
		p, err := url.Parse(u)
		return p != nil && err == nil && p.Scheme == "s3" && p.User == nil
	}) {
		if cred && strings.Contains(msg, "s3://") {
			return fmt.Errorf("%w (the credentials in the S3 store URL were refused: check its key and secret)", err)
		}
		return err
	}
	if _, ok := svc.(*service.Client); !ok {
		return err
	}
	// Keys in the command's environment matter only for an S3 store's
	// failure (a full or read-only file:// store is just that).
	if !cred && (os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_SECRET_ACCESS_KEY") == "" || !strings.Contains(msg, "s3://")) {
		return err
	}
	if strings.Contains(msg, "daemon's environment") { // the store's own hint already says it (replicate/store/s3.go)
		return err
	}
	return fmt.Errorf("%w (the daemon serving this store opened the stores with its own environment: S3 credentials set for this command are not used; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the daemon's environment, e.g. Environment= in its unit, and restart it, or put them in the store URL)", err)
}

// printRegionUsage adds to `usage` the bytes each store of each region
// holds (issue 9): a table, or "region_usage" JSON lines (one per store).
func printRegionUsage(ctx context.Context, c *cli.Context, p *printer, svc service.Service) error {
	if c.Bool("no-regions") {
		return nil
	}
	rus, err := svc.RegionUsage(ctx)
	if err != nil {
		return err
	}
	if len(rus) == 0 {
		return nil
	}
	var rows [][]string
	for _, ru := range rus {
		var total int64
		for _, s := range ru.Stores {
			if p.json {
				if err := p.object("region_usage", struct {
					Region string `json:"region"`
					replicate.StoreUsage
				}{ru.Region, s}); err != nil {
					return err
				}
				continue
			}
			b := size(s.Bytes)
			if s.Error != "" {
				b = "unreachable: " + s.Error
			}
			total += s.Bytes
			rows = append(rows, []string{ru.Region, strconv.Itoa(s.Store), redactURL(s.URL), strconv.FormatInt(s.Objects, 10), b})
		}
		if !p.json {
			rows = append(rows, []string{ru.Region, "all", "", "", size(total)})
		}
	}
	if p.json {
		return nil
	}
	fmt.Fprintln(p.w)
	return p.table([]string{"REGION", "STORE", "URL", "OBJECTS", "BYTES"}, rows)
}

func redactURL(s string) string {
	return redactRegion(service.Region{Stores: []string{s}}).Stores[0]
}

// newStoreHint tells, for stores repair passed over because they hold no
// region marker (an empty directory or bucket: perhaps the new store that
// replaces a lost one), how to adopt them. Repair never writes to such a
// store by itself; the message said only "nothing is written there".
func newStoreHint(region string, failed []replicate.Problem) string {
	var flags []string
	for _, f := range failed {
		if f.Object == "*" && strings.Contains(f.Err, "no region marker") {
			flags = append(flags, fmt.Sprintf("--new-store %d", f.Store))
		}
	}
	if len(flags) == 0 {
		return ""
	}
	return fmt.Sprintf("; if a store without the region's marker is a new, empty store that replaces a lost one (not a file system that is not mounted): snapfs region repair %s %s", region, strings.Join(flags, " "))
}

// perStore is prune's bytes per store: "store 0: 3.0 MiB, store 1: ...".
func perStore(b []int64) string {
	if len(b) == 0 {
		return "nothing on any store"
	}
	parts := make([]string, len(b))
	for i, n := range b {
		parts[i] = fmt.Sprintf("store %d: %s", i, size(n))
	}
	return strings.Join(parts, ", ")
}
