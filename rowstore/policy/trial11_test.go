package policy

import (
	"testing"
	"time"
)

// Trial 11: the doc promises that a wall time a spring-forward change
// skips is taken at the same offset after the change (02:30 -> 03:30).
// That held east of UTC (Berlin), but time.Date resolves a skipped wall
// time by the zone's rule for the UTC instant, which west of UTC gives the
// offset after the change: 02:30 on New York's spring-forward day was
// taken at 01:30 EST, an hour before the change; in Havana (and Santiago),
// where the clock jumps at midnight, a daily 00:00 was taken at 23:00 the
// day before, so Last never found it (Last(Next(t)) != Next(t)), Due
// stayed false at the instant and the snapshot came an hour late, while
// `policy info` showed NEXT as 23:00 of the wrong day.
func TestTrial11SkippedWallTimeWestOfUTC(t *testing.T) {
	for _, c := range []struct {
		zone, at, from, want string // want: wall time in the zone after the change
	}{
		{"America/New_York", "02:30", "2026-03-07 12:00", "2026-03-08 03:30"},
		{"America/Havana", "00:00", "2026-03-07 12:00", "2026-03-08 01:00"},
		{"America/Santiago", "00:00", "2026-09-05 12:00", "2026-09-06 01:00"},
		{"Europe/Berlin", "02:30", "2026-03-28 12:00", "2026-03-29 03:30"},
		{"Australia/Lord_Howe", "02:15", "2026-10-03 12:00", "2026-10-04 02:45"},
	} {
		p := mustPolicy(t, Policy{At: []string{c.at}, TimeZone: c.zone})
		from := at(t, c.zone, c.from)
		next := p.Next(from)
		if got := next.In(from.Location()).Format("2006-01-02 15:04"); got != c.want {
			t.Errorf("%s, daily at %s: the spring-forward day's instant is %s (%s), want %s", c.zone, c.at, got, next.UTC(), c.want)
		}
		if last, ok := p.Last(next); !ok || !last.Equal(next) {
			t.Errorf("%s, daily at %s: Last(Next) = %v, want %v", c.zone, c.at, last, next)
		}
		if due, ok := p.Due(from, next.Add(time.Minute)); !ok || !due.Equal(next) {
			t.Errorf("%s, daily at %s: a minute after %v, Due = %v %v", c.zone, c.at, next, due, ok)
		}
	}
}
