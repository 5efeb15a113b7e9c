// Budget reallocation across a group: the arithmetic behind
//   `reallocate budget toward roas keep total step at most 20% min 100 USD per channel`.
// The engine evaluates the `toward` metric for every member of the group (a channel, an
// adset...) and calls Reallocate() with the current budgets; the result is the proposed budget
// of each member, in the same order, and a note for the decision log. Nothing here talks to an
// ad platform or reads a clock.
//
// Ownership: inputs are read only; the result is returned by value. Threads: a pure function
// with no state, safe to call from any number of threads. Deterministic: the same members (in
// any order) and parameters always give the same budgets, to the cent. Never throws.
//
// The method, in the words the decision log uses:
//
//  1. Who takes part. Members with a metric (finite) and a budget (finite, >= 0) take part. A
//     member with no metric ("no data") keeps its budget exactly and is left out of the shift,
//     including the total that is kept. Fewer than two members with data: nothing moves.
//
//  2. Where each member wants to go (multiplicative weights). m̄ is the budget-weighted mean
//     metric of the members taking part. A member's relative advantage is
//         r = (metric - m̄) / m̄          (when m̄ <= 0: divided by the largest |metric - m̄|)
//     and its unconstrained new budget is budget * (1 + r) = budget * metric / m̄: a channel
//     with twice the group's ROAS would double, one with half would halve. These add up to the
//     old total exactly, so with no limits in the way the total is kept for free.
//
//  3. Limits. Each member's new budget must lie in its step band
//         [budget * (1 - max_step), budget * (1 + max_step)]     (max_step 0 = unlimited)
//     and in [min_budget, max_budget]; budgets never go below 0. A member already outside the
//     bounds is moved into them as far as its step band allows (this move is forced: it
//     happens whatever the metric says; it is the only way a worse member can gain). A member
//     with budget 0 stays at 0 (a multiplicative update cannot grow it), except that with no
//     step limit it is lifted to min_budget.
//
//  4. Keeping the total (keep_total). Every member gets one common correction λ:
//         new = clamp(budget * (1 + r + λ), its limits)
//     where λ is the single number that makes the clamped budgets add up to the old total
//     (found by bisection; the sum is continuous and increasing in λ). When the best members
//     hit their step or max, λ rises and the worse members give up less; when the worst hit
//     their step or min, λ falls and the better members gain less. Consequences: a member gains
//     only if r + λ > 0 and loses only if r + λ < 0, so a better-metric member never loses
//     budget while a worse-metric one gains (forced moves aside); all-equal metrics give no
//     change.
//     If the bounds cannot all be met while keeping the total (say every member sits above
//     max_budget), the total wins: each forced move is done the same fraction θ of the way,
//     the largest θ the total allows, and `note` says so (with `changed` possibly true).
//     Without keep_total, λ = 0: each member simply moves to clamp(budget * (1 + r)) and the
//     total may change.
//
//  5. Cents. Budgets are handled in whole cents: each budget is first rounded to the nearest
//     cent, limits are rounded inward (never beyond the step or the bounds), and the new budgets
//     are whole cents. With keep_total the sum in cents of the members taking part is kept
//     exactly: each new budget is rounded down and the remaining cents go one each to the
//     members with the largest fractions, ties by key (then input position). A member whose
//     cents did not change keeps its original value exactly.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace gavel::rules {

struct Member {
  std::string key;               // the group variable's value: "google", "meta"
  double budget = 0;             // current budget (currency units, e.g. USD)
  std::optional<double> metric;  // the `toward` value; nullopt = no data
};

struct ReallocationParams {
  bool keep_total = false;
  double max_step = 0;                // fraction of the member's own budget per run; 0 = none
  std::optional<double> min_budget;   // per member, currency units
  std::optional<double> max_budget;
};

struct Reallocation {
  std::vector<double> new_budgets;    // same order as the members
  bool changed = false;               // some member's budget moved by at least a cent
  std::string note;                   // why nothing moved, or what could not be done; may be ""
};

// Proposes new budgets; see the method above. Invalid parameters (negative or non-finite
// max_step, non-finite or negative bounds, min above max) move nothing and say so in `note`.
Reallocation Reallocate(const std::vector<Member>& members, const ReallocationParams& params);

}  // namespace gavel::rules
