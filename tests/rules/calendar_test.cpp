// Tests of rules/calendar: schedule ticks across the 2026 DST changes in America/New_York
// (2026-03-08, 2026-11-01) and Europe/Berlin (2026-03-29, 2026-10-25), window bounds, quiet
// hours and bucket text. Every expectation is an exact instant.
#include "rules/calendar.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace {

using gavel::dsl::Grain;
using gavel::dsl::Schedule;
using gavel::dsl::Window;
using gavel::dsl::WindowKind;
using gavel::rules::FormatTime;
using gavel::rules::TimeMs;

constexpr const char* kNY = "America/New_York";
constexpr const char* kBerlin = "Europe/Berlin";

TimeMs T(const std::string& text) {
  TimeMs t = 0;
  bool ok = gavel::rules::ParseTime(text, t);
  INFO(text);
  REQUIRE(ok);
  return t;
}

Schedule Daily(int hour, int minute, const std::string& zone, std::uint8_t days = 0x7f) {
  Schedule s;
  s.at_minute_of_day = hour * 60 + minute;
  s.weekdays = days;
  s.timezone = zone;
  return s;
}

Schedule Every(std::int64_t seconds) {
  Schedule s;
  s.every_seconds = seconds;
  return s;
}

// The next tick after `after`, as RFC 3339 text (or "error: ...").
std::string Next(const Schedule& s, const std::string& after, TimeMs offset = 0) {
  TimeMs next = -1;
  std::string error;
  if (!gavel::rules::NextScheduleTime(s, T(after), next, error, offset)) return "error: " + error;
  return FormatTime(next);
}

Window W(WindowKind kind, std::int64_t seconds = 0) {
  Window w;
  w.kind = kind;
  w.seconds = seconds;
  return w;
}

struct WindowCase {
  const char* what;
  Window window;
  Grain grain;
  const char* zone;
  const char* now;
  const char* from;
  const char* to;
  const char* from_instant;  // "" for lifetime
  const char* to_instant;
};

}  // namespace

TEST_CASE("zones: known and unknown", "[calendar]") {
  CHECK(gavel::rules::ZoneKnown(kNY));
  CHECK(gavel::rules::ZoneKnown(kBerlin));
  CHECK(gavel::rules::ZoneKnown("UTC"));
  CHECK(gavel::rules::ZoneKnown("Asia/Kolkata"));
  CHECK_FALSE(gavel::rules::ZoneKnown(""));
  CHECK_FALSE(gavel::rules::ZoneKnown("Mars/Olympus_Mons"));
  CHECK_FALSE(gavel::rules::ZoneKnown("america/new_york"));
  CHECK_FALSE(gavel::rules::ZoneKnown("../../etc/passwd"));
}

TEST_CASE("schedule: every day at 06:00 across DST in New York and Berlin", "[calendar]") {
  struct Case {
    const char* zone;
    const char* after;
    const char* next;
  };
  const std::vector<Case> cases = {
      // New York: 11:00Z in winter (EST, -5), 10:00Z in summer (EDT, -4).
      {kNY, "2026-01-15T00:00:00Z", "2026-01-15T11:00:00Z"},
      {kNY, "2026-01-15T11:00:00Z", "2026-01-16T11:00:00Z"},  // strictly after
      {kNY, "2026-01-15T10:59:59.999Z", "2026-01-15T11:00:00Z"},
      {kNY, "2026-07-01T00:00:00Z", "2026-07-01T10:00:00Z"},
      {kNY, "2026-03-07T11:00:00Z", "2026-03-08T10:00:00Z"},  // spring forward day
      {kNY, "2026-03-08T10:00:00Z", "2026-03-09T10:00:00Z"},
      {kNY, "2026-10-31T10:00:00Z", "2026-11-01T11:00:00Z"},  // fall back day
      {kNY, "2026-11-01T11:00:00Z", "2026-11-02T11:00:00Z"},
      // Berlin: 05:00Z in winter (CET, +1), 04:00Z in summer (CEST, +2).
      {kBerlin, "2026-01-15T12:00:00Z", "2026-01-16T05:00:00Z"},
      {kBerlin, "2026-03-28T05:00:00Z", "2026-03-29T04:00:00Z"},
      {kBerlin, "2026-03-29T04:00:00Z", "2026-03-30T04:00:00Z"},
      {kBerlin, "2026-10-24T04:00:00Z", "2026-10-25T05:00:00Z"},
      {kBerlin, "2026-10-25T05:00:00Z", "2026-10-26T05:00:00Z"},
      // UTC and a year boundary.
      {"UTC", "2026-12-31T06:00:00Z", "2027-01-01T06:00:00Z"},
  };
  for (const auto& c : cases) {
    INFO(c.zone << " after " << c.after);
    CHECK(Next(Daily(6, 0, c.zone), c.after) == c.next);
  }
}

