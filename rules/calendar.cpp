// Time zones, schedule ticks, window bounds, quiet hours and bucket text. See calendar.hpp.
#include "rules/calendar.hpp"

#include <date/tz.h>

#include <chrono>
#include <cstdio>

namespace gavel::rules {

namespace {

using Ms = std::chrono::milliseconds;
using SysMs = date::sys_time<Ms>;
using LocalMs = date::local_time<Ms>;

// Calendar work is limited to 1900-01-01 .. 9999-12-31 (UTC): far outside any rule's life, and
// it keeps every intermediate (local offsets, day arithmetic) away from overflow.
constexpr TimeMs kMinTime = -2208988800000LL;
constexpr TimeMs kMaxTime = 253402300799999LL;
// `every N` arithmetic: any period up to ~30 years and instants up to ~30000 years stay exact.
constexpr std::int64_t kMaxEverySeconds = 1000LL * 86400 * 366;
constexpr TimeMs kMaxIntervalTime = 1000000000000000LL;

TimeMs FloorDiv(TimeMs a, TimeMs b) {
  TimeMs q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

bool InRange(TimeMs t) { return t >= kMinTime && t <= kMaxTime; }

bool IsUtcName(const std::string& z) {
  return z == "UTC" || z == "Etc/UTC" || z == "GMT" || z == "Etc/GMT";
}

// A resolved zone; tz == nullptr is UTC (needs no tz database).
struct Zone {
  const date::time_zone* tz = nullptr;

  LocalMs ToLocal(TimeMs t) const {
    if (!tz) return LocalMs{Ms{t}};
    return tz->to_local(SysMs{Ms{t}});
  }
  // Local -> instant: a nonexistent local time maps to the end of its gap; an ambiguous one to
  // its first occurrence (or the second with `latest`).
  TimeMs ToSys(LocalMs lt, bool latest = false) const {
    if (!tz) return lt.time_since_epoch().count();
    auto s = tz->to_sys(lt, latest ? date::choose::latest : date::choose::earliest);
    return std::chrono::duration_cast<Ms>(s.time_since_epoch()).count();
  }
  TimeMs DayStart(date::local_days d) const { return ToSys(LocalMs{d}); }
};

bool FindZone(const std::string& name, Zone& z, std::string& error) {
  if (IsUtcName(name)) {
    z.tz = nullptr;
    return true;
  }
  if (!name.empty()) {
    try {
      z.tz = date::locate_zone(name);
      if (z.tz) return true;
    } catch (...) {
    }
  }
  error = name.empty() ? "no time zone given" : "unknown time zone \"" + name + "\"";
  return false;
}

std::string FormatDate(date::local_days d) {
  date::year_month_day ymd{d};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

// 'YYYY-MM-DD' at the start of `s` (only the first 10 characters are read).
bool ParseDate(const std::string& s, date::days& out) {
  int y, m, d;
  if (s.size() < 10 || !ParseDigits(s, 0, 4, y) || s[4] != '-' || !ParseDigits(s, 5, 2, m) || s[7] != '-' ||
      !ParseDigits(s, 8, 2, d)) {
    return false;
  }
  date::year_month_day ymd{date::year{y}, date::month{static_cast<unsigned>(m)},
                           date::day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || y < 1900) return false;
  out = date::sys_days{ymd}.time_since_epoch();
  return true;
}

const char* kRangeError = "time is outside 1900..9999";

}  // namespace

// Runs `body` and turns any exception of the date library (a damaged tz database, an
// instant out of its range) into `error` and false: nothing here throws across the API.
template <typename Body>
bool ZoneGuard(std::string& error, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    error = std::string("time zone error: ") + e.what();
  } catch (...) {
    error = "time zone error";
  }
  return false;
}

bool ZoneKnown(const std::string& zone) {
  Zone z;
  std::string error;
  return FindZone(zone, z, error);
}

// ---------------------------------------------------------------- schedules

bool NextScheduleTime(const dsl::Schedule& s, TimeMs after, TimeMs& next, std::string& error,
                      TimeMs offset) {
  return ZoneGuard(error, [&]() -> bool {
    if (s.every_seconds < 0) {
      error = "schedule period is negative";
      return false;
    }
    if (s.every_seconds > 0) {
      if (s.every_seconds > kMaxEverySeconds) {
        error = "schedule period is too long";
        return false;
      }
      if (after < -kMaxIntervalTime || after > kMaxIntervalTime) {
        error = "time is out of range";
        return false;
      }
      const TimeMs period = s.every_seconds * kSecond;
      const TimeMs off = ((offset % period) + period) % period;
      next = (FloorDiv(after - off, period) + 1) * period + off;
      return true;
    }
    if (s.at_minute_of_day < -1 || s.at_minute_of_day >= 24 * 60) {
      error = "schedule time of day is outside 00:00..23:59";
      return false;
    }
    if (s.at_minute_of_day < 0 && (s.weekdays & 0x7f) == 0) {
      error = "schedule has neither a period nor a time of day";
      return false;
    }
    Zone z;
    if (!FindZone(s.timezone, z, error)) return false;
    if (!InRange(after)) {
      error = kRangeError;
      return false;
    }
    const unsigned mask = (s.weekdays & 0x7f) ? (s.weekdays & 0x7f) : 0x7f;
    const int minute = s.at_minute_of_day < 0 ? 0 : s.at_minute_of_day;
    // Start a day early: the local date of `after` may already be past a tick that maps to an
    // instant after `after` (never in practice, but cheap). Ticks are increasing in local date
    // because local -> instant (earliest, gap -> its end) is monotonic.
    const date::local_days first = date::floor<date::days>(z.ToLocal(after)) - date::days{1};
    for (int k = 0; k < 10; ++k) {
      const date::local_days d = first + date::days{k};
      const unsigned iso = date::weekday{d}.iso_encoding();  // 1 = Monday .. 7 = Sunday
      if (!(mask & (1u << (iso - 1)))) continue;
      const TimeMs tick = z.ToSys(LocalMs{d} + std::chrono::minutes{minute});
      if (tick > after) {
        next = tick;
        return true;
      }
    }
    error = "no schedule tick within a week";
    return false;
  });
}

TimeMs ScheduleOffset(const std::string& rule_name, std::int64_t every_seconds) {
  if (every_seconds <= 0) return 0;
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : rule_name) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  // Small: at most a tenth of the period and at most 5 minutes, so `every 1h` still runs
  // near the top of the hour while rules with the same period spread over a few minutes.
  std::int64_t span = std::min<std::int64_t>(every_seconds / 10, 300);
  if (span <= 0) return 0;
  return static_cast<TimeMs>(h % static_cast<std::uint64_t>(span)) * kSecond;
}

// ---------------------------------------------------------------- windows

bool WindowFor(const dsl::Window& w, dsl::Grain grain, const std::string& table_tz, TimeMs now,
               WindowBounds& out, std::string& error) {
  return ZoneGuard(error, [&]() -> bool {
    if (grain != dsl::Grain::kHour && grain != dsl::Grain::kDay) {
      error = "table has no grain";
      return false;
    }
    if (w.kind == dsl::WindowKind::kNone) {
      error = "no window";
      return false;
    }
    Zone z;
    if (!FindZone(table_tz, z, error)) return false;
    if (!InRange(now)) {
      error = kRangeError;
      return false;
    }
    const bool hourly = grain == dsl::Grain::kHour;
    const std::int64_t grain_seconds = hourly ? 3600 : 86400;
    std::int64_t n = 0;
    if (w.kind == dsl::WindowKind::kLast) {
      if (w.seconds <= 0 || w.seconds % grain_seconds != 0) {
        error = std::string("window must be a positive whole number of ") +
                (hourly ? "hours" : "days") + " on this table";
        return false;
      }
      n = w.seconds / grain_seconds;
      if (n > 366LL * 200 * (hourly ? 24 : 1)) {
        error = "window is too long";
        return false;
      }
    }
    const date::local_days today = date::floor<date::days>(z.ToLocal(now));
    WindowBounds b;
    if (hourly) {
      const TimeMs current_hour = FloorDiv(now, kHour) * kHour;  // the partial hour
      auto hour_of = [&](date::local_days d) { return FloorDiv(z.DayStart(d), kHour) * kHour; };
      switch (w.kind) {
        case dsl::WindowKind::kLast:
          b.to_ms = current_hour;
          b.from_ms = current_hour - n * kHour;
          break;
        case dsl::WindowKind::kLifetime:
          b.to_ms = current_hour;
          b.from_ms = kUnboundedPast;
          break;
        case dsl::WindowKind::kYesterday:
          b.from_ms = hour_of(today - date::days{1});
          b.to_ms = hour_of(today);
          break;
        case dsl::WindowKind::kToday:
          b.from_ms = hour_of(today);
          b.to_ms = hour_of(today + date::days{1});
          break;
        case dsl::WindowKind::kNone:
          break;
      }
      b.from = b.from_ms == kUnboundedPast ? std::string() : FormatHourBucket(b.from_ms);
      b.to = FormatHourBucket(b.to_ms);
    } else {
      date::local_days from = today, to = today;
      bool unbounded = false;
      switch (w.kind) {
        case dsl::WindowKind::kLast:
          from = today - date::days{static_cast<int>(n)};
          break;
        case dsl::WindowKind::kLifetime:
          unbounded = true;
          break;
        case dsl::WindowKind::kYesterday:
          from = today - date::days{1};
          break;
        case dsl::WindowKind::kToday:
          to = today + date::days{1};
          break;
        case dsl::WindowKind::kNone:
          break;
      }
      b.from = unbounded ? std::string() : FormatDate(from);
      b.from_ms = unbounded ? kUnboundedPast : z.DayStart(from);
      b.to = FormatDate(to);
      b.to_ms = z.DayStart(to);
    }
    out = std::move(b);
    return true;
  });
}

// ---------------------------------------------------------------- quiet hours

TimeMs QuietHoursRelease(TimeMs t, int start_minute, int end_minute, const std::string& zone,
                         bool& ok) {
  ok = true;
  if (start_minute < 0 || end_minute < 0) return t;
  if (start_minute >= 24 * 60 || end_minute >= 24 * 60) {
    ok = false;
    return t;
  }
  if (start_minute == end_minute) return t;
  try {
    Zone z;
    std::string error;
    if (!FindZone(zone, z, error) || !InRange(t)) {
      ok = false;
      return t;
    }
    const LocalMs local = z.ToLocal(t);
    const date::local_days day = date::floor<date::days>(local);
    const TimeMs in_day = (local - LocalMs{day}).count();
    const TimeMs start = start_minute * kMinute, end = end_minute * kMinute;
    date::local_days end_day = day;
    if (start < end) {
      if (in_day < start || in_day >= end) return t;
    } else if (in_day >= start) {
      end_day = day + date::days{1};
    } else if (in_day >= end) {
      return t;
    }
    const LocalMs release = LocalMs{end_day} + std::chrono::minutes{end_minute};
    TimeMs r = z.ToSys(release);
    // t may sit in the second pass of a repeated hour, after the first occurrence of the end.
    if (r <= t) r = z.ToSys(release, /*latest=*/true);
    return r > t ? r : t;
  } catch (...) {
    ok = false;
    return t;
  }
}

// ---------------------------------------------------------------- buckets

std::string FormatHourBucket(TimeMs t) {
  t = t < kMinTime ? kMinTime : t > kMaxTime ? kMaxTime : t;
  const TimeMs hour = FloorDiv(t, kHour);
  const TimeMs days = FloorDiv(hour, 24);
  const int h = static_cast<int>(hour - days * 24);
  char buf[48];
  date::year_month_day ymd{date::sys_days{date::days{static_cast<int>(days)}}};
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02d:00:00", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), h);
  return buf;
}

bool FormatDayBucket(TimeMs t, const std::string& zone, std::string& out, std::string& error) {
  return ZoneGuard(error, [&]() -> bool {
    Zone z;
    if (!FindZone(zone, z, error)) return false;
    if (!InRange(t)) {
      error = kRangeError;
      return false;
    }
    out = FormatDate(date::floor<date::days>(z.ToLocal(t)));
    return true;
  });
}

bool ParseHourBucket(const std::string& text, TimeMs& out) {
  date::days d;
  int h, m, s;
  if (text.size() != 19 || !ParseDate(text, d) || text[10] != ' ' || !ParseDigits(text, 11, 2, h) ||
      text[13] != ':' || !ParseDigits(text, 14, 2, m) || text[16] != ':' || !ParseDigits(text, 17, 2, s) ||
      h > 23 || m != 0 || s != 0) {
    return false;
  }
  out = d.count() * kDay + h * kHour;
  return true;
}

bool ParseDayBucket(const std::string& text, const std::string& zone, TimeMs& out,
                    std::string& error) {
  return ZoneGuard(error, [&]() -> bool {
    date::days d;
    if (text.size() != 10 || !ParseDate(text, d)) {
      error = "not a date (YYYY-MM-DD): \"" + text + "\"";
      return false;
    }
    Zone z;
    if (!FindZone(zone, z, error)) return false;
    out = z.DayStart(date::local_days{d});
    return true;
  });
}

bool FormatBucket(TimeMs t, dsl::Grain grain, const std::string& zone, std::string& out,
                  std::string& error) {
  if (grain == dsl::Grain::kHour) {
    out = FormatHourBucket(t);
    return true;
  }
  if (grain == dsl::Grain::kDay) return FormatDayBucket(t, zone, out, error);
  error = "table has no grain";
  return false;
}

bool ParseBucket(const std::string& text, dsl::Grain grain, const std::string& zone, TimeMs& out,
                 std::string& error) {
  if (grain == dsl::Grain::kHour) {
    if (ParseHourBucket(text, out)) return true;
    error = "not an hour bucket (YYYY-MM-DD HH:00:00): \"" + text + "\"";
    return false;
  }
  if (grain == dsl::Grain::kDay) return ParseDayBucket(text, zone, out, error);
  error = "table has no grain";
  return false;
}

}  // namespace gavel::rules
