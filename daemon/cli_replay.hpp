// `gavel replay`: runs the engine on a simulated clock over recorded history and prints the
// decisions it makes.
//
//   gavel replay --rules DIR --events FILE.ndjson [--warehouse DB] [--from T1] [--to T2]
//                [--log FILE.db] [--format text|json] [--all-evaluations]
//
// Events are applied in event-time order (ties keep file order), every schedule tick and
// timer in between runs at its time, and a malformed input line is reported with its line
// number and reason and skipped. Exit codes: 0 done, 1 rule files do not compile, 2 usage
// or I/O problems.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace gavel::cli {

int RunReplay(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace gavel::cli
