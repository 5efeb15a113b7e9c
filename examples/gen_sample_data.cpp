// gen_sample_data.cpp - deterministic sample-data generator for gavel.
//
// Writes two files into --out DIR:
//   warehouse.db   SQLite warehouse: adset_daily, campaign_hourly, channel_daily,
//                  injected_anomalies (ground truth) and meta (generator args).
//   events.ndjson  lead activity stream, one JSON object per line, time-sorted.
// The numbers are shaped like real paid-media and lead data (lognormal spend,
// weekly and hour-of-day seasonality, Poisson conversions, bursty sessions)
// and contain a known, recorded set of anomalies, so rules, the daemon and the
// benchmarks have something believable to run against. examples/README.md
// describes every table, column, unit and injected anomaly.
//
// Determinism: all randomness comes from our own xoshiro256** (seeded through
// splitmix64) and our own uniform/normal/lognormal/Poisson samplers; no <random>
// distributions, whose output is implementation-defined. Identical arguments
// give byte-identical files. The warehouse and the event stream use separate
// random streams, so --events-only writes the same events.ndjson as a full run.

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <vector>

namespace {

namespace fs = std::filesystem;

// Bad command-line arguments: reported together with a usage hint.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

constexpr std::string_view kUsage =
    "usage: gavel-sample-data --out DIR [--seed N] [--days N] [--end YYYY-MM-DD]\n"
    "                         [--adsets N] [--campaigns N] [--leads N] [--events N]\n"
    "                         [--events-only]\n"
    "\n"
    "Writes DIR/warehouse.db (SQLite, replaced) and DIR/events.ndjson.\n"
    "  --out DIR        output directory (created if missing)\n"
    "  --seed N         PRNG seed (default 42)\n"
    "  --days N         number of days covered (default 90)\n"
    "  --end DATE       exclusive end date, UTC (default 2026-11-01)\n"
    "  --adsets N       ad sets in adset_daily (default 200)\n"
    "  --campaigns N    campaigns in campaign_hourly (default 40, >= 5)\n"
    "  --leads N        leads in events.ndjson (default 2000)\n"
    "  --events N       distinct events in events.ndjson (default 20000, >= leads);\n"
    "                   a few deliberate duplicate lines are added on top\n"
    "  --events-only    write only events.ndjson (for benchmarks)\n";

struct Options {
  fs::path out;
  std::uint64_t seed = 42;
  int days = 90;
  std::string end = "2026-11-01";
  std::int64_t end_day = 0;  // days since 1970-01-01, filled by parse_args
  int adsets = 200;
  int campaigns = 40;
  int leads = 2000;
  std::int64_t events = 20000;
  bool events_only = false;
};

// Proleptic Gregorian calendar <-> days since 1970-01-01 (H. Hinnant).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t y;
  unsigned m, d;
};

Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

// 0 = Sunday ... 6 = Saturday. 1970-01-01 was a Thursday.
int weekday(std::int64_t day) { return static_cast<int>(((day % 7) + 11) % 7); }

std::string format_day(std::int64_t day) {
  const Civil c = civil_from_days(day);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(c.y), c.m, c.d);
  return buf;
}

// 'YYYY-MM-DD HH:00:00' for hour offset `hour` from the start of `day`.
std::string format_hour(std::int64_t day, std::int64_t hour) {
  day += hour / 24;
  char buf[8];
  std::snprintf(buf, sizeof buf, " %02d", static_cast<int>(hour % 24));
  return format_day(day) + buf + ":00:00";
}

std::optional<std::int64_t> parse_day(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  auto num = [&](std::size_t pos, std::size_t len) -> std::optional<unsigned> {
    unsigned v = 0;
    const char* first = s.data() + pos;
    const auto [p, ec] = std::from_chars(first, first + len, v);
    if (ec != std::errc{} || p != first + len) return std::nullopt;
    return v;
  };
  const auto y = num(0, 4), m = num(5, 2), d = num(8, 2);
  if (!y || !m || !d || *y < 1971 || *m < 1 || *m > 12 || *d < 1) return std::nullopt;
  const std::int64_t day = days_from_civil(*y, *m, *d);
  const Civil back = civil_from_days(day);
  if (back.y != *y || back.m != *m || back.d != *d) return std::nullopt;  // e.g. 02-30
  return day;
}

