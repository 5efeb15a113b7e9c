// A Decision: one record of the audit log. Every rule firing, every skip with its reason,
// every alert transition, every journey step and every per-run summary is one Decision.
//
// The engine builds Decisions and hands them to a DecisionSink (the SQLite decision log in
// rules/store/decision_log.hpp, or a vector in tests) before any action can run: "log first, act
// second". Event and crossing rules hand theirs over in compact form (AppendCompact,
// rules/compact_decision.hpp), which becomes the same Decision when materialized. Rendering a Decision to canonical JSON (ToJson) is deterministic — keys in a fixed
// order, numbers printed the same way every time — which is what makes golden tests, the hash
// chain and `explain` trustworthy.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rules/clock.hpp"

namespace gavel::rules {

// What happened. Stable strings: they are stored and queried.
//   fired      a rule's condition held and it intends its actions
//   skipped    a rule did not act; `reason` says why (stale_data, cooldown, limit,
//              below_confidence, error, no_data, duplicate_event, late_event, ...)
//   alert      an alert changed state; `reason` is the new state (pending, firing,
//              resolved, inactive) or `repeat` for a re-notification
//   journey    a journey instance entered, sent a step, waited, branched, exited, ended
//   score      a score crossed a threshold watched by a rule (the crossing itself)
//   summary    per-run counts of evaluations that did not fire
struct Decision {
  std::int64_t id = 0;            // assigned by the log (1, 2, 3, ...)
  TimeMs event_time = 0;          // the time of the input: event time or the tick's time
  TimeMs processing_time = 0;     // the engine clock when decided
  std::string kind;               // rule | alert | journey | score | summary
  std::string rule;               // rule, alert, journey or score name ("" for summary)
  std::string version;            // the unit's version hash
  std::string trigger;            // "event:<id>", "tick:<time>", "timer:<what>", "crossing:<score>"
  std::string entity_type;        // lead, adset_daily, ...
  std::string entity_id;
  std::string outcome;            // see above
  std::string reason;             // why (skips, alert states, journey step names)
  nlohmann::ordered_json evidence = nlohmann::ordered_json::object();  // the values it read
  nlohmann::ordered_json actions = nlohmann::ordered_json::array();    // intended actions
  std::string prev_hash;          // filled by the log
  std::string hash;               // filled by the log: sha256(prev_hash + canonical body)
};

// The canonical body (everything but id and hashes), as used for hashing and golden tests.
nlohmann::ordered_json ToJson(const Decision& d, bool with_chain = false);
// One line per decision, for `replay` output and golden decision logs.
std::string RenderLine(const Decision& d);

struct CompactDecision;  // rules/compact_decision.hpp

class DecisionSink {
 public:
  virtual ~DecisionSink() = default;
  // Appends; returns false if the record could not be made durable (the engine then stops
  // acting on this input and reports the failure). The engine does not read `d` after the
  // call, so a sink may move from it (replay's writer thread does).
  virtual bool Append(Decision& d) = 0;
  // Appends a rule's decision given in compact form (the engine's fast path for event and
  // crossing rules). The default materializes it (Materialize) and calls Append, so a sink
  // sees the same Decision either way; a sink may instead keep a copy and materialize it
  // later, on another thread. `c` is only valid during the call: copy it to keep it.
  virtual bool AppendCompact(const CompactDecision& c);
};

// An in-memory sink for tests and `replay --no-log`.
class VectorSink final : public DecisionSink {
 public:
  bool Append(Decision& d) override {
    d.id = static_cast<std::int64_t>(decisions.size() + 1);
    decisions.push_back(d);
    return true;
  }
  std::vector<Decision> decisions;
};

}  // namespace gavel::rules
