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

// TestReview11EveryExistingWallTimeScheduled sweeps two years of days in
// zones with daylight-saving changes (30 and 60 minutes, at midnight, east
// and west of UTC): every wall time of the schedule that exists that day is
// one of the day's instants, the instants are strictly increasing, and on
// days with a skipped time each instant is its own Last.
func TestReview11EveryExistingWallTimeScheduled(t *testing.T) {
	zones := []string{"Europe/Berlin", "America/New_York", "America/Havana", "America/Santiago", "Australia/Lord_Howe", "Australia/Sydney"}
	scheds := []Policy{{At: []string{"00:00"}, Every: 30 * time.Minute}, {At: []string{"02:30", "03:00"}}, {At: []string{"00:30", "01:00"}}}
	for _, zone := range zones {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		for _, sp := range scheds {
			sp.TimeZone = zone
			p := mustPolicy(t, sp)
			var mins []int
			for _, a := range p.At {
				m, _ := ParseClock(a)
				mins = append(mins, m)
				for v := m + int(p.Every/time.Minute); p.Every > 0 && v < 24*60; v += int(p.Every / time.Minute) {
					mins = append(mins, v)
				}
			}
			for day := time.Date(2026, 1, 1, 12, 0, 0, 0, loc); day.Year() < 2028; day = day.AddDate(0, 0, 1) {
				y, m, d := day.Date()
				got := p.onDay(y, m, d, loc)
				for i := 1; i < len(got); i++ {
					if !got[i].After(got[i-1]) {
						t.Fatalf("%s %v: %s: instants not increasing: %v", zone, p.At, day.Format("2006-01-02"), got)
					}
				}
				skipped := false
				for _, mi := range mins {
					w := time.Date(y, m, d, mi/60, mi%60, 0, 0, loc)
					if w.Day() != d || w.Hour() != mi/60 || w.Minute() != mi%60 {
						skipped = true
						continue
					}
					found := false
					for _, g := range got {
						found = found || g.Equal(w)
					}
					if !found {
						t.Fatalf("%s %v every %v: %s: the wall time %s exists but is not scheduled (%v)", zone, p.At, p.Every, day.Format("2006-01-02"), w.Format("15:04 MST"), got)
					}
				}
				if skipped {
					for _, g := range got {
						if last, ok := p.Last(g); !ok || !last.Equal(g) {
							t.Fatalf("%s %v: %s: Last(%v) = %v", zone, p.At, day.Format("2006-01-02"), g, last)
						}
					}
				}
			}
		}
	}
}
