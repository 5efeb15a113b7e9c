// Events as the engine sees them, and their validation against the program's declarations.
//
// An event arrives as one JSON object: the envelope `event` (its declared type), `id`
// (unique; a repeated id is a duplicate) and `time` (RFC 3339), plus the fields its
// declaration lists. ParseEvent checks all of it and says exactly what is wrong — unknown
// event type, missing or mistyped field, bad timestamp, unknown extra field — so a malformed
// event is rejected with a reason and never half-applied.
// Event owns its strings; Value views into it stay valid while the Event lives.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dsl/base/status.hpp"
#include "dsl/program.hpp"
#include "rules/clock.hpp"
#include "rules/eval.hpp"

namespace gavel::rules {

// An owned value (Value is a view).
struct OwnedValue {
  Value::Kind kind = Value::Kind::kNull;
  double num = 0;
  std::string text;

  Value view() const {
    switch (kind) {
      case Value::Kind::kNumber: return Value::Number(num);
      case Value::Kind::kBool: return Value::Bool(num != 0);
      case Value::Kind::kText: return Value::Text(text);
      case Value::Kind::kNull: break;
    }
    return Value::Null();
  }
  static OwnedValue From(const Value& v) {
    OwnedValue o;
    o.kind = v.kind;
    o.num = v.num;
    if (v.kind == Value::Kind::kText) o.text = std::string(v.text);
    return o;
  }
};

struct Event {
  std::string type;
  std::string id;
  TimeMs time = 0;
  std::vector<std::pair<std::string, OwnedValue>> fields;
  // Set by ParseEvent and NormalizeEvent: the type's index in Program::events, with `fields`
  // in the declaration's order (so the engine reads field i by position). -1: not normalized.
  int type_index = -1;

  const OwnedValue* Get(std::string_view name) const {
    for (const auto& [n, v] : fields) {
      if (n == name) return &v;
    }
    return nullptr;
  }
};

// Parses and validates one JSON event. On failure, the Status message is the reason in the
// sender's words ("field `page` must be text, got a number").
Status ParseEvent(const dsl::Program& program, std::string_view json, Event& out);

// For events built in code (tests, tools): checks the type and fields like ParseEvent (every
// declared field present with the declared kind, no unknown field), puts the fields in
// declaration order and sets type_index.
Status NormalizeEvent(const dsl::Program& program, Event& e);

}  // namespace gavel::rules