template <typename T>
T parse_int(std::string_view flag, std::string_view text, T lo, T hi) {
  T v{};
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || p != text.data() + text.size() || text.empty())
    throw UsageError(std::string(flag) + ": not an integer: '" + std::string(text) + "'");
  if (v < lo || v > hi)
    throw UsageError(std::string(flag) + ": " + std::string(text) + " is out of range [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

// Returns nullopt when --help was asked for.
std::optional<Options> parse_args(int argc, char** argv) {
  Options o;
  bool have_out = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") return std::nullopt;
    if (arg == "--events-only") {
      o.events_only = true;
      continue;
    }
    std::string_view flag = arg, value;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else {
      if (i + 1 >= argc) throw UsageError(std::string(flag) + ": missing value");
      value = argv[++i];
    }
    if (flag == "--out") {
      if (value.empty()) throw UsageError("--out: empty path");
      o.out = fs::path(std::string(value));
      have_out = true;
    } else if (flag == "--seed") {
      o.seed = parse_int<std::uint64_t>(flag, value, 0, UINT64_MAX);
    } else if (flag == "--days") {
      o.days = parse_int<int>(flag, value, 1, 3650);
    } else if (flag == "--end") {
      const auto d = parse_day(value);
      if (!d) throw UsageError("--end: expected a valid date YYYY-MM-DD, got '" + std::string(value) + "'");
      o.end = std::string(value);
    } else if (flag == "--adsets") {
      o.adsets = parse_int<int>(flag, value, 1, 99999);
    } else if (flag == "--campaigns") {
      o.campaigns = parse_int<int>(flag, value, 5, 9999);
    } else if (flag == "--leads") {
      o.leads = parse_int<int>(flag, value, 1, 9999999);
    } else if (flag == "--events") {
      o.events = parse_int<std::int64_t>(flag, value, 1, 50'000'000);
    } else {
      throw UsageError("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (!have_out) throw UsageError("--out DIR is required");
  if (o.adsets < o.campaigns)
    throw UsageError("--adsets (" + std::to_string(o.adsets) + ") must be >= --campaigns (" +
                     std::to_string(o.campaigns) + "): every campaign needs an ad set");
  if (o.events < o.leads)
    throw UsageError("--events (" + std::to_string(o.events) + ") must be >= --leads (" +
                     std::to_string(o.leads) + "): every lead has a lead_profile event");
  o.end_day = *parse_day(o.end);
  if (o.end_day - o.days < 0) throw UsageError("--days reaches before 1970-01-01");
  return o;
}

// ---------------------------------------------------------------------------
// Random numbers: xoshiro256** seeded by splitmix64, plus samplers
// ---------------------------------------------------------------------------

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Independent random streams; the numbers are arbitrary but fixed forever.
enum class Stream : std::uint64_t { kModel = 1, kAdsetDaily, kCampaignHourly, kChannelDaily, kAnomalies, kEvents };

class Rng {
 public:
  Rng(std::uint64_t seed, Stream stream) {
    std::uint64_t x = seed ^ (static_cast<std::uint64_t>(stream) * 0xD1B54A32D192ED03ull);
    for (auto& s : s_) s = splitmix64(x);
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Integer in [lo, hi]; returns lo when the range is empty.
  std::int64_t uniform_int(std::int64_t lo, std::int64_t hi) {
    if (hi <= lo) return lo;
    const auto span = static_cast<std::uint64_t>(hi - lo) + 1;
    return lo + static_cast<std::int64_t>((static_cast<unsigned __int128>(next()) * span) >> 64);
  }
  bool chance(double p) { return uniform() < p; }

  // Standard normal by Box-Muller (one value per call, no cached state).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // exp(N(mu, sigma^2)); lognormal(0, s) has median 1.
  double lognormal(double mu, double sigma) { return std::exp(mu + sigma * normal()); }

  // Poisson: Knuth's product method for small means, Hoermann's PTRS
  // transformed rejection for large ones.
  std::int64_t poisson(double lambda) {
    if (!(lambda > 0)) return 0;
    if (lambda < 30) {
      const double limit = std::exp(-lambda);
      std::int64_t k = 0;
      double p = uniform();
      while (p > limit) {
        ++k;
        p *= uniform();
      }
      return k;
    }
    const double slam = std::sqrt(lambda), loglam = std::log(lambda);
    const double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
    const double invalpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
    for (;;) {
      const double u = uniform() - 0.5, v = uniform();
      const double us = 0.5 - std::fabs(u);
      const double k = std::floor((2 * a / us + b) * u + lambda + 0.43);
      if (us >= 0.07 && v <= vr) return static_cast<std::int64_t>(k);
      if (k < 0 || (us < 0.013 && v > us)) continue;
      if (std::log(v) + std::log(invalpha) - std::log(a / (us * us) + b) <=
          -lambda + k * loglam - std::lgamma(k + 1))
        return static_cast<std::int64_t>(k);
    }
  }

  // Index drawn with probability proportional to weights[i].
  std::size_t pick(std::span<const double> weights) {
    double total = 0;
    for (double w : weights) total += w;
    double u = uniform() * total;
    for (std::size_t i = 0; i < weights.size(); ++i) {
      if (u < weights[i]) return i;
      u -= weights[i];
    }
    return weights.size() - 1;
  }

  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (std::size_t i = v.size(); i > 1; --i)
      std::swap(v[i - 1], v[static_cast<std::size_t>(uniform_int(0, static_cast<std::int64_t>(i) - 1))]);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<std::uint64_t, 4> s_{};
};

double round2(double x) { return std::round(x * 100.0) / 100.0; }

std::string pad_id(std::string_view prefix, std::int64_t n, int width) {
  std::string digits = std::to_string(n);
  if (static_cast<int>(digits.size()) < width) digits.insert(0, width - digits.size(), '0');
  return std::string(prefix) + digits;
}

int id_width(std::int64_t count, int min_width) {
  return std::max(min_width, static_cast<int>(std::to_string(count).size()));
}

std::string fmt(double v, const char* spec = "%.6g") {
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

// ---------------------------------------------------------------------------
// Channels and the ad-set / campaign model
// ---------------------------------------------------------------------------

struct ChannelSpec {
  const char* id;
  const char* display;
  double adset_share;  // share of ad sets and campaigns
  double cpm;          // USD per 1000 impressions
  double ctr;          // clicks / impressions
  double cpa_lo, cpa_hi;  // target CPA range, USD
  double roas;         // revenue / spend, mid-window
  double roas_trend;   // relative ROAS change from window start to end
  std::array<double, 7> dow;  // spend multiplier, Sunday..Saturday
  std::array<const char*, 6> audiences;
  std::array<const char*, 5> themes;  // campaign themes
};

constexpr std::array<ChannelSpec, 5> kChannels{{
    {"meta", "Meta", 0.34, 11.0, 0.012, 30, 90, 3.0, -0.15,
     {0.92, 1.02, 1.05, 1.05, 1.03, 0.98, 0.95},
     {"Retargeting", "Lookalike 1%", "Lookalike 3%", "Broad", "Interest Stack", "Advantage+"},
     {"Always-On Demand Gen", "Guide Downloads", "Retargeting", "Webinar Promotion", "Q4 Pipeline Push"}},
    {"google", "Google", 0.30, 28.0, 0.028, 25, 80, 4.4, 0.0,
     {0.80, 1.08, 1.12, 1.12, 1.08, 0.98, 0.82},
     {"Search Brand", "Search Generic", "Search Competitor", "Performance Max", "YouTube", "Display Remarketing"},
     {"Search Brand", "Search Non-Brand", "Competitor Conquest", "Performance Max", "YouTube Awareness"}},
    {"tiktok", "TikTok", 0.14, 7.0, 0.009, 20, 60, 1.7, 0.25,
     {1.12, 0.94, 0.95, 0.96, 0.98, 1.03, 1.12},
     {"Broad", "Interest", "Spark Ads", "Retargeting", "Lookalike", "Creator Mix"},
     {"Awareness", "Trial Signups", "Creator Push", "Retargeting", "Product Launch"}},
    {"linkedin", "LinkedIn", 0.12, 38.0, 0.0055, 80, 150, 1.25, 0.0,
     {0.65, 1.12, 1.18, 1.18, 1.12, 0.98, 0.67},
     {"Job Titles", "Company List ABM", "Matched Audiences", "Skills", "Retargeting", "Seniority VP+"},
     {"Enterprise ABM", "Thought Leadership", "Webinar Promotion", "Demo Requests", "Retargeting"}},
    {"snap", "Snap", 0.10, 6.0, 0.007, 20, 55, 2.1, 0.0,
     {1.12, 0.95, 0.95, 0.95, 0.98, 1.05, 1.10},
     {"Broad", "Lookalike", "Retargeting", "Lifestyle", "Interest", "Dynamic Ads"},
     {"Awareness", "App Installs", "Retargeting", "Trial Signups", "Seasonal"}},
}};

constexpr std::array<const char*, 8> kGeos{"US", "CA", "UK", "DE", "FR", "AU", "NL", "JP"};
constexpr std::array<const char*, 3> kRegions{"NA", "EMEA", "APAC"};

struct Campaign {
  std::string id, name;
  int channel = 0;
};

struct Adset {
  std::string id, name;
  int channel = 0, campaign = 0;
  double target_cpa = 0, true_cpa = 0;
  double base_spend = 0;   // median daily spend, USD
  double cpm_factor = 1;   // multiplies the channel CPM
  double ctr = 0;
  int first_day = 0, end_day = 0;  // active day offsets [first_day, end_day)
  bool bad = false;
  int zero_from = -1;      // conversions are 0 from this day offset on
  int drift_from = -1;     // true CPA ramps up from this day offset on
  double drift_factor = 1;  // CPA multiplier reached on the last day
};

// One row of injected_anomalies (the ground truth).
struct Anomaly {
  std::string kind, table, entity, start, end;
  std::optional<double> factor;
  std::string note;
};

struct Model {
  std::vector<Campaign> campaigns;
  std::vector<Adset> adsets;
  std::vector<Anomaly> anomalies;  // the adset_daily ones
  int late_start = 0, paused = 0;
};

// Largest-remainder apportionment of `total` over the channels by adset_share,
// on top of `minimum` (one entry per channel).
std::vector<int> apportion(int total, const std::vector<int>& minimum) {
  std::vector<int> out = minimum;
  int rest = total;
  for (int m : minimum) rest -= m;
  std::vector<double> frac(kChannels.size());
  int given = 0;
  for (std::size_t i = 0; i < kChannels.size(); ++i) {
    const double q = rest * kChannels[i].adset_share;  // shares sum to 1
    out[i] += static_cast<int>(q);
    given += static_cast<int>(q);
    frac[i] = q - std::floor(q);
  }
  while (given < rest) {
    const auto i = static_cast<std::size_t>(std::max_element(frac.begin(), frac.end()) - frac.begin());
    ++out[i];
    frac[i] = -1;
    ++given;
  }
  return out;
}

// Spreads `count` entities over the channels (at least `minimum[c]` each) and
// returns the channel of each entity in id order, shuffled so ids do not
// cluster by channel.
std::vector<int> assign_channels(Rng& rng, int count, const std::vector<int>& minimum) {
  const std::vector<int> per_channel = apportion(count, minimum);
  std::vector<int> channel;
  for (std::size_t c = 0; c < per_channel.size(); ++c) channel.insert(channel.end(), per_channel[c], static_cast<int>(c));
  rng.shuffle(channel);
  return channel;
}

std::vector<Campaign> build_campaigns(const Options& o, Rng& rng) {
  const std::vector<int> channel = assign_channels(rng, o.campaigns, std::vector<int>(kChannels.size(), 1));
  std::vector<Campaign> out;
  std::vector<std::string> used;
  const int width = id_width(o.campaigns, 3);
  for (int i = 0; i < o.campaigns; ++i) {
    const ChannelSpec& ch = kChannels[static_cast<std::size_t>(channel[i])];
    std::string base = std::string(ch.display) + " \u2013 " + ch.themes[rng.uniform_int(0, 4)] + " " +
                       kRegions[rng.uniform_int(0, 2)];
    std::string name = base;
    for (int n = 2; std::find(used.begin(), used.end(), name) != used.end(); ++n) name = base + " " + std::to_string(n);
    used.push_back(name);
    out.push_back({pad_id("cmp_", i + 1, width), name, channel[i]});
  }
  return out;
}

// Ad sets with their lifetimes and archetypes (normal / bad / zero conversions
// / CPA drift); records the adset_daily ground truth into model.anomalies.
void build_adsets(const Options& o, Rng& rng, Model& model) {
  std::vector<int> per_channel_campaigns(kChannels.size(), 0);
  for (const Campaign& c : model.campaigns) ++per_channel_campaigns[static_cast<std::size_t>(c.channel)];
  const std::vector<int> channel = assign_channels(rng, o.adsets, per_channel_campaigns);

  const int width = id_width(o.adsets, 4);
  std::vector<int> ordinal(kChannels.size(), 0);
  for (int i = 0; i < o.adsets; ++i) {
    Adset a;
    a.channel = channel[i];
    const ChannelSpec& ch = kChannels[static_cast<std::size_t>(a.channel)];
    a.id = pad_id("as_", i + 1, width);
    char num[16];
    std::snprintf(num, sizeof num, "%02d", ++ordinal[static_cast<std::size_t>(a.channel)]);
    a.name = std::string(ch.display) + " \u2013 " + ch.audiences[rng.uniform_int(0, 5)] + " " +
             kGeos[rng.uniform_int(0, kGeos.size() - 1)] + " " + num;
    a.target_cpa = std::round(rng.uniform(ch.cpa_lo, ch.cpa_hi));
    a.true_cpa = a.target_cpa * std::clamp(rng.lognormal(0, 0.18), 0.6, 1.6);
    a.base_spend = std::clamp(rng.lognormal(std::log(160.0), 0.75), 25.0, 1500.0);
    a.cpm_factor = rng.lognormal(0, 0.2);
    a.ctr = std::clamp(ch.ctr * rng.lognormal(0, 0.3), 0.005, 0.03);
    a.first_day = 0;
    a.end_day = o.days;
    model.adsets.push_back(std::move(a));
  }

  // Campaigns: every campaign gets at least one ad set of its channel.
  for (std::size_t c = 0; c < kChannels.size(); ++c) {
    std::vector<int> mine, camps;
    for (int i = 0; i < o.adsets; ++i)
      if (model.adsets[i].channel == static_cast<int>(c)) mine.push_back(i);
    for (int k = 0; k < o.campaigns; ++k)
      if (model.campaigns[k].channel == static_cast<int>(c)) camps.push_back(k);
    rng.shuffle(mine);
    for (std::size_t j = 0; j < mine.size(); ++j)
      model.adsets[mine[j]].campaign =
          j < camps.size() ? camps[j] : camps[static_cast<std::size_t>(rng.uniform_int(0, camps.size() - 1))];
  }

  // Archetypes, by position in one shuffled permutation:
  // [late start][paused early][zero conversions][CPA drift][rest...]
  const auto share = [&](double s, int at_least) { return std::max(at_least, static_cast<int>(std::lround(o.adsets * s))); };
  const int n_late = share(0.15, 0), n_paused = share(0.04, 0);
  const int n_zero = share(0.025, 1), n_drift = share(0.01, 1), n_bad = share(0.10, 1);
  std::vector<int> perm(static_cast<std::size_t>(o.adsets));
  for (int i = 0; i < o.adsets; ++i) perm[i] = i;
  rng.shuffle(perm);
  std::size_t pos = 0;
  const auto take = [&]() -> Adset* { return pos < perm.size() ? &model.adsets[perm[pos++]] : nullptr; };

  for (int k = 0; k < n_late; ++k)
    if (Adset* a = take(); a && o.days >= 14) {
      a->first_day = static_cast<int>(rng.uniform_int(o.days / 10, o.days * 85 / 100));
      ++model.late_start;
    }
  for (int k = 0; k < n_paused; ++k)
    if (Adset* a = take(); a && o.days >= 14) {
      a->end_day = o.days - static_cast<int>(rng.uniform_int(3, std::min(30, o.days / 3)));
      ++model.paused;
    }
  const std::string end = format_day(o.end_day);
  const std::int64_t start_day = o.end_day - o.days;
  for (int k = 0; k < n_zero; ++k)
    if (Adset* a = take()) {
      const int len = static_cast<int>(rng.uniform_int(std::min(10, o.days), std::min(30, o.days)));
      a->zero_from = o.days - len;
      model.anomalies.push_back({"zero_conversions", "adset_daily", a->id, format_day(start_day + a->zero_from), end, 0.0,
                                 "conversions are 0 on every day of the window while spend, impressions and clicks "
                                 "continue (" + std::to_string(len) + " days, ongoing at the end of the data)"});
    }
  for (int k = 0; k < n_drift; ++k)
    if (Adset* a = take()) {
      const int len = std::min(14, o.days);
      a->drift_from = o.days - len;
      a->true_cpa = a->target_cpa * rng.uniform(0.85, 1.05);  // on target before the drift
      a->drift_factor = std::round(rng.uniform(2.0, 3.0) * 10) / 10;
      model.anomalies.push_back({"cpa_drift", "adset_daily", a->id, format_day(start_day + a->drift_from), end,
                                 a->drift_factor,
                                 "true CPA ramps linearly from 1x to " + fmt(a->drift_factor, "%.1f") +
                                     "x its normal level over the last " + std::to_string(len) + " days"});
    }
  // Bad ad sets: any ad set that is not already a zero-conversion or drift one.
  std::vector<int> bad_pool;
  for (int i = 0; i < o.adsets; ++i)
    if (model.adsets[i].zero_from < 0 && model.adsets[i].drift_from < 0) bad_pool.push_back(i);
  rng.shuffle(bad_pool);
  for (int k = 0; k < n_bad && k < static_cast<int>(bad_pool.size()); ++k) {
    Adset& a = model.adsets[bad_pool[k]];
    const double factor = std::round(rng.uniform(2.0, 3.0) * 100) / 100;
    a.bad = true;
    a.true_cpa = a.target_cpa * factor;
    model.anomalies.push_back({"bad_cpa", "adset_daily", a.id, format_day(start_day + a.first_day),
                               format_day(start_day + a.end_day), factor,
                               "true CPA is " + fmt(factor, "%.2f") + "x target_cpa for the ad set's whole lifetime"});
  }
  std::sort(model.anomalies.begin(), model.anomalies.end(),
            [](const Anomaly& x, const Anomaly& y) { return std::tie(x.kind, x.entity) < std::tie(y.kind, y.entity); });
}

Model build_model(const Options& o) {
  Rng rng(o.seed, Stream::kModel);
  Model m;
  m.campaigns = build_campaigns(o, rng);
  build_adsets(o, rng, m);
  return m;
}

// ---------------------------------------------------------------------------
// SQLite helpers
// ---------------------------------------------------------------------------

class Db {
 public:
  explicit Db(const fs::path& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
      const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error("cannot open " + path.string() + ": " + msg);
    }
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string msg = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      throw std::runtime_error("sqlite: " + msg);
    }
  }
  sqlite3* get() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// A prepared INSERT: insert(a, b, c) binds the values in order and steps.
class Insert {
 public:
  Insert(Db& db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("sqlite prepare: ") + sqlite3_errmsg(db.get()));
  }
  ~Insert() { sqlite3_finalize(stmt_); }
  Insert(const Insert&) = delete;
  Insert& operator=(const Insert&) = delete;

  template <typename... Args>
  void operator()(const Args&... args) {
    int i = 0;
    (bind(++i, args), ...);
    if (sqlite3_step(stmt_) != SQLITE_DONE)
      throw std::runtime_error(std::string("sqlite insert: ") + sqlite3_errmsg(db_.get()));
    sqlite3_reset(stmt_);
    ++rows_;
  }
  std::int64_t rows() const { return rows_; }

 private:
  void bind(int i, double v) { check(sqlite3_bind_double(stmt_, i, v)); }
  void bind(int i, std::int64_t v) { check(sqlite3_bind_int64(stmt_, i, v)); }
  void bind(int i, int v) { check(sqlite3_bind_int64(stmt_, i, v)); }
  void bind(int i, std::string_view v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  void bind(int i, const std::string& v) { bind(i, std::string_view(v)); }
  void bind(int i, const char* v) { bind(i, std::string_view(v)); }
  void bind(int i, const std::optional<double>& v) {
    check(v ? sqlite3_bind_double(stmt_, i, *v) : sqlite3_bind_null(stmt_, i));
  }
  void check(int rc) {
    if (rc != SQLITE_OK) throw std::runtime_error(std::string("sqlite bind: ") + sqlite3_errmsg(db_.get()));
  }

  Db& db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::int64_t rows_ = 0;
};

constexpr const char* kSchema = R"sql(
CREATE TABLE adset_daily(
  adset_id    TEXT NOT NULL,
  day         TEXT NOT NULL,     -- 'YYYY-MM-DD', UTC
  channel     TEXT NOT NULL,
  campaign_id TEXT NOT NULL,
  name        TEXT NOT NULL,
  target_cpa  REAL NOT NULL,     -- USD
  spend       REAL NOT NULL,     -- USD, 2 decimals
  impressions INTEGER NOT NULL,
  clicks      INTEGER NOT NULL,
  conversions INTEGER NOT NULL,
  PRIMARY KEY(adset_id, day));
CREATE TABLE campaign_hourly(
  campaign_id TEXT NOT NULL,
  hour        TEXT NOT NULL,     -- 'YYYY-MM-DD HH:00:00', UTC, start of the hour
  channel     TEXT NOT NULL,
  name        TEXT NOT NULL,
  spend       REAL NOT NULL,     -- USD, 2 decimals
  impressions INTEGER NOT NULL,
  clicks      INTEGER NOT NULL,
  conversions INTEGER NOT NULL,
  PRIMARY KEY(campaign_id, hour));
CREATE TABLE channel_daily(
  channel     TEXT NOT NULL,
  day         TEXT NOT NULL,     -- 'YYYY-MM-DD', UTC
  budget      REAL NOT NULL,     -- USD daily budget
  spend       REAL NOT NULL,     -- USD, 2 decimals
  revenue     REAL NOT NULL,     -- USD, 2 decimals
  conversions INTEGER NOT NULL,
  PRIMARY KEY(channel, day));
CREATE TABLE injected_anomalies(
  kind        TEXT NOT NULL,     -- bad_cpa | zero_conversions | cpa_drift | spend_spike | tag_breakage | duplicate_event
  table_name  TEXT NOT NULL,     -- adset_daily | campaign_hourly | events.ndjson
  entity_id   TEXT NOT NULL,     -- adset_id, campaign_id or event id
  start       TEXT NOT NULL,     -- inclusive, same format as the table's time column
  end         TEXT NOT NULL,     -- exclusive
  factor      REAL,              -- see README
  note        TEXT NOT NULL);
CREATE TABLE meta(
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL);
)sql";

constexpr const char* kIndexes = R"sql(
CREATE INDEX adset_daily_day ON adset_daily(day);
CREATE INDEX campaign_hourly_hour ON campaign_hourly(hour);
CREATE INDEX channel_daily_day ON channel_daily(day);
)sql";

// ---------------------------------------------------------------------------
// Warehouse tables
// ---------------------------------------------------------------------------

// Per-day totals of the ad sets, used to keep the hourly and channel tables on
// the same scale as adset_daily.
struct DayTotals {
  double spend = 0, impressions = 0, clicks = 0, expected_conversions = 0;
  std::int64_t conversions = 0;
};

struct Totals {
  int days = 0;
  std::vector<DayTotals> campaign_day;  // [campaign * days + day]
  std::vector<DayTotals> channel_day;   // [channel * days + day]
  DayTotals& campaign(int c, int d) { return campaign_day[static_cast<std::size_t>(c) * days + d]; }
  DayTotals& channel(int c, int d) { return channel_day[static_cast<std::size_t>(c) * days + d]; }
};

// adset_daily: lognormal spend level with an AR(1) wobble, weekly seasonality,
// Poisson clicks and conversions.
Totals write_adset_daily(Db& db, const Options& o, const Model& m, std::int64_t& rows) {
  Rng rng(o.seed, Stream::kAdsetDaily);
  Totals t;
  t.days = o.days;
  t.campaign_day.resize(m.campaigns.size() * o.days);
  t.channel_day.resize(kChannels.size() * o.days);
  Insert insert(db,
                "INSERT INTO adset_daily(adset_id, day, channel, campaign_id, name, target_cpa, spend, impressions, "
                "clicks, conversions) VALUES(?,?,?,?,?,?,?,?,?,?)");
  const std::int64_t start_day = o.end_day - o.days;
  std::vector<std::string> day_names;
  for (int d = 0; d < o.days; ++d) day_names.push_back(format_day(start_day + d));

  for (const Adset& a : m.adsets) {
    const ChannelSpec& ch = kChannels[static_cast<std::size_t>(a.channel)];
    const std::string& campaign_id = m.campaigns[static_cast<std::size_t>(a.campaign)].id;
    double level = 0;  // log-space AR(1) deviation from base_spend
    for (int d = a.first_day; d < a.end_day; ++d) {
      level = 0.85 * level + rng.normal() * 0.08;
      const int age = d - a.first_day;
      const double ramp = a.first_day > 0 && age < 3 ? std::array{0.5, 0.75, 0.9}[age] : 1.0;
      const double spend = round2(std::clamp(
          a.base_spend * ch.dow[weekday(start_day + d)] * std::exp(level) * ramp * rng.lognormal(0, 0.12), 20.0, 2000.0));
      const double cpm = ch.cpm * a.cpm_factor * rng.lognormal(0, 0.08);
      const auto impressions = static_cast<std::int64_t>(std::llround(spend / cpm * 1000.0));
      const std::int64_t clicks = std::min(impressions, rng.poisson(impressions * a.ctr * rng.lognormal(0, 0.05)));
      double cpa = a.true_cpa * rng.lognormal(0, 0.1);
      if (a.drift_from >= 0 && d >= a.drift_from)
        cpa *= 1 + (a.drift_factor - 1) * (d - a.drift_from + 1) / static_cast<double>(o.days - a.drift_from);
      const double expected = a.zero_from >= 0 && d >= a.zero_from ? 0.0 : spend / cpa;
      const std::int64_t conversions = std::min(clicks, rng.poisson(expected));

      insert(a.id, day_names[d], ch.id, campaign_id, a.name, a.target_cpa, spend, impressions, clicks, conversions);

      DayTotals& c = t.campaign(a.campaign, d);
      c.spend += spend;
      c.impressions += impressions;
      c.clicks += clicks;
      c.expected_conversions += expected;
      DayTotals& k = t.channel(a.channel, d);
      k.spend += spend;
      k.conversions += conversions;
    }
  }
  rows = insert.rows();
  return t;
}

enum class HourKind { kSpike, kTagBreakage, kDrift };

// An anomaly window on campaign_hourly, in hour offsets from the window start.
struct HourWindow {
  int campaign;
  HourKind kind;
  int start, end;  // [start, end)
  double factor;
};

bool campaign_active(Totals& t, int campaign, int from_hour, int to_hour) {
  for (int h = from_hour; h < to_hour; h += 24)
    if (t.campaign(campaign, h / 24).spend <= 0) return false;
  return t.campaign(campaign, (to_hour - 1) / 24).spend > 0;
}

// Picks distinct campaigns (while there are enough) and places spend spikes,
// tag breakages and CPA drifts. One spike and one tag breakage always fall in
// the last three days so that "now"-style rules have something to fire on.
std::vector<HourWindow> plan_campaign_anomalies(const Options& o, const Model& m, Totals& t) {
  Rng rng(o.seed, Stream::kAnomalies);
  const int hours = o.days * 24;
  const int n = static_cast<int>(m.campaigns.size());
  const int n_spike = std::clamp(n / 8, 1, 8), n_tag = std::clamp(n / 12, 1, 5), n_drift = std::clamp(n / 20, 1, 4);
  std::vector<int> order(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) order[i] = i;
  rng.shuffle(order);
  std::vector<bool> used(static_cast<std::size_t>(n), false);
  std::vector<HourWindow> out;

  // Tries random placements on unused campaigns first, then on any campaign.
  const auto place = [&](HourKind kind, int dur, int lo, int hi, double factor, bool clip_at_end) {
    for (int pass = 0; pass < 2; ++pass)
      for (int c : order) {
        if (pass == 0 && used[c]) continue;
        for (int attempt = 0; attempt < 20; ++attempt) {
          const int s = static_cast<int>(rng.uniform_int(std::max(0, lo), std::max(0, std::min(hi, hours - 1))));
          const int e = clip_at_end ? std::min(s + dur, hours) : s + dur;
          if (e > hours || !campaign_active(t, c, s, e)) continue;
          used[c] = true;
          out.push_back({c, kind, s, e, factor});
          return;
        }
      }
  };
  for (int k = 0; k < n_drift; ++k) {
    const int len = static_cast<int>(rng.uniform_int(6, 12)) * 24;
    place(HourKind::kDrift, len, hours - len, hours - len, std::round(rng.uniform(2.0, 3.0) * 10) / 10, true);
  }
  for (int k = 0; k < n_tag; ++k) {
    const int dur = static_cast<int>(rng.uniform_int(12, 48));
    if (k == 0) place(HourKind::kTagBreakage, dur, hours - 60, hours - 12, 0.0, true);
    else place(HourKind::kTagBreakage, dur, 0, hours - dur - 72, 0.0, false);
  }
  for (int k = 0; k < n_spike; ++k) {
    const int dur = static_cast<int>(rng.uniform_int(2, 6));
    const double factor = std::round(rng.uniform(3.0, 8.0) * 10) / 10;
    if (k == 0) place(HourKind::kSpike, dur, hours - 72, hours - dur, factor, false);
    else place(HourKind::kSpike, dur, 0, hours - dur - 72, factor, false);
  }
  return out;
}

std::vector<Anomaly> describe(const Options& o, const Model& m, const std::vector<HourWindow>& windows) {
  std::vector<Anomaly> out;
  const std::int64_t start_day = o.end_day - o.days;
  for (const HourWindow& w : windows) {
    Anomaly a{"", "campaign_hourly", m.campaigns[static_cast<std::size_t>(w.campaign)].id,
              format_hour(start_day, w.start), format_hour(start_day, w.end), w.factor, ""};
    const std::string hours = std::to_string(w.end - w.start) + " hours";
    switch (w.kind) {
      case HourKind::kSpike:
        a.kind = "spend_spike";
        a.note = "spend x" + fmt(w.factor, "%.1f") + " for " + hours +
                 "; impressions and clicks grow half as much, conversions do not grow (CPA spikes)";
        break;
      case HourKind::kTagBreakage:
        a.kind = "tag_breakage";
        a.note = "conversions are 0 for " + hours + " while spend, impressions and clicks stay normal" +
                 (w.end == o.days * 24 ? " (ongoing at the end of the data)" : "");
        break;
      case HourKind::kDrift:
        a.kind = "cpa_drift";
        a.note = "conversion rate decays linearly over " + std::to_string((w.end - w.start) / 24) +
                 " days; CPA reaches " + fmt(w.factor, "%.1f") + "x its normal level at the end of the data";
        break;
    }
    out.push_back(std::move(a));
  }
  return out;
}

// Hour-of-day profile, UTC: peak around 17:00 (US + EU overlap), trough 05:00.
double hour_weight(int h) { return 1.0 + 0.55 * std::cos(6.283185307179586 * (h - 17) / 24.0); }

// campaign_hourly: each campaign-day's ad-set totals spread over 24 hours with
// an hour-of-day profile and multiplicative noise, then the anomalies applied.
std::int64_t write_campaign_hourly(Db& db, const Options& o, const Model& m, Totals& t,
                                   const std::vector<HourWindow>& windows) {
  Rng rng(o.seed, Stream::kCampaignHourly);
  Insert insert(db,
                "INSERT INTO campaign_hourly(campaign_id, hour, channel, name, spend, impressions, clicks, "
                "conversions) VALUES(?,?,?,?,?,?,?,?)");
  const std::int64_t start_day = o.end_day - o.days;
  for (int c = 0; c < static_cast<int>(m.campaigns.size()); ++c) {
    const Campaign& camp = m.campaigns[static_cast<std::size_t>(c)];
    const char* channel = kChannels[static_cast<std::size_t>(camp.channel)].id;
    for (int d = 0; d < o.days; ++d) {
      const DayTotals& day = t.campaign(c, d);
      if (day.spend <= 0) continue;  // no active ad set that day
      std::array<double, 24> w{};
      double sum = 0;
      for (int h = 0; h < 24; ++h) sum += w[h] = hour_weight(h) * rng.lognormal(0, 0.15);
      const std::string day_name = format_day(start_day + d);
      for (int h = 0; h < 24; ++h) {
        const double share = w[h] / sum;
        double spend = day.spend * share, impressions = day.impressions * share, clicks = day.clicks * share;
        double expected = day.expected_conversions * share;
        bool tag_broken = false;
        const int hour = d * 24 + h;
        for (const HourWindow& win : windows) {
          if (win.campaign != c || hour < win.start || hour >= win.end) continue;
          switch (win.kind) {
            case HourKind::kSpike:
              spend *= win.factor;
              impressions *= 1 + (win.factor - 1) / 2;
              clicks *= 1 + (win.factor - 1) / 2;
              break;
            case HourKind::kTagBreakage: tag_broken = true; break;
            case HourKind::kDrift:
              expected /= 1 + (win.factor - 1) * (hour - win.start + 1) / static_cast<double>(win.end - win.start);
              break;
          }
        }
        const auto imp = rng.poisson(impressions);
        const auto clk = std::min(imp, rng.poisson(clicks));
        const auto conv = std::min(clk, rng.poisson(expected));
        char hh[16];
        std::snprintf(hh, sizeof hh, " %02d:00:00", h);
        insert(camp.id, day_name + hh, channel, camp.name, std::max(0.01, round2(spend)), imp, clk,
               tag_broken ? std::int64_t{0} : conv);
      }
    }
  }
  return insert.rows();
}

// Per-channel ROAS on day offset d (linear trend through the mid-window value).
double channel_roas(const ChannelSpec& ch, int d, int days) {
  return ch.roas * (1 + ch.roas_trend * ((d + 0.5) / days - 0.5));
}

// channel_daily: spend and conversions are the ad-set sums; revenue follows the
// channel's ROAS; budget is revised weekly to sit a little above that week's
// average spend and near its peak day, so over-delivery days are rare.
std::int64_t write_channel_daily(Db& db, const Options& o, Totals& t) {
  Rng rng(o.seed, Stream::kChannelDaily);
  Insert insert(db,
                "INSERT INTO channel_daily(channel, day, budget, spend, revenue, conversions) VALUES(?,?,?,?,?,?)");
  const std::int64_t start_day = o.end_day - o.days;
  for (int c = 0; c < static_cast<int>(kChannels.size()); ++c) {
    const ChannelSpec& ch = kChannels[static_cast<std::size_t>(c)];
    double budget = 0;
    for (int d = 0; d < o.days; ++d) {
      if (d % 7 == 0) {  // weekly budget revision
        double week = 0, peak = 0;
        int n = 0;
        for (int k = d; k < std::min(d + 7, o.days); ++k, ++n) {
          week += t.channel(c, k).spend;
          peak = std::max(peak, t.channel(c, k).spend);
        }
        const double planned = std::max(week / n * rng.uniform(1.05, 1.25), peak * 0.97);
        budget = std::max(50.0, std::round(planned / 50) * 50);
      }
      const DayTotals& day = t.channel(c, d);
      const double spend = round2(day.spend);
      const double revenue = round2(spend * channel_roas(ch, d, o.days) * rng.lognormal(0, 0.12));
      insert(ch.id, format_day(start_day + d), budget, spend, revenue, day.conversions);
    }
  }
  return insert.rows();
}

void write_anomaly_rows(Db& db, const std::vector<Anomaly>& anomalies) {
  Insert insert(db, "INSERT INTO injected_anomalies(kind, table_name, entity_id, start, end, factor, note) "
                    "VALUES(?,?,?,?,?,?,?)");
  for (const Anomaly& a : anomalies) insert(a.kind, a.table, a.entity, a.start, a.end, a.factor, a.note);
}

// ---------------------------------------------------------------------------
// Event stream
// ---------------------------------------------------------------------------

enum EventType : std::uint8_t { kLeadProfile, kPageView, kGuideDownload, kWebinarSignup, kEmailOpen };
constexpr std::array<const char*, 5> kEventNames{"lead_profile", "page_view", "guide_download", "webinar_signup",
                                                 "email_open"};

constexpr std::array<const char*, 7> kTitles{"VP", "Director", "Head", "Manager", "Engineer", "Analyst", "Founder"};
constexpr std::array<double, 7> kTitleWeights{7, 15, 8, 25, 20, 15, 10};

struct TimeZone {
  const char* name;
  int utc_offset_min;  // standard time; DST is ignored for activity shaping
  double weight;
};
constexpr std::array<TimeZone, 12> kZones{{{"America/New_York", -300, 25},
                                           {"America/Chicago", -360, 10},
                                           {"America/Los_Angeles", -480, 15},
                                           {"America/Sao_Paulo", -180, 3},
                                           {"Europe/London", 0, 10},
                                           {"Europe/Berlin", 60, 12},
                                           {"Europe/Paris", 60, 5},
                                           {"Asia/Kolkata", 330, 4},
                                           {"Asia/Singapore", 480, 4},
                                           {"Asia/Tokyo", 540, 6},
                                           {"Australia/Sydney", 600, 4},
                                           {"UTC", 0, 2}}};
constexpr auto kZoneWeights = [] {
  std::array<double, kZones.size()> w{};
  for (std::size_t z = 0; z < kZones.size(); ++z) w[z] = kZones[z].weight;
  return w;
}();

// Pages: index 0 and 1 are the pricing pages (the "hot" signal).
constexpr std::array<const char*, 15> kPages{
    "/pricing", "/pricing/enterprise", "/", "/product", "/product/rules", "/customers", "/demo",
    "/blog/roas-vs-cpa", "/blog/budget-pacing", "/blog/attribution-windows", "/blog/marketing-ops-as-code",
    "/docs/getting-started", "/docs/rules-dsl", "/docs/integrations/meta", "/docs/integrations/google-ads"};
constexpr std::array<double, 15> kPageWeights{0, 0, 20, 8, 5, 6, 2, 9, 8, 8, 9, 7, 5, 3, 3};
constexpr std::array<const char*, 4> kGuides{"state-of-marketing-ops-2026", "roas-budget-reallocation-playbook",
                                             "attribution-windows-explained", "cpa-guardrails-checklist"};
constexpr std::array<const char*, 3> kWebinars{"rules-as-code-101", "q4-budget-planning-live",
                                               "anomaly-alerts-workshop"};
constexpr std::array<const char*, 6> kMessages{"welcome_guide", "case_study", "product_update",
                                               "webinar_invite", "pricing_followup", "monthly_newsletter"};

// Local-time hour weights for sessions (business-day shaped).
constexpr std::array<double, 24> kLocalHourWeights{0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 3.2, 3.0,
                                                   2.6, 3.0, 3.2, 3.0, 2.6, 2.0, 1.4, 1.2, 1.1, 0.9, 0.6, 0.4};

enum class LeadKind : std::uint8_t { kCold, kWarm, kHot };

struct Lead {
  std::uint32_t arrival = 0;  // seconds from window start
  std::uint32_t company_size = 0;
  std::uint32_t budget = 0;   // events after the lead_profile
  std::uint8_t zone = 0, title = 0;
  LeadKind kind = LeadKind::kCold;
  bool returner = false;      // active, quiet for 30-45 days, then back
};

// One event before formatting; sorted by (t, lead, seq).
struct EventRec {
  std::uint32_t t;     // seconds from window start
  std::uint32_t lead;  // lead index
  std::uint32_t seq;   // per-lead sequence number
  std::uint8_t type, detail;
};

constexpr std::uint32_t kDay = 86400;

// A time inside [lo, hi) whose hour is shaped by the lead's local business
// day: a uniform instant picks the local day, kLocalHourWeights the hour.
std::uint32_t local_time_in(Rng& rng, std::uint32_t lo, std::uint32_t hi, int offset_min) {
  if (hi <= lo + 1) return lo;
  const std::int64_t off = static_cast<std::int64_t>(offset_min) * 60;
  std::int64_t t = lo;
  for (int attempt = 0; attempt < 16; ++attempt) {
    const std::int64_t local = rng.uniform_int(lo, hi - 1) + off;
    const std::int64_t local_day = local >= 0 ? local / kDay : -((-local + kDay - 1) / kDay);
    t = local_day * kDay - off + static_cast<std::int64_t>(rng.pick(kLocalHourWeights)) * 3600 +
        rng.uniform_int(0, 3599);
    if (t >= lo && t < hi) break;
  }
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(t, lo, hi - 1));
}

// Leads sorted by arrival, with kind, profile and event budget. The budget of
// --events minus --leads extra events is spread multinomially by activity weight.
std::vector<Lead> plan_leads(const Options& o, Rng& rng) {
  const std::uint32_t span = static_cast<std::uint32_t>(o.days) * kDay;
  std::vector<Lead> leads(static_cast<std::size_t>(o.leads));
  // (arrival, zone) pairs sorted by arrival, so lead ids follow sign-up order.
  std::vector<std::pair<std::uint32_t, std::uint8_t>> arrivals(leads.size());
  for (auto& [arrival, zone] : arrivals) {
    std::int64_t day;
    do day = rng.uniform_int(0, o.days - 1);
    while (weekday(o.end_day - o.days + day) % 6 == 0 && !rng.chance(0.5));  // fewer sign-ups on weekends
    zone = static_cast<std::uint8_t>(rng.pick(kZoneWeights));
    arrival = local_time_in(rng, static_cast<std::uint32_t>(day) * kDay, static_cast<std::uint32_t>(day + 1) * kDay,
                            kZones[zone].utc_offset_min);
  }
  std::sort(arrivals.begin(), arrivals.end());

  std::vector<double> cumulative(leads.size());
  double total = 0;
  for (std::size_t i = 0; i < leads.size(); ++i) {
    Lead& l = leads[i];
    l.arrival = std::min(arrivals[i].first, span - 1);
    l.zone = arrivals[i].second;
    l.title = static_cast<std::uint8_t>(rng.pick(kTitleWeights));
    const double size_median = kTitles[l.title] == std::string_view("Founder") ? 15.0 : 250.0;
    l.company_size = static_cast<std::uint32_t>(std::clamp(std::llround(rng.lognormal(std::log(size_median), 1.3)),
                                                           1LL, 250000LL));
    const double u = rng.uniform();
    l.kind = u < 0.14 ? LeadKind::kHot : u < 0.44 ? LeadKind::kWarm : LeadKind::kCold;
    const double remaining_days = static_cast<double>(span - l.arrival) / kDay;
    l.returner = remaining_days > 60 && rng.chance(0.2);
    const double kind_weight = l.kind == LeadKind::kHot ? 8 : l.kind == LeadKind::kWarm ? 3 : 1;
    const double weight = kind_weight * rng.lognormal(0, 0.4) * std::clamp(remaining_days / 21, 0.15, 1.0) *
                          (l.returner ? 1.5 : 1.0);
    total += weight;
    cumulative[i] = total;
  }
  for (std::int64_t r = o.events - o.leads; r > 0; --r) {
    const auto it = std::upper_bound(cumulative.begin(), cumulative.end(), rng.uniform() * total);
    ++leads[static_cast<std::size_t>(std::min<std::ptrdiff_t>(it - cumulative.begin(), o.leads - 1))].budget;
  }
  return leads;
}

// Splits a lead's budget into sessions, places them in its active window(s)
// and appends the events. Hot leads look at pricing more and more.
void lead_events(Rng& rng, const Lead& l, std::uint32_t index, std::uint32_t span, std::vector<EventRec>& out) {
  std::uint32_t seq = 0;
  out.push_back({l.arrival, index, seq++, kLeadProfile, 0});
  if (l.budget == 0) return;

  const double per_session = l.kind == LeadKind::kHot ? 3.0 : l.kind == LeadKind::kWarm ? 2.5 : 1.5;
  std::vector<std::uint32_t> sizes;
  for (std::uint32_t left = l.budget; left > 0;) {
    const auto k = static_cast<std::uint32_t>(std::min<std::int64_t>(1 + rng.poisson(per_session), left));
    sizes.push_back(k);
    left -= k;
  }
  const int offset = kZones[l.zone].utc_offset_min;
  const double horizon_days = l.kind == LeadKind::kCold ? 5 : l.kind == LeadKind::kWarm ? 25 : 20;
  const auto horizon = static_cast<std::uint32_t>(std::max(2.0, -std::log(1 - rng.uniform()) * horizon_days) * kDay);
  const std::uint32_t first = std::min(span - 1, l.arrival + static_cast<std::uint32_t>(rng.uniform_int(5, 90)));

  std::vector<std::uint32_t> starts{first};
  const std::size_t n = sizes.size();
  if (l.returner && n >= 2) {
    const std::size_t split = std::max<std::size_t>(1, n / 2);
    const std::uint32_t a_end = l.arrival + static_cast<std::uint32_t>(rng.uniform_int(2, 10)) * kDay;
    const std::uint32_t b_start = std::min(span - 1, a_end + static_cast<std::uint32_t>(rng.uniform_int(30, 45)) * kDay);
    const std::uint32_t b_end = std::min(span, b_start + 21 * kDay);
    for (std::size_t s = 1; s < split; ++s) starts.push_back(local_time_in(rng, first + 600, a_end, offset));
    for (std::size_t s = split; s < n; ++s) starts.push_back(local_time_in(rng, b_start, b_end, offset));
  } else {
    const std::uint32_t end = static_cast<std::uint32_t>(std::min<std::uint64_t>(span, std::uint64_t{first} + horizon));
    for (std::size_t s = 1; s < n; ++s) starts.push_back(local_time_in(rng, std::min(first + 600, end), end, offset));
  }
  std::sort(starts.begin() + 1, starts.end());

  std::uint32_t t = l.arrival;
  for (std::size_t s = 0; s < n; ++s) {
    t = std::max(starts[s], t + 1);
    const double progress = static_cast<double>(s + 1) / n;
    const double p_pricing = l.kind == LeadKind::kHot ? 0.08 + 0.5 * progress : l.kind == LeadKind::kWarm ? 0.1 : 0.04;
    for (std::uint32_t j = 0; j < sizes[s]; ++j) {
      if (j > 0) t += static_cast<std::uint32_t>(std::clamp(rng.lognormal(std::log(35.0), 0.9), 3.0, 900.0));
      t = std::min(t, span - 1);
      EventRec e{t, index, seq++, kPageView, 0};
      const double u = rng.uniform();
      if (j == 0 && s > 0 && u < 0.3) {
        e.type = kEmailOpen;  // the email that brought them back
        e.detail = static_cast<std::uint8_t>(rng.uniform_int(0, kMessages.size() - 1));
      } else if (j > 0 && u < 0.08) {
        e.type = kGuideDownload;
        e.detail = static_cast<std::uint8_t>(rng.uniform_int(0, kGuides.size() - 1));
      } else if (j > 0 && u < 0.12) {
        e.type = kWebinarSignup;
        e.detail = static_cast<std::uint8_t>(rng.uniform_int(0, kWebinars.size() - 1));
      } else if (rng.chance(p_pricing)) {
        e.detail = rng.chance(l.kind == LeadKind::kHot ? 0.4 : 0.2) ? 1 : 0;
      } else {
        e.detail = static_cast<std::uint8_t>(rng.pick(kPageWeights));
      }
      out.push_back(e);
    }
  }
}

void append_json_string(std::string& buf, std::string_view s) {
  buf += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': buf += "\\\""; break;
      case '\\': buf += "\\\\"; break;
      case '\n': buf += "\\n"; break;
      case '\r': buf += "\\r"; break;
      case '\t': buf += "\\t"; break;
      default:
        if (c < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", c);
          buf += esc;
        } else {
          buf += ch;
        }
    }
  }
  buf += '"';
}

