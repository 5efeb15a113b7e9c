// Backtests and rule diffs: what a set of rules would have done over recorded history, and
// where two versions of the rules would have decided differently.
//
// Three stages, each usable alone (docs/review.md describes the report a reviewer reads):
//   RunHistory   compiles a rule directory and runs the whole engine over an event file and a
//                warehouse on a SimulatedClock, exactly as `gavel replay` does (windows,
//                confidence, decay, journeys, alert states, limits, cooldowns), collecting
//                every decision into a Run. No side effects: nothing is written anywhere.
//   Aggregate    turns a Run into a Report: per unit and per UTC day, decisions by outcome,
//                intended actions by kind, spend touched, budget moved, alerts sent, journey
//                steps; and the conflicts (the same entity paused and re-enabled, or its
//                budget moved up and down, within a window).
//   Diff         pairs the decisions of two Runs over the same history by (time, unit,
//                entity) and lists what was added, removed or changed.
// Render* turn a Report or a DiffResult into text, JSON (schema `gavel.backtest/1`,
// `gavel.diff/1`) or one self-contained HTML page (inline CSS, JS and SVG; no network).
//
// Determinism: the same rules, inputs and range give the same Run and the same rendered
// report, byte for byte (nothing here reads the wall clock; timing is the caller's business,
// see the progress callback).
//
// Ownership: a Run owns its decisions; a Report and a DiffResult own copies of what they
// show. Threads: none of this is shared; use each object from one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dsl/base/status.hpp"
#include "rules/clock.hpp"

namespace gavel::backtest {

using rules::TimeMs;
using Json = nlohmann::ordered_json;

// Where a run is: reported at every simulated midnight and every few thousand events.
struct Progress {
  TimeMs now = 0;           // simulated time reached
  TimeMs from = 0, to = 0;  // the range being run
  std::int64_t events_applied = 0;
  std::int64_t events_total = 0;  // events in range
  std::int64_t decisions = 0;
};

struct RunOptions {
  std::string rules_dir;
  std::string events_path;
  std::string warehouse_path;  // empty: scheduled rules and alerts are not run
  // History [from, to): events with from <= time < to, and every tick and timer due before
  // `to`. Unset: from the midnight (UTC) starting the first event's day to the midnight ending
  // the last event's day. Run::from and Run::to hold the range used.
  std::optional<TimeMs> from, to;
  std::function<void(const Progress&)> progress;  // may be empty
};

// One decision, reduced to what the report and the diff use.
struct DecisionDigest {
  std::int64_t id = 0;  // 1, 2, 3, ... in decision order within the run
  TimeMs time = 0;      // event_time
  std::string kind;     // rule | alert | journey | score | schedule
  std::string rule;
  std::string entity_type, entity_id;
  std::string outcome, reason;
  std::optional<double> spend;   // the window's spend from the evidence (`sum(spend)`), if any
  std::optional<double> budget;  // the `budget` the decision read (evidence), if any
  Json actions = Json::array();  // the intended actions, as decided
  std::string Unit() const { return kind + ":" + rule; }
  std::string Entity() const {
    return entity_id.empty() ? std::string() : entity_type + ":" + entity_id;
  }
};

// One unit of the program (rule, alert or journey) as the report lists it.
struct UnitInfo {
  std::string key;  // "rule:pause_high_cpa" (kind:name, as in summaries)
  std::string kind, name, mode, version, file;
  int line = 0;
  std::string trigger;  // "every 1h", "on page_view", "score lead_score crosses above 50", ...
};

struct Run {
  std::string rules_dir, events_path, warehouse_path;
  TimeMs from = 0, to = 0;
  std::string program_version;
  std::vector<UnitInfo> units;
  std::vector<DecisionDigest> decisions;  // in decision order (summaries left out)
  // Evaluations that did not fire, from the engine's summary at each simulated midnight:
  // day ("2026-10-26") -> unit key -> count.
  std::map<std::string, std::map<std::string, std::int64_t>> not_fired;
  std::int64_t events_read = 0;  // valid lines in the file
  std::int64_t events_in_range = 0;
  std::int64_t events_applied = 0;
  std::int64_t events_rejected = 0;  // malformed lines (messages in `rejected`)
  std::int64_t duplicates = 0;
  std::vector<std::string> rejected;  // "FILE:LINE: rejected: reason", at most 20
};

// Compiles, loads and runs. Errors: InvalidArgument when the rule files do not compile (the
// rendered diagnostics are in `diagnostics`), IoError for unreadable files or a warehouse
// that cannot be opened, Internal if the engine fails.
Status RunHistory(const RunOptions& options, Run& run, std::string& diagnostics);

// ------------------------------------------------------------------ the report

// Counts and sums for one unit on one day (or a total over units or days).
struct Cell {
  std::int64_t decisions = 0;
  std::int64_t not_fired = 0;  // evaluations that did not fire (summaries)
  std::map<std::string, std::int64_t>
      outcomes;  // "fired", "skipped:cooldown", "alert:pending", ...
  std::map<std::string, std::int64_t>
      actions;  // intended actions by kind: pause, notify_slack, ...
  std::map<std::string, std::int64_t>
      alerts_sent;                 // alert notifications by state: firing, repeat, resolved
  std::int64_t journey_steps = 0;  // journey messages sent (step decisions)
  double spend_touched = 0;        // see docs/review.md
  double budget_moved = 0, budget_up = 0, budget_down = 0;
  std::int64_t budget_unknown = 0;  // set_budget actions whose previous budget is unknown
  std::set<std::string> targets;    // distinct entities paused, enabled or re-budgeted
  std::int64_t conflicts = 0;       // conflicts whose second action is here

