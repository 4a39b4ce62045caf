package policy

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func mustPolicy(t *testing.T, p Policy) *Policy {
	t.Helper()
	if p.Name == "" {
		p.Name = "p"
	}
	if p.Retain.IsZero() {
		p.Retain = Retention{Count: 3}
	}
	if err := p.Normalize(); err != nil {
		t.Fatal(err)
	}
	return &p
}

func at(t *testing.T, zone, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// instants lists the scheduled instants in [from, to).
func instants(p *Policy, from, to time.Time) []time.Time {
	var out []time.Time
	for t := p.Next(from.Add(-time.Nanosecond)); !t.IsZero() && t.Before(to); t = p.Next(t) {
		out = append(out, t)
	}
	return out
}

func TestNextTimeZonesAndWeekdays(t *testing.T) {
	p := mustPolicy(t, Policy{At: []string{"23:30", "02:00"}, Weekdays: []string{"fri", "Monday"}, TimeZone: "Asia/Tokyo"})
	if fmt.Sprint(p.At, p.Weekdays) != "[02:00 23:30] [mon fri]" {
		t.Fatalf("normalized %v %v", p.At, p.Weekdays)
	}
	// Thursday 2026-01-01 00:00 UTC is Thursday 09:00 in Tokyo: next is
	// Friday 02:00 Tokyo = Thursday 17:00 UTC.
	got := p.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 1, 1, 17, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("next %s, want %s", got.UTC(), want)
	}
	// A week: Fri 02:00, Fri 23:30, Mon 02:00, Mon 23:30.
	from := at(t, "Asia/Tokyo", "2026-01-02 00:00")
	var ss []string
	for _, v := range instants(p, from, from.AddDate(0, 0, 7)) {
		ss = append(ss, v.In(p.location()).Format("Mon 15:04"))
	}
	if fmt.Sprint(ss) != "[Fri 02:00 Fri 23:30 Mon 02:00 Mon 23:30]" {
		t.Fatalf("week: %v", ss)
	}
}

func TestDaylightSaving(t *testing.T) {
	// Europe/Berlin: 2026-03-29 02:00 -> 03:00 (spring), 2026-10-25 03:00 -> 02:00 (autumn).
	p := mustPolicy(t, Policy{At: []string{"02:30"}, TimeZone: "Europe/Berlin"})
	spring := instants(p, at(t, "Europe/Berlin", "2026-03-28 00:00"), at(t, "Europe/Berlin", "2026-03-31 00:00"))
	if len(spring) != 3 {
		t.Fatalf("spring forward: %v", spring)
	}
	if got := spring[1].UTC(); !got.Equal(time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)) {
		t.Fatalf("02:30 on the spring-forward day is %s UTC", got) // 03:30 CEST
	}
	autumn := instants(p, at(t, "Europe/Berlin", "2026-10-24 00:00"), at(t, "Europe/Berlin", "2026-10-27 00:00"))
	if len(autumn) != 3 {
		t.Fatalf("fall back: 02:30 scheduled %d times in 3 days: %v", len(autumn), autumn)
	}
	// Hourly over the autumn day: 25 real hours, 24 wall times, each once.
	h := mustPolicy(t, Policy{At: []string{"00:00"}, Every: time.Hour, TimeZone: "Europe/Berlin"})
	day := instants(h, at(t, "Europe/Berlin", "2026-10-25 00:00"), at(t, "Europe/Berlin", "2026-10-26 00:00"))
	if len(day) != 24 {
		t.Fatalf("hourly on the fall-back day: %d instants", len(day))
	}
	for i := 1; i < len(day); i++ {
		if !day[i].After(day[i-1]) {
			t.Fatalf("instants not increasing: %v", day)
		}
	}
	// Hourly on the spring day: 23 wall times exist, 02:00 maps onto 03:00: 23 instants.
	day = instants(h, at(t, "Europe/Berlin", "2026-03-29 00:00"), at(t, "Europe/Berlin", "2026-03-30 00:00"))
	if len(day) != 23 {
		t.Fatalf("hourly on the spring-forward day: %d instants", len(day))
	}
}

func TestMonthAndYearEnds(t *testing.T) {
	p := mustPolicy(t, Policy{At: []string{"00:00"}, Weekdays: []string{"thu"}, TimeZone: "America/New_York"})
	// Wed 2026-12-30 23:59 New York: next is Thu 2026-12-31 00:00.
	got := p.Next(at(t, "America/New_York", "2026-12-30 23:59"))
	if want := at(t, "America/New_York", "2026-12-31 00:00"); !got.Equal(want) {
		t.Fatalf("year end: %s want %s", got, want)
	}
	if n := p.Next(got); !n.Equal(at(t, "America/New_York", "2027-01-07 00:00")) {
		t.Fatalf("into the new year: %s", n)
	}
	d := mustPolicy(t, Policy{At: []string{"23:59"}})
	if n := d.Next(time.Date(2028, 2, 28, 23, 59, 0, 0, time.UTC)); !n.Equal(time.Date(2028, 2, 29, 23, 59, 0, 0, time.UTC)) {
		t.Fatalf("leap day: %s", n)
	}
	if n := d.Next(time.Date(2026, 1, 31, 23, 59, 0, 0, time.UTC)); !n.Equal(time.Date(2026, 2, 1, 23, 59, 0, 0, time.UTC)) {
		t.Fatalf("month end: %s", n)
	}
}

