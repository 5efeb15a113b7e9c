// The expression evaluator: runs a compiled expression (dsl::CompiledExpr bytecode) over a
// slot array filled by the engine. This is the only way rules/ evaluates anything; there is
// no tree walking at run time.
//
// Values are small and trivially copyable: a number, a yes/no, a text (a string_view into
// memory the caller keeps alive for the call: the event, the entity, the program), or null.
// Null is "no value": a missing field, a division by zero. Arithmetic with null gives null,
// a comparison with null is false, `and`/`or` treat null as false.
//
// An Evaluator keeps its stack between calls to avoid allocation; use one per thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "dsl/program.hpp"

namespace gavel::rules {

struct Value {
  enum class Kind : std::uint8_t { kNull, kNumber, kText, kBool };
  Kind kind = Kind::kNull;
  double num = 0;            // kNumber; kBool as 0/1
  std::string_view text;     // kText

  static Value Null() { return {}; }
  static Value Number(double v) { return {Kind::kNumber, v, {}}; }
  static Value Bool(bool b) { return {Kind::kBool, b ? 1.0 : 0.0, {}}; }
  static Value Text(std::string_view s) { return {Kind::kText, 0, s}; }
  bool is_null() const { return kind == Kind::kNull; }
  bool truthy() const { return kind == Kind::kBool && num != 0; }
};

class Evaluator {
 public:
  Value Run(const dsl::CompiledExpr& expr, const Value* slots);
  // Convenience: a condition's result (null and non-bool are false).
  bool Test(const dsl::CompiledExpr& expr, const Value* slots) {
    return expr.empty() || Run(expr, slots).truthy();
  }

 private:
  std::vector<Value> stack_;
};

// Glob match: `*` any run of characters (also none), `?` exactly one byte; no escapes.
bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace gavel::rules
