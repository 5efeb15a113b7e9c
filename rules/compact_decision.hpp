// The compact form of a rule's decision on one entity (an event rule, or a crossing rule fired
// by a score change or by decay), built on the engine thread without JSON and without a heap
// allocation per field, and turned into an ordinary Decision by Materialize — then, or later
// on another thread (a log writer).
//
// The engine hands it to DecisionSink::AppendCompact (rules/decision.hpp), whose default
// materializes it and calls Append, so a sink that knows nothing of it sees exactly the
// Decision it would have seen before: same keys, same order, same numbers.
//
// Self-contained: the record holds the program by shared_ptr (the rule, the score and the
// entity type point into it) and its own copies of every text (ids, text slot values), so a
// copy stays valid after the call, whatever the engine does next. The intended actions are
// not stored: Materialize evaluates them from the slot values, which is exactly what the
// engine would have done (expressions are pure functions of the slots).
//
// Thread-safety: a plain value. Materialize may run on any thread (it uses a thread-local
// Evaluator); the Program is immutable.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/program.hpp"
#include "rules/clock.hpp"
#include "rules/decision.hpp"
#include "rules/eval.hpp"

namespace gavel::rules {

// A slot value; a text is a range of CompactDecision::text.
struct CompactValue {
  Value::Kind kind = Value::Kind::kNull;
  std::uint32_t text_offset = 0;
  std::uint32_t text_size = 0;
  double num = 0;
};

struct CompactDecision {
  // What the rule did: fired, or skipped by its cooldown or its limit.
  enum class Outcome : std::uint8_t { kFired, kCooldown, kLimit };

  std::shared_ptr<const dsl::Program> program;  // keeps the pointers below alive
  const dsl::CompiledRule* rule = nullptr;      // the rule (name, version, mode, slots, actions)
  const dsl::CompiledScore* score = nullptr;    // crossings: the score that crossed; else null
  const std::string* entity_type = nullptr;     // the entity type's name; null: no entity
  TimeMs event_time = 0;
  TimeMs processing_time = 0;
  Outcome outcome = Outcome::kFired;
  bool has_event = false;        // caused by an event (its id is event_id()); else by decay
  double previous = 0;           // crossings: the score before and after the change
  double value = 0;
  TimeMs cooldown_until = 0;     // kCooldown
  std::uint64_t fired_in_window = 0;  // kLimit
  // Texts back to back: the event id, the entity id, then the text slot values.
  std::string text;
  std::uint32_t event_id_size = 0;
  std::uint32_t entity_id_size = 0;
  std::vector<CompactValue> values;  // one per rule->slots, lets included

  std::string_view event_id() const { return std::string_view(text).substr(0, event_id_size); }
  std::string_view entity_id() const { return std::string_view(text).substr(event_id_size, entity_id_size); }
  // Slot i as a Value (texts view into `text`).
  Value value_at(std::size_t i) const {
    const CompactValue& v = values[i];
    switch (v.kind) {
      case Value::Kind::kNumber: return Value::Number(v.num);
      case Value::Kind::kBool: return Value::Bool(v.num != 0);
      case Value::Kind::kText: return Value::Text(std::string_view(text).substr(v.text_offset, v.text_size));
      case Value::Kind::kNull: break;
    }
    return Value::Null();
  }

  // Building (the engine): starts a record, keeping the buffers' capacity.
  void Reset() {
    text.clear();
    values.clear();
    event_id_size = entity_id_size = 0;
    score = nullptr;
    entity_type = nullptr;
    has_event = false;
    outcome = Outcome::kFired;
  }
  void Add(const Value& v) {
    CompactValue c;
    c.kind = v.kind;
    c.num = v.num;
    if (v.kind == Value::Kind::kText) {
      c.text_offset = static_cast<std::uint32_t>(text.size());
      c.text_size = static_cast<std::uint32_t>(v.text.size());
      text.append(v.text);
    }
    values.push_back(c);
  }
};

// The Decision the engine would have written for this record, byte for byte.
Decision Materialize(const CompactDecision& c);

}  // namespace gavel::rules