void append_field(std::string& buf, std::string_view key, std::string_view value) {
  buf += ',';
  append_json_string(buf, key);
  buf += ':';
  append_json_string(buf, value);
}

// Buffered writer to a FILE*, throwing on I/O errors.
class FileWriter {
 public:
  explicit FileWriter(const fs::path& path) : path_(path), f_(std::fopen(path.c_str(), "wb")) {
    if (!f_) throw std::runtime_error("cannot create " + path.string() + ": " + std::strerror(errno));
    buf_.reserve(kFlushAt + 4096);
  }
  ~FileWriter() {
    if (f_) std::fclose(f_);
  }
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  std::string& buffer() { return buf_; }
  void maybe_flush() {
    if (buf_.size() >= kFlushAt) flush();
  }
  void close() {
    flush();
    std::FILE* f = f_;
    f_ = nullptr;
    if (std::fclose(f) != 0) throw std::runtime_error("cannot write " + path_.string() + ": " + std::strerror(errno));
  }

 private:
  static constexpr std::size_t kFlushAt = 1 << 20;
  void flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size())
      throw std::runtime_error("cannot write " + path_.string() + ": " + std::strerror(errno));
    buf_.clear();
  }
  fs::path path_;
  std::FILE* f_;
  std::string buf_;
};

