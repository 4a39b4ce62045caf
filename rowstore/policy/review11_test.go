package policy

import (
	"testing"
	"time"
)

// Review 11: a wall time a spring-forward change skips is taken an hour
// later (the doc; TestTrial11SkippedWallTimeWestOfUTC), but onDay kept
// only instants later than the last one it had: a schedule's real wall
// time that falls between a skipped time and where the skipped time was
// moved to was dropped for that day. Berlin, daily at 02:30 and 03:00: on
// the spring-forward day 02:30 became 03:30, and 03:00 (a wall time that
// exists) was not taken at all; Havana, 00:30 and 01:00: 01:00 lost the
// same way; every 45 minutes from 00:00 in Havana lost 01:30.
func TestReview11SkippedTimeKeepsLaterWallTimes(t *testing.T) {
	for _, c := range []struct {
		zone  string
		at    []string
		every time.Duration
		from  string
		want  []string // wall times in the zone, in order, from `from` on
	}{
		{"Europe/Berlin", []string{"02:30", "03:00"}, 0, "2026-03-28 12:00", []string{"2026-03-29 03:00", "2026-03-29 03:30", "2026-03-30 02:30"}},
		{"America/Havana", []string{"00:30", "01:00"}, 0, "2026-03-07 12:00", []string{"2026-03-08 01:00", "2026-03-08 01:30", "2026-03-09 00:30"}},
		{"America/New_York", []string{"02:30", "03:00"}, 0, "2026-03-07 12:00", []string{"2026-03-08 03:00", "2026-03-08 03:30", "2026-03-09 02:30"}},
		{"America/Havana", []string{"00:00"}, 45 * time.Minute, "2026-03-07 23:50", []string{"2026-03-08 01:00", "2026-03-08 01:30", "2026-03-08 01:45", "2026-03-08 02:15"}},
	} {
		p := mustPolicy(t, Policy{At: c.at, Every: c.every, TimeZone: c.zone})
		from := at(t, c.zone, c.from)
		cur := from
		for i, w := range c.want {
			next := p.Next(cur)
			if got := next.In(from.Location()).Format("2006-01-02 15:04"); got != w {
				t.Errorf("%s, at %v every %v: instant %d after %s is %s, want %s", c.zone, c.at, c.every, i, c.from, got, w)
				break
			}
			if last, ok := p.Last(next); !ok || !last.Equal(next) {
				t.Errorf("%s, at %v: Last(Next) = %v, want %v", c.zone, c.at, last, next)
			}
			cur = next
		}
	}
}
