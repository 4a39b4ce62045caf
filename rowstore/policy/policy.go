package policy

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid: a policy that cannot be run (bad time, weekday, zone,
// retention or consistency). Callers map it to their own invalid-argument
// error.
var ErrInvalid = errors.New("policy: invalid")

// ErrCorrupt: an encoded policy failed its checksum or does not decode.
var ErrCorrupt = errors.New("policy: corrupt record")

// Version is the format version of an encoded Policy.
const Version = 1

// Kinds of snapshot a policy deals with: it takes and expires only
// KindAutomatic snapshots, never KindManual ones.
const (
	KindManual    = "manual"
	KindAutomatic = "automatic"
)

// Consistency levels of a snapshot.
const (
	ConsistencyCrash       = "crash"       // taken as is: like a power cut
	ConsistencyFilesystem  = "filesystem"  // the filesystem was frozen (FIFREEZE)
	ConsistencyApplication = "application" // the pre-hook quiesced the application
)

// Retention says which automatic snapshots a policy keeps: the newest
// Count, or those younger than Days days, or all of them (Forever).
// Exactly one is set.
type Retention struct {
	Days    int  `json:"days,omitempty"`
	Count   int  `json:"count,omitempty"`
	Forever bool `json:"forever,omitempty"`
}

// IsZero reports whether nothing is set.
func (r Retention) IsZero() bool { return r == Retention{} }

func (r Retention) validate(what string) error {
	n := 0
	if r.Days != 0 {
		n++
	}
	if r.Count != 0 {
		n++
	}
	if r.Forever {
		n++
	}
	if n != 1 || r.Days < 0 || r.Count < 0 {
		return fmt.Errorf("%w: %s: exactly one of days > 0, count > 0 or forever", ErrInvalid, what)
	}
	return nil
}

// String describes r for people.
func (r Retention) String() string {
	switch {
	case r.Forever:
		return "forever"
	case r.Days > 0:
		return fmt.Sprintf("%d day(s)", r.Days)
	case r.Count > 0:
		return fmt.Sprintf("last %d", r.Count)
	}
	return "-"
}

// Hooks are the application-consistency options of a policy (the same as
// snapshot create's): freeze the filesystems mounted at Freeze (per disk),
// run PreHook before and PostHook after the snapshot, each bounded by
// Timeout. OnPreHookFailure is "abort" (no snapshot; the run failed) or
// "crash" (take a crash-consistent snapshot instead).
type Hooks struct {
	Freeze           map[string]string `json:"freeze,omitempty"` // disk -> mount point
	PreHook          string            `json:"pre_hook,omitempty"`
	PostHook         string            `json:"post_hook,omitempty"`
	Timeout          time.Duration     `json:"timeout,omitempty"`
	OnPreHookFailure string            `json:"on_pre_hook_failure,omitempty"`
}

// Policy is an automatic snapshot policy: when to take snapshots (At
// times of day on Weekdays, and every Every after each At time, in
// TimeZone), how long to keep them (Retain), where to copy them (CopyTo,
// with its own CopyRetain), how consistent to make them, and the disks it
// applies to.
type Policy struct {
	Version  int           `json:"version"`
	Name     string        `json:"name"`
	At       []string      `json:"at"`                 // "HH:MM", sorted, distinct
	Weekdays []string      `json:"weekdays,omitempty"` // "mon".."sun"; empty: every day
	Every    time.Duration `json:"every,omitempty"`    // repeat after each At time until the day ends
	TimeZone string        `json:"timezone"`           // IANA name; "UTC" by default
	Retain   Retention     `json:"retain"`
	CopyTo   string        `json:"copy_to,omitempty"`
	// CopyRetain is the retention of the copies in CopyTo, counted like
	// Retain over the copies this policy made of one disk (zero: the
	// policy never removes a copy; the region's own retention may).
	CopyRetain  Retention `json:"copy_retain,omitzero"`
	Consistency string    `json:"consistency"` // crash, filesystem or application
	Hooks       Hooks     `json:"hooks,omitzero"`
	Disks       []string  `json:"disks,omitempty"`
	Created     time.Time `json:"created"`
	// Applied is when each disk was applied: a disk's first snapshot is
	// the first scheduled time after it (no catch-up before it was asked).
	Applied map[string]time.Time `json:"applied,omitempty"`
}

var weekdayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseWeekday parses "mon".."sun" (or a full English name, any case).
func ParseWeekday(s string) (time.Weekday, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for i, n := range weekdayNames {
		if l == n || (len(l) > 3 && strings.HasPrefix(strings.ToLower(time.Weekday(i).String()), l)) {
			return time.Weekday(i), nil
		}
	}
	return 0, fmt.Errorf("%w: weekday %q (want mon, tue, wed, thu, fri, sat or sun)", ErrInvalid, s)
}

// ParseClock parses "HH:MM" (24 h) into minutes after midnight.
func ParseClock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%w: time of day %q (want HH:MM, 00:00 to 23:59)", ErrInvalid, s)
	}
	return hh*60 + mm, nil
}