struct EventsResult {
  std::int64_t lines = 0;
  std::vector<Anomaly> duplicates;  // ground truth rows for injected_anomalies
};

// Generates, sorts and writes the stream; ids are assigned in time order.
// Five events in the last 2% of the stream are written twice in a row.
EventsResult write_events(const Options& o, const fs::path& path) {
  Rng rng(o.seed, Stream::kEvents);
  const std::uint32_t span = static_cast<std::uint32_t>(o.days) * kDay;
  const std::vector<Lead> leads = plan_leads(o, rng);
  std::vector<EventRec> recs;
  recs.reserve(static_cast<std::size_t>(o.events));
  for (std::size_t i = 0; i < leads.size(); ++i) lead_events(rng, leads[i], static_cast<std::uint32_t>(i), span, recs);
  std::sort(recs.begin(), recs.end(), [](const EventRec& a, const EventRec& b) {
    return std::tie(a.t, a.lead, a.seq) < std::tie(b.t, b.lead, b.seq);
  });

  std::vector<std::size_t> dup_at;
  if (recs.size() >= 100) {
    const std::size_t tail = std::max<std::size_t>(50, recs.size() / 50);
    while (dup_at.size() < 5) {
      const auto p = static_cast<std::size_t>(rng.uniform_int(recs.size() - tail, recs.size() - 1));
      if (std::find(dup_at.begin(), dup_at.end(), p) == dup_at.end()) dup_at.push_back(p);
    }
    std::sort(dup_at.begin(), dup_at.end());
  }

  const std::int64_t start_day = o.end_day - o.days;
  std::vector<std::string> day_names;
  for (int d = 0; d < o.days; ++d) day_names.push_back(format_day(start_day + d));
  const int ev_width = id_width(static_cast<std::int64_t>(recs.size()), 7);
  const int lead_width = id_width(o.leads, 6);

  EventsResult result;
  FileWriter out(path);
  std::string line, id, time;
  std::size_t next_dup = 0;
  for (std::size_t i = 0; i < recs.size(); ++i) {
    const EventRec& e = recs[i];
    const Lead& l = leads[e.lead];
    id = pad_id("ev-", static_cast<std::int64_t>(i) + 1, ev_width);
    char hms[16];
    const std::uint32_t sec = e.t % kDay;
    std::snprintf(hms, sizeof hms, "T%02u:%02u:%02uZ", sec / 3600, sec / 60 % 60, sec % 60);
    time = day_names[e.t / kDay] + hms;

    line = "{\"event\":";
    append_json_string(line, kEventNames[e.type]);
    append_field(line, "id", id);
    append_field(line, "time", time);
    append_field(line, "lead_id", pad_id("ld-", e.lead + 1, lead_width));
    switch (e.type) {
      case kLeadProfile:
        append_field(line, "title", kTitles[l.title]);
        line += ",\"company_size\":" + std::to_string(l.company_size);
        append_field(line, "timezone", kZones[l.zone].name);
        break;
      case kPageView: append_field(line, "page", kPages[e.detail]); break;
      case kGuideDownload: append_field(line, "guide", kGuides[e.detail]); break;
      case kWebinarSignup: append_field(line, "webinar", kWebinars[e.detail]); break;
      case kEmailOpen: append_field(line, "message", kMessages[e.detail]); break;
    }
    line += "}\n";
    out.buffer() += line;
    ++result.lines;
    if (next_dup < dup_at.size() && dup_at[next_dup] == i) {
      ++next_dup;
      out.buffer() += line;  // deliberate duplicate: same id, same bytes
      ++result.lines;
      result.duplicates.push_back({"duplicate_event", "events.ndjson", id, time, time, std::nullopt,
                                   "line repeated verbatim right after the original (at-least-once delivery)"});
    }
    out.maybe_flush();
  }
  out.close();
  return result;
}

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

