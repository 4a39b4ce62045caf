package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/metrics"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
)

// The policy scheduler: every tick the daemon runs the policies once
// (service.Local.RunPolicies, which holds all the rules through
// rowstore/policy). Ticks come every SchedulerTick; a run that finds
// nothing due costs one catalog listing.
//
// ClockScaleEnv is for tests only: a scale S > 1 makes the scheduler's
// clock run S times as fast as the wall clock from the daemon's start
// (S = 3600: an hour a second), with ticks of 100 ms, so an integration
// test sees a day of policy runs in half a minute.
const (
	SchedulerTick = 30 * time.Second
	ClockScaleEnv = "SNAPFS_TEST_CLOCK_SCALE"
)

// clock is the scheduler's clock.
type clock struct {
	start time.Time
	scale float64
}

func (c clock) now() time.Time {
	if c.scale <= 1 {
		return time.Now()
	}
	real := time.Since(c.start)
	return c.start.Add(time.Duration(float64(real) * c.scale))
}

func schedulerClock(log *slog.Logger) (clock, time.Duration) {
	c := clock{start: time.Now(), scale: 1}
	tick := SchedulerTick
	if v := os.Getenv(ClockScaleEnv); v != "" {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil || s < 1 {
			log.Warn("ignoring invalid "+ClockScaleEnv, "value", v)
		} else {
			c.scale, tick = s, 100*time.Millisecond
			log.Warn("policy scheduler runs on a scaled test clock", "scale", s)
		}
	}
	return c, tick
}

// runScheduler runs the policies until ctx ends: at once (one catch-up
// after downtime), then every tick.
func runScheduler(ctx context.Context, local *service.Local, log *slog.Logger, m *metrics.Metrics) {
	c, tick := schedulerClock(log)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		r := local.RunPolicies(ctx, c.now())
		for _, o := range r.Outcomes {
			var err error
			if o.Error != "" {
				err = errors.New(o.Error)
			}
			m.PolicyRun(o.Policy, err) // nil-safe
		}
		if len(r.Taken)+len(r.Expired)+len(r.Evicted)+len(r.Copied)+len(r.Failed) > 0 {
			log.Info("policies ran", "taken", r.Taken, "expired", r.Expired, "evicted", r.Evicted, "copied", r.Copied, "failed", r.Failed)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
