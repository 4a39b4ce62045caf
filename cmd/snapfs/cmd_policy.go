package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore/policy"
)

func policyCommand(st *state) *cli.Command {
	return &cli.Command{
		Name:  "policy",
		Usage: "automatic snapshot policies: when to take snapshots, how long to keep them, where to copy them",
		Description: "The daemon (snapfs mount) runs the policies: it takes due snapshots, named POLICY-DISK-YYYYMMDD-HHMM (UTC)\n" +
			"and marked automatic, deletes the automatic snapshots the retention drops (never manual ones), and copies\n" +
			"new ones to --copy-to, where --copy-retain-* applies. After downtime it takes one catch-up snapshot, not a\n" +
			"burst. A failed run is retried (1 min, doubling, at most 1 h), logged, and shown by policy info and\n" +
			"snapshot list. Quotas: 1,000 automatic snapshots per disk by default; over it a policy deletes its\n" +
			"oldest automatic snapshot first.",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a policy (optionally applied to disks at once)",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "at", Usage: "time of day HH:MM (repeat, or comma-separated)", Required: true},
					&cli.StringSliceFlag{Name: "weekdays", Usage: "mon,tue,... (default: every day)"},
					&cli.DurationFlag{Name: "every", DefaultText: "no repeat", Usage: "repeat after each --at time until the day ends (e.g. 1h; at least 1m; leave it out for one snapshot per --at time)"},
					&cli.IntFlag{Name: "retain-days", Usage: "keep automatic snapshots N days"},
					&cli.IntFlag{Name: "retain-count", Usage: "keep the N newest automatic snapshots (per disk)"},
					&cli.BoolFlag{Name: "retain-forever", Usage: "keep them all"},
					&cli.StringFlag{Name: "copy-to", Usage: "copy each new snapshot to this region"},
					&cli.IntFlag{Name: "copy-retain-days", Usage: "keep the region's copies N days"},
					&cli.IntFlag{Name: "copy-retain-count", Usage: "keep the N newest copies (per disk) in the region"},
					&cli.StringFlag{Name: "timezone", Value: "UTC", Usage: "IANA time zone of --at (e.g. Europe/Berlin)"},
					&cli.StringFlag{Name: "consistency", Value: "crash", Usage: "crash, fs (freeze, needs --freeze) or app (needs --pre-hook); left out: app with --pre-hook, fs with --freeze, else crash"},
					&cli.StringSliceFlag{Name: "freeze", Usage: "DISK=MOUNTPOINT: the filesystem of DISK to freeze (repeat)"},
					&cli.StringFlag{Name: "pre-hook", Usage: "shell command run before each snapshot"},
					&cli.StringFlag{Name: "post-hook", Usage: "shell command run after each snapshot"},
					&cli.DurationFlag{Name: "hook-timeout", Value: service.DefaultHookTimeout, Usage: "bound on each hook and freeze"},
					&cli.StringFlag{Name: "on-pre-hook-failure", Value: "abort", Usage: "abort, or crash (take a crash-consistent snapshot)"},
					&cli.StringSliceFlag{Name: "disk", Usage: "apply to this disk at once (repeat)"},
				},
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					if err := checkPolicyFlags(c); err != nil {
						return err
					}
					p := policy.Policy{
						Name: a[0], At: splitList(c.StringSlice("at")), Weekdays: splitList(c.StringSlice("weekdays")), Every: c.Duration("every"),
						TimeZone: c.String("timezone"), Retain: policy.Retention{Days: c.Int("retain-days"), Count: c.Int("retain-count"), Forever: c.Bool("retain-forever")},
						CopyTo: c.String("copy-to"), CopyRetain: policy.Retention{Days: c.Int("copy-retain-days"), Count: c.Int("copy-retain-count")},
						Consistency: c.String("consistency"), Disks: c.StringSlice("disk"),
						Hooks: policy.Hooks{PreHook: c.String("pre-hook"), PostHook: c.String("post-hook"), Timeout: c.Duration("hook-timeout"), OnPreHookFailure: c.String("on-pre-hook-failure")},
					}
					for _, f := range c.StringSlice("freeze") {
						d, mp, ok := strings.Cut(f, "=")
						if !ok || d == "" || !strings.HasPrefix(mp, "/") {
							return usagef("policy create: --freeze %q: want DISK=/abs/mountpoint", f)
						}
						if p.Hooks.Freeze == nil {
							p.Hooks.Freeze = map[string]string{}
						}
						p.Hooks.Freeze[d] = mp
					}
					// As snapshot create does, --freeze and --pre-hook say the
					// consistency when --consistency is left out: the runner
					// freezes only for fs or app, so a --freeze under the
					// default crash was silently never done (trial14).
					if !c.IsSet("consistency") {
						switch {
						case p.Hooks.PreHook != "":
							p.Consistency = policy.ConsistencyApplication
						case len(p.Hooks.Freeze) > 0:
							p.Consistency = policy.ConsistencyFilesystem
						}
					}
					if err := p.Normalize(); err != nil {
						return usagef("policy create: %v", strings.Replace(err.Error(), policy.ErrInvalid.Error()+": ", "", 1))
					}
					if p.Consistency == policy.ConsistencyCrash && len(p.Hooks.Freeze) > 0 {
						return usagef("policy create: --freeze is never done with --consistency crash: give --consistency fs (or app), or leave --freeze out")
					}
					if p.Consistency == policy.ConsistencyFilesystem && len(p.Hooks.Freeze) == 0 {
						return usagef("policy create: --consistency fs needs --freeze DISK=MOUNTPOINT")
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						info, err := svc.CreatePolicy(ctx, p)
						if err != nil {
							return err
						}
						return printPolicy(newPrinter(c, st), info, "created policy "+info.Name)
					})
				},
			},
			policyDisksCommand(st, "apply", "apply a policy to disks", "policy %s applied to %s", service.Service.ApplyPolicy),
			policyDisksCommand(st, "cancel", "stop applying a policy to disks (their snapshots stay)", "policy %s no longer applied to %s", service.Service.CancelPolicy),
			{
				Name:  "list",
				Usage: "list the policies",
				Action: func(c *cli.Context) error {
					if _, err := args(c); err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						ps, err := svc.ListPolicies(ctx)
						if err != nil {
							return err
						}
						return list(newPrinter(c, st), "policy", ps, []string{"NAME", "SCHEDULE", "RETAIN", "COPY", "CONSISTENCY", "DISKS", "FAILING"}, func(p service.PolicyInfo) []string {
							failing := 0
							for _, s := range p.Status {
								if s.Failures > 0 {
									failing++
								}
							}
							return []string{p.Name, schedule(p.Policy), p.Retain.String(), copyText(p.Policy), p.Consistency, joinOr(p.Disks, "-"), fmt.Sprint(failing)}
						})
					})
				},
			},
			{
				Name:      "info",
				Usage:     "describe a policy and its state per disk (last run, next, failures)",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						info, err := svc.GetPolicy(ctx, a[0])
						if err != nil {
							return err
						}
						return printPolicy(newPrinter(c, st), info, "")
					})
				},
			},
			{
				Name:  "quota",
				Usage: "show or set the snapshot quotas: per disk manual and automatic counts, a store-wide cap on snapshot bytes",
				Description: "Defaults: 256 manual and 1,000 automatic snapshots per disk, no byte cap. Over a count, a manual\n" +
					"snapshot create fails (exit 7) and a policy first deletes its oldest automatic snapshot (then other\n" +
					"policies' oldest); over the byte cap (what snapshots hold exclusively), likewise. 0 restores a default.\n" +
					"With a byte cap, each snapshot first counts what snapshots hold if anything changed since the last\n" +
					"count (a pass over the index, like usage --fresh).",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "manual", Usage: "manual snapshots per disk"},
					&cli.IntFlag{Name: "automatic", Usage: "automatic snapshots per disk"},
					&cli.StringFlag{Name: "max-snapshot-bytes", Usage: "cap on the bytes all snapshots hold exclusively (e.g. 500G; 0: none)"},
				},
				Action: func(c *cli.Context) error {
					if _, err := args(c); err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						q, err := svc.Quotas(ctx)
						if err != nil {
							return err
						}
						if c.IsSet("manual") || c.IsSet("automatic") || c.IsSet("max-snapshot-bytes") {
							if c.IsSet("manual") {
								q.Manual = c.Int("manual")
							}
							if c.IsSet("automatic") {
								q.Automatic = c.Int("automatic")
							}
							if c.IsSet("max-snapshot-bytes") {
								if q.MaxSnapshotBytes, err = parseSize("--max-snapshot-bytes", c.String("max-snapshot-bytes")); err != nil {
									return err
								}
							}
							if q.Manual < 0 || q.Automatic < 0 {
								return usagef("policy quota: counts must not be negative")
							}
							if q, err = svc.SetQuotas(ctx, q); err != nil {
								return err
							}
						}
						p := newPrinter(c, st)
						if p.json {
							return p.object("quota", q)
						}
						capText := "none"
						if q.MaxSnapshotBytes > 0 {
							capText = size(q.MaxSnapshotBytes)
						}
						return p.fields("manual per disk", fmt.Sprint(q.Manual), "automatic per disk", fmt.Sprint(q.Automatic), "snapshot bytes cap", capText)
					})
				},
			},
			{
				Name:      "delete",
				Usage:     "delete a policy (its snapshots stay, and are no longer expired)",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					a, err := args(c, "NAME")
					if err != nil {
						return err
					}
					return withService(c, st, func(ctx context.Context, svc service.Service) error {
						if err := svc.DeletePolicy(ctx, a[0]); err != nil {
							return err
						}
						return newPrinter(c, st).deleted("policy", a[0])
					})
				},
			},
		},
	}
}

