// Tests of rules/reallocate: readable examples on five channels with the ROAS of the sample
// data, then properties checked on thousands of generated groups.
#include "rules/reallocate.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace {

using gavel::rules::Member;
using gavel::rules::Reallocate;
using gavel::rules::Reallocation;
using gavel::rules::ReallocationParams;

std::int64_t Cents(double v) { return std::llround(v * 100); }

// The five channels of the sample data with their ROAS.
std::vector<Member> Channels(std::vector<double> budgets) {
  const char* keys[] = {"google", "meta", "snap", "tiktok", "linkedin"};
  const double roas[] = {4.47, 3.03, 2.08, 1.71, 1.25};
  std::vector<Member> out;
  for (std::size_t i = 0; i < budgets.size(); ++i) out.push_back({keys[i], budgets[i], roas[i]});
  return out;
}

ReallocationParams Params(bool keep_total, double step, std::optional<double> min = std::nullopt,
                          std::optional<double> max = std::nullopt) {
  ReallocationParams p;
  p.keep_total = keep_total;
  p.max_step = step;
  p.min_budget = min;
  p.max_budget = max;
  return p;
}

std::vector<std::int64_t> AllCents(const std::vector<double>& v) {
  std::vector<std::int64_t> out;
  for (double x : v) out.push_back(Cents(x));
  return out;
}

using Cs = std::vector<std::int64_t>;

std::string Show(const std::vector<Member>& ms, const ReallocationParams& p, const Reallocation& r) {
  std::ostringstream s;
  s << "keep_total=" << p.keep_total << " step=" << p.max_step
    << " min=" << (p.min_budget ? std::to_string(*p.min_budget) : "-")
    << " max=" << (p.max_budget ? std::to_string(*p.max_budget) : "-") << "\n";
  for (std::size_t i = 0; i < ms.size(); ++i) {
    s << "  " << ms[i].key << " " << ms[i].budget << " metric="
      << (ms[i].metric ? std::to_string(*ms[i].metric) : "null") << " -> " << r.new_budgets[i]
      << "\n";
  }
  s << "  note: " << r.note;
  return s.str();
}

}  // namespace

TEST_CASE("reallocate: equal budgets, step at most 20%, keep total", "[realloc]") {
  // Mean ROAS 2.508. google (+78%) and meta (+21%) are capped at +20%; linkedin (-50%) at -20%.
  // The 400 USD they gain comes from linkedin (200), tiktok and snap, worst first.
  auto r = Reallocate(Channels({1000, 1000, 1000, 1000, 1000}), Params(true, 0.2));
  INFO(r.note);
  CHECK(r.changed);
  CHECK(r.note.empty());
  CHECK(AllCents(r.new_budgets) == Cs{120000, 120000, 97376, 82624, 80000});
}

TEST_CASE("reallocate: realistic budgets with min and max", "[realloc]") {
  // Budget-weighted mean ROAS 3.0856: google +45%, meta -1.8%, snap -33%, tiktok -45%,
  // linkedin -59%. google gains its full 20% (400); the three worst lose their full 20%
  // (160 + 140 + 100 = 400), so meta, just below the mean, stays where it is.
  const auto members = Channels({2000, 1500, 800, 700, 500});
  auto r = Reallocate(members, Params(true, 0.2, 100, 5000));
  CHECK(r.changed);
  CHECK(AllCents(r.new_budgets) == Cs{240000, 150000, 64000, 56000, 40000});

  // Without keep total every member moves on its own: meta loses its 1.8% and the total drops.
  auto free = Reallocate(members, Params(false, 0.2, 100, 5000));
  CHECK(AllCents(free.new_budgets) == Cs{240000, 147295, 64000, 56000, 40000});

  // A max of 2200 stops google early; the losers then give up less (worst still first).
  auto capped = Reallocate(members, Params(true, 0.2, 100, 2200));
  CHECK(AllCents(capped.new_budgets)[0] == 220000);
  std::int64_t sum = 0;
  for (auto c : AllCents(capped.new_budgets)) sum += c;
  CHECK(sum == 550000);
  CHECK(Cents(capped.new_budgets[4]) == 40000);  // linkedin still at its -20%
}