TEST_CASE("schedule: weekday masks skip days", "[calendar]") {
  // 2026-03-06 is a Friday; 2026-03-08 (Sunday) is the US change day.
  const std::uint8_t weekdays = 0x1f, weekend = 0x60, monday = 0x01, sunday = 0x40;
  CHECK(Next(Daily(9, 0, kNY, weekdays), "2026-03-06T14:00:00Z") == "2026-03-09T13:00:00Z");
  CHECK(Next(Daily(9, 0, kNY, weekdays), "2026-03-06T13:59:00Z") == "2026-03-06T14:00:00Z");
  CHECK(Next(Daily(9, 0, kNY, weekend), "2026-03-06T14:00:00Z") == "2026-03-07T14:00:00Z");
  CHECK(Next(Daily(9, 0, kNY, weekend), "2026-03-07T14:00:00Z") == "2026-03-08T13:00:00Z");
  CHECK(Next(Daily(9, 0, kNY, monday), "2026-03-09T13:00:00Z") == "2026-03-16T13:00:00Z");
  CHECK(Next(Daily(10, 0, kBerlin, sunday), "2026-03-23T00:00:00Z") == "2026-03-29T08:00:00Z");
  CHECK(Next(Daily(10, 0, kBerlin, sunday), "2026-03-29T08:00:00Z") == "2026-04-05T08:00:00Z");
  // An empty mask with a time means every day; -1 with a mask means midnight.
  CHECK(Next(Daily(6, 0, kNY, 0), "2026-01-15T00:00:00Z") == "2026-01-15T11:00:00Z");
  Schedule midnight = Daily(0, 0, "UTC", monday);
  midnight.at_minute_of_day = -1;
  CHECK(Next(midnight, "2026-03-06T12:00:00Z") == "2026-03-09T00:00:00Z");
}

TEST_CASE("schedule: a local time in the spring-forward gap fires at the end of the gap",
          "[calendar]") {
  // New York 2026-03-08: 02:00 EST -> 03:00 EDT, so 02:30 does not exist; 03:00 EDT = 07:00Z.
  CHECK(Next(Daily(2, 30, kNY), "2026-03-07T07:30:00Z") == "2026-03-08T07:00:00Z");
  CHECK(Next(Daily(2, 30, kNY), "2026-03-08T07:00:00Z") == "2026-03-09T06:30:00Z");
  CHECK(Next(Daily(2, 0, kNY), "2026-03-07T07:00:00Z") == "2026-03-08T07:00:00Z");
  // Berlin 2026-03-29: 02:00 CET -> 03:00 CEST; 03:00 CEST = 01:00Z.
  CHECK(Next(Daily(2, 30, kBerlin), "2026-03-28T01:30:00Z") == "2026-03-29T01:00:00Z");
  CHECK(Next(Daily(2, 30, kBerlin), "2026-03-29T01:00:00Z") == "2026-03-30T00:30:00Z");
}