// checkPolicyFlags refuses a policy create flag given a value that means
// "not given" (local trial 10: --every 0s made a daily schedule): a zero or
// negative --every, --retain-*, --copy-retain-* or --hook-timeout, and an
// empty --weekdays, --timezone, --consistency, --copy-to,
// --on-pre-hook-failure, --disk or hook. Leaving the flag out is how to
// ask for its default.
func checkPolicyFlags(c *cli.Context) error {
	for _, f := range []string{"every", "hook-timeout"} {
		if c.IsSet(f) && c.Duration(f) <= 0 {
			return usagef("policy create: --%s %s: want a positive duration (e.g. 1h), or leave --%s out", f, c.Duration(f), f)
		}
	}
	for _, f := range []string{"retain-days", "retain-count", "copy-retain-days", "copy-retain-count"} {
		if c.IsSet(f) && c.Int(f) <= 0 {
			return usagef("policy create: --%s %d: want a number above 0, or leave --%s out", f, c.Int(f), f)
		}
	}
	for _, f := range []string{"timezone", "consistency", "copy-to", "on-pre-hook-failure", "pre-hook", "post-hook"} {
		if c.IsSet(f) && strings.TrimSpace(c.String(f)) == "" {
			return usagef("policy create: --%s is empty: give a value, or leave --%s out", f, f)
		}
	}
	for _, f := range []string{"weekdays", "disk", "at", "freeze"} {
		if c.IsSet(f) && len(splitList(c.StringSlice(f))) == 0 {
			return usagef("policy create: --%s is empty: give a value, or leave --%s out", f, f)
		}
	}
	return nil
}

