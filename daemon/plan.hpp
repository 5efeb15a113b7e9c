// Plans: what the scheduled rules and alerts would do *now*, against the current warehouse and
// the current state database, with every action's gate verdicts — and the later execution of
// exactly that plan, refused if anything it was computed from has changed (docs/review.md,
// "Plan and apply").
//
//   MakePlan   restores a fresh Engine from the state database (read only: the file is never
//              written), runs every scheduled rule and alert once at `at`
//              (Engine::RunSchedulesNow), and passes each decision through the gates
//              (actions::GateKeeper::Review) against a copy of the controls and the outbox.
//              It records the provenance: program and unit versions, the decision log's
//              head, SHA-256 fingerprints of the engine state rows and of the controls, and per
//              warehouse table the newest row and a SHA-256 over every query result the
//              rules read.
//   ApplyPlan  in ONE write transaction on the state database (BEGIN IMMEDIATE, so no other
//              writer can slip in between the check and the write), recomputes all of that;
//              if anything differs it rolls back and returns the reasons. Otherwise it logs
//              the planned decisions (trigger "plan:<sha256 of the plan file>"), queues their
//              allowed actions in the outbox and checkpoints the engine state, then commits.
//
// Event-driven units (event and crossing rules, scores, journeys) act on events and are not
// part of a plan; a plan names them.
//
// Apply is meant for a stopped daemon or a plan-only workflow: a running daemon keeps its own
// engine in memory and would not see the state apply writes. A running daemon that logged
// anything since the plan moves the log head, and the plan is refused.
//
// Ownership: a Plan owns copies of everything it shows. Threads: none shared; one thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "actions/gates.hpp"
#include "actions/outbox.hpp"
#include "dsl/base/status.hpp"
#include "dsl/program.hpp"
#include "dsl/source.hpp"
#include "rules/decision.hpp"
#include "rules/store/decision_log.hpp"

namespace gavel::plan {

using rules::TimeMs;
using Json = nlohmann::ordered_json;

inline constexpr const char* kSchema = "gavel.plan/1";

struct PlanInputs {
  std::shared_ptr<const dsl::Program> program;
  std::string rules_dir;       // as recorded in the plan (made absolute by the caller)
  std::string state_path;      // the state database (decision log + engine state)
  std::string warehouse_path;  // the SQLite warehouse
  TimeMs at = 0;               // the instant the rules run at
  actions::GateConfig gates;   // the daemon's gate settings (change budget, escalation channel)
};

// What one warehouse table gave the plan.
struct TableRead {
  std::string newest;        // newest value of the table's time column ("" if empty)
  std::int64_t queries = 0;  // window and history queries run on it
  std::int64_t rows = 0;     // rows they returned
  std::string sha256;        // chained SHA-256 over each query (SQL, bounds) and its rows
};

// Everything a plan was computed from. Two provenances are equal exactly when the plan
// would be computed the same way again.
struct Provenance {
  std::string rules_dir, state_path, warehouse_path;
  TimeMs at = 0;
  std::string program_version;
  std::map<std::string, std::string> units;  // "rule:NAME" / "alert:NAME" / ... -> version hash
  rules::ChainHead head;                     // the decision log's newest record
  std::int64_t state_rows = 0;               // engine_state rows read
  std::string state_sha256;                  // over (kind, name, key, value) of each, in order
  Json controls = Json::object();            // kill switch, flags, pins in force at `at`
  std::string controls_sha256;
  // Effects already queued today per target, as the change-budget gate counted them (only
  // when the budget is on: max_changes_per_entity_per_day > 0).
  std::map<std::string, std::int64_t> effects_today;
  std::map<std::string, TableRead> tables;  // every table the scheduled units read
  int max_changes_per_entity_per_day = 0;
  std::string escalation_channel;
};

struct Plan {
  Provenance provenance;
  // Every decision the run made, in order, each action carrying its "gates" and
  // "disposition" (as GateKeeper::Review left them). What apply logs.
  std::vector<rules::Decision> decisions;
  // Per decision: the outbox rows apply would add.
  std::vector<std::vector<actions::PlannedAction>> queued;
  // Event-driven units, which a plan does not run: "rule:mql_handoff", "journey:onboarding".
  std::vector<std::string> not_planned;
};

// Computes a plan without writing anything to the state database or the warehouse.
Result<Plan> MakePlan(const PlanInputs& in);

// The plan as `gavel.plan/1` JSON (the document `--out` saves and `apply` reads).
Json PlanToJson(const Plan& plan);
// The plan as a readable table.
std::string RenderPlanText(const Plan& plan);

struct ApplyOutcome {
  bool applied = false;
  std::vector<std::string> reasons;          // why it was refused (empty when applied)
  std::string plan_sha256;                   // of the plan file's bytes
  std::vector<rules::Decision> logged;       // the decisions logged, with their ids
  std::vector<actions::OutboxEntry> queued;  // the outbox rows added
  rules::ChainHead head_before, head_after;
};

// Applies the plan in `plan_text` (the bytes of a `gavel plan --out` file) if nothing it was
// computed from has changed. `in.at` is ignored: the plan's own time is used. `now` is the
// time the decisions are logged and the actions queued (the gates are evaluated at it).
// Errors are I/O and format problems; a stale plan is an ApplyOutcome with reasons.
Result<ApplyOutcome> ApplyPlan(const PlanInputs& in, const dsl::SourceManager& sources,
                               const std::string& plan_text, TimeMs now);

// The provenance recorded in a plan file's JSON (for ApplyPlan and tests).
Result<Provenance> ProvenanceFromJson(const Json& j);
// Why `now` differs from `planned`, one precise sentence per difference (empty: the same).
std::vector<std::string> Differences(const Provenance& planned, const Provenance& now);

}  // namespace gavel::plan
