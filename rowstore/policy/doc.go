// Package policy holds the rules of automatic snapshot policies as pure
// functions of their inputs and an injected time: when snapshots are due
// (schedules in a time zone, weekdays, repeats, one catch-up after
// downtime), which automatic snapshots a retention expires (locally and
// in a region), per-disk quotas and the order of eviction, the names of
// automatic snapshots, and the encoding of a policy as a catalog record.
// It does no I/O and reads no clock: the daemon's scheduler
// (cmd/snapfs/internal/daemon) runs it, the service layer stores policies
// in the engine's catalog (rowstore: logged like every catalog record, so
// `index rebuild` recovers them).
//
// # Schedules
//
// A policy has times of day (At, "HH:MM"), optional weekdays, an optional
// repeat (Every: after each At time, every Every until the day ends) and
// a time zone (IANA, default UTC). The scheduled instants of a calendar
// day are the wall times of that day in the zone; a wall time that a
// daylight-saving change skips falls at the same offset after the change
// (02:30 on a spring-forward day is 03:30, east or west of UTC; the
// day's other wall times stay, 03:00 included), a wall time that occurs
// twice is scheduled once. Due(last, now) is the latest scheduled instant at or
// before now when it is after the last one taken: after any downtime
// exactly one catch-up snapshot is taken, never a burst.
//
// Why no cron library: the schedule is times of day, weekdays and a
// repeat in a zone, which Go's time package (time.Date normalises a
// wall time in a location, DST included) computes directly in ~60 lines
// we test across zones, DST changes and month and year ends. The well-known
// Go cron parser (robfig/cron/v3) has had no release since 2020, cannot
// express "every 90m from 08:00" in one spec, and would add a dependency
// for a translation layer (policy flags -> cron spec) we would still have
// to test the same way.
//
// # Retention and quotas
//
// A retention keeps the newest Count, or those younger than Days days, or
// everything (Forever). Expired returns the automatic snapshots of one
// policy that its retention drops; manual snapshots and other policies'
// are never returned. Quotas (per disk, default 256 manual and 1,000
// automatic: the largest cloud services' limits): CheckManual refuses
// one manual snapshot over the limit; Evict names the automatic snapshots
// a policy deletes before it takes one more — its own oldest first, then
// other policies' oldest, never a manual one.
//
// # Record format
//
// A policy is stored as the JSON of the normalized Policy (with its
// "version", currently 1) followed by CRC32C (Castagnoli, 4 bytes little
// endian) of the JSON. Decode refuses a bad checksum, another version or a
// policy that does not normalize (ErrCorrupt). FuzzDecode fuzzes it.
//
// Invariants: a policy only ever deletes snapshots of kind "automatic"
// that it took itself (Policy field), except when evicting for quota,
// which may delete other policies' automatic snapshots but never manual
// ones.
package policy
