// Budget reallocation across a group. See reallocate.hpp for the method.
#include "rules/reallocate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <numeric>

namespace gavel::rules {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Budgets above this (in currency units) are left alone: their cents would no longer be exact
// in a double.
constexpr double kMaxBudget = 1e13;
// Relative advantages are capped so that budget * (1 + r) stays finite.
constexpr double kMaxAdvantage = 1e9;
// Slack when rounding limits inward to whole cents, so that 100 * 1.2 = 120.00000000000001
// still allows 120 cents.
constexpr double kCentSlack = 1e-6;

// One member taking part, in cents.
struct Part {
  std::size_t index = 0;  // position in the input
  double b = 0;           // budget, whole cents
  double r = 0;           // relative advantage
  double lo = 0, hi = 0;  // limits, whole cents (hi may be +inf)
  bool forced_up = false, forced_down = false;
  double x = 0;           // target (real cents)
  double n = 0;           // result (whole cents)
};

std::string Percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f%%", std::floor(fraction * 100));
  return buf;
}

double Sum(const std::vector<Part>& parts, double Part::*field) {
  double s = 0;
  for (const auto& p : parts) s += p.*field;
  return s;
}

// sum of clamp(b * (1 + r + lambda), lo, hi), writing each target into x.
double Targets(std::vector<Part>& parts, double lambda) {
  double s = 0;
  for (auto& p : parts) {
    p.x = std::clamp(p.b * (1 + p.r + lambda), p.lo, p.hi);
    s += p.x;
  }
  return s;
}

}  // namespace