struct WarehouseCounts {
  std::int64_t adset_daily = 0, campaign_hourly = 0, channel_daily = 0, anomalies = 0;
};

void write_meta(Db& db, const Options& o, const Model& m, const EventsResult& ev) {
  Insert insert(db, "INSERT INTO meta(key, value) VALUES(?,?)");
  std::string dup_ids;
  for (const Anomaly& a : ev.duplicates) dup_ids += (dup_ids.empty() ? "" : ",") + a.entity;
  int bad = 0, zero = 0, drift = 0;
  for (const Adset& a : m.adsets) {
    bad += a.bad;
    zero += a.zero_from >= 0;
    drift += a.drift_from >= 0;
  }
  const std::vector<std::pair<std::string, std::string>> rows{
      {"generator", "gavel-sample-data"},
      {"schema_version", "1"},
      {"seed", std::to_string(o.seed)},
      {"days", std::to_string(o.days)},
      {"start", format_day(o.end_day - o.days)},
      {"end", o.end},
      {"adsets", std::to_string(o.adsets)},
      {"campaigns", std::to_string(o.campaigns)},
      {"leads", std::to_string(o.leads)},
      {"events", std::to_string(o.events)},
      {"events_lines", std::to_string(ev.lines)},
      {"event_duplicate_ids", dup_ids},
      {"currency", "USD"},
      {"time_zone", "UTC"},
      {"prng", "xoshiro256** seeded by splitmix64; own Box-Muller normal, Knuth/PTRS Poisson"},
      {"channels", "meta,google,tiktok,linkedin,snap"},
      {"adset_mix", "bad_cpa=" + std::to_string(bad) + " zero_conversions=" + std::to_string(zero) +
                        " cpa_drift=" + std::to_string(drift) + " late_start=" + std::to_string(m.late_start) +
                        " paused_early=" + std::to_string(m.paused)},
  };
  for (const auto& [k, v] : rows) insert(k, v);
  for (const ChannelSpec& ch : kChannels) {
    const std::string p = std::string("channel.") + ch.id + ".";
    insert(p + "roas", fmt(ch.roas) + " (trend " + fmt(ch.roas_trend * 100, "%+.0f") + "% over the window)");
    insert(p + "cpm_usd", fmt(ch.cpm));
    insert(p + "ctr", fmt(ch.ctr));
    insert(p + "target_cpa_usd", fmt(ch.cpa_lo) + "-" + fmt(ch.cpa_hi));
  }
}