// Normalize checks p and puts it in canonical form (sorted distinct
// times, weekdays as "mon".."sun", time zone "UTC" when empty, version).
func (p *Policy) Normalize() error {
	if p.Version == 0 {
		p.Version = Version
	}
	if p.Version != Version {
		return fmt.Errorf("%w: policy format version %d (this build reads %d)", ErrInvalid, p.Version, Version)
	}
	if p.Name == "" {
		return fmt.Errorf("%w: a policy needs a name", ErrInvalid)
	}
	if len(p.At) == 0 {
		return fmt.Errorf("%w: policy %q: at least one --at HH:MM", ErrInvalid, p.Name)
	}
	mins := make([]int, 0, len(p.At))
	for _, a := range p.At {
		m, err := ParseClock(a)
		if err != nil {
			return fmt.Errorf("policy %q: %w", p.Name, err)
		}
		if !slices.Contains(mins, m) {
			mins = append(mins, m)
		}
	}
	slices.Sort(mins)
	p.At = p.At[:0]
	for _, m := range mins {
		p.At = append(p.At, fmt.Sprintf("%02d:%02d", m/60, m%60))
	}
	var wd []time.Weekday
	for _, w := range p.Weekdays {
		d, err := ParseWeekday(w)
		if err != nil {
			return fmt.Errorf("policy %q: %w", p.Name, err)
		}
		if !slices.Contains(wd, d) {
			wd = append(wd, d)
		}
	}
	slices.Sort(wd)
	p.Weekdays = nil
	for _, d := range wd {
		p.Weekdays = append(p.Weekdays, weekdayNames[d])
	}
	if p.Every < 0 || (p.Every > 0 && p.Every < time.Minute) {
		return fmt.Errorf("%w: policy %q: --every %s (want at least 1m)", ErrInvalid, p.Name, p.Every)
	}
	if p.TimeZone == "" {
		p.TimeZone = "UTC"
	}
	if _, err := time.LoadLocation(p.TimeZone); err != nil {
		return fmt.Errorf("%w: policy %q: time zone %q: %v", ErrInvalid, p.Name, p.TimeZone, err)
	}
	if err := p.Retain.validate("retention"); err != nil {
		return fmt.Errorf("policy %q: %w", p.Name, err)
	}
	if !p.CopyRetain.IsZero() {
		if p.CopyTo == "" {
			return fmt.Errorf("%w: policy %q: a copy retention without --copy-to", ErrInvalid, p.Name)
		}
		if err := p.CopyRetain.validate("copy retention"); err != nil {
			return fmt.Errorf("policy %q: %w", p.Name, err)
		}
	}
	switch p.Consistency {
	case "", ConsistencyCrash:
		p.Consistency = ConsistencyCrash
	case "fs", ConsistencyFilesystem:
		p.Consistency = ConsistencyFilesystem
	case "app", ConsistencyApplication:
		p.Consistency = ConsistencyApplication
	default:
		return fmt.Errorf("%w: policy %q: consistency %q (want crash, fs or app)", ErrInvalid, p.Name, p.Consistency)
	}
	if p.Consistency == ConsistencyApplication && p.Hooks.PreHook == "" {
		return fmt.Errorf("%w: policy %q: application consistency needs a --pre-hook", ErrInvalid, p.Name)
	}
	switch p.Hooks.OnPreHookFailure {
	case "":
		p.Hooks.OnPreHookFailure = "abort"
	case "abort", "crash":
	default:
		return fmt.Errorf("%w: policy %q: on pre-hook failure %q (want abort or crash)", ErrInvalid, p.Name, p.Hooks.OnPreHookFailure)
	}
	if p.Hooks.Timeout < 0 {
		return fmt.Errorf("%w: policy %q: negative hook timeout", ErrInvalid, p.Name)
	}
	return nil
}

