// Types and units of gavel values: which combinations make sense, and in what words to say
// that one does not. Pure functions; used by the checker (compiler.cpp) and by tests.
//
// The rules, in short (docs/language.md has the full table):
//   money(C) +- money(C) -> money(C)       money / count -> money (a cost per thing)
//   money / money -> ratio (ROAS)          count / count -> ratio (CTR)
//   count / money -> number                number * X -> X, X / number -> X
//   money * ratio|percent -> money         percent behaves as a ratio (90% == 0.9)
// Comparisons need the same unit (and currency); a bare number compares with count, ratio,
// percent and number but never with money or durations ("write `40 USD`").
#pragma once

#include <string>

#include "dsl/ast.hpp"

namespace gavel::dsl {

bool IsNumeric(BaseType b);
std::string TypeName(const TypeRef& t);  // "money(USD)", "count", "text", ...

// Can a value of type `value` be stored in a field of type `field`?
bool Compatible(const TypeRef& field, const TypeRef& value);

// Can a and b be compared? If not, `why` gets a hint for the author.
bool Comparable(const TypeRef& a, const TypeRef& b, std::string& why);

// The type of `a op b` for + - * /, or kError with a hint in `why`.
TypeRef Arithmetic(Op op, const TypeRef& a, const TypeRef& b, std::string& why);

}  // namespace gavel::dsl
