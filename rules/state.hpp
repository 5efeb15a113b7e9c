// The engine's durable state, as rows: what a StateStore keeps so that an engine restarted
// on the same database resumes exactly where it stopped (scores, entity fields, `once`
// marks, decay timers, journey positions and timers, alert states, schedule bookkeeping,
// cooldowns and limits, seen event ids).
//
// Engine::Checkpoint writes every row that changed since the last checkpoint to a StateSink;
// Engine::Restore reads all rows back from a StateSource before any input. Rows are JSON
// values keyed by (kind, name, key) — kinds: "entity" (name = entity type), "journey"
// (name = journey), "alert" (name = alert), "cooldown" (name = rule, key = entity: the last
// firing), "meta" (global bookkeeping), "events" (the events applied between two checkpoints,
// one row per checkpoint, keyed by a zero-padded sequence number: a string "xxh128:" followed
// by each id's 128-bit hash in 22 characters of base64url, the form the duplicate check keeps;
// rows holding a JSON array of the ids themselves, as written before, and "event" rows, one
// per id, are still read).
// The SQLite implementation is rules/store/state_store.hpp; it shares its connection and
// transaction with the decision log, so decisions and the state they produced commit together.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "dsl/base/status.hpp"

namespace gavel::rules {

class StateSink {
 public:
  virtual ~StateSink() = default;
  virtual Status Put(const std::string& kind, const std::string& name, const std::string& key,
                     const nlohmann::json& value) = 0;
  virtual Status Erase(const std::string& kind, const std::string& name, const std::string& key) = 0;
  // The same as Put with a value already serialised as JSON text (large rows: building them
  // as nlohmann::json costs an allocation per element). The default parses and calls Put.
  virtual Status PutText(const std::string& kind, const std::string& name, const std::string& key,
                         std::string_view json_text) {
    nlohmann::json v = nlohmann::json::parse(json_text, nullptr, false);
    if (v.is_discarded()) return Status::Internal("state row " + kind + "/" + name + "/" + key + " is not JSON");
    return Put(kind, name, key, v);
  }
};

class StateSource {
 public:
  virtual ~StateSource() = default;
  using Visitor = std::function<Status(const std::string& kind, const std::string& name,
                                       const std::string& key, const nlohmann::json& value)>;
  // Calls `visit` for every row, in (kind, name, key) order.
  virtual Status ForEach(const Visitor& visit) const = 0;
};

}  // namespace gavel::rules