// splitList splits comma-separated values of a repeated flag.
func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

func schedule(p policy.Policy) string {
	s := strings.Join(p.At, ",")
	if p.Every > 0 {
		s += " every " + p.Every.String()
	}
	if len(p.Weekdays) > 0 {
		s += " " + strings.Join(p.Weekdays, ",")
	}
	return s + " " + p.TimeZone
}

func copyText(p policy.Policy) string {
	if p.CopyTo == "" {
		return "-"
	}
	if p.CopyRetain.IsZero() {
		return p.CopyTo
	}
	return p.CopyTo + " (" + p.CopyRetain.String() + ")"
}

func printPolicy(p *printer, info service.PolicyInfo, head string) error {
	if p.json {
		return p.object("policy", info)
	}
	if head != "" {
		fmt.Fprintln(p.w, head)
	}
	kv := []string{"name", info.Name, "schedule", schedule(info.Policy), "retain", info.Retain.String(), "copy to", copyText(info.Policy),
		"consistency", info.Consistency, "created", when(info.Created)}
	if h := info.Hooks; h.PreHook != "" || h.PostHook != "" || len(h.Freeze) > 0 {
		var fr []string
		for d, mp := range h.Freeze {
			fr = append(fr, d+"="+mp)
		}
		kv = append(kv, "freeze", joinOr(fr, "-"), "pre-hook", dash(h.PreHook), "post-hook", dash(h.PostHook), "hook timeout", h.Timeout.String(), "on pre-hook failure", h.OnPreHookFailure)
	}
	if err := p.fields(kv...); err != nil {
		return err
	}
	if len(info.Status) == 0 {
		_, err := fmt.Fprintln(p.w, "\napplied to no disk (policy apply NAME --disk D)")
		return err
	}
	rows := make([][]string, 0, len(info.Status))
	for _, s := range info.Status {
		fail := "-"
		if s.Failures > 0 {
			fail = fmt.Sprintf("%d failed, last %s: %s; retry %s", s.Failures, when(s.LastErrorAt), s.LastError, when(s.RetryAt))
		}
		rows = append(rows, []string{s.Disk, whenOr(s.LastRun), dash(s.LastSnapshot), whenOr(s.Next), joinOr(s.CopyPending, "-"), fail})
	}
	fmt.Fprintln(p.w)
	return p.table([]string{"DISK", "LAST RUN", "LAST SNAPSHOT", "NEXT", "COPY PENDING", "FAILURES"}, rows)
}

func whenOr(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return when(t)
}

// policyDisksCommand is policy apply and cancel: NAME --disk D..., one
// service call, the policy printed with a summary line (format: name, disks).
func policyDisksCommand(st *state, name, usage, done string,
	call func(service.Service, context.Context, string, []string) (service.PolicyInfo, error)) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "NAME",
		Flags:     []cli.Flag{&cli.StringSliceFlag{Name: "disk", Usage: "a disk (repeat)", Required: true}},
		Action: func(c *cli.Context) error {
			a, err := args(c, "NAME")
			if err != nil {
				return err
			}
			return withService(c, st, func(ctx context.Context, svc service.Service) error {
				info, err := call(svc, ctx, a[0], c.StringSlice("disk"))
				if err != nil {
					return err
				}
				return printPolicy(newPrinter(c, st), info, fmt.Sprintf(done, a[0], strings.Join(c.StringSlice("disk"), ", ")))
			})
		},
	}
}