WarehouseCounts write_warehouse(const Options& o, const fs::path& path, const EventsResult& ev) {
  const Model model = build_model(o);
  WarehouseCounts counts;
  Db db(path);
  db.exec("PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF; PRAGMA user_version=1;");
  db.exec(kSchema);
  db.exec("BEGIN");
  Totals totals = write_adset_daily(db, o, model, counts.adset_daily);
  const std::vector<HourWindow> windows = plan_campaign_anomalies(o, model, totals);
  counts.campaign_hourly = write_campaign_hourly(db, o, model, totals, windows);
  counts.channel_daily = write_channel_daily(db, o, totals);
  std::vector<Anomaly> anomalies = model.anomalies;
  for (Anomaly& a : describe(o, model, windows)) anomalies.push_back(std::move(a));
  anomalies.insert(anomalies.end(), ev.duplicates.begin(), ev.duplicates.end());
  write_anomaly_rows(db, anomalies);
  counts.anomalies = static_cast<std::int64_t>(anomalies.size());
  write_meta(db, o, model, ev);
  db.exec(kIndexes);
  db.exec("COMMIT");
  return counts;
}

// Writes into `final_path` via a temporary file renamed into place on success.
template <typename Fn>
auto replace_file(const fs::path& final_path, Fn&& write) {
  fs::path tmp = final_path;
  tmp += ".tmp";
  fs::remove(tmp);
  try {
    auto result = write(tmp);
    for (const char* suffix : {"-journal", "-wal", "-shm"}) fs::remove(fs::path(final_path.string() + suffix));
    fs::rename(tmp, final_path);
    return result;
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

int run(const Options& o) {
  const auto t0 = std::chrono::steady_clock::now();
  fs::create_directories(o.out);
  const EventsResult ev = replace_file(o.out / "events.ndjson", [&](const fs::path& p) { return write_events(o, p); });
  std::printf("wrote %s: %lld distinct events + %zu duplicate lines\n", (o.out / "events.ndjson").c_str(),
              static_cast<long long>(o.events), ev.duplicates.size());
  for (const Anomaly& a : ev.duplicates) std::printf("  duplicate: %s at %s\n", a.entity.c_str(), a.start.c_str());
  if (!o.events_only) {
    const WarehouseCounts c =
        replace_file(o.out / "warehouse.db", [&](const fs::path& p) { return write_warehouse(o, p, ev); });
    std::printf("wrote %s: adset_daily=%lld campaign_hourly=%lld channel_daily=%lld injected_anomalies=%lld\n",
                (o.out / "warehouse.db").c_str(), static_cast<long long>(c.adset_daily),
                static_cast<long long>(c.campaign_hourly), static_cast<long long>(c.channel_daily),
                static_cast<long long>(c.anomalies));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "done in %.2f s\n", secs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::optional<Options> opts = parse_args(argc, argv);
    if (!opts) {
      std::fputs(kUsage.data(), stdout);
      return 0;
    }
    return run(*opts);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "gavel-sample-data: %s\n\n%s", e.what(), kUsage.data());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gavel-sample-data: error: %s\n", e.what());
    return 2;
  } catch (...) {
    std::fprintf(stderr, "gavel-sample-data: unknown error\n");
    return 2;
  }
}
