// The decision engine: runs a compiled Program over events, schedule ticks and timers, and
// writes every decision to a DecisionSink. The daemon, `replay`, `test`, `plan` and `backtest`
// all run this one Engine with different clocks and inputs.
//
// Inputs, always in time order (the caller orders them; `replay` sorts history):
//   AdvanceTo(t)  runs everything due up to t: decay-crossing timers, journey timers
//                 (waits, quiet-hour releases) and schedule ticks of rules and alerts;
//   OnEvent(e)    applies one validated event at e.time (call AdvanceTo(e.time) first);
//   OnEvents(es)  both for each of a batch of events, in order (faster: it prefetches).
//
// Time comes only from the inputs and the Clock passed in (processing_time of decisions);
// the same program, inputs and clock give the same decisions, byte for byte.
//
// Containment: a failing warehouse query makes its rule log an `error` skip and marks the
// rule's health bad; every other rule carries on. Nothing here throws across the API.
//
// Threads: one Engine is used by one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dsl/program.hpp"
#include "rules/clock.hpp"
#include "rules/decision.hpp"
#include "rules/eval.hpp"
#include "rules/event.hpp"
#include "rules/warehouse.hpp"

namespace gavel::rules {

class StateSink;
class StateSource;

struct EngineDeps {
  const Clock* clock = nullptr;       // processing time of decisions (required)
  DecisionSink* sink = nullptr;       // where decisions go (required)
  Warehouse* warehouse = nullptr;     // for scheduled rules and alerts (may be null: they skip)
};

struct EngineOptions {
  // Log every evaluation that did not fire as its own record (default: counts in summaries).
  bool log_every_evaluation = false;
  // Freshness limit for tables that declare none (0: no limit).
  std::int64_t default_freshness_seconds = 0;
  // Run schedule ticks at all (replay without a warehouse may turn them off).
  bool run_schedules = true;
  // Track what changed for Checkpoint(). Callers that never checkpoint (replay, benchmarks)
  // turn it off and save the bookkeeping.
  bool track_state = true;
  // The daemon's policy for schedule ticks missed while it was down (or busy): when AdvanceTo
  // finds several ticks of one rule due, it runs only the latest of them, once, and logs a
  // `schedule`/`late` record saying which tick was first missed and how many were skipped.
  // A single tick that runs more than `late_tick_tolerance_ms` after its time is logged as
  // late too. Off for replay, test and backtest, which run every tick of history.
  bool coalesce_missed_ticks = false;
  std::int64_t late_tick_tolerance_ms = 60 * 1000;
  // Hand the decisions of event and crossing rules (fired, or skipped by cooldown or limit)
  // to the sink in compact form (DecisionSink::AppendCompact, rules/compact_decision.hpp)
  // instead of building each as JSON on the engine thread. A sink that does not override
  // AppendCompact gets the same Decision either way; off forces the engine's own JSON path
  // (tests compare the two).
  bool compact_decisions = true;
};

// Health of one unit, for `GET /v1/rules` later and for tests now.
struct UnitHealth {
  bool ok = true;
  std::string last_error;
  TimeMs last_evaluation = 0;
  std::int64_t evaluations = 0;
  std::int64_t fired = 0;
};

class Engine {
 public:
  Engine(std::shared_ptr<const dsl::Program> program, EngineDeps deps, EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Sets the engine's start time: schedules tick only after it. Call once, before any input.
  void Start(TimeMs t);
  // Runs everything due at or before `t`, in time order. Sets the engine's input time to t.
  Status AdvanceTo(TimeMs t);
  // Applies one event. Returns InvalidArgument for a duplicate id (nothing is applied).
  Status OnEvent(const Event& e);
  // Applies events in order, each exactly as AdvanceTo(e.time) then OnEvent(e) would (a
  // duplicate or malformed event is rejected alone, with InvalidArgument, and the batch goes
  // on), but faster: the duplicate check is sized for the batch at once, the memory each
  // event needs is fetched a few events ahead and its id and keys are hashed once.
  // `per_event` (if given) gets one status per event attempted.
  // Any other failure (the sink refused a record, a timer failed) stops the batch at that
  // event and is returned; the events after it are not applied. Otherwise returns Ok.
  Status OnEvents(std::span<const Event> events, std::vector<Status>* per_event = nullptr);
  // Writes the summary of evaluations that did not fire since the last summary.
  Status FlushSummary();
  // Makes room for `events` more event ids in the duplicate check (a replay knows how many
  // it will apply; growing the table as it fills costs a rehash of every id seen).
  void ReserveEvents(std::size_t events);
  // Runs every scheduled rule and alert once, now, at time `t` (for `gavel plan`: "what would
  // the rules do now?"), without moving their schedules. Alert states, cooldowns and limits
  // change as in a tick; run it on an engine restored for the purpose, not the live one.
  Status RunSchedulesNow(TimeMs t);
  // The earliest time at which AdvanceTo has work (a timer or a schedule tick), or -1 if
  // nothing is scheduled. The daemon sleeps until then (or until the next event).
  TimeMs NextWakeup();

  // Durable state (rules/state.hpp): Checkpoint writes what changed since the last
  // checkpoint; Restore loads a saved state into a fresh engine, before any input (it also
  // sets the engine's time to the saved one). Write the checkpoint in the same transaction
  // as the decisions it belongs to.
  Status Checkpoint(StateSink& sink);
  Status Restore(const StateSource& source);

  // Introspection (tests, `explain`, the HTTP API later).
  std::string DescribeEntity(const std::string& entity_type, const std::string& id) const;
  // Writes the rows Checkpoint would write now for this entity's journey instances (kind
  // "journey", name = journey, key = id), whether or not they changed since the last
  // checkpoint: what an entity's journey positions are, from memory.
  Status JourneyRows(const std::string& entity_type, const std::string& id, StateSink& sink);
  double ScoreOf(const std::string& entity_type, const std::string& id, const std::string& score);
  const std::map<std::string, UnitHealth>& health() const { return health_; }
  TimeMs now() const { return now_; }
  std::int64_t duplicates() const { return duplicates_; }

  struct Impl;

 private:
  // Declared before impl_: Impl keeps pointers into health_ from its constructor on.
  std::map<std::string, UnitHealth> health_;
  TimeMs now_ = 0;
  std::int64_t duplicates_ = 0;
  std::unique_ptr<Impl> impl_;
  friend struct Impl;
};

}  // namespace gavel::rules
