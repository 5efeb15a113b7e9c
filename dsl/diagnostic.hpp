// Diagnostics: the user's mistakes, as data.
//
// A compile never throws at its caller; everything wrong with the rule files becomes a
// Diagnostic with a severity, a stable code (for editors, CI and docs), a message in the
// author's words, an optional hint, and the exact span it is about. RenderText gives
//   file:line:col: error: message
//     <source line>
//     ^~~~~
//   hint: ...
// and RenderJson gives one object per diagnostic for editors and CI.
#pragma once

#include <string>
#include <vector>

#include "dsl/ast.hpp"
#include "dsl/source.hpp"

namespace gavel::dsl {

enum class DiagSeverity { kError, kWarning };

struct Diagnostic {
  DiagSeverity severity = DiagSeverity::kError;
  std::string code;     // e.g. "unknown-name", "unit-mismatch", "syntax"
  std::string message;
  std::string hint;     // may be empty
  Span span;
};

class Diagnostics {
 public:
  void Error(std::string code, Span span, std::string message, std::string hint = {});
  void Warning(std::string code, Span span, std::string message, std::string hint = {});
  bool has_errors() const { return errors_ > 0; }
  int error_count() const { return errors_; }
  int warning_count() const { return static_cast<int>(list_.size()) - errors_; }
  const std::vector<Diagnostic>& list() const { return list_; }
  // Orders by file, then position (stable for equal positions), so output is deterministic.
  void Sort();
  void Append(const Diagnostics& other);
  // Keeps the first `max_errors` errors (in the current order) and the warnings before the
  // cut, then one error saying how many more there were. Call after Sort().
  void Limit(std::size_t max_errors);

 private:
  std::vector<Diagnostic> list_;
  int errors_ = 0;
};

std::string RenderText(const SourceManager& sources, const std::vector<Diagnostic>& diags);
std::string RenderJson(const SourceManager& sources, const std::vector<Diagnostic>& diags);

// Levenshtein-based suggestion: the candidate closest to `word`, or "" if none is close.
std::string ClosestMatch(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace gavel::dsl
