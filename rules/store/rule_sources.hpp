// The text of every rule version that ever decided anything, kept next to the decision log so
// that `gavel explain` can show the exact rule a decision ran, long after the file changed.
//
// Table `rule_sources` in the state database: one row per (unit kind, unit name, version
// hash) with the file, the line and the unit's own text (its declaration, from its first line
// to its closing brace). Recording a program is idempotent: a version already stored is
// skipped. The daemon records each program it loads; `replay --log` records the program it
// ran.
//
// Threads: one thread at a time per connection.
#pragma once

#include <sqlite3.h>

#include <optional>
#include <string>

#include "dsl/base/status.hpp"
#include "dsl/program.hpp"
#include "dsl/source.hpp"

namespace gavel::rules {

struct RuleSource {
  std::string kind;     // rule | journey | alert (the units that make decisions)
  std::string name;
  std::string version;
  std::string file;
  int line = 0;
  std::string text;     // the unit's declaration
};

// The declaration starting at 1-based `line` of `text`: up to the brace that closes the first
// one opened (braces in strings and comments are not counted).
std::string DeclarationAt(const std::string& text, int line);

// Creates the table if missing and stores every unit of `program` whose version is new.
Status RecordRuleSources(sqlite3* db, const dsl::Program& program, const dsl::SourceManager& sources);
// The stored text of a unit version; NotFound when it was never recorded.
Result<RuleSource> FindRuleSource(sqlite3* db, const std::string& kind, const std::string& name,
                                  const std::string& version);

}  // namespace gavel::rules