func TestCatchUpAfterDowntime(t *testing.T) {
	p := mustPolicy(t, Policy{At: []string{"00:00"}, Every: 15 * time.Minute})
	last := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	// Down from 10:05 to 13:07: 12 instants missed, one catch-up due (13:00).
	now := time.Date(2026, 5, 1, 13, 7, 0, 0, time.UTC)
	due, ok := p.Due(last, now)
	if !ok || !due.Equal(time.Date(2026, 5, 1, 13, 0, 0, 0, time.UTC)) {
		t.Fatalf("catch-up: %s %v", due, ok)
	}
	// Taken: nothing more due until 13:15.
	if _, ok := p.Due(due, now); ok {
		t.Fatal("a second catch-up was due")
	}
	if _, ok := p.Due(due, time.Date(2026, 5, 1, 13, 14, 59, 0, time.UTC)); ok {
		t.Fatal("due before the next instant")
	}
	if d, ok := p.Due(due, time.Date(2026, 5, 1, 13, 15, 0, 0, time.UTC)); !ok || d.Minute() != 15 {
		t.Fatalf("next run: %s %v", d, ok)
	}
	// Down for three weeks: one catch-up.
	if d, ok := p.Due(last, last.AddDate(0, 0, 21)); !ok || !d.Equal(last.AddDate(0, 0, 21)) {
		t.Fatalf("after 3 weeks: %s %v", d, ok)
	}
	// A weekly policy down for 3 weeks: one catch-up (the latest instant).
	w := mustPolicy(t, Policy{At: []string{"01:00"}, Weekdays: []string{"sun"}})
	if d, ok := w.Due(last, last.AddDate(0, 0, 21)); !ok || d.Weekday() != time.Sunday || last.AddDate(0, 0, 21).Sub(d) > 7*24*time.Hour {
		t.Fatalf("weekly after 3 weeks: %s %v", d, ok)
	}
}

func TestSeveralPoliciesOneDisk(t *testing.T) {
	hourly := mustPolicy(t, Policy{Name: "hourly", At: []string{"00:00"}, Every: time.Hour, Retain: Retention{Count: 24}})
	daily := mustPolicy(t, Policy{Name: "daily", At: []string{"03:00"}, Retain: Retention{Days: 7}})
	var snaps []Snap
	last := map[string]time.Time{}
	start := time.Date(2026, 6, 1, 0, 30, 0, 0, time.UTC)
	for now := start; now.Before(start.AddDate(0, 0, 10)); now = now.Add(10 * time.Minute) {
		for _, p := range []*Policy{hourly, daily} {
			if d, ok := p.Due(last[p.Name], now); ok {
				snaps = append(snaps, Snap{Name: SnapshotName(p.Name, "vol1", d), Created: now, Kind: KindAutomatic, Policy: p.Name})
				last[p.Name] = d
			}
			for _, e := range Expired(snaps, p.Name, p.Retain, now) {
				snaps = slices.DeleteFunc(snaps, func(s Snap) bool { return s.Name == e.Name })
			}
		}
	}
	snaps = append(snaps, Snap{Name: "manual1", Created: start, Kind: KindManual})
	n := map[string]int{}
	for _, s := range snaps {
		n[s.Policy]++
	}
	if n["hourly"] != 24 || n["daily"] != 7 || n[""] != 1 {
		t.Fatalf("kept %v", n)
	}
	// Expiry never names the manual one nor another policy's.
	for _, e := range Expired(snaps, "hourly", Retention{Count: 1}, start.AddDate(1, 0, 0)) {
		if e.Policy != "hourly" || e.Kind != KindAutomatic {
			t.Fatalf("expired %+v", e)
		}
	}
}

