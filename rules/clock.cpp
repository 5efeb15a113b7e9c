// Clocks and time text. See clock.hpp.
#include "rules/clock.hpp"

#include <chrono>
#include <cstdio>

namespace gavel::rules {

TimeMs WallClock::Now() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void CivilFromDays(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool LeapYear(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(std::int64_t y, unsigned m) {
  static const unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && LeapYear(y) ? 29 : kDays[m - 1];
}

}  // namespace

bool ParseDigits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

std::string FormatTime(TimeMs t) {
  std::int64_t secs = t >= 0 ? t / 1000 : (t - 999) / 1000;
  int ms = static_cast<int>(t - secs * 1000);
  std::int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  std::int64_t rem = secs - days * 86400;
  std::int64_t y;
  unsigned m, d;
  CivilFromDays(days, y, m, d);
  char buf[40];
  if (ms) {
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<long long>(y), m, d,
                  static_cast<int>(rem / 3600), static_cast<int>(rem / 60 % 60), static_cast<int>(rem % 60), ms);
  } else {
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02dZ", static_cast<long long>(y), m, d,
                  static_cast<int>(rem / 3600), static_cast<int>(rem / 60 % 60), static_cast<int>(rem % 60));
  }
  return buf;
}

bool ParseTime(std::string_view s, TimeMs& out) {
  int y, mo, d, h = 0, mi = 0, se = 0, ms = 0;
  if (!ParseDigits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !ParseDigits(s, 5, 2, mo) || s[7] != '-' ||
      !ParseDigits(s, 8, 2, d)) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || static_cast<unsigned>(d) > DaysInMonth(y, static_cast<unsigned>(mo))) return false;
  std::size_t pos = 10;
  std::int64_t offset_secs = 0;
  if (pos < s.size()) {
    if (s[pos] != 'T' && s[pos] != ' ') return false;
    if (!ParseDigits(s, pos + 1, 2, h) || s.size() < pos + 9 || s[pos + 3] != ':' || !ParseDigits(s, pos + 4, 2, mi) ||
        s[pos + 6] != ':' || !ParseDigits(s, pos + 7, 2, se)) {
      return false;
    }
    if (h > 23 || mi > 59 || se > 60) return false;
    pos += 9;
    if (pos < s.size() && s[pos] == '.') {
      std::size_t start = ++pos;
      int frac = 0, n = 0;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        if (n < 3) frac = frac * 10 + (s[pos] - '0'), ++n;
        ++pos;
      }
      if (pos == start) return false;
      while (n < 3) frac *= 10, ++n;
      ms = frac;
    }
    if (pos < s.size()) {
      if (s[pos] == 'Z' || s[pos] == 'z') {
        ++pos;
      } else if (s[pos] == '+' || s[pos] == '-') {
        int oh, om;
        if (!ParseDigits(s, pos + 1, 2, oh) || s.size() < pos + 6 || s[pos + 3] != ':' || !ParseDigits(s, pos + 4, 2, om)) {
          return false;
        }
        if (oh > 23 || om > 59) return false;
        offset_secs = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
        pos += 6;
      } else {
        return false;
      }
    }
    if (pos != s.size()) return false;
  }
  std::int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + std::min(se, 59) - offset_secs;
  out = secs * 1000 + ms;
  return true;
}

}  // namespace gavel::rules
