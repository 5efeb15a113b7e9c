// Statistics throughput: how long one anomaly or confidence test takes, so that the engine
// can budget a scheduled alert over many entities (e.g. 10,000 campaigns every 15 minutes).
//
// Generates ENTITIES synthetic campaigns with 29 days of hourly spend and conversions, then
// times, per call: TestSigma (1h window, 28d, same hour of week), TestCount (12h window,
// conversions per spend, 28d), TestCostPerCount (90%) and GammaQuantile (a = 1 .. 1e6).
//
//   build/bench/stats_bench [ENTITIES]   (default 2000)
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "rules/stats.hpp"

namespace {

using namespace gavel::rules;
using Clock = std::chrono::steady_clock;

constexpr std::int64_t kH = 3'600'000;
constexpr std::int64_t kStart = 1767571200000;  // 2026-01-05T00:00:00Z, a Monday
constexpr int kHours = 29 * 24;

std::uint64_t Next(std::uint64_t& s) {  // splitmix64
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
double Uniform(std::uint64_t& s) { return static_cast<double>(Next(s) >> 11) * 0x1.0p-53; }

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void Report(const char* what, long calls, double seconds, long passes) {
  std::printf("%-44s %9ld calls  %8.2f us/call  %10.0f calls/s  (%ld pass)\n", what, calls,
              1e6 * seconds / static_cast<double>(calls), static_cast<double>(calls) / seconds,
              passes);
}

}  // namespace

int main(int argc, char** argv) {
  const int entities = argc > 1 ? std::max(1, std::atoi(argv[1])) : 2000;
  std::uint64_t seed = 42;
  std::vector<std::vector<Bucket>> spend(static_cast<std::size_t>(entities)),
      conv(static_cast<std::size_t>(entities));
  for (int e = 0; e < entities; ++e) {
    const double base = 50 + 1950 * Uniform(seed), cpa = 20 + 60 * Uniform(seed);
    for (int h = 0; h < kHours; ++h) {
      const double s = base * (0.5 + Uniform(seed));
      const double c = std::floor(s / cpa * 2 * Uniform(seed));
      spend[static_cast<std::size_t>(e)].push_back({kStart + h * kH, s, 0});
      conv[static_cast<std::size_t>(e)].push_back({kStart + h * kH, c, s});
    }
  }
  const std::int64_t t_end = kStart + kHours * kH;

  long passes = 0;
  auto t0 = Clock::now();
  for (int e = 0; e < entities; ++e) {
    BaselineInput in;
    in.history = spend[static_cast<std::size_t>(e)];
    in.t_end_ms = t_end;
    in.season = Season::kHourOfWeek;
    in.observed = in.history.back().value;
    SigmaOptions opt;
    opt.min_abs_change = 10;
    passes += TestSigma(in, opt).pass;
  }
  auto t1 = Clock::now();
  Report("TestSigma 1h / 28d / hour of week", entities, Seconds(t0, t1), passes);

  passes = 0;
  t0 = Clock::now();
  for (int e = 0; e < entities; ++e) {
    const auto& rows = conv[static_cast<std::size_t>(e)];
    BaselineInput in;
    in.history = rows;
    in.t_end_ms = t_end;
    in.window_buckets = 12;
    in.has_per = true;
    for (std::size_t i = rows.size() - 12; i < rows.size(); ++i) {
      in.observed += rows[i].value;
      in.observed_per += rows[i].per;
    }
    in.direction = Band::kBelow;
    passes += TestCount(in).pass;
  }
  t1 = Clock::now();
  Report("TestCount 12h / 28d / per spend", entities, Seconds(t0, t1), passes);

  const long n = 200'000;
  passes = 0;
  t0 = Clock::now();
  for (long i = 0; i < n; ++i) {
    const double count = static_cast<double>(i % 500);
    passes += TestCostPerCount({count * 60 + 100, count, 50, 0.9, true}).pass;
  }
  t1 = Clock::now();
  Report("TestCostPerCount (count 0..499)", n, Seconds(t0, t1), passes);

  double sink = 0;
  t0 = Clock::now();
  for (long i = 0; i < n; ++i) {
    const double a = std::pow(10.0, static_cast<double>(i % 7));
    sink += GammaQuantile(0.05 + 0.9 * static_cast<double>(i % 97) / 97, a);
  }
  t1 = Clock::now();
  Report("GammaQuantile (a = 1 .. 1e6)", n, Seconds(t0, t1), sink > 0 ? 0 : 1);
  return 0;
}