func TestRetention(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	var snaps []Snap
	for i := range 10 {
		snaps = append(snaps, Snap{Name: fmt.Sprint("a", i), Created: now.AddDate(0, 0, -i), Kind: KindAutomatic, Policy: "p"})
	}
	snaps = append(snaps, Snap{Name: "m", Created: now.AddDate(-1, 0, 0), Kind: KindManual, Policy: "p"})
	names := func(ss []Snap) string {
		var o []string
		for _, s := range ss {
			o = append(o, s.Name)
		}
		return fmt.Sprint(o)
	}
	if got := names(Expired(snaps, "p", Retention{Count: 7}, now)); got != "[a9 a8 a7]" {
		t.Fatalf("count 7: %s", got)
	}
	if got := names(Expired(snaps, "p", Retention{Days: 3}, now)); got != "[a9 a8 a7 a6 a5 a4]" {
		t.Fatalf("3 days: %s", got)
	}
	if got := Expired(snaps, "p", Retention{Forever: true}, now); len(got) != 0 {
		t.Fatalf("forever: %v", got)
	}
	// Remote retention: the same rule over the region's copies.
	if got := names(Expired(snaps[:4], "p", Retention{Count: 2}, now)); got != "[a3 a2]" {
		t.Fatalf("remote count 2: %s", got)
	}
}

func TestQuotaEvictionOrder(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var snaps []Snap
	for i := range 3 {
		snaps = append(snaps, Snap{Name: fmt.Sprint("other", i), Created: base.Add(time.Duration(i) * time.Hour), Kind: KindAutomatic, Policy: "other"})
		snaps = append(snaps, Snap{Name: fmt.Sprint("mine", i), Created: base.Add(time.Duration(10+i) * time.Hour), Kind: KindAutomatic, Policy: "mine"})
		snaps = append(snaps, Snap{Name: fmt.Sprint("manual", i), Created: base, Kind: KindManual})
	}
	ev, err := Evict(snaps, "mine", Quota{Automatic: 6})
	if err != nil || len(ev) != 1 || ev[0].Name != "mine0" {
		t.Fatalf("evict at 6/6: %v %v", ev, err)
	}
	ev, err = Evict(snaps, "mine", Quota{Automatic: 2})
	var got []string
	for _, e := range ev {
		got = append(got, e.Name)
	}
	if err != nil || fmt.Sprint(got) != "[mine0 mine1 mine2 other0 other1]" {
		t.Fatalf("evict to 2: %v %v", got, err)
	}
	if ev, err := Evict(snaps, "mine", Quota{}); err != nil || len(ev) != 0 {
		t.Fatalf("default quota: %v %v", ev, err)
	}
	if err := CheckManual(snaps, "v", Quota{Manual: 3}); !errors.Is(err, ErrQuota) {
		t.Fatalf("manual quota: %v", err)
	}
	if err := CheckManual(snaps, "v", Quota{}); err != nil {
		t.Fatalf("default manual quota: %v", err)
	}
}

func TestNormalizeRejects(t *testing.T) {
	for _, p := range []Policy{
		{Name: "x", Retain: Retention{Count: 1}},
		{Name: "x", At: []string{"24:00"}, Retain: Retention{Count: 1}},
		{Name: "x", At: []string{"1:5"}, Retain: Retention{Count: 1}},
		{Name: "x", At: []string{"01:00"}},
		{Name: "x", At: []string{"01:00"}, Retain: Retention{Count: 1, Days: 2}},
		{Name: "x", At: []string{"01:00"}, Retain: Retention{Count: 1}, Weekdays: []string{"funday"}},
		{Name: "x", At: []string{"01:00"}, Retain: Retention{Count: 1}, TimeZone: "Mars/Olympus"},
		{Name: "x", At: []string{"01:00"}, Retain: Retention{Count: 1}, Every: time.Second},
		{Name: "x", At: []string{"01:00"}, Retain: Retention{Count: 1}, CopyRetain: Retention{Count: 1}},
		{Name: "x", At: []string{"01:00"}, Retain: Retention{Count: 1}, Consistency: "app"},
		{Name: "x", At: []string{"01:00"}, Retain: Retention{Count: 1}, Consistency: "strong"},
	} {
		if err := p.Normalize(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", p, err)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	p := Policy{Name: "daily", At: []string{"03:00"}, Weekdays: []string{"mon"}, TimeZone: "Europe/Paris", Retain: Retention{Days: 7},
		CopyTo: "dr", CopyRetain: Retention{Count: 30}, Consistency: "fs", Hooks: Hooks{Freeze: map[string]string{"vol1": "/mnt/v"}, Timeout: time.Minute},
		Disks: []string{"vol1"}, Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	b, err := Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.Name != "daily" || q.Consistency != ConsistencyFilesystem || q.Hooks.Freeze["vol1"] != "/mnt/v" || q.CopyRetain.Count != 30 {
		t.Fatalf("round trip: %+v", q)
	}
	b[3] ^= 1
	if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := Encode(Policy{Name: "p", At: []string{"01:00"}, Retain: Retention{Count: 1}})
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		b2, err := Encode(p)
		if err != nil {
			t.Fatalf("decoded policy does not encode: %v", err)
		}
		if _, err := Decode(b2); err != nil {
			t.Fatalf("re-encoded policy does not decode: %v", err)
		}
		_ = p.Next(time.Unix(0, 0))
	})
}
