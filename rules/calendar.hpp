// Calendar arithmetic for the engine: time zones, schedule ticks, the bounds of a rule's data
// window, quiet hours, and the text form of warehouse time buckets.
//
// Everything here is a pure function of its arguments (no wall clock: callers pass `now` or
// `after` from their Clock), deterministic, and never throws: an unknown IANA zone or an
// out-of-range time is reported through a `false` return / `ok` flag and an error text. Zones
// come from the system tz database through Howard Hinnant's date/tz (an implementation detail:
// this header does not expose it). "UTC", "Etc/UTC", "GMT" and "Etc/GMT" work even where no tz
// database is installed. Ownership: no state is kept; results are returned by value or into
// the caller's out-parameters. Threads: every function may be called from any thread at the
// same time (the tz database is loaded once, under the date library's own synchronisation).
//
// DST rules used throughout:
//   * a local time that does not exist (the spring-forward gap, e.g. 02:30 on 2026-03-08 in
//     America/New_York) maps to the first valid instant after the gap (03:00 EDT = 07:00Z);
//   * a local time that occurs twice (fall back) maps to its first occurrence.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "dsl/ast.hpp"
#include "rules/clock.hpp"

namespace gavel::rules {

// True if `zone` names a zone of the tz database ("America/New_York", "Europe/Berlin", "UTC").
bool ZoneKnown(const std::string& zone);

// ---------------------------------------------------------------- schedules

// The first tick of schedule `s` strictly after `after`. Returns false (and sets `error`,
// leaving `next` untouched) for an unknown zone, a schedule with neither form, or a time out of
// the supported range (years 1900..9999 for calendar schedules).
//
//   `every N` (s.every_seconds > 0): ticks are k*N seconds after the Unix epoch, shifted by
//     `offset` (milliseconds; taken modulo N, so any value works) so that rules with the same
//     period do not all hit the warehouse in the same second. The zone is not used (and not
//     checked). Use ScheduleOffset() for a stable per-rule offset.
//   calendar (s.every_seconds == 0): at s.at_minute_of_day local time (-1 with a weekday mask
//     means 00:00) on the days of s.weekdays (bit 0 = Monday .. bit 6 = Sunday; an empty mask
//     means every day) in zone s.timezone, with the DST rules above: a tick that falls into a
//     gap fires at the end of the gap; a tick in a repeated hour fires once, the first time.
//     `offset` is ignored: a calendar rule fires at the minute it names.
bool NextScheduleTime(const dsl::Schedule& s, TimeMs after, TimeMs& next, std::string& error,
                      TimeMs offset = 0);

// A stable offset in whole seconds (as milliseconds) derived from a rule's name (FNV-1a), for
// NextScheduleTime: in [0, min(every_seconds / 10, 300)), so at most a tenth of the period and
// at most 5 minutes. 0 when every_seconds <= 0.
TimeMs ScheduleOffset(const std::string& rule_name, std::int64_t every_seconds);

// ---------------------------------------------------------------- windows

// `from_ms` of a `lifetime` window: no lower bound.
constexpr TimeMs kUnboundedPast = std::numeric_limits<TimeMs>::min();

// The half-open range [from, to) of warehouse rows a window covers, as the query binds it
// (:from, :to) and as instants.
//   day tables:  'YYYY-MM-DD', the table's local calendar date (table timezone);
//                from_ms/to_ms are the instants local midnight starts those days.
//   hour tables: 'YYYY-MM-DD HH:00:00', the UTC hour the bucket starts;
//                from_ms/to_ms are those instants.
struct WindowBounds {
  std::string from;
  std::string to;
  TimeMs from_ms = 0;
  TimeMs to_ms = 0;
};

// The bounds of window `w` for a rule evaluated at `now` on a table of grain `grain` whose
// day buckets are dates in `table_tz`. Only complete buckets count, except for `today`:
//   last N     the N/grain buckets complete at `now`; the current partial hour/day is
//              excluded. At 2026-11-01T10:15Z: `last 3h` on an hourly table is
//              ['2026-11-01 07:00:00', '2026-11-01 10:00:00'); `last 3d` on a UTC daily table
//              is ['2026-10-29', '2026-11-01'). `last 2d` on an hourly table is 48 hours.
//              N must be a positive whole number of grains (hours or days), else an error.
//   yesterday  the previous local calendar day in table_tz. On an hourly table: from the UTC
//              hour of yesterday's local midnight to the UTC hour of today's (23 or 25 hours
//              on DST change days). Zones whose offset is not a whole hour (Asia/Kolkata) have
//              both ends rounded down to the UTC hour, so consecutive days still partition the
//              hours.
//   today      the current local day so far: from today's local date to tomorrow's (hourly:
//              the UTC hours of those two local midnights, as for yesterday).
//   lifetime   from '' (everything; from_ms = kUnboundedPast) to the end `last` would use.
// Returns false with `error` for an unknown zone, grain kNone, window kind kNone, or a bad N.
bool WindowFor(const dsl::Window& w, dsl::Grain grain, const std::string& table_tz, TimeMs now,
               WindowBounds& out, std::string& error);

// ---------------------------------------------------------------- quiet hours

// If the local time of `t` in `zone` lies in [start_minute, end_minute) (minutes of the day;
// start > end wraps midnight, e.g. 21:00-08:00 is 1260..480), returns the instant the quiet
// window ends: the next local end_minute, DST-correct (an end inside a spring-forward gap is the
// end of the gap; in a repeated hour, the occurrence after t). Otherwise returns t. No quiet
// hours (either minute < 0, or start == end) also returns t. ok = false (and t returned) for an
// unknown zone or minutes outside 0..1439; ok = true otherwise.
TimeMs QuietHoursRelease(TimeMs t, int start_minute, int end_minute, const std::string& zone,
                         bool& ok);

// ---------------------------------------------------------------- buckets

// The hour bucket containing t: 'YYYY-MM-DD HH:00:00' in UTC (hour tables are stored in UTC so
// that every bucket string is unambiguous across DST). t is clamped to 1900..9999.
std::string FormatHourBucket(TimeMs t);
// The local calendar date of t in `zone`: 'YYYY-MM-DD'. False with `error` for an unknown zone.
bool FormatDayBucket(TimeMs t, const std::string& zone, std::string& out, std::string& error);
// Parses 'YYYY-MM-DD HH:00:00' (UTC; minutes and seconds must be 00) into the hour's first
// instant. False if malformed or before 1900.
bool ParseHourBucket(const std::string& text, TimeMs& out);
// Parses 'YYYY-MM-DD' into the instant local midnight starts that day in `zone` (the end of the
// gap if midnight does not exist there). False with `error` if malformed or the zone is unknown.
bool ParseDayBucket(const std::string& text, const std::string& zone, TimeMs& out,
                    std::string& error);
// Grain-dispatching forms: kHour uses the hour helpers (zone ignored), kDay the day helpers.
bool FormatBucket(TimeMs t, dsl::Grain grain, const std::string& zone, std::string& out,
                  std::string& error);
bool ParseBucket(const std::string& text, dsl::Grain grain, const std::string& zone, TimeMs& out,
                 std::string& error);

}  // namespace gavel::rules
