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

// One slot of a batch, as a column over its rows: either every row a number (`numbers`), or
// any values (`values`). A slot the expression never loads may have neither.
struct SlotColumn {
  const double* numbers = nullptr;
  const Value* values = nullptr;
};

class Evaluator {
 public:
  Value Run(const dsl::CompiledExpr& expr, const Value* slots);
  // A condition's result (null and non-bool are false; an empty expression is true).
  bool Test(const dsl::CompiledExpr& expr, const Value* slots);

  // Batch (columnar) evaluation over `rows` rows: slot k of row i is columns[k] at i (one
  // column for every slot up to the highest the code loads). Gives
  // exactly what Run / Test give row by row, but runs each instruction over a block of rows
  // at a time, so the cost of interpreting is paid once per block instead of once per row
  // (scheduled rules: one row per entity of a tick). `and`/`or` are evaluated on both sides
  // and merged (every operation is pure and total, so this is unobservable). Texts in `out`
  // point into the columns or the expression, like Run's.
  void RunBatch(const dsl::CompiledExpr& expr, const SlotColumn* columns, std::size_t rows, Value* out);
  // Writes each row's condition result to out[i]; returns how many are true.
  std::size_t TestBatch(const dsl::CompiledExpr& expr, const SlotColumn* columns, std::size_t rows, bool* out);

 private:
  // Runs the code; returns the stack depth at the end (the result is at depth - 1), or
  // kBadJump for malformed code (a backward or out-of-range jump), whose result is null.
  std::size_t Exec(const dsl::CompiledExpr& expr, const Value* slots);
  static constexpr std::size_t kBadJump = static_cast<std::size_t>(-1);
  // The stack, as parallel arrays (see eval.cpp); kept between calls to avoid allocation.
  std::vector<Value::Kind> kinds_;
  std::vector<double> nums_;
  std::vector<std::string_view> texts_;
  // Batch evaluation: the same stack, one block of rows per depth, and the masks of pending
  // `and`/`or` jumps.
  template <typename Emit>
  void ExecBatch(const dsl::CompiledExpr& expr, const SlotColumn* columns, std::size_t rows, Emit&& emit);
  std::vector<Value::Kind> batch_kinds_;
  std::vector<double> batch_nums_;
  std::vector<std::string_view> batch_texts_;
  std::vector<std::uint8_t> batch_masks_;
  std::vector<Value> row_slots_;  // the row-by-row fallback for code that is not well formed
};

// Glob match: `*` any run of characters (also none), `?` exactly one byte; no escapes.
bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace gavel::rules
