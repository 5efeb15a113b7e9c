// Helpers for the syntax tree. See ast.hpp.
#include "dsl/ast.hpp"

namespace gavel::dsl {

ExprPtr CloneExpr(const Expr& e) {
  auto out = std::make_unique<Expr>();
  out->kind = e.kind;
  out->span = e.span;
  out->op = e.op;
  out->negated = e.negated;
  out->number = e.number;
  out->unit = e.unit;
  out->text = e.text;
  out->path = e.path;
  out->path_spans = e.path_spans;
  out->window = e.window;
  for (const auto& a : e.args) out->args.push_back(CloneExpr(*a));
  if (e.baseline) out->baseline = std::make_unique<BaselineSpec>(*e.baseline);
  return out;
}

}  // namespace gavel::dsl