TEST_CASE("reallocate: no step limit is budget times ROAS over the mean", "[realloc]") {
  // 1000 * roas / 2.508, rounded to cents; the 3 cents of rounding go to the largest fractions.
  auto r = Reallocate(Channels({1000, 1000, 1000, 1000, 1000}), Params(true, 0));
  CHECK(AllCents(r.new_budgets) == Cs{178230, 120813, 82935, 68182, 49840});
}

TEST_CASE("reallocate: a member without data keeps its budget and is left out", "[realloc]") {
  auto members = Channels({1000, 1000, 1000, 1000, 1000});
  members[1].metric.reset();  // meta: no data
  auto r = Reallocate(members, Params(true, 0.2));
  CHECK(r.new_budgets[1] == 1000);
  std::int64_t others = 0;
  for (std::size_t i = 0; i < 5; ++i) others += i == 1 ? 0 : Cents(r.new_budgets[i]);
  CHECK(others == 400000);
  CHECK(Cents(r.new_budgets[0]) == 120000);
}

TEST_CASE("reallocate: members below min are lifted as far as the step allows", "[realloc]") {
  // linkedin at 50 is below the 100 minimum: +20% takes it to 60, whatever its ROAS.
  auto r = Reallocate(Channels({2000, 1500, 800, 700, 50}), Params(true, 0.2, 100));
  CHECK(Cents(r.new_budgets[4]) == 6000);
  // With no step limit it goes straight to the minimum.
  auto r2 = Reallocate(Channels({2000, 1500, 800, 700, 50}), Params(true, 0, 100));
  CHECK(Cents(r2.new_budgets[4]) == 10000);
  std::int64_t sum = 0;
  for (auto c : AllCents(r2.new_budgets)) sum += c;
  CHECK(sum == 505000);
}

TEST_CASE("reallocate: nothing moves, and the note says why", "[realloc]") {
  SECTION("everyone at max") {
    auto r = Reallocate(Channels({1000, 1000, 1000, 1000, 1000}), Params(true, 0.2, 100, 1000));
    CHECK_FALSE(r.changed);
    CHECK(r.new_budgets == std::vector<double>{1000, 1000, 1000, 1000, 1000});
    CHECK(r.note.find("max budget") != std::string::npos);
  }
  SECTION("everyone at min") {
    auto r = Reallocate(Channels({100, 100, 100, 100, 100}), Params(true, 0.2, 100));
    CHECK_FALSE(r.changed);
    CHECK(r.note.find("min budget") != std::string::npos);
  }
  SECTION("equal metrics") {
    std::vector<Member> ms = {{"a", 500, 2.0}, {"b", 1500, 2.0}, {"c", 10, 2.0}};
    auto r = Reallocate(ms, Params(true, 0.5));
    CHECK_FALSE(r.changed);
    CHECK(r.note.find("same metric") != std::string::npos);
  }
  SECTION("one member with data") {
    std::vector<Member> ms = {{"a", 500, 2.0}, {"b", 1500, std::nullopt}};
    auto r = Reallocate(ms, Params(true, 0.5));
    CHECK_FALSE(r.changed);
    CHECK(r.note.find("fewer than two") != std::string::npos);
  }
  SECTION("shift smaller than a cent") {
    std::vector<Member> ms = {{"a", 1, 2.0}, {"b", 1, 2.001}};
    auto r = Reallocate(ms, Params(true, 0.2));
    CHECK_FALSE(r.changed);
    CHECK(r.note.find("less than a cent") != std::string::npos);
  }
  SECTION("bad parameters") {
    auto r = Reallocate(Channels({1000, 1000}), Params(true, -0.2));
    CHECK_FALSE(r.changed);
    CHECK_FALSE(r.note.empty());
    r = Reallocate(Channels({1000, 1000}), Params(true, 0.2, 500, 100));
    CHECK_FALSE(r.changed);
    CHECK(r.note.find("min budget is above max") != std::string::npos);
    r = Reallocate(Channels({1000, 1000}), Params(true, std::nan("")));
    CHECK_FALSE(r.changed);
  }
}

