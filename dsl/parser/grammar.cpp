// The one translation unit that instantiates the X3 grammar (slow to compile; keep it alone).
#include "dsl/parser/grammar.hpp"

#include "dsl/parser/grammar_def.hpp"

namespace gavel::dsl::parser {

bool ParseDeclaration(const char*& first, const char* last, x3ast::declaration& out,
                      SyntaxError& error) {
  FailState state;
  auto const top = x3::with<fail_state_tag>(std::ref(state))[declaration_r];
  const char* it = first;
  bool ok = false;
  try {
    ok = x3::phrase_parse(it, last, top, skipper, out);
  } catch (const x3::expectation_failure<const char*>& e) {
    // Only reachable for a failure outside any rule with a handler; kept for safety.
    state.where = e.where();
    state.which = e.which();
  }
  if (ok) {
    first = it;
    return true;
  }
  error.where = state.where;
  error.expected = state.which;
  return false;
}

const char* SkipBlanks(const char* first, const char* last) {
  x3::phrase_parse(first, last, x3::eps, skipper);
  return first;
}

}  // namespace gavel::dsl::parser