TEST_CASE("schedule: a repeated local time fires once, at its first occurrence", "[calendar]") {
  // New York 2026-11-01: 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST).
  CHECK(Next(Daily(1, 30, kNY), "2026-10-31T05:30:00Z") == "2026-11-01T05:30:00Z");
  CHECK(Next(Daily(1, 30, kNY), "2026-11-01T05:30:00Z") == "2026-11-02T06:30:00Z");
  CHECK(Next(Daily(1, 30, kNY), "2026-11-01T06:00:00Z") == "2026-11-02T06:30:00Z");
  // Berlin 2026-10-25: 02:30 happens at 00:30Z (CEST) and 01:30Z (CET).
  CHECK(Next(Daily(2, 30, kBerlin), "2026-10-24T00:30:00Z") == "2026-10-25T00:30:00Z");
  CHECK(Next(Daily(2, 30, kBerlin), "2026-10-25T00:30:00Z") == "2026-10-26T01:30:00Z");
}

TEST_CASE("schedule: every N is aligned to the epoch plus a per-rule offset", "[calendar]") {
  CHECK(Next(Every(900), "2026-11-01T10:07:00Z") == "2026-11-01T10:15:00Z");
  CHECK(Next(Every(900), "2026-11-01T10:15:00Z") == "2026-11-01T10:30:00Z");
  CHECK(Next(Every(900), "2026-11-01T10:14:59.999Z") == "2026-11-01T10:15:00Z");
  CHECK(Next(Every(900), "2026-11-01T10:07:00Z", 37000) == "2026-11-01T10:15:37Z");
  CHECK(Next(Every(900), "2026-11-01T10:00:10Z", 37000) == "2026-11-01T10:00:37Z");
  CHECK(Next(Every(900), "2026-11-01T10:00:37Z", 37000) == "2026-11-01T10:15:37Z");
  // The offset is taken modulo the period, negative offsets included.
  CHECK(Next(Every(900), "2026-11-01T10:07:00Z", 937000) == "2026-11-01T10:15:37Z");
  CHECK(Next(Every(900), "2026-11-01T10:07:00Z", -863000) == "2026-11-01T10:15:37Z");
  CHECK(Next(Every(3600), "1969-12-31T23:30:00Z") == "1970-01-01T00:00:00Z");
  CHECK(Next(Every(86400), "2026-03-08T06:00:00Z") == "2026-03-09T00:00:00Z");  // UTC days
  // The zone does not matter for every N.
  Schedule s = Every(60);
  s.timezone = "Nowhere/Special";
  CHECK(Next(s, "2026-11-01T10:07:30Z") == "2026-11-01T10:08:00Z");

  const TimeMs a = gavel::rules::ScheduleOffset("shift_budget", 900);
  const TimeMs b = gavel::rules::ScheduleOffset("pause_losers", 900);
  CHECK(a == gavel::rules::ScheduleOffset("shift_budget", 900));
  CHECK(a >= 0);
  CHECK(a < 900000);
  CHECK(a % 1000 == 0);
  CHECK(a != b);
  CHECK(gavel::rules::ScheduleOffset("x", 0) == 0);
}

TEST_CASE("schedule: bad schedules and zones are errors, never exceptions", "[calendar]") {
  CHECK(Next(Daily(6, 0, "Mars/Olympus_Mons"), "2026-01-01T00:00:00Z").rfind("error:", 0) == 0);
  CHECK(Next(Daily(6, 0, ""), "2026-01-01T00:00:00Z").rfind("error:", 0) == 0);
  Schedule none;
  none.weekdays = 0;
  CHECK(Next(none, "2026-01-01T00:00:00Z").rfind("error:", 0) == 0);
  Schedule late = Daily(6, 0, "UTC");
  late.at_minute_of_day = 24 * 60;
  CHECK(Next(late, "2026-01-01T00:00:00Z").rfind("error:", 0) == 0);
  CHECK(Next(Every(-5), "2026-01-01T00:00:00Z").rfind("error:", 0) == 0);
  TimeMs next = 42;
  std::string error;
  CHECK_FALSE(gavel::rules::NextScheduleTime(Daily(6, 0, kNY), INT64_MAX, next, error));
  CHECK(next == 42);
  CHECK_FALSE(gavel::rules::NextScheduleTime(Every(60), INT64_MIN, next, error));
}