TEST_CASE("reallocate: the total wins when the bounds cannot all be met", "[realloc]") {
  // 2200 cannot fit under a max of 700 each: the two members above it come down 5/6 of the
  // way (to 750), the third takes up to its max.
  std::vector<Member> ms = {{"a", 1000, 3.0}, {"b", 1000, 2.0}, {"c", 200, 1.0}};
  auto r = Reallocate(ms, Params(true, 0, std::nullopt, 700));
  CHECK(r.changed);
  CHECK(AllCents(r.new_budgets) == Cs{75000, 75000, 70000});
  CHECK(r.note.find("could not bring every member within min/max") != std::string::npos);
  CHECK(r.note.find("83%") != std::string::npos);

  // All above max: the total cannot shrink, so nothing moves at all.
  auto r2 = Reallocate(Channels({1000, 1000, 1000}), Params(true, 0.2, std::nullopt, 500));
  CHECK_FALSE(r2.changed);
  CHECK(r2.note.find("0% of the way") != std::string::npos);

  // Without keep total the bounds win.
  auto r3 = Reallocate(Channels({1000, 1000, 1000}), Params(false, 0, std::nullopt, 500));
  CHECK(AllCents(r3.new_budgets) == Cs{50000, 50000, 50000});
}

TEST_CASE("reallocate: input order does not matter", "[realloc]") {
  auto members = Channels({2000, 1500, 800, 700, 500});
  auto a = Reallocate(members, Params(true, 0.2, 100));
  std::reverse(members.begin(), members.end());
  auto b = Reallocate(members, Params(true, 0.2, 100));
  std::reverse(b.new_budgets.begin(), b.new_budgets.end());
  CHECK(a.new_budgets == b.new_budgets);
}

// ---------------------------------------------------------------- properties

namespace {

// splitmix64: small, fast, and the same on every platform.
struct Rng {
  std::uint64_t s;
  std::uint64_t Next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  int Int(int lo, int hi) { return lo + static_cast<int>(Next() % static_cast<std::uint64_t>(hi - lo + 1)); }
  bool Chance(double p) { return Unit() < p; }
  double Cents(double lo, double hi) { return std::round((lo + (hi - lo) * Unit()) * 100) / 100; }
};

struct Case {
  std::vector<Member> members;
  ReallocationParams params;
};

Case Generate(Rng& rng) {
  Case c;
  const int n = rng.Int(2, 20);
  const bool tied = rng.Chance(0.2);       // metrics from a small set: many ties
  const bool equal = rng.Chance(0.05);     // every metric the same
  const double shared = rng.Cents(0, 6);
  for (int i = 0; i < n; ++i) {
    Member m;
    m.key = "m" + std::to_string(rng.Int(0, 999)) + "_" + std::to_string(i);
    const double scale = std::pow(10.0, rng.Int(0, 5));
    m.budget = rng.Chance(0.03) ? 0 : rng.Cents(0.01, scale);
    if (!rng.Chance(0.1)) {
      if (equal) {
        m.metric = shared;
      } else if (tied) {
        m.metric = rng.Int(0, 3) * 1.5;
      } else {
        m.metric = rng.Chance(0.05) ? -rng.Unit() : 8 * rng.Unit();
      }
    }
    c.members.push_back(m);
  }
  c.params.keep_total = rng.Chance(0.8);
  c.params.max_step = rng.Chance(0.25) ? 0 : (rng.Chance(0.1) ? rng.Cents(1, 2) : rng.Cents(0.01, 0.6));
  if (rng.Chance(0.5)) c.params.min_budget = rng.Cents(0, 300);
  if (rng.Chance(0.5)) {
    c.params.max_budget = c.params.min_budget.value_or(0) + rng.Cents(0, 50000);
  }
  return c;
}

bool Eligible(const Member& m) { return m.metric.has_value(); }

// The limits a member must end within, in cents: its step band intersected with the bounds, or
// (when they do not meet) the end of the step band nearest the bounds; whole cents rounded
// inward. Mirrors the header.
void Limits(const Member& m, const ReallocationParams& p, double& lo, double& hi) {
  const double b = static_cast<double>(Cents(m.budget));
  double s_lo = 0, s_hi = INFINITY;
  if (p.max_step > 0) {  // whole cents, rounded inward
    s_lo = std::max(0.0, std::ceil(b * (1 - p.max_step) - 1e-6));
    s_hi = std::floor(b * (1 + p.max_step) + 1e-6);
  }
  const double mn = p.min_budget ? std::ceil(*p.min_budget * 100 - 1e-6) : 0;
  const double mx = p.max_budget ? std::floor(*p.max_budget * 100 + 1e-6) : INFINITY;
  lo = std::max(s_lo, mn);
  hi = std::min(s_hi, mx);
  if (lo > hi) lo = hi = s_hi < mn ? s_hi : s_lo;
  if (b == 0) hi = lo;
}

}  // namespace

