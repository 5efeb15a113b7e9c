// The safety gates: whether each action a decision intends may run, and why (or why not).
//
// Every intended action of every decision passes the gates in this order, and every verdict
// is written into the decision itself (its action's "gates" list) before the decision is
// logged, so the log says exactly which gate let an action through or stopped it:
//
//   1. kill_switch  the global kill switch (operators): on -> blocked
//   2. mode         the unit's mode: dry_run (the default) -> logged, not executed;
//                   shadow -> logged, not executed, compared with live decisions; live -> on
//   3. flag         the unit's `flag "NAME"`: off -> blocked (flags are off until turned on)
//   4. override     an operator's pin on the target entity ("never touch ad set 123 until
//                   2026-12-01") -> blocked
//   5. limits       the per-entity daily change budget (GateConfig): past it -> blocked and
//                   escalated. (A rule's own `limit N per DURATION` and `cooldown` are applied
//                   by the engine, which logs a `skipped`/`limit` decision; the gates escalate
//                   that decision to the on-call channel, once per rule and limit window.)
//   6. approval     `require approval`: the action waits in the outbox for an operator
//   7. execute      the action goes to the outbox and runs
//
// The resulting "disposition" of each action is one of: execute, awaiting_approval, dry_run,
// shadow, blocked, internal (a `set` on engine state, which the engine applies itself in live
// mode). Escalations and dead-letter alerts are notifications to the operators themselves:
// they are sent even with the kill switch on, because the kill switch stops gavel from
// changing the world, not from telling people about it.
//
// Threads: one thread at a time (the daemon's engine thread, in the transaction that appends
// the decision).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actions/controls.hpp"
#include "actions/outbox.hpp"
#include "dsl/program.hpp"
#include "rules/decision.hpp"

namespace gavel::actions {

struct GateConfig {
  // False: nothing is executed at all, whatever the rules' modes (a daemon started without
  // a configuration, a trial run); every action is logged as dry_run with that reason.
  bool execute = true;
  // At most this many effects (pause, enable, set_budget) per entity per UTC day; 0: no budget.
  int max_changes_per_entity_per_day = 0;
  // Slack channel (a name from the daemon's Slack configuration) for escalations and dead
  // letters; empty: escalations are only logged.
  std::string escalation_channel;
};

// The executor that performs an intent ("" for `set`, which the engine applies itself).
std::string ExecutorFor(const nlohmann::ordered_json& intent);
// The platform object an intent changes ("" when it changes none).
std::string TargetOf(const nlohmann::ordered_json& intent);

// One outbox row to add once the decision has its id.
struct PlannedAction {
  int index = 0;
  std::string executor;
  std::string target;
  bool needs_approval = false;
  rules::TimeMs expires = 0;
};

class GateKeeper {
 public:
  GateKeeper(std::shared_ptr<const dsl::Program> program, const Controls& controls, Outbox& outbox, GateConfig config);
  // A reload: later decisions are gated by the new program's units.
  void SetProgram(std::shared_ptr<const dsl::Program> program) { program_ = std::move(program); }

  // Runs the gates on each intended action of `d` (before it is logged): adds "gates" and
  // "disposition" to each action, and an escalation action where a limit was hit. Returns
  // the outbox rows to add after the decision is logged.
  std::vector<PlannedAction> Review(rules::Decision& d, rules::TimeMs now);
  // After the decision is logged (d.id set), in the same transaction.
  Status Enqueue(const rules::Decision& d, const std::vector<PlannedAction>& plans, rules::TimeMs now);

 private:
  const dsl::RuleMeta* MetaOf(const rules::Decision& d) const;
  void Escalate(rules::Decision& d, const std::string& why, std::vector<PlannedAction>& plans);

  std::shared_ptr<const dsl::Program> program_;
  const Controls& controls_;
  Outbox& outbox_;
  GateConfig config_;
  std::map<std::string, rules::TimeMs> last_escalation_;  // rule -> time (once per limit window)
};

}  // namespace gavel::actions
