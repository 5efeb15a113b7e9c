// The entry point of the Spirit X3 grammar: parse one top-level declaration.
// Internal to dsl/parser/ (the public facade is dsl/parser.hpp).
//
// ParseDeclaration parses the declaration that starts at `first` (after skipping blanks and
// comments) and must end at or before `last`. On success it returns true and moves `first`
// past it. On a syntax error it returns false and fills `error` with the position and a
// description (in the author's words) of what was expected there. It never throws.
#pragma once

#include <string>

#include "dsl/parser/x3_ast.hpp"

namespace gavel::dsl::parser {

struct SyntaxError {
  const char* where = nullptr;  // nullptr: no declaration could start here at all
  std::string expected;         // e.g. "a duration such as `30d`"
};

bool ParseDeclaration(const char*& first, const char* last, x3ast::declaration& out,
                      SyntaxError& error);

// Skips blanks and `#` comments; used by the facade to find where text really starts.
const char* SkipBlanks(const char* first, const char* last);

}  // namespace gavel::dsl::parser