TEST_CASE("reallocate: properties on generated groups", "[realloc]") {
  Rng rng{20260301};
  int changed = 0, partial = 0, feasible_checked = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    Case c = Generate(rng);
    const auto& ms = c.members;
    const auto& p = c.params;
    const Reallocation r = Reallocate(ms, p);
    INFO("case " << iter << "\n" << Show(ms, p, r));
    REQUIRE(r.new_budgets.size() == ms.size());
    if (r.changed) ++changed;
    REQUIRE(r.note.find("internal") == std::string::npos);
    if (r.note.find("could not bring") != std::string::npos) ++partial;

    // Same answer every time.
    REQUIRE(Reallocate(ms, p).new_budgets == r.new_budgets);

    // Nothing changed: the budgets are returned untouched.
    if (!r.changed) {
      for (std::size_t i = 0; i < ms.size(); ++i) REQUIRE(r.new_budgets[i] == ms[i].budget);
      REQUIRE_FALSE(r.note.empty());
    }

    std::int64_t old_total = 0, new_total = 0;
    bool all_in_bounds = true;
    double sum_lo = 0, sum_hi = 0, total = 0;
    for (std::size_t i = 0; i < ms.size(); ++i) {
      const Member& m = ms[i];
      const std::int64_t b = Cents(m.budget), n = Cents(r.new_budgets[i]);
      old_total += b;
      new_total += n;
      if (!Eligible(m)) {
        REQUIRE(r.new_budgets[i] == m.budget);  // no data: untouched
        continue;
      }
      REQUIRE(n >= 0);
      if (p.max_step > 0) REQUIRE(std::abs(n - b) <= p.max_step * b + 1e-6);
      const double mn = p.min_budget ? *p.min_budget * 100 : 0;
      const double mx = p.max_budget ? *p.max_budget * 100 : INFINITY;
      const bool in_bounds = b >= mn - 1e-6 && b <= mx + 1e-6;
      all_in_bounds = all_in_bounds && in_bounds;
      if (in_bounds) {
        // Started within the bounds: stays within them.
        REQUIRE(n >= mn - 1e-6);
        REQUIRE(n <= mx + 1e-6);
      } else {
        // Started outside: never moves further away.
        if (b < mn) REQUIRE(n >= b);
        if (b > mx) REQUIRE(n <= b);
      }
      double lo, hi;
      Limits(m, p, lo, hi);
      sum_lo += lo;
      sum_hi += hi;
      total += static_cast<double>(b);
    }
    if (p.keep_total) REQUIRE(new_total == old_total);

    // When the limits can hold the total (or the total is free), every member ends within its
    // limits: the bounds are met wherever the step allows.
    const auto eligible = std::count_if(ms.begin(), ms.end(), Eligible);
    if (eligible >= 2 && (!p.keep_total || (sum_lo <= total - 20 && total + 20 <= sum_hi))) {
      ++feasible_checked;
      for (std::size_t i = 0; i < ms.size(); ++i) {
        if (!Eligible(ms[i])) continue;
        double lo, hi;
        Limits(ms[i], p, lo, hi);
        const double n = static_cast<double>(Cents(r.new_budgets[i]));
        REQUIRE(n >= lo);
        REQUIRE(n <= hi);
      }
    }

    // A better metric never loses budget while a worse one gains (members that started within
    // the bounds: moves of those outside are forced). Equal metrics move the same way.
    for (std::size_t a = 0; a < ms.size(); ++a) {
      for (std::size_t b = 0; b < ms.size(); ++b) {
        if (a == b || !Eligible(ms[a]) || !Eligible(ms[b])) continue;
        const auto in = [&](const Member& m) {
          const double v = static_cast<double>(Cents(m.budget));
          return v >= (p.min_budget ? *p.min_budget * 100 - 1e-6 : 0) &&
                 v <= (p.max_budget ? *p.max_budget * 100 + 1e-6 : INFINITY);
        };
        if (!in(ms[a]) || !in(ms[b]) || *ms[a].metric < *ms[b].metric) continue;
        const auto da = Cents(r.new_budgets[a]) - Cents(ms[a].budget);
        const auto db = Cents(r.new_budgets[b]) - Cents(ms[b].budget);
        INFO("a=" << ms[a].key << " b=" << ms[b].key);
        REQUIRE_FALSE((da < 0 && db > 0));
      }
    }

    // All-equal metrics with everyone within bounds: nothing moves.
    bool equal = true;
    std::optional<double> first;
    for (const auto& m : ms) {
      if (!m.metric) continue;
      if (first && *first != *m.metric) equal = false;
      first = m.metric;
    }
    if (equal && all_in_bounds) REQUIRE_FALSE(r.changed);

    // Any order of the members gives the same budgets.
    std::vector<std::size_t> perm(ms.size());
    for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = i;
    for (std::size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[rng.Next() % i]);
    std::vector<Member> shuffled;
    for (std::size_t i : perm) shuffled.push_back(ms[i]);
    const Reallocation rs = Reallocate(shuffled, p);
    for (std::size_t k = 0; k < perm.size(); ++k) {
      REQUIRE(rs.new_budgets[k] == r.new_budgets[perm[k]]);
    }
  }
  // The generator reaches the interesting cases.
  CHECK(changed > 10000);
  CHECK(partial > 50);
  CHECK(feasible_checked > 10000);
}

TEST_CASE("reallocate: keep total is exact to the cent for odd budgets", "[realloc]") {
  Rng rng{7};
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<Member> ms;
    const int n = rng.Int(2, 20);
    for (int i = 0; i < n; ++i) {
      // Budgets not in whole cents; each counts as its nearest cent.
      ms.push_back({"k" + std::to_string(i), rng.Unit() * 1000, rng.Unit() * 5});
    }
    const auto r = Reallocate(ms, Params(true, rng.Unit() * 0.5));
    std::int64_t before = 0, after = 0;
    for (std::size_t i = 0; i < ms.size(); ++i) {
      before += Cents(ms[i].budget);
      after += Cents(r.new_budgets[i]);
    }
    INFO(Show(ms, Params(true, 0), r));
    REQUIRE(before == after);
  }
}