Reallocation Reallocate(const std::vector<Member>& members, const ReallocationParams& params) {
  Reallocation out;
  out.new_budgets.reserve(members.size());
  for (const auto& m : members) out.new_budgets.push_back(m.budget);

  // ---- parameters
  const double step = params.max_step;
  if (!std::isfinite(step) || step < 0) {
    out.note = "invalid step limit; nothing moved";
    return out;
  }
  for (const auto* bound : {&params.min_budget, &params.max_budget}) {
    if (*bound && (!std::isfinite(**bound) || **bound < 0)) {
      out.note = "invalid min/max budget; nothing moved";
      return out;
    }
  }
  if (params.min_budget && params.max_budget && *params.min_budget > *params.max_budget) {
    out.note = "min budget is above max budget; nothing moved";
    return out;
  }
  const double min_c = params.min_budget ? std::ceil(*params.min_budget * 100 - kCentSlack) : 0;
  const double max_c =
      params.max_budget ? std::floor(*params.max_budget * 100 + kCentSlack) : kInf;

  // ---- members taking part, in key order (so that input order never matters)
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < members.size(); ++i) {
    const Member& m = members[i];
    if (m.metric && std::isfinite(*m.metric) && std::isfinite(m.budget) && m.budget >= 0 &&
        m.budget <= kMaxBudget) {
      order.push_back(i);
    }
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const Member& x = members[a];
    const Member& y = members[b];
    if (x.key != y.key) return x.key < y.key;
    if (x.budget != y.budget) return x.budget < y.budget;
    return *x.metric < *y.metric;
  });
  std::vector<Part> parts;
  std::vector<double> metric;
  for (std::size_t i : order) {
    Part p;
    p.index = i;
    p.b = std::round(members[i].budget * 100);
    parts.push_back(p);
    metric.push_back(*members[i].metric);
  }
  if (parts.size() < 2) {
    out.note = "fewer than two members have both a budget and data for the metric; nothing to shift";
    return out;
  }

  // ---- relative advantage against the budget-weighted mean
  double total_b = Sum(parts, &Part::b);
  double mean = 0;
  if (total_b > 0) {
    for (std::size_t k = 0; k < parts.size(); ++k) mean += parts[k].b * metric[k];
    mean /= total_b;
  } else {
    for (double v : metric) mean += v;
    mean /= static_cast<double>(metric.size());
  }
  double scale = mean;
  if (!(mean > 0)) {
    scale = 0;
    for (double v : metric) scale = std::max(scale, std::abs(v - mean));
  }
  bool all_equal = true;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    double r = scale > 0 ? (metric[k] - mean) / scale : 0;
    if (!std::isfinite(r)) r = 0;
    r = std::clamp(r, -kMaxAdvantage, kMaxAdvantage);
    // Equal metrics must give exactly r = 0, whatever the rounding in the mean.
    if (metric[k] != metric[0]) all_equal = false;
    parts[k].r = r;
  }
  if (all_equal) {
    for (auto& p : parts) p.r = 0;
  }

  // ---- limits in whole cents: step band intersected with [min, max]
  int below_min = 0, above_max = 0;
  for (auto& p : parts) {
    double s_lo = 0, s_hi = kInf;
    if (step > 0) {
      s_lo = std::max(0.0, std::ceil(p.b * (1 - step) - kCentSlack));
      s_hi = std::floor(p.b * (1 + step) + kCentSlack);
    }
    s_lo = std::min(s_lo, p.b);
    s_hi = std::max(s_hi, p.b);
    if (p.b < min_c) ++below_min;
    if (p.b > max_c) ++above_max;
    p.lo = std::max(s_lo, min_c);
    p.hi = std::min(s_hi, max_c);
    if (p.lo > p.hi) {
      // Outside the bounds by more than a step: as far as the step allows, toward the bounds.
      p.lo = p.hi = s_hi < min_c ? s_hi : s_lo;
    }
    if (p.b == 0) p.hi = p.lo;  // a multiplicative update cannot grow a zero budget
    p.forced_up = p.lo > p.b;
    p.forced_down = p.hi < p.b;
  }

  std::string partial;
  if (params.keep_total) {
    const double total = total_b;  // whole cents, exact
    // Largest fraction theta of every forced move that still lets the total be kept.
    double lo_base = 0, lo_forced = 0, hi_base = 0, hi_forced = 0;
    for (const auto& p : parts) {
      lo_base += p.forced_up ? p.b : p.lo;
      if (p.forced_up) lo_forced += p.lo - p.b;
      hi_base += p.forced_down ? p.b : p.hi;
      if (p.forced_down) hi_forced += p.b - p.hi;
    }
    double theta = 1;
    if (lo_forced > 0) theta = std::min(theta, (total - lo_base) / lo_forced);
    if (hi_forced > 0 && std::isfinite(hi_base)) {
      theta = std::min(theta, (hi_base - total) / hi_forced);
    }
    theta = std::clamp(theta, 0.0, 1.0);
    if (theta < 1) {
      // Relaxed limits in whole cents, rounded toward the current budget (so that the total
      // stays reachable); first with a little slack so that a limit computed as 75000.0000001
      // stays 75000, then strictly, then (never seen) not moving forced members at all.
      const std::vector<Part> strict = parts;
      bool feasible = false;
      for (double slack : {kCentSlack, 0.0}) {
        parts = strict;
        for (auto& p : parts) {
          if (p.forced_up) p.lo = std::floor(p.b + theta * (p.lo - p.b) + slack);
          if (p.forced_down) p.hi = std::ceil(p.b + theta * (p.hi - p.b) - slack);
        }
        feasible = Sum(parts, &Part::lo) <= total && Sum(parts, &Part::hi) >= total;
        if (feasible) break;
      }
      if (!feasible) {
        theta = 0;
        parts = strict;
        for (auto& p : parts) {
          if (p.forced_up) p.lo = p.b;
          if (p.forced_down) p.hi = p.b;
        }
      }
      partial = "could not bring every member within min/max while keeping the total (" +
                std::to_string(below_min) + " below min, " + std::to_string(above_max) +
                " above max): those members moved " + Percent(theta) + " of the way";
    }

    // Common correction lambda: largest found with sum(targets) <= total.
    double lam_lo = 0, lam_hi = 0;
    for (const auto& p : parts) {
      if (p.b <= 0) continue;
      lam_lo = std::min(lam_lo, p.lo / p.b - 1 - p.r - 1);
      if (std::isfinite(p.hi)) lam_hi = std::max(lam_hi, p.hi / p.b - 1 - p.r + 1);
    }
    for (int i = 0; i < 200 && Targets(parts, lam_hi) < total; ++i) {
      lam_hi = std::max(1.0, lam_hi * 2);
    }
    if (Targets(parts, lam_lo) > total) lam_lo = lam_hi = 0;  // unreachable: limits contain b
    for (int i = 0; i < 300; ++i) {
      double mid = lam_lo + (lam_hi - lam_lo) / 2;
      if (mid <= lam_lo || mid >= lam_hi) break;
      if (Targets(parts, mid) <= total) {
        lam_lo = mid;
      } else {
        lam_hi = mid;
      }
    }
    double placed = 0;
    Targets(parts, lam_lo);
    for (auto& p : parts) {
      p.n = std::clamp(std::floor(p.x), p.lo, p.hi);
      placed += p.n;
    }
    // Remaining cents: one each to the largest fractions, ties by key (parts are in key order).
    std::vector<std::size_t> by_fraction(parts.size());
    std::iota(by_fraction.begin(), by_fraction.end(), 0);
    std::stable_sort(by_fraction.begin(), by_fraction.end(), [&](std::size_t a, std::size_t b) {
      return parts[a].x - std::floor(parts[a].x) > parts[b].x - std::floor(parts[b].x);
    });
    double remainder = total - placed;
    while (remainder > 0) {
      bool moved = false;
      for (std::size_t k : by_fraction) {
        if (remainder <= 0) break;
        if (parts[k].n < parts[k].hi) {
          parts[k].n += 1;
          remainder -= 1;
          moved = true;
        }
      }
      if (!moved) break;
    }
    while (remainder < 0) {
      bool moved = false;
      for (auto it = by_fraction.rbegin(); it != by_fraction.rend() && remainder < 0; ++it) {
        if (parts[*it].n > parts[*it].lo) {
          parts[*it].n -= 1;
          remainder += 1;
          moved = true;
        }
      }
      if (!moved) break;
    }
    if (remainder != 0) {
      // Cannot happen (the limits contain a solution); keep everything rather than break the
      // total.
      out.note = "internal: could not place the total exactly; nothing moved";
      return out;
    }
  } else {
    for (auto& p : parts) {
      p.x = std::clamp(p.b * (1 + p.r), p.lo, p.hi);
      p.n = std::clamp(std::round(p.x), p.lo, p.hi);
    }
  }

  // ---- result
  bool any_gain_wanted = false, any_loss_wanted = false;
  bool gain_room = false, loss_room = false;
  for (const auto& p : parts) {
    if (p.n != p.b) {
      out.changed = true;
      out.new_budgets[p.index] = p.n / 100;
    }
    if (p.r > 0) {
      any_gain_wanted = true;
      gain_room = gain_room || p.hi > p.b;
    }
    if (p.r < 0) {
      any_loss_wanted = true;
      loss_room = loss_room || p.lo < p.b;
    }
  }
  if (!out.changed) {
    if (all_equal) {
      out.note = "every member with data has the same metric; nothing to shift";
    } else if (any_gain_wanted && !gain_room) {
      out.note = "nothing moved: every member with a better metric is at its max budget or step "
                 "limit";
    } else if (any_loss_wanted && !loss_room) {
      out.note = "nothing moved: every member with a worse metric is at its min budget or step "
                 "limit";
    } else {
      out.note = "nothing moved: the shift allowed by the limits is less than a cent";
    }
    if (!partial.empty()) out.note += "; " + partial;
    return out;
  }
  out.note = partial;
  return out;
}

}  // namespace gavel::rules