TEST_CASE("schedule: one tick per local day of 2026, strictly increasing",
          "[calendar]") {
  for (const char* zone : {kNY, kBerlin}) {
    TimeMs t = T("2025-12-31T12:00:00Z");
    int ticks = 0, spring = 0, fall = 0;
    std::string error;
    const TimeMs end = T("2026-12-31T12:00:00Z");
    for (;;) {
      TimeMs next = 0;
      REQUIRE(gavel::rules::NextScheduleTime(Daily(6, 0, zone), t, next, error));
      REQUIRE(next > t);
      if (next >= end) break;
      std::string day;
      REQUIRE(gavel::rules::FormatDayBucket(next, zone, day, error));
      TimeMs midnight = 0;
      REQUIRE(gavel::rules::ParseDayBucket(day, zone, midnight, error));
      INFO(zone << " " << FormatTime(next));
      // 6 hours after local midnight, except on the two change days (5h in spring, 7h in fall).
      const TimeMs since_midnight = next - midnight;
      if (since_midnight == 5 * gavel::rules::kHour) ++spring;
      else if (since_midnight == 7 * gavel::rules::kHour) ++fall;
      else CHECK(since_midnight == 6 * gavel::rules::kHour);
      t = next;
      ++ticks;
    }
    CHECK(ticks == 365);
    CHECK(spring == 1);
    CHECK(fall == 1);
  }
}