func (p *Policy) location() *time.Location {
	loc, err := time.LoadLocation(p.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// onDay returns the scheduled instants of the calendar day (y, m, d) in
// the policy's zone, in order. A wall time a daylight-saving change skips
// is taken at the same offset after the change (02:30 on a spring-forward
// day is 03:30, east or west of UTC; a midnight skipped in Havana is 01:00
// of that day), and the list's later wall times it passes are kept (daily
// at 02:30 and 03:00 is 03:00 and 03:30 that day); a wall time that occurs
// twice is taken once.
func (p *Policy) onDay(y int, m time.Month, d int, loc *time.Location) []time.Time {
	day := time.Date(y, m, d, 12, 0, 0, 0, loc)
	if len(p.Weekdays) > 0 && !slices.Contains(p.Weekdays, weekdayNames[day.Weekday()]) {
		return nil
	}
	var out []time.Time
	add := func(min int) {
		h, mi := min/60, min%60
		t := time.Date(y, m, d, h, mi, 0, 0, loc)
		if t.Day() != d || t.Hour() != h || t.Minute() != mi {
			// Skipped by a spring-forward change. time.Date resolves it
			// west of UTC to the offset after the change (an instant
			// before it: 02:30 EST, 23:00 of the day before in Havana);
			// take the offset before the change (the smaller one), which
			// puts it after the change, on its own day.
			_, o1 := t.Add(-3 * time.Hour).Zone()
			_, o2 := t.Add(3 * time.Hour).Zone()
			wall := time.Date(y, m, d, h, mi, 0, 0, time.UTC)
			t = wall.Add(-time.Duration(o1) * time.Second).In(loc)
			if o2 < o1 {
				t = wall.Add(-time.Duration(o2) * time.Second).In(loc)
			}
		}
		out = append(out, t)
	}
	var mins []int
	for _, a := range p.At {
		start, err := ParseClock(a)
		if err != nil {
			continue
		}
		mins = append(mins, start)
		if p.Every > 0 {
			step := int(p.Every / time.Minute)
			for v := start + step; v < 24*60; v += step {
				mins = append(mins, v)
			}
		}
	}
	slices.Sort(mins)
	for _, v := range slices.Compact(mins) {
		add(v)
	}
	// In instant order, each once: a skipped time moved after the change
	// may pass later wall times of the list (02:30 -> 03:30 passes 03:00),
	// which stay; one moved onto another's instant is taken once.
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return slices.CompactFunc(out, func(a, b time.Time) bool { return a.Equal(b) })
}

// Next returns the first scheduled instant strictly after t.
func (p *Policy) Next(t time.Time) time.Time {
	loc := p.location()
	lt := t.In(loc)
	for i := 0; i < 8; i++ {
		d := time.Date(lt.Year(), lt.Month(), lt.Day()+i, 12, 0, 0, 0, loc)
		for _, s := range p.onDay(d.Year(), d.Month(), d.Day(), loc) {
			if s.After(t) {
				return s
			}
		}
	}
	return time.Time{} // a policy with no day (cannot happen once normalized)
}

// Last returns the latest scheduled instant at or before t, if any in
// the 8 days before it.
func (p *Policy) Last(t time.Time) (time.Time, bool) {
	loc := p.location()
	lt := t.In(loc)
	for i := 0; i < 9; i++ {
		d := time.Date(lt.Year(), lt.Month(), lt.Day()-i, 12, 0, 0, 0, loc)
		ss := p.onDay(d.Year(), d.Month(), d.Day(), loc)
		for j := len(ss) - 1; j >= 0; j-- {
			if !ss[j].After(t) {
				return ss[j], true
			}
		}
	}
	return time.Time{}, false
}

// Due says whether a snapshot is due at now, given the scheduled instant
// of the last one taken (or the time the policy was applied to the disk,
// when none was): the latest scheduled instant at or before now, when it
// is after last. However many instants were missed (the daemon was down),
// only the latest is due: one catch-up, never a burst.
func (p *Policy) Due(last, now time.Time) (time.Time, bool) {
	t, ok := p.Last(now)
	if !ok || !t.After(last) {
		return time.Time{}, false
	}
	return t, true
}

// SnapshotName is the name of the automatic snapshot a policy takes of a
// disk at scheduled instant t: "<policy>-<disk>-<UTC yyyymmdd-hhmm>".
func SnapshotName(policy, disk string, t time.Time) string {
	return policy + "-" + disk + "-" + t.UTC().Format("20060102-1504")
}

// Snap is what the rules need to know of a snapshot of one disk.
type Snap struct {
	Name    string
	Created time.Time
	Kind    string // KindAutomatic or KindManual (or another)
	Policy  string // the policy that took it (automatic ones)
	// Seq is the order the store took it in (its catalog id), or 0 when
	// unknown. Where two snapshots both have one, it orders them instead
	// of Created: after the clock went back, creation times lie about
	// which snapshot is newer, and a count retention would expire the
	// snapshot just taken.
	Seq uint64
}

// compareAge orders a before b when a was taken first: by Seq when both
// have one, else by Created.
func compareAge(a, b Snap) int {
	if a.Seq != 0 && b.Seq != 0 {
		return cmp.Compare(a.Seq, b.Seq)
	}
	return a.Created.Compare(b.Created)
}

// Expired returns the automatic snapshots of policy (of one disk, or of
// one region: the caller filters) that retention r no longer keeps at
// now, oldest first. Manual snapshots and other policies' are never
// returned.
func Expired(snaps []Snap, policy string, r Retention, now time.Time) []Snap {
	var mine []Snap
	for _, s := range snaps {
		if s.Kind == KindAutomatic && s.Policy == policy {
			mine = append(mine, s)
		}
	}
	slices.SortStableFunc(mine, func(a, b Snap) int { return compareAge(b, a) }) // newest first
	var out []Snap
	for i, s := range mine {
		switch {
		case r.Forever, r.IsZero():
			continue
		case r.Count > 0 && i >= r.Count:
			out = append(out, s)
		case r.Days > 0 && now.Sub(s.Created) > time.Duration(r.Days)*24*time.Hour:
			out = append(out, s)
		}
	}
	slices.Reverse(out)
	return out
}

// Quota bounds the snapshots of one disk.
type Quota struct {
	Manual    int `json:"manual"`    // default DefaultManual
	Automatic int `json:"automatic"` // default DefaultAutomatic
}

// Default quotas per disk: the largest cloud services' limits.
const (
	DefaultManual    = 256
	DefaultAutomatic = 1000
)

// WithDefaults fills zero limits.
func (q Quota) WithDefaults() Quota {
	if q.Manual <= 0 {
		q.Manual = DefaultManual
	}
	if q.Automatic <= 0 {
		q.Automatic = DefaultAutomatic
	}
	return q
}

// ErrQuota: a disk has as many snapshots of a kind as its quota allows.
var ErrQuota = errors.New("policy: snapshot quota reached")

// CheckManual says whether one more manual snapshot of a disk holding
// snaps fits its quota.
func CheckManual(snaps []Snap, disk string, q Quota) error {
	q = q.WithDefaults()
	n := 0
	for _, s := range snaps {
		if s.Kind != KindAutomatic {
			n++
		}
	}
	if n >= q.Manual {
		return fmt.Errorf("%w: disk %q has %d manual snapshots, its quota is %d (delete some, or raise the quota)", ErrQuota, disk, n, q.Manual)
	}
	return nil
}

// Evict returns the automatic snapshots policy must delete from a disk
// holding snaps before it takes one more under quota q: its own oldest
// first, then other policies' oldest. Manual snapshots are never
// evicted. It returns ErrQuota when even deleting every automatic snapshot
// would not make room (q.Automatic < 1).
func Evict(snaps []Snap, policy string, q Quota) ([]Snap, error) {
	q = q.WithDefaults()
	var mine, others []Snap
	for _, s := range snaps {
		if s.Kind != KindAutomatic {
			continue
		}
		if s.Policy == policy {
			mine = append(mine, s)
		} else {
			others = append(others, s)
		}
	}
	over := len(mine) + len(others) + 1 - q.Automatic
	if over <= 0 {
		return nil, nil
	}
	slices.SortStableFunc(mine, compareAge)
	slices.SortStableFunc(others, compareAge)
	order := append(mine, others...)
	if over > len(order) {
		return nil, fmt.Errorf("%w: automatic quota %d", ErrQuota, q.Automatic)
	}
	return order[:over], nil
}

// Encode encodes p as its catalog record: JSON of the normalized policy
// (which carries its version) followed by a CRC32C (4 bytes, little
// endian) of the JSON.
func Encode(p Policy) ([]byte, error) {
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("policy: encode: %w", err)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Decode decodes a record made by Encode.
func Decode(b []byte) (Policy, error) {
	var p Policy
	if len(b) < 4 {
		return p, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	n := len(b) - 4
	if got, want := crc32.Checksum(b[:n], castagnoli), binary.LittleEndian.Uint32(b[n:]); got != want {
		return p, fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	if err := json.Unmarshal(b[:n], &p); err != nil {
		return p, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if p.Version != Version {
		return p, fmt.Errorf("%w: policy format version %d (this build reads %d)", ErrCorrupt, p.Version, Version)
	}
	if err := p.Normalize(); err != nil {
		return p, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return p, nil
}
