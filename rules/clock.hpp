// Time for the engine: one Clock passed in. Nothing under rules/ reads the wall clock itself.
//
// Times are milliseconds since the Unix epoch, UTC (TimeMs). The daemon passes a WallClock;
// tests, `replay`, `test`, `plan` and `backtest` pass a SimulatedClock that only moves when
// told, so a 30-day decay or a 48-hour wait runs in milliseconds and the same inputs always
// give the same decisions.
// Thread-safety: SimulatedClock is not synchronised; use it from one thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gavel::rules {

using TimeMs = std::int64_t;

constexpr TimeMs kSecond = 1000;
constexpr TimeMs kMinute = 60 * kSecond;
constexpr TimeMs kHour = 60 * kMinute;
constexpr TimeMs kDay = 24 * kHour;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeMs Now() const = 0;
};

class WallClock final : public Clock {
 public:
  TimeMs Now() const override;
};

class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(TimeMs start = 0) : now_(start) {}
  TimeMs Now() const override { return now_; }
  void Set(TimeMs t) { now_ = t; }
  void Advance(TimeMs d) { now_ += d; }

 private:
  TimeMs now_;
};

// RFC 3339 / ISO 8601 in UTC: "2026-11-01T09:00:00Z" (milliseconds shown only when non-zero).
std::string FormatTime(TimeMs t);
// Parses "2026-11-01T09:00:00Z", "2026-11-01T09:00:00.250Z", "2026-11-01T10:00:00+01:00",
// "2026-11-01 09:00:00" (UTC) and "2026-11-01" (midnight UTC). Returns false if malformed
// (including impossible dates such as 2026-02-30).
bool ParseTime(std::string_view text, TimeMs& out);

// Reads exactly `n` decimal digits of `s` at `pos` into `out`; false if any is not a digit or
// the text is too short. The building block of the time parsers here and in calendar.cpp.
bool ParseDigits(std::string_view s, std::size_t pos, std::size_t n, int& out);

}  // namespace gavel::rules