TEST_CASE("windows: bounds of last, yesterday, today and lifetime", "[calendar]") {
  using WK = WindowKind;
  const std::int64_t h = 3600, d = 86400;
  const std::vector<WindowCase> cases = {
      {"last 3h hourly", W(WK::kLast, 3 * h), Grain::kHour, "UTC", "2026-11-01T10:15:00Z",
       "2026-11-01 07:00:00", "2026-11-01 10:00:00", "2026-11-01T07:00:00Z", "2026-11-01T10:00:00Z"},
      {"last 1h on the hour", W(WK::kLast, h), Grain::kHour, kNY, "2026-11-01T10:00:00Z",
       "2026-11-01 09:00:00", "2026-11-01 10:00:00", "2026-11-01T09:00:00Z", "2026-11-01T10:00:00Z"},
      {"last 2d hourly", W(WK::kLast, 2 * d), Grain::kHour, "UTC", "2026-11-01T10:15:00Z",
       "2026-10-30 10:00:00", "2026-11-01 10:00:00", "2026-10-30T10:00:00Z", "2026-11-01T10:00:00Z"},
      {"last 3d daily UTC", W(WK::kLast, 3 * d), Grain::kDay, "UTC", "2026-11-01T10:15:00Z",
       "2026-10-29", "2026-11-01", "2026-10-29T00:00:00Z", "2026-11-01T00:00:00Z"},
      {"last 1d daily Tokyo", W(WK::kLast, d), Grain::kDay, "Asia/Tokyo", "2026-11-01T10:15:00Z",
       "2026-10-31", "2026-11-01", "2026-10-30T15:00:00Z", "2026-10-31T15:00:00Z"},
      // 23:00 EDT on Oct 31 is still Oct 31 in New York.
      {"yesterday daily NY late evening", W(WK::kYesterday), Grain::kDay, kNY,
       "2026-11-01T03:00:00Z", "2026-10-30", "2026-10-31", "2026-10-30T04:00:00Z",
       "2026-10-31T04:00:00Z"},
      {"last 7d daily NY across fall back", W(WK::kLast, 7 * d), Grain::kDay, kNY,
       "2026-11-03T12:00:00Z", "2026-10-27", "2026-11-03", "2026-10-27T04:00:00Z",
       "2026-11-03T05:00:00Z"},
      // Nov 1 in New York has 25 hours.
      {"today daily NY on fall back day", W(WK::kToday), Grain::kDay, kNY, "2026-11-01T10:15:00Z",
       "2026-11-01", "2026-11-02", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"},
      {"yesterday hourly NY after fall back", W(WK::kYesterday), Grain::kHour, kNY,
       "2026-11-02T12:00:00Z", "2026-11-01 04:00:00", "2026-11-02 05:00:00",
       "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"},
      // Mar 29 in Berlin has 23 hours.
      {"today hourly Berlin on spring forward day", W(WK::kToday), Grain::kHour, kBerlin,
       "2026-03-29T12:00:00Z", "2026-03-28 23:00:00", "2026-03-29 22:00:00",
       "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"},
      {"yesterday daily Berlin after fall back", W(WK::kYesterday), Grain::kDay, kBerlin,
       "2026-10-26T08:00:00Z", "2026-10-25", "2026-10-26", "2026-10-24T22:00:00Z",
       "2026-10-25T23:00:00Z"},
      // Half-hour zone: both ends rounded down to the UTC hour.
      {"yesterday hourly Kolkata", W(WK::kYesterday), Grain::kHour, "Asia/Kolkata",
       "2026-06-10T12:00:00Z", "2026-06-08 18:00:00", "2026-06-09 18:00:00",
       "2026-06-08T18:00:00Z", "2026-06-09T18:00:00Z"},
      {"lifetime daily", W(WK::kLifetime), Grain::kDay, kNY, "2026-11-01T10:15:00Z", "",
       "2026-11-01", "", "2026-11-01T04:00:00Z"},
      {"lifetime hourly", W(WK::kLifetime), Grain::kHour, "UTC", "2026-11-01T10:15:00Z", "",
       "2026-11-01 10:00:00", "", "2026-11-01T10:00:00Z"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    gavel::rules::WindowBounds b;
    std::string error;
    REQUIRE(gavel::rules::WindowFor(c.window, c.grain, c.zone, T(c.now), b, error));
    CHECK(b.from == c.from);
    CHECK(b.to == c.to);
    if (std::string(c.from_instant).empty()) {
      CHECK(b.from_ms == gavel::rules::kUnboundedPast);
    } else {
      CHECK(FormatTime(b.from_ms) == c.from_instant);
    }
    CHECK(FormatTime(b.to_ms) == c.to_instant);
  }
}

TEST_CASE("windows: bad inputs are errors", "[calendar]") {
  gavel::rules::WindowBounds b;
  b.from = "untouched";
  std::string error;
  const TimeMs now = T("2026-11-01T10:15:00Z");
  CHECK_FALSE(gavel::rules::WindowFor(W(WindowKind::kLast, 36 * 3600), Grain::kDay, "UTC", now, b,
                                      error));
  CHECK_FALSE(error.empty());
  CHECK_FALSE(gavel::rules::WindowFor(W(WindowKind::kLast, 0), Grain::kHour, "UTC", now, b, error));
  CHECK_FALSE(gavel::rules::WindowFor(W(WindowKind::kLast, 5400), Grain::kHour, "UTC", now, b,
                                      error));
  CHECK_FALSE(gavel::rules::WindowFor(W(WindowKind::kNone), Grain::kDay, "UTC", now, b, error));
  CHECK_FALSE(gavel::rules::WindowFor(W(WindowKind::kToday), Grain::kNone, "UTC", now, b, error));
  error.clear();
  CHECK_FALSE(gavel::rules::WindowFor(W(WindowKind::kToday), Grain::kDay, "Not/AZone", now, b,
                                      error));
  CHECK(error.find("Not/AZone") != std::string::npos);
  CHECK(b.from == "untouched");
}

TEST_CASE("quiet hours: release instants, wrapping midnight and across DST", "[calendar]") {
  struct Case {
    const char* what;
    int start, end;
    const char* zone;
    const char* t;
    const char* release;  // == t when not quiet
  };
  const int q21 = 21 * 60, q08 = 8 * 60;
  const std::vector<Case> cases = {
      {"evening, winter", q21, q08, kNY, "2026-01-15T03:00:00Z", "2026-01-15T13:00:00Z"},
      {"early morning", q21, q08, kNY, "2026-01-15T12:00:00Z", "2026-01-15T13:00:00Z"},
      {"at the end: not quiet", q21, q08, kNY, "2026-01-15T13:00:00Z", "2026-01-15T13:00:00Z"},
      {"just before start", q21, q08, kNY, "2026-01-15T01:59:59Z", "2026-01-15T01:59:59Z"},
      {"at the start", q21, q08, kNY, "2026-01-15T02:00:00Z", "2026-01-15T13:00:00Z"},
      {"afternoon", q21, q08, kNY, "2026-01-15T18:00:00Z", "2026-01-15T18:00:00Z"},
      // 22:00 EST Mar 7 -> 08:00 EDT Mar 8 (only 9 hours later).
      {"across spring forward", q21, q08, kNY, "2026-03-08T03:00:00Z", "2026-03-08T12:00:00Z"},
      // 22:00 EDT Oct 31 -> 08:00 EST Nov 1 (11 hours later).
      {"across fall back", q21, q08, kNY, "2026-11-01T02:00:00Z", "2026-11-01T13:00:00Z"},
      {"Berlin across fall back", 22 * 60, 7 * 60, kBerlin, "2026-10-24T21:00:00Z",
       "2026-10-25T06:00:00Z"},
      {"Berlin across spring forward", 22 * 60, 7 * 60, kBerlin, "2026-03-28T22:30:00Z",
       "2026-03-29T05:00:00Z"},
      {"not wrapping", 12 * 60, 14 * 60, "UTC", "2026-05-05T13:59:00Z", "2026-05-05T14:00:00Z"},
      {"not wrapping, outside", 12 * 60, 14 * 60, "UTC", "2026-05-05T11:59:00Z",
       "2026-05-05T11:59:00Z"},
      // The end 02:30 does not exist on Mar 8 in New York: released at the end of the gap.
      {"end inside the gap", 0, 150, kNY, "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"},
      // 01:10 happens twice on Nov 1 in New York; each pass ends at the 01:30 that follows it.
      {"repeated hour, first pass", 0, 90, kNY, "2026-11-01T05:10:00Z", "2026-11-01T05:30:00Z"},
      {"repeated hour, second pass", 0, 90, kNY, "2026-11-01T06:10:00Z", "2026-11-01T06:30:00Z"},
      {"none", -1, -1, kNY, "2026-01-15T03:00:00Z", "2026-01-15T03:00:00Z"},
      {"empty window", q21, q21, kNY, "2026-01-15T03:00:00Z", "2026-01-15T03:00:00Z"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    bool ok = false;
    TimeMs r = gavel::rules::QuietHoursRelease(T(c.t), c.start, c.end, c.zone, ok);
    CHECK(ok);
    CHECK(FormatTime(r) == c.release);
  }
}

TEST_CASE("quiet hours: an unknown zone is reported, not thrown", "[calendar]") {
  bool ok = true;
  const TimeMs t = T("2026-01-15T03:00:00Z");
  CHECK(gavel::rules::QuietHoursRelease(t, 21 * 60, 8 * 60, "Nope/Nowhere", ok) == t);
  CHECK_FALSE(ok);
  ok = true;
  CHECK(gavel::rules::QuietHoursRelease(t, 21 * 60, 8 * 60, "", ok) == t);
  CHECK_FALSE(ok);
  ok = true;
  CHECK(gavel::rules::QuietHoursRelease(t, 21 * 60, 1440, "UTC", ok) == t);
  CHECK_FALSE(ok);
}

TEST_CASE("buckets: format and parse hour and day buckets", "[calendar]") {
  using gavel::rules::FormatHourBucket;
  using gavel::rules::ParseHourBucket;
  CHECK(FormatHourBucket(T("2026-11-01T10:15:30.500Z")) == "2026-11-01 10:00:00");
  CHECK(FormatHourBucket(T("2026-11-01T00:00:00Z")) == "2026-11-01 00:00:00");
  CHECK(FormatHourBucket(T("1969-12-31T23:59:59Z")) == "1969-12-31 23:00:00");
  TimeMs t = 0;
  REQUIRE(ParseHourBucket("2026-11-01 10:00:00", t));
  CHECK(FormatTime(t) == "2026-11-01T10:00:00Z");
  CHECK_FALSE(ParseHourBucket("2026-11-01 10:30:00", t));
  CHECK_FALSE(ParseHourBucket("2026-02-30 10:00:00", t));
  CHECK_FALSE(ParseHourBucket("2026-11-01 24:00:00", t));
  CHECK_FALSE(ParseHourBucket("2026-11-01T10:00:00", t));
  CHECK_FALSE(ParseHourBucket("2026-11-01", t));

  std::string day, error;
  REQUIRE(gavel::rules::FormatDayBucket(T("2026-11-01T03:00:00Z"), kNY, day, error));
  CHECK(day == "2026-10-31");
  REQUIRE(gavel::rules::FormatDayBucket(T("2026-11-01T03:00:00Z"), "UTC", day, error));
  CHECK(day == "2026-11-01");
  REQUIRE(gavel::rules::FormatDayBucket(T("2026-10-31T22:30:00Z"), kBerlin, day, error));
  CHECK(day == "2026-10-31");
  REQUIRE(gavel::rules::FormatDayBucket(T("2026-10-31T23:30:00Z"), kBerlin, day, error));
  CHECK(day == "2026-11-01");
  CHECK_FALSE(gavel::rules::FormatDayBucket(0, "Bad/Zone", day, error));

  REQUIRE(gavel::rules::ParseDayBucket("2026-03-08", kNY, t, error));
  CHECK(FormatTime(t) == "2026-03-08T05:00:00Z");
  REQUIRE(gavel::rules::ParseDayBucket("2026-03-09", kNY, t, error));
  CHECK(FormatTime(t) == "2026-03-09T04:00:00Z");
  REQUIRE(gavel::rules::ParseDayBucket("2026-10-25", kBerlin, t, error));
  CHECK(FormatTime(t) == "2026-10-24T22:00:00Z");
  CHECK_FALSE(gavel::rules::ParseDayBucket("2026-13-01", kNY, t, error));
  CHECK_FALSE(gavel::rules::ParseDayBucket("2026-11-01", "Bad/Zone", t, error));

  std::string s;
  REQUIRE(gavel::rules::FormatBucket(T("2026-11-01T03:00:00Z"), Grain::kHour, kNY, s, error));
  CHECK(s == "2026-11-01 03:00:00");
  REQUIRE(gavel::rules::FormatBucket(T("2026-11-01T03:00:00Z"), Grain::kDay, kNY, s, error));
  CHECK(s == "2026-10-31");
  REQUIRE(gavel::rules::ParseBucket("2026-10-31", Grain::kDay, kNY, t, error));
  CHECK(FormatTime(t) == "2026-10-31T04:00:00Z");
  REQUIRE(gavel::rules::ParseBucket("2026-10-31 04:00:00", Grain::kHour, kNY, t, error));
  CHECK(FormatTime(t) == "2026-10-31T04:00:00Z");
  CHECK_FALSE(gavel::rules::ParseBucket("2026-10-31", Grain::kHour, kNY, t, error));
  CHECK_FALSE(gavel::rules::FormatBucket(0, Grain::kNone, kNY, s, error));
}

TEST_CASE("buckets: every hour of 2026 round-trips through its bucket text", "[calendar]") {
  std::string error;
  for (TimeMs t = T("2026-01-01T00:00:00Z"); t < T("2027-01-01T00:00:00Z");
       t += gavel::rules::kHour) {
    TimeMs back = 0;
    REQUIRE(gavel::rules::ParseHourBucket(gavel::rules::FormatHourBucket(t + 1234), back));
    REQUIRE(back == t);
    std::string day;
    REQUIRE(gavel::rules::FormatDayBucket(t, kBerlin, day, error));
    TimeMs start = 0;
    REQUIRE(gavel::rules::ParseDayBucket(day, kBerlin, start, error));
    REQUIRE(start <= t);
    REQUIRE(t - start < 25 * gavel::rules::kHour);
  }
}