  std::int64_t Fired() const;
  std::int64_t Skipped() const;
  std::int64_t ActionTotal() const;
  std::int64_t AlertsSent() const;
  void Add(const Cell& other);
};

// One entity-changing action, as a conflict names it.
struct ActionRef {
  std::int64_t decision = 0;  // the decision's id in its run
  TimeMs time = 0;
  std::string unit, rule, action, mode;  // action: pause | enable | set_budget
  std::optional<double> before, after;   // set_budget
};

// The same target changed one way and then back, within the conflict window.
struct Conflict {
  std::string type;        // "pause_enable" | "budget"
  std::string pattern;     // pause_then_enable | enable_then_pause | up_then_down | down_then_up
  std::string target;      // "adset_daily:as_0051"
  bool same_rule = false;  // one rule undoing itself: an oscillation
  ActionRef first, second;
};

// Where two runs over the same history decided differently.
struct DiffEntry {
  std::string change;  // "changed" | "removed" | "added"
  std::optional<DecisionDigest> old_decision, new_decision;
};
struct DiffUnitCounts {
  std::int64_t same = 0, changed = 0, removed = 0, added = 0;
  // Differences whose intended actions differ (a side that did not decide intends nothing):
  // what would really have been done differently, beyond skip reasons and alert states.
  std::int64_t actions_differ = 0;
};
struct DiffResult {
  std::string old_rules, new_rules;
  TimeMs from = 0, to = 0;
  std::int64_t old_decisions = 0, new_decisions = 0;
  std::vector<std::string> units_removed, units_added, units_changed_version;
  std::map<std::string, DiffUnitCounts> by_unit;  // unit key -> counts
  DiffUnitCounts total;
  std::vector<DiffEntry> entries;  // by time, unit, entity
  bool actions_only = false;       // entries holds only those whose actions differ (counts: all)
};

struct ReportOptions {
  TimeMs conflict_window = 7 * rules::kDay;  // a change undone within this is a conflict
};

struct Report {
  // The run it describes.
  std::string rules_dir, events_path, warehouse_path, program_version;
  TimeMs from = 0, to = 0;
  std::int64_t events_read = 0, events_in_range = 0, events_applied = 0, events_rejected = 0,
               duplicates = 0;
  TimeMs conflict_window = 0;
  std::vector<UnitInfo> units;                               // program order, then any others seen
  std::vector<std::string> days;                             // every UTC day of [from, to)
  std::map<std::string, std::map<std::string, Cell>> cells;  // unit key -> day -> cell
  std::map<std::string, Cell> by_unit;                       // unit key -> total
  std::map<std::string, Cell> by_day;                        // day -> total
  Cell total;
  std::vector<Conflict> conflicts;    // in order of their second action
  std::optional<DiffResult> against;  // backtest --against OLD_DIR
};

Report Aggregate(const Run& run, const ReportOptions& options = {});
DiffResult Diff(const Run& old_run, const Run& new_run);
// Keeps only the differences whose intended actions differ (`--actions-only`).
void KeepActionDifferences(DiffResult& diff);

// Rendering. `limit` caps the differences listed in text and HTML (0: all); JSON lists all.
std::string RenderText(const Report& report, std::size_t diff_limit = 50);
Json RenderJson(const Report& report);
std::string RenderHtml(const Report& report, std::size_t diff_limit = 500);

std::string RenderDiffText(const DiffResult& diff, std::size_t limit = 200);
Json RenderDiffJson(const DiffResult& diff);
std::string RenderDiffHtml(const DiffResult& diff, std::size_t limit = 2000);

// "pause adset_daily:as_0051; notify_slack #paid-alerts": one line per decision's actions.
std::string SummarizeActions(const Json& actions);
// "2026-10-26" for a time.
std::string DayOf(TimeMs t);

}  // namespace gavel::backtest
